//! Compilation targets: a plain description of an adapter class, its limits and its
//! features.
//!
//! Compiling needs no device. A [`Target`] is either a fixed preset (so statistics and
//! golden WGSL files are reproducible on any machine) or read off a real adapter by the
//! runtime. Kernel variants and their tuning parameters (the matmul register tile) are
//! chosen per target, and the choice shows in dumps. The grid and limit arithmetic
//! every kernel needs (dispatch grids, binding counts, reduction stages, the product
//! kernel's workgroup) is here too, so each is decided in one place.

use super::fuse_products::Tiling;
use crate::error::{Error, Result};

/// The broad class of an adapter, which decides kernel variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterClass {
    /// A CPU-backed software rasterizer (Mesa lavapipe, llvmpipe through GL). Workgroup
    /// barriers are very slow here, so kernels avoid them.
    Cpu,
    /// A discrete GPU.
    DiscreteGpu,
    /// An integrated GPU.
    IntegratedGpu,
    /// Anything else (virtual GPUs, unknown).
    Other,
}

impl AdapterClass {
    /// The name used in dumps and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AdapterClass::Cpu => "cpu",
            AdapterClass::DiscreteGpu => "discrete-gpu",
            AdapterClass::IntegratedGpu => "integrated-gpu",
            AdapterClass::Other => "other",
        }
    }
}

/// Optional device features a program may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TargetFeatures {
    /// `f16` arithmetic in shaders.
    pub shader_f16: bool,
    /// Subgroup operations.
    pub subgroups: bool,
    /// The subgroup width when every subgroup has the same (lavapipe's is its SIMD
    /// width, 8 lanes of 256 bits); `None` when it varies or is unknown.
    pub subgroup_size: Option<u32>,
    /// Timestamp queries inside compute passes.
    pub timestamps: bool,
}

/// What the compiler may assume about the device it compiles for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// A short name: a preset's name, or the adapter's.
    pub name: String,
    /// The adapter class.
    pub class: AdapterClass,
    /// Storage buffers one kernel may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups along one dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// The largest storage binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// The largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Optional features.
    pub features: TargetFeatures,
    /// Matmul outputs computed per invocation, `[rows, cols]`: the register tile of the
    /// tiled matmul variant, tuned per target.
    pub matmul_tile: [u32; 2],
    /// The register tile of a quick first tier, for adapters that compile each kernel
    /// when it is first dispatched rather than when its pipeline is created (lavapipe,
    /// where a 16×16 tile takes LLVM about 2 s per kernel and a 4×4 tile about 0.1 s):
    /// a program whose products use a larger tile is also compiled with this one
    /// ([`Program::quick`](super::Program::quick)), and the runtime runs that tier
    /// while the larger tiles compile. `None` where pipelines compile up front.
    pub quick_tile: Option<[u32; 2]>,
    /// Product tiles measured on this adapter (`wgrad tune`), which override
    /// `matmul_tile` for the product shapes they name; empty without a tuning file.
    pub tuning: Tuning,
    /// The most iterations one shader invocation's loops may run, a limit of the
    /// driver rather than the API: [`LOOP_LIMIT`] on llvmpipe (and, conservatively,
    /// on other CPU adapters and in the portable preset), `u32::MAX` where no driver
    /// limit is known. Sums, products and scatters longer than this are split.
    pub max_loop_iterations: usize,
}

/// The register tile of the quick first tier on adapters that compile kernels at their
/// first dispatch ([`Target::quick_tile`]).
pub const QUICK_TILE: [u32; 2] = [4, 4];

/// Invocations per workgroup of the tiled product kernel.
pub const MATMUL_INVOCATIONS: u32 = 64;

/// The register tiles a tiled product may use, `[rows, cols]`: the tuning space of
/// products (`wgrad tune` measures each).
pub const PRODUCT_TILES: [[u32; 2]; 6] = [[4, 4], [4, 8], [8, 8], [8, 16], [16, 8], [16, 16]];

/// The invocations per row a row kernel may use, the tuning space of row kernels: one
/// invocation per row, or a workgroup sharing each row.
pub const ROW_MODES: [usize; 2] = [1, super::plan::ROW_THREADS];

/// Into how many parts a product's contraction may be split (split-K), besides not
/// at all: each part computes a partial product over its share of K, and a second
/// kernel adds the parts in order.
pub const SPLITS: [usize; 3] = [2, 4, 8];

/// The shortest share of K a part of a split product computes: splitting shorter
/// contractions costs more in partial results than it gains.
pub const MIN_SPLIT_RUN: usize = 128;

/// The runs (elements each invocation folds) of a reduction's first stage when it is
/// split in two, besides computing it in one stage: the tuning space of reductions.
pub const REDUCTION_RUNS: [usize; 3] = [256, 1024, 4096];

/// A reduction kernel's shape, by which a tuning file names its stages: the elements
/// folded into each output, and the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReductionShape {
    /// Elements folded into each output.
    pub trips: usize,
    /// Outputs.
    pub outputs: usize,
}

impl std::fmt::Display for ReductionShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} output{} of {} elements",
            self.outputs,
            if self.outputs == 1 { "" } else { "s" },
            self.trips
        )
    }
}

/// How a reduction is computed: in one stage (an invocation per output folds all its
/// elements), or in two (invocations fold runs of `run` elements each, then one per
/// output folds their results in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReductionStages {
    /// One stage.
    One,
    /// Two stages, with runs of this many elements.
    Two(usize),
}

impl std::fmt::Display for ReductionStages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReductionStages::One => write!(f, "one stage"),
            ReductionStages::Two(run) => write!(f, "two stages, runs of {run}"),
        }
    }
}

/// A reduction's split, as the planner uses it: `parts` runs of `run` elements per
/// output (one part of all its elements for one stage), and whether the tuning file
/// chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReductionSplit {
    /// Runs per output; 1 for one stage.
    pub parts: usize,
    /// Elements per run.
    pub run: usize,
    /// Whether the split comes from the tuning file.
    pub tuned: bool,
}

/// A row kernel's shape, by which a tuning file names its mode: the rows, the elements
/// of each, and the row reductions it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowShape {
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub len: usize,
    /// Row reductions.
    pub sums: usize,
}

impl std::fmt::Display for RowShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows of {}, {} row reduction{}",
            self.rows,
            self.len,
            self.sums,
            if self.sums == 1 { "" } else { "s" }
        )
    }
}

/// Kernel variants chosen by measurement on one adapter: product tiles by product
/// shape, and row kernels' invocations per row by row shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Where they were read from (a tuning file's path), for reports.
    pub source: String,
    /// Each tuned product shape and its tile, one of [`PRODUCT_TILES`].
    pub products: Vec<(Tiling, [u32; 2])>,
    /// Each tuned row shape and its invocations per row, one of [`ROW_MODES`].
    pub rows: Vec<(RowShape, usize)>,
    /// Each product shape whose loads were measured, and whether a subgroup shares A's
    /// loads ([`Target::shared_loads`]).
    pub loads: Vec<(Tiling, bool)>,
    /// Each tuned reduction shape and its stages ([`REDUCTION_RUNS`]).
    pub reductions: Vec<(ReductionShape, ReductionStages)>,
    /// Each product shape whose contraction split was measured, and its parts (1, or
    /// one of [`SPLITS`]).
    pub splits: Vec<(Tiling, usize)>,
}

/// Where a product's register tile comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileSource {
    /// The target's preset tile (`Target::matmul_tile`).
    Preset,
    /// A smaller tile than the preset's, chosen by the product's shape: the preset
    /// tile would leave too few invocations, or pad a narrow side.
    Shape,
    /// The tuning file's tile for this product shape.
    TuningFile,
}

impl TileSource {
    /// How plans and dumps name it.
    pub fn describe(self) -> &'static str {
        match self {
            TileSource::Preset => "preset",
            TileSource::Shape => "by shape",
            TileSource::TuningFile => "tuning file",
        }
    }
}

/// The invocations a product of shape `t` needs with register tile `tile`, and the
/// fraction of their elements inside the product.
fn tile_grid(t: &Tiling, [tm, tn]: [u32; 2]) -> (usize, f64) {
    let (tm, tn) = (tm.max(1) as usize, tn.max(1) as usize);
    let (rows, cols) = (t.m.div_ceil(tm), t.n.div_ceil(tn));
    let used = (t.m * t.n) as f64 / ((rows * tm * cols * tn) as f64).max(1.0);
    (rows * cols * t.batch, used)
}

/// The fewest register tiles (invocations) a product's tile should leave on a CPU
/// adapter, which runs a workgroup of 64 per thread: a few workgroups per core.
pub const MIN_PRODUCT_INVOCATIONS_CPU: usize = 256;

/// The same on GPUs, which run thousands of invocations at once.
pub const MIN_PRODUCT_INVOCATIONS_GPU: usize = 4096;

/// The smallest fraction of a tile grid's elements that must fall inside the product
/// for a tile to be chosen by shape: a 16-wide tile over 10 columns computes 16.
pub const MIN_TILE_USE: f64 = 0.75;

impl Target {
    /// The register tile for a product of shape `tiling`, and where it comes from:
    /// the tuning file's tile for that shape, or else the preset's, made smaller by
    /// [`Target::shape_tile`] when the product is small or narrow.
    pub fn product_tile(&self, tiling: &Tiling) -> ([u32; 2], TileSource) {
        if let Some((_, tile)) = self.tuning.products.iter().find(|(t, _)| t == tiling) {
            return (*tile, TileSource::TuningFile);
        }
        let tile = self.shape_tile(tiling);
        if tile == self.matmul_tile {
            (tile, TileSource::Preset)
        } else {
            (tile, TileSource::Shape)
        }
    }

    /// The largest tile of [`PRODUCT_TILES`] no larger than the preset's on either side
    /// that leaves at least the adapter's minimum of invocations
    /// ([`MIN_PRODUCT_INVOCATIONS_CPU`], [`MIN_PRODUCT_INVOCATIONS_GPU`]) and uses at
    /// least [`MIN_TILE_USE`] of its grid; for a product too small to give that many,
    /// the one of those tiles giving the most invocations. The preset when no smaller
    /// tile qualifies. A cheap stand-in for measuring (`wgrad tune`): on lavapipe,
    /// W1's `[256×512]·[512×10]` took 1.12 ms with 4×4 tiles against 1.65 ms with
    /// 16×16.
    pub fn shape_tile(&self, t: &Tiling) -> [u32; 2] {
        let preset = self.matmul_tile;
        if self.preset_suits(t) {
            return preset;
        }
        let least = self.least_product_invocations();
        let tiles = |tile| tile_grid(t, tile);
        let mut fitting: Vec<[u32; 2]> = PRODUCT_TILES
            .iter()
            .copied()
            .filter(|&[tm, tn]| tm <= preset[0] && tn <= preset[1])
            .filter(|&tile| tiles(tile).1 >= MIN_TILE_USE)
            .collect();
        // Largest first; of equal areas, the squarer.
        fitting.sort_by_key(|&[tm, tn]| (std::cmp::Reverse(tm * tn), tm.abs_diff(tn)));
        fitting
            .iter()
            .copied()
            .find(|&tile| tiles(tile).0 >= least)
            .or_else(|| fitting.iter().copied().max_by_key(|&tile| tiles(tile).0))
            .unwrap_or(preset)
    }

    /// Into how many parts a product of shape `t` with register tile `tile` splits its
    /// contraction (1: not split): as the tuning file says for the shape, where this
    /// target can run it; otherwise, on GPUs, a long contraction (K of at least
    /// 1,024) whose tiles leave fewer invocations than the adapter wants is split
    /// into as many parts of [`SPLITS`] as bring it nearest that, with K over the parts
    /// at least [`MIN_SPLIT_RUN`]. Not on CPU adapters by default: their few threads
    /// are busy with fewer invocations.
    pub fn split_k(&self, t: &Tiling, tile: [u32; 2]) -> usize {
        if let Some(&(_, parts)) = self.tuning.splits.iter().find(|(s, _)| s == t)
            && (parts == 1 || self.split_fits(t, parts))
        {
            return parts;
        }
        let (count, _) = tile_grid(t, tile);
        if self.class == AdapterClass::Cpu || t.k < 1024 {
            return 1;
        }
        self.splits_to_try(t, tile)
            .into_iter()
            .filter(|&parts| count * parts <= self.least_product_invocations())
            .max()
            .unwrap_or(1)
    }

    /// The splits of [`SPLITS`] worth measuring for a product of shape `t` with
    /// register tile `tile`: none when its tiles leave the adapter enough invocations,
    /// otherwise those this target can run ([`MIN_SPLIT_RUN`], the dispatch grid).
    pub fn splits_to_try(&self, t: &Tiling, tile: [u32; 2]) -> Vec<usize> {
        if tile_grid(t, tile).0 >= self.least_product_invocations() {
            return Vec::new();
        }
        SPLITS
            .into_iter()
            .filter(|&parts| self.split_fits(t, parts))
            .collect()
    }

    /// Whether a product of shape `t` can split its contraction into `parts`: K over
    /// the parts at least [`MIN_SPLIT_RUN`], the parts within the dispatch grid, and
    /// their partial products within a storage binding.
    fn split_fits(&self, t: &Tiling, parts: usize) -> bool {
        let partials = (t.batch * t.m * t.n * parts * 4) as u64;
        t.k.div_ceil(parts) >= MIN_SPLIT_RUN
            && t.batch * parts <= self.max_compute_workgroups_per_dimension as usize
            && partials <= self.max_storage_buffer_binding_size
            && partials <= self.max_buffer_size
    }

    /// Whether the preset's tile suits a product of shape `t`: it leaves at least the
    /// adapter's minimum of invocations and uses at least [`MIN_TILE_USE`] of its grid.
    pub fn preset_suits(&self, t: &Tiling) -> bool {
        let (count, used) = tile_grid(t, self.matmul_tile);
        count >= self.least_product_invocations() && used >= MIN_TILE_USE
    }

    /// The fewest invocations a product's tile should leave on this adapter.
    fn least_product_invocations(&self) -> usize {
        match self.class {
            AdapterClass::Cpu => MIN_PRODUCT_INVOCATIONS_CPU,
            AdapterClass::DiscreteGpu | AdapterClass::IntegratedGpu | AdapterClass::Other => {
                MIN_PRODUCT_INVOCATIONS_GPU
            }
        }
    }

    /// The tuning file's invocations per row for row kernels of `shape`, if it names
    /// them.
    pub fn row_threads(&self, shape: &RowShape) -> Option<usize> {
        self.tuning
            .rows
            .iter()
            .find(|(s, _)| s == shape)
            .map(|(_, t)| *t)
    }

    /// Whether a product tile is larger than the quick tier's, so that a program using
    /// it gets a quick tier.
    pub fn slower_to_compile_than_quick(&self, tile: [u32; 2]) -> bool {
        self.quick_tile.is_some_and(|q| {
            u64::from(tile[0]) * u64::from(tile[1]) > u64::from(q[0]) * u64::from(q[1])
        })
    }

    /// This target with the quick tier's tile as its product tile (and no quick tier
    /// of its own); `None` when it has no quick tier.
    pub fn quick(&self) -> Option<Target> {
        let tile = self.quick_tile?;
        Some(Target {
            matmul_tile: tile,
            quick_tile: None,
            tuning: Tuning::default(),
            ..self.clone()
        })
    }

    /// Mesa's software Vulkan driver (lavapipe), as on a headless CI machine.
    pub fn software_vulkan() -> Target {
        Target {
            name: "software-vulkan".into(),
            class: AdapterClass::Cpu,
            max_storage_buffers_per_shader_stage: 32,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 1 << 30,
            features: TargetFeatures {
                shader_f16: true,
                subgroups: true,
                subgroup_size: Some(8),
                timestamps: true,
            },
            matmul_tile: [16, 16],
            quick_tile: Some(QUICK_TILE),
            tuning: Tuning::default(),
            max_loop_iterations: LOOP_LIMIT,
        }
    }

    /// A typical discrete GPU under Vulkan: the software preset's limits and features,
    /// with fewer storage buffers per stage and a smaller matmul tile.
    pub fn discrete_gpu() -> Target {
        Target {
            name: "discrete-gpu".into(),
            class: AdapterClass::DiscreteGpu,
            max_storage_buffers_per_shader_stage: 16,
            features: TargetFeatures {
                subgroup_size: Some(32),
                ..Target::software_vulkan().features
            },
            matmul_tile: [4, 4],
            quick_tile: None,
            max_loop_iterations: u32::MAX as usize,
            ..Target::software_vulkan()
        }
    }

    /// WebGPU's default limits: what any conforming adapter offers.
    pub fn portable() -> Target {
        Target {
            name: "portable".into(),
            class: AdapterClass::Other,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 256 << 20,
            features: TargetFeatures::default(),
            matmul_tile: [4, 4],
            quick_tile: None,
            tuning: Tuning::default(),
            max_loop_iterations: LOOP_LIMIT,
        }
    }

    /// The names of the presets, for `--target`.
    pub const PRESETS: [&'static str; 3] = ["software-vulkan", "discrete-gpu", "portable"];

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Target> {
        match name {
            "software-vulkan" => Some(Target::software_vulkan()),
            "discrete-gpu" => Some(Target::discrete_gpu()),
            "portable" => Some(Target::portable()),
            _ => None,
        }
    }

    /// The invocations per workgroup of elementwise and reduction kernels.
    pub fn workgroup_size(&self) -> u32 {
        self.max_compute_invocations_per_workgroup.min(256)
    }

    /// The workgroup of the tiled product kernel, `[columns, rows]` of register tiles
    /// (`shaders/matmul.wgsl`'s `@workgroup_size`): 8×8, or with shared loads
    /// ([`Target::shared_loads`]) one row of tiles per subgroup.
    pub fn matmul_workgroup(&self, tiling: &Tiling) -> [u32; 2] {
        match self.shared_loads(tiling) {
            Some(width) => [width, MATMUL_INVOCATIONS / width],
            None => [8, 8],
        }
    }

    /// The subgroup width when a product of shape `tiling` reads A's tile rows once per
    /// subgroup rather than once per invocation: each lane loads its share of the rows
    /// and `subgroupBroadcast` hands every value to the whole subgroup, whose lanes
    /// compute tiles of the same rows. Only where every subgroup has one known width
    /// that divides the workgroup. The tuning file's choice for the shape, where it
    /// names one; otherwise shared on CPU adapters, which read a buffer one lane at a
    /// time (on lavapipe it took W2's `[1024×256]·[256×1000]` from 20.3 to 13.6 ms with
    /// the same 16×16 tile), and not on GPUs.
    pub fn shared_loads(&self, tiling: &Tiling) -> Option<u32> {
        let width = self.load_sharing_width()?;
        let shared = match self.tuning.loads.iter().find(|(t, _)| t == tiling) {
            Some(&(_, shared)) => shared,
            None => self.shares_loads_by_default(),
        };
        shared.then_some(width)
    }

    /// The subgroup width at which a product's subgroups can share A's loads on this
    /// target: its one subgroup width, when that divides the product's workgroup.
    /// `None` when products cannot share loads here, so there is no choice to tune.
    /// The kernel assumes full subgroups, `64 / width` of them per workgroup, as a
    /// driver with one subgroup width runs a workgroup whose size it divides.
    pub fn load_sharing_width(&self) -> Option<u32> {
        let width = self.features.subgroup_size?;
        (self.features.subgroups
            && width >= 2
            && MATMUL_INVOCATIONS.is_multiple_of(width)
            && MATMUL_INVOCATIONS <= self.max_compute_invocations_per_workgroup)
            .then_some(width)
    }

    /// Whether products share A's loads where the tuning file does not say: on CPU
    /// adapters.
    pub fn shares_loads_by_default(&self) -> bool {
        self.class == AdapterClass::Cpu
    }

    /// Into how many runs a reduction of `trips` elements into `outputs` results is
    /// split: 1 for a reduction in one stage, more for two (a first stage folds each
    /// run, a second folds the runs' results in order); see
    /// [`Target::reduction_split`].
    pub fn reduction_parts(&self, trips: usize, outputs: usize) -> usize {
        self.reduction_split(ReductionShape { trips, outputs })
            .parts
    }

    /// How a reduction of shape `shape` is split: as the tuning file says for the
    /// shape, where it names stages this target can run (one stage only when each
    /// output's loop fits the driver's loop limit; two only when the runs and their
    /// count do); otherwise two stages with runs of [`REDUCTION_CHUNK`] when the
    /// reduction is long (at least [`SPLIT_REDUCTION`] elements) and has few outputs
    /// (under 256), and one stage else.
    pub fn reduction_split(&self, shape: ReductionShape) -> ReductionSplit {
        let ReductionShape { trips, outputs } = shape;
        let limit = self.max_loop_iterations;
        let split = |run: usize, tuned| ReductionSplit {
            parts: trips.div_ceil(run.max(1)),
            run,
            tuned,
        };
        let one = |tuned| ReductionSplit {
            parts: 1,
            run: trips,
            tuned,
        };
        match self.tuning.reductions.iter().find(|(s, _)| *s == shape) {
            Some((_, ReductionStages::One)) if trips <= limit => return one(true),
            Some(&(_, ReductionStages::Two(run)))
                if run < trips && run <= limit && trips.div_ceil(run.max(1)) <= limit =>
            {
                return split(run, true);
            }
            _ => {}
        }
        if trips >= SPLIT_REDUCTION && outputs < 256 {
            split(REDUCTION_CHUNK, false)
        } else {
            one(false)
        }
    }

    /// The dispatch grid `[x, y]` in workgroups of [`Target::workgroup_size`] for `n`
    /// invocations: 1-D, or 2-D when one dimension is not enough. `what` names the
    /// kernel in the error.
    pub fn grid(&self, n: usize, what: &str) -> Result<[usize; 2]> {
        self.grid_of(n.div_ceil(self.workgroup_size() as usize), what)
    }

    /// The dispatch grid `[x, y]` for `groups` workgroups.
    pub fn grid_of(&self, groups: usize, what: &str) -> Result<[usize; 2]> {
        let max_dim = self.max_compute_workgroups_per_dimension as usize;
        let gx = groups.min(max_dim);
        let gy = groups.div_ceil(gx.max(1));
        if gy > max_dim {
            return Err(Error::Compile(format!(
                "{what} needs {groups} workgroups, more than a {max_dim}×{max_dim} grid"
            )));
        }
        Ok([gx, gy])
    }

    /// An error when kernel `name` binds more storage buffers than the target allows.
    pub fn check_bindings(&self, count: usize, name: &str) -> Result<()> {
        if count as u32 > self.max_storage_buffers_per_shader_stage {
            return Err(Error::Limits {
                what: format!("max_storage_buffers_per_shader_stage (kernel {name})"),
                needed: count as u64,
                available: self.max_storage_buffers_per_shader_stage as u64,
            });
        }
        Ok(())
    }
}

/// The most iterations a shader loop may run on llvmpipe
/// ([`Target::max_loop_iterations`] there). llvmpipe (Mesa's software
/// rasterizer, behind lavapipe) silently ends a loop after 65,535 iterations (a loop
/// nested in another shares that count across the outer loop's iterations: a
/// product's K loop of 100,000 split into nested blocks still stops at 65,535).
/// `passes::split_long` splits the reductions and products that would loop longer,
/// and row kernels keep within it conservatively, counting all their passes over a
/// row together.
pub const LOOP_LIMIT: usize = 65_535;

/// Reductions at least this long with few outputs run in two stages.
pub const SPLIT_REDUCTION: usize = 4096;
/// Elements folded by one invocation of the first stage of a two-stage reduction.
pub const REDUCTION_CHUNK: usize = 1024;
