//! Measuring kernel variants on the adapter in use (`wgrad tune`): products' tiles,
//! loads and splits along K, row kernels' invocations per row, and reductions' stages.
//!
//! Every row kernel shape of the given programs is measured first, in each mode of
//! [`ROW_MODES`] (one invocation per row, or a workgroup sharing it) that its row
//! allows: they are few and quick. So is every reduction kernel, in one stage and in
//! two with each run of [`REDUCTION_RUNS`] that its length and the driver's loop
//! limit allow. Then, for every tiled product of the given programs (by default the gradients of
//! workloads W1, W2 and W3a and a 1024³ product), largest first, each tile of the
//! tuning space ([`PRODUCT_TILES`]) is measured in the program itself (for a product
//! the preset tile suits, those of at least a quarter of its area), with the
//! program's other products at the preset tile: the program is compiled with that
//! tile for that shape, run once (drivers that compile at the first dispatch do it
//! then), and timed: the kernels of that shape (with whatever they fuse: epilogues,
//! prologues, sums beside the product) from timestamp queries where the adapter has
//! them, the wall clock around a run otherwise, the median of a few runs. A shape that
//! several programs share is measured in the first. At its fastest tile, a product is
//! then measured once more with the other way of loading A, where the adapter allows
//! both (a subgroup sharing A's loads, or each invocation loading its own; see
//! [`Target::shared_loads`](crate::Target::shared_loads)), and, when its tiles leave
//! the adapter too few invocations, with K split into each of
//! [`SPLITS`](crate::lower::SPLITS) parts ([`Target::split_k`](crate::Target::split_k));
//! tiles and loads are measured unsplit. The fastest tile, way of loading and split of
//! each shape go into a [`TuningFile`] for this adapter, which every later
//! [`Runtime`] reads when it opens its device. A variant that fails to compile, to
//! validate or to fit the adapter's limits, or whose outputs differ from those of the
//! program with the preset's variants by more than rounding, is skipped and reported. Measuring stops
//! at the time budget; shapes it did not reach keep the preset (or the tile chosen by
//! shape).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::lower::{
    KernelKind, PRODUCT_TILES, REDUCTION_RUNS, ROW_MODES, ReductionShape, ReductionStages,
    RowShape, Tiling, Tuning, TuningFile,
};
use crate::{Builder, DType, Graph, Options, Runtime, Tensor, Type};

/// How `tune` measures.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Stop measuring after this long (the shapes not reached keep the preset).
    pub budget: Duration,
    /// Timed runs per variant (after one untimed run).
    pub runs: usize,
}

impl Default for TuneOptions {
    fn default() -> TuneOptions {
        TuneOptions {
            budget: Duration::from_secs(30),
            runs: 3,
        }
    }
}

/// What `tune` measured.
#[derive(Clone, Debug, Default)]
pub struct TuneReport {
    /// The tuning file to write: the fastest variant of every shape measured.
    pub file: TuningFile,
    /// Every variant measured: the shape, the tile, and its milliseconds or why it was
    /// skipped.
    pub variants: Vec<(Tiling, [u32; 2], Result<f64, String>)>,
    /// Every row kernel mode measured: the shape, the invocations per row, and its
    /// milliseconds or why it was skipped.
    pub row_variants: Vec<(RowShape, usize, Result<f64, String>)>,
    /// Every product measured at its fastest tile with the other way of loading A
    /// than the target's default: the shape, whether A's loads were shared by a
    /// subgroup, and its milliseconds or why it was skipped.
    pub load_variants: Vec<(Tiling, bool, Result<f64, String>)>,
    /// Product shapes the budget did not reach.
    pub not_reached: Vec<Tiling>,
    /// Row shapes the budget did not reach.
    pub rows_not_reached: Vec<RowShape>,
    /// Every product measured with its contraction split, at its fastest tile and way
    /// of loading: the shape, the parts, and its milliseconds or why it was skipped.
    pub split_variants: Vec<(Tiling, usize, Result<f64, String>)>,
    /// Every reduction split measured: the shape, its stages, and its milliseconds or
    /// why it was skipped.
    pub reduction_variants: Vec<(ReductionShape, ReductionStages, Result<f64, String>)>,
    /// Reduction shapes the budget did not reach.
    pub reductions_not_reached: Vec<ReductionShape>,
    /// Whether the times are the kernel's own (timestamp queries) or wall clock.
    pub timestamps: bool,
}

/// The programs tuned when none are given: the gradients of W1, W2 and W3a, and a
/// 1024³ product.
pub fn default_programs() -> crate::Result<Vec<(String, Graph)>> {
    let parse = |text: &str| {
        crate::parse(text).map_err(|e| crate::Error::from(wgrad_compiler::Error::from(e)))
    };
    let w1 = parse(include_str!("../examples/programs/w1.wg"))?;
    let w2 = parse(include_str!("../examples/programs/w2.wg"))?;
    let w3a = parse(include_str!("../examples/programs/w3a.wg"))?;
    Ok(vec![
        (
            "W1 gradient".into(),
            crate::grad(&w1, None, &["w1", "b1", "w2", "b2", "w3", "b3"])?,
        ),
        ("W2 gradient".into(), crate::grad(&w2, None, &["w"])?),
        ("W3a gradient".into(), crate::grad(&w3a, None, &["w"])?),
        ("matmul 1024³".into(), product_graph(&square(1024))?),
    ])
}

/// A `[m, k] · [k, n]` product with both operands row-major.
fn square(n: usize) -> Tiling {
    Tiling {
        a_transposed: false,
        b_transposed: false,
        m: n,
        n,
        k: n,
        batch: 1,
    }
}

/// The shapes a program's kernels can be tuned by, each with the index of the first
/// program that has it.
pub struct Shapes {
    /// Tiled products, largest first.
    pub products: Vec<(Tiling, usize)>,
    /// Row kernels, in the order first met.
    pub rows: Vec<(RowShape, usize)>,
    /// Reduction kernels, in the order first met.
    pub reductions: Vec<(ReductionShape, usize)>,
}

/// The tiled products and row kernels of `programs` compiled for `options`.
pub fn shapes(programs: &[(String, Graph)], options: &Options) -> crate::Result<Shapes> {
    let mut out = Shapes {
        products: Vec::new(),
        rows: Vec::new(),
        reductions: Vec::new(),
    };
    let (mut seen, mut seen_rows, mut seen_reductions) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (i, (_, g)) in programs.iter().enumerate() {
        let (_, report) = crate::lower::compile(g, options)?;
        let plans =
            std::iter::once(&report.plan).chain(report.pieces.iter().map(|p| &p.report.plan));
        for plan in plans {
            for k in &plan.kernels {
                match &k.kind {
                    KernelKind::Matmul(m) if seen.insert(m.tiling) => {
                        out.products.push((m.tiling, i));
                    }
                    KernelKind::Row(r) if seen_rows.insert(r.shape) => {
                        out.rows.push((r.shape, i));
                    }
                    &KernelKind::Reduce { trips, outputs, .. } => {
                        let shape = ReductionShape { trips, outputs };
                        if seen_reductions.insert(shape) {
                            out.reductions.push((shape, i));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out.products
        .sort_by_key(|(t, _)| std::cmp::Reverse(t.batch * t.m * t.n * t.k));
    Ok(out)
}

/// A program computing one product of shape `t` from inputs `a` and `b`.
fn product_graph(t: &Tiling) -> crate::Result<Graph> {
    let mut b = Builder::new();
    let batch: Vec<usize> = if t.batch > 1 {
        vec![t.batch]
    } else {
        Vec::new()
    };
    let nb = batch.len();
    let shape = |x: usize, y: usize| [batch.clone(), vec![x, y]].concat();
    let a_shape = if t.a_transposed {
        shape(t.k, t.m)
    } else {
        shape(t.m, t.k)
    };
    let b_shape = if t.b_transposed {
        shape(t.n, t.k)
    } else {
        shape(t.k, t.n)
    };
    let a = b.input("a", Type::f32(&a_shape))?;
    let bb = b.input("b", Type::f32(&b_shape))?;
    let dims = crate::ir::DotDims {
        lhs_batch: (0..nb).collect(),
        rhs_batch: (0..nb).collect(),
        lhs_contract: vec![if t.a_transposed { nb } else { nb + 1 }],
        rhs_contract: vec![if t.b_transposed { nb + 1 } else { nb }],
    };
    let c = b.push(crate::ir::Op::Dot(dims), &[a, bb])?;
    b.output("c", c)?;
    Ok(b.finish()?)
}

/// Deterministic inputs in [-1, 1) for `g`.
fn inputs(g: &Graph) -> crate::Result<HashMap<String, Tensor>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = HashMap::new();
    for (name, v) in g.inputs() {
        let ty = g.ty(*v).clone();
        let data = (0..ty.numel())
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                match ty.dtype {
                    DType::F32 => ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0,
                    _ => 0.0,
                }
            })
            .collect();
        out.insert(name.clone(), Tensor::new(ty, data)?);
    }
    Ok(out)
}

/// Measures the variants of every row kernel, reduction and product of `programs` on
/// `rt`, as the module says (`rt` should load in one tier and time kernels:
/// `RuntimeOptions { tiers: false, timestamps: true, .. }`), calling `progress` with a
/// line per variant.
pub fn tune(
    rt: &Runtime,
    programs: &[(String, Graph)],
    options: &TuneOptions,
    mut progress: impl FnMut(&str),
) -> crate::Result<TuneReport> {
    let start = Instant::now();
    let mut base = rt.target().clone();
    base.tuning = Tuning::default();
    base.quick_tile = None;
    let Shapes {
        products: shapes,
        rows,
        reductions,
    } = shapes(programs, &Options::new(base.clone()))?;
    let timestamps = base.features.timestamps;
    let adapter = rt.adapter();
    let mut report = TuneReport {
        file: TuningFile {
            adapter: adapter.name.clone(),
            driver: adapter.driver.clone(),
            driver_info: adapter.driver_info.clone(),
            products: Vec::new(),
            rows: Vec::new(),
            loads: Vec::new(),
            splits: Vec::new(),
            reductions: Vec::new(),
        },
        timestamps,
        ..TuneReport::default()
    };
    let mut references: Vec<Option<Vec<(String, Tensor)>>> = vec![None; programs.len()];
    let program_inputs: Vec<HashMap<String, Tensor>> = programs
        .iter()
        .map(|(_, g)| inputs(g))
        .collect::<crate::Result<_>>()?;
    let mut bench = Bench {
        rt,
        start,
        budget: options.budget,
        runs: options.runs,
        longest: Duration::ZERO,
        progress: &mut progress,
    };
    for (i, (shape, p)) in rows.iter().enumerate() {
        if !bench.has_time() {
            report
                .rows_not_reached
                .extend(rows[i..].iter().map(|(r, _)| *r));
            break;
        }
        let (g, ins) = (&programs[*p].1, &program_inputs[*p]);
        let case = (g, ins, warm(rt, &base, (g, ins), &mut references[*p]));
        let (measured, _) = bench.all(&ROW_MODES, |bench, threads| {
            let mut target = base.clone();
            target.tuning.rows = vec![(*shape, threads)];
            // The kernel's first line names its shape and its invocations per row.
            let mode = if threads == 1 {
                ": one invocation per row".to_string()
            } else {
                format!(": a workgroup of {threads} per row")
            };
            let mark = format!("({shape}");
            let label = format!("{shape}: {threads} per row");
            let missing = format!("the row does not allow {threads} invocation(s) per row");
            bench.variant(target, case, &label, &missing, |k| {
                k.variant == "row" && first_line(k).contains(&mark) && first_line(k).contains(&mode)
            })
        });
        if let Some((threads, comment)) = fastest(&measured, |t| t.to_string()) {
            report.file.rows.push((*shape, threads, comment));
        }
        report
            .row_variants
            .extend(measured.into_iter().map(|(t, ms)| (*shape, t, ms)));
    }
    for (i, (shape, p)) in reductions.iter().enumerate() {
        let candidates = reduction_candidates(&base, *shape);
        if candidates.len() < 2 {
            continue;
        }
        if !bench.has_time() {
            report
                .reductions_not_reached
                .extend(reductions[i..].iter().map(|(r, _)| *r));
            break;
        }
        let (g, ins) = (&programs[*p].1, &program_inputs[*p]);
        let case = (g, ins, warm(rt, &base, (g, ins), &mut references[*p]));
        let (measured, _) = bench.all(&candidates, |bench, stages| {
            let mut target = base.clone();
            target.tuning.reductions = vec![(*shape, stages)];
            // The reduction's kernels name its shape in their first line, and their
            // stages.
            let mark = format!("({shape})");
            let parts = target.reduction_split(*shape).parts;
            let label = format!("{shape}: {stages}");
            let missing = format!("the reduction does not compile to {stages}");
            bench.variant(target, case, &label, &missing, |k| {
                let first = first_line(k);
                first.contains(&mark)
                    && match stages {
                        ReductionStages::One => k.variant == "reduce",
                        ReductionStages::Two(run) => {
                            (k.variant == "reduce_partial"
                                && first.contains(&format!("runs of {run} per output")))
                                || (k.variant == "reduce_final"
                                    && first.contains(&format!("folds {parts} partial")))
                        }
                    }
            })
        });
        if let Some((stages, comment)) = fastest(&measured, |s| s.to_string()) {
            report.file.reductions.push((*shape, stages, comment));
        }
        report
            .reduction_variants
            .extend(measured.into_iter().map(|(s, ms)| (*shape, s, ms)));
    }
    for (i, (shape, p)) in shapes.iter().enumerate() {
        if !bench.has_time() {
            report
                .not_reached
                .extend(shapes[i..].iter().map(|(t, _)| *t));
            break;
        }
        let (g, ins) = (&programs[*p].1, &program_inputs[*p]);
        let case = (g, ins, warm(rt, &base, (g, ins), &mut references[*p]));
        // The product's kernels name its shape in their first line (`… as
        // 1×[M×K]·[K×N].`).
        let mark = format!(" as {shape}.");
        // Tiles and loads are measured unsplit (a GPU would split a long contraction
        // with few tiles by default), so that a split is measured against them.
        let mut unsplit_base = base.clone();
        unsplit_base.tuning.splits = vec![(*shape, 1)];
        let base = &unsplit_base;
        let (measured, cut_short) = bench.all(&candidate_tiles(base, shape), |bench, tile| {
            let mut target = base.clone();
            target.tuning.products = vec![(*shape, tile)];
            let label = format!("{shape}: tile {}x{}", tile[0], tile[1]);
            let missing = format!(
                "the product does not compile to tile {}x{}",
                tile[0], tile[1]
            );
            bench.variant(target, case, &label, &missing, |k| {
                k.tile() == Some(tile) && first_line(k).contains(&mark)
            })
        });
        let best = fastest(&measured, |t| format!("{}x{}", t[0], t[1]));
        report
            .variants
            .extend(measured.iter().map(|(t, ms)| (*shape, *t, ms.clone())));
        // A shape whose tiles were not all measured keeps the preset (or the tile
        // chosen by shape), which may be one of those not measured.
        if cut_short {
            report
                .not_reached
                .extend(shapes[i..].iter().map(|(t, _)| *t));
            break;
        }
        let Some((tile, mut comment)) = best else {
            continue;
        };
        // The fastest time so far, at the fastest tile.
        let mut unsplit = measured
            .iter()
            .find(|(t, _)| *t == tile)
            .and_then(|(_, ms)| ms.as_ref().ok().copied())
            .unwrap_or(f64::INFINITY);
        // At the fastest tile, the other way of loading A, where the adapter has both.
        let default = base.shared_loads(shape).is_some();
        if base.load_sharing_width().is_some() && bench.has_time() {
            let mut target = base.clone();
            target.tuning.products = vec![(*shape, tile)];
            target.tuning.loads = vec![(*shape, !default)];
            let how = if default { "own" } else { "shared" };
            let label = format!("{shape}: tile {}x{}, A's loads {how}", tile[0], tile[1]);
            let missing = format!(
                "the product does not compile to tile {}x{}",
                tile[0], tile[1]
            );
            let other = bench.variant(target, case, &label, &missing, |k| {
                k.tile() == Some(tile)
                    && k.variant.ends_with("_shared") != default
                    && first_line(k).contains(&mark)
            });
            let shared = match &other {
                Ok(other) if *other < unsplit => {
                    unsplit = *other;
                    !default
                }
                _ => default,
            };
            if let Ok(ms) = &other {
                comment.push_str(&format!("; A's loads {how} {ms:.3} ms"));
            }
            report.file.loads.push((*shape, shared));
            report.load_variants.push((*shape, !default, other));
        }
        // A product whose tiles leave the adapter too few invocations: its contraction
        // split into parts, at the fastest tile and way of loading.
        let splits = base.splits_to_try(shape, tile);
        if !splits.is_empty() && bench.has_time() {
            let mut chosen = base.clone();
            chosen.tuning.products = vec![(*shape, tile)];
            chosen.tuning.loads = report
                .file
                .loads
                .iter()
                .filter(|(s, _)| s == shape)
                .copied()
                .collect();
            let (split, cut_short) = bench.all(&splits, |bench, parts| {
                let mut target = chosen.clone();
                target.tuning.splits = vec![(*shape, parts)];
                let label = format!("{shape}: tile {}x{}, K in {parts} parts", tile[0], tile[1]);
                let missing = format!("the product does not split into {parts} parts");
                let fold = format!("adding the {parts} partial products");
                bench.variant(target, case, &label, &missing, |k| {
                    (k.tile() == Some(tile) && first_line(k).contains(&mark))
                        || (k.variant == "reduce_final" && first_line(k).contains(&fold))
                })
            });
            let best = split
                .iter()
                .filter_map(|(parts, ms)| Some((*parts, *ms.as_ref().ok()?)))
                .min_by(|x, y| x.1.total_cmp(&y.1));
            for (parts, ms) in &split {
                if let Ok(ms) = ms {
                    comment.push_str(&format!("; K in {parts} parts {ms:.3} ms"));
                }
            }
            // Written only when every split was measured and the unsplit product was:
            // otherwise the target's rule stands.
            let measured_all = !cut_short && split.iter().all(|(_, ms)| ms.is_ok());
            if measured_all && unsplit.is_finite() {
                let parts = match best {
                    Some((parts, ms)) if ms < unsplit => parts,
                    _ => 1,
                };
                report.file.splits.push((*shape, parts));
            }
            report
                .split_variants
                .extend(split.into_iter().map(|(parts, ms)| (*shape, parts, ms)));
        }
        report.file.products.push((*shape, tile, comment));
    }
    Ok(report)
}

/// The splits of a reduction of shape `shape` that `target` can run: one stage when
/// each output's loop fits the driver's loop limit, and two stages with each run of
/// [`REDUCTION_RUNS`] shorter than the reduction (see
/// [`Target::reduction_split`](crate::Target::reduction_split)).
fn reduction_candidates(target: &crate::Target, shape: ReductionShape) -> Vec<ReductionStages> {
    std::iter::once(ReductionStages::One)
        .chain(REDUCTION_RUNS.map(ReductionStages::Two))
        .filter(|&stages| {
            let mut t = target.clone();
            t.tuning.reductions = vec![(shape, stages)];
            t.reduction_split(shape).tuned
        })
        .collect()
}

/// Runs program `g` as compiled for `target` once, unless `warmed`: on drivers that
/// compile kernels at their first dispatch, this compiles the kernels that every
/// variant of the program shares, so that measuring a variant costs only its own
/// kernels' compilation, and the time a variant takes (which the budget is checked
/// against) does not include the program's. Returns its outputs, which every variant
/// must reproduce (empty when it failed: every variant of the program is then skipped,
/// saying so).
fn warm<'r>(
    rt: &Runtime,
    target: &crate::Target,
    (g, ins): (&Graph, &HashMap<String, Tensor>),
    reference: &'r mut Option<Vec<(String, Tensor)>>,
) -> &'r [(String, Tensor)] {
    reference.get_or_insert_with(|| {
        crate::compile(g, &Options::new(target.clone()))
            .ok()
            .and_then(|program| rt.load(&program).ok())
            .and_then(|mut exe| exe.run(ins).ok())
            .unwrap_or_default()
    })
}

/// How far a variant's outputs may be from the reference's: this fraction of each
/// output's largest magnitude. Variants add in different orders, which moves f32 sums
/// by a few units in the last place; a wrong variant is off by the values themselves.
const AGREEMENT: f64 = 1e-3;

/// Why `got` does not match `reference` within [`AGREEMENT`], if it does not: an
/// element further than that from the reference's (infinities and NaN must be the
/// same), other outputs, or no reference (the program with the preset's variants did
/// not run).
fn disagreement(got: &[(String, Tensor)], reference: &[(String, Tensor)]) -> Option<String> {
    if reference.is_empty() {
        return Some(
            "the program with the preset's variants did not run, so its results cannot be checked"
                .to_string(),
        );
    }
    if got.len() != reference.len() {
        return Some(format!(
            "it has {} outputs, the preset's {}",
            got.len(),
            reference.len()
        ));
    }
    for ((name, a), (_, b)) in got.iter().zip(reference) {
        if a.data.len() != b.data.len() {
            return Some(format!("its output `{name}` has another size"));
        }
        let scale = b
            .data
            .iter()
            .filter(|x| x.is_finite())
            .fold(0.0f64, |m, x| m.max(x.abs()));
        let bound = AGREEMENT * scale + 1e-6;
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            let same = if x.is_finite() && y.is_finite() {
                (x - y).abs() <= bound
            } else {
                x == y || x.is_nan() && y.is_nan()
            };
            if !same {
                return Some(format!(
                    "its output `{name}`[{i}] is {x}, the preset's is {y}"
                ));
            }
        }
    }
    None
}

/// The tiles of [`PRODUCT_TILES`] measured for a product of shape `t` on `target`:
/// all of them for a product the preset's tile does not suit (small or narrow: see
/// [`Target::preset_suits`](crate::Target::preset_suits)), and otherwise those of at least
/// a quarter of the preset tile's area. On lavapipe the 4×4 and 4×8 tiles took two to
/// three times as long as 16×16 for every large product measured, and they are the
/// slowest variants to measure.
fn candidate_tiles(target: &crate::Target, t: &Tiling) -> Vec<[u32; 2]> {
    let area = |[r, c]: [u32; 2]| r * c;
    let preset = target.matmul_tile;
    let suited = target.preset_suits(t);
    PRODUCT_TILES
        .into_iter()
        .filter(|&tile| !suited || 4 * area(tile) >= area(preset))
        .collect()
}

/// The fastest of the variants measured (the first of equals), and a comment listing
/// every one measured with its time, fastest first.
fn fastest<T: Copy>(
    measured: &[(T, Result<f64, String>)],
    name: impl Fn(T) -> String,
) -> Option<(T, String)> {
    let mut times: Vec<(T, f64)> = measured
        .iter()
        .filter_map(|(t, ms)| Some((*t, *ms.as_ref().ok()?)))
        .collect();
    times.sort_by(|x, y| x.1.total_cmp(&y.1));
    let comment = times
        .iter()
        .map(|&(t, ms)| format!("{} {ms:.3} ms", name(t)))
        .collect::<Vec<_>>()
        .join(", ");
    times.first().map(|&(t, _)| (t, comment))
}

/// Variants measured, each with its milliseconds or why it was skipped.
type Measured<V> = Vec<(V, Result<f64, String>)>;

/// A program to measure variants in: its graph, its inputs, and the outputs every
/// variant must reproduce (see [`warm`]).
type Case<'a> = (
    &'a Graph,
    &'a HashMap<String, Tensor>,
    &'a [(String, Tensor)],
);

/// The first line of a kernel's WGSL, which names what it computes.
fn first_line(k: &crate::lower::Kernel) -> &str {
    k.wgsl.lines().next().unwrap_or("")
}

/// Measuring within a budget: the runtime, the clock, and a line of progress per
/// variant.
struct Bench<'a> {
    rt: &'a Runtime,
    start: Instant,
    budget: Duration,
    runs: usize,
    /// The longest variant so far: the next starts only if one as long would still end
    /// within the budget.
    longest: Duration,
    progress: &'a mut dyn FnMut(&str),
}

impl Bench<'_> {
    /// Whether a variant as long as the longest so far would end within the budget.
    fn has_time(&self) -> bool {
        self.start.elapsed() + self.longest < self.budget
    }

    /// Measures the variant `target` compiles program `case` to ([`measure`]), and
    /// reports it as `label` with its time or why it was skipped.
    fn variant(
        &mut self,
        target: crate::Target,
        case: Case<'_>,
        label: &str,
        missing: &str,
        ours: impl Fn(&crate::lower::Kernel) -> bool,
    ) -> Result<f64, String> {
        let began = Instant::now();
        let measured = measure(self.rt, target, case, self.runs, missing, ours);
        self.longest = self.longest.max(began.elapsed());
        (self.progress)(&match &measured {
            Ok(ms) => format!("{label} {ms:.3} ms"),
            Err(e) => format!("{label} skipped: {e}"),
        });
        measured
    }

    /// Measures each of `variants` with `one` while the budget lasts: each variant
    /// measured with its result, and whether the budget ended before the last.
    fn all<V: Copy>(
        &mut self,
        variants: &[V],
        mut one: impl FnMut(&mut Self, V) -> Result<f64, String>,
    ) -> (Measured<V>, bool) {
        let mut measured = Vec::with_capacity(variants.len());
        for &v in variants {
            if !self.has_time() {
                return (measured, true);
            }
            let result = one(self, v);
            measured.push((v, result));
        }
        (measured, false)
    }
}

/// The median time of the kernels `ours` picks out of program `g` compiled for
/// `target`, in milliseconds (of the whole run, without timestamps), or why the
/// variant cannot run (`missing` when `ours` picks no kernel, or its outputs differ
/// from `reference`'s, those of the program with the preset's variants).
fn measure(
    rt: &Runtime,
    target: crate::Target,
    (g, ins, reference): Case<'_>,
    runs: usize,
    missing: &str,
    ours: impl Fn(&crate::lower::Kernel) -> bool,
) -> Result<f64, String> {
    let base = target.clone();
    let program = crate::compile(g, &Options::new(target)).map_err(|e| e.to_string())?;
    let ours: Vec<&str> = program
        .kernels
        .iter()
        .filter(|k| ours(k))
        .map(|k| k.name.as_str())
        .collect();
    if ours.is_empty() {
        return Err(missing.to_string());
    }
    let mut exe = rt.load(&program).map_err(|e| e.to_string())?;
    let got = exe.run(ins).map_err(|e| e.to_string())?;
    if let Some(why) = disagreement(&got, reference) {
        return Err(why);
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        if base.features.timestamps {
            let (_, steps) = exe.run_profiled(ins).map_err(|e| e.to_string())?;
            // A loop on the device is timed as one step: a product inside one is timed
            // with its loop (and the rest of the run), which the tile changes alike.
            let own = steps.iter().any(|(name, _)| ours.contains(&name.as_str()));
            let ns: u64 = steps
                .iter()
                .filter(|(name, _)| !own || ours.contains(&name.as_str()))
                .map(|(_, ns)| ns)
                .sum();
            times.push(ns as f64 / 1e6);
        } else {
            let t = Instant::now();
            exe.run(ins).map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(data: Vec<f64>) -> Vec<(String, Tensor)> {
        let ty = Type::f32(&[data.len()]);
        vec![("y".to_string(), Tensor::new(ty, data).unwrap())]
    }

    #[test]
    fn a_variant_agrees_within_rounding_and_not_beyond() {
        let reference = outputs(vec![100.0, -3.0, 0.5]);
        assert_eq!(
            disagreement(&outputs(vec![100.0, -3.0, 0.5]), &reference),
            None
        );
        // A few units in the last place of the largest value are rounding.
        assert_eq!(
            disagreement(&outputs(vec![100.001, -3.001, 0.5]), &reference),
            None
        );
        let off = disagreement(&outputs(vec![100.0, -3.0, 0.9]), &reference).unwrap();
        assert!(off.contains("`y`[2] is 0.9"), "{off}");
        assert!(disagreement(&outputs(vec![100.0, f64::NAN, 0.5]), &reference).is_some());
        // An infinity in the reference does not widen the bound of the rest.
        let infinite = outputs(vec![f64::INFINITY, -3.0, 0.5]);
        assert_eq!(
            disagreement(&outputs(vec![f64::INFINITY, -3.0, 0.5]), &infinite),
            None
        );
        assert!(disagreement(&outputs(vec![f64::INFINITY, 30.0, 0.5]), &infinite).is_some());
        assert!(disagreement(&outputs(vec![1e300, -3.0, 0.5]), &infinite).is_some());
        // Without a reference nothing passes unchecked.
        assert!(
            disagreement(&reference, &[])
                .unwrap()
                .contains("cannot be checked")
        );
    }
}
