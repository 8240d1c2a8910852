//! Lowering: IR → placement → plan → WGSL, for a [`Target`].
//!
//! Compilation needs no device. [`compile`] optimizes loops as loops, unrolls what
//! remains of them, optimizes the program
//! ([`passes::optimize`]), splits sums over rows and columns that a row kernel can take
//! per row ([`passes::split_rows`]), and then, in order:
//!
//! 1. **places** every value in a kernel (`fuse`, with the product and row decisions in
//!    `fuse_products` and `fuse_rows`; the placement and its queries in `placement`),
//!    splitting kernels that would bind more buffers than the target allows;
//! 2. **plans** every kernel in dispatch order (`plan`): its variant and every choice
//!    that shapes its code, printed as `plan.txt` in dumps;
//! 3. **assigns buffers** to stored values (`memory`);
//! 4. **emits** each planned kernel's WGSL once (`emit`) and validates it with naga;
//! 5. **shares memory** between temporaries whose lifetimes do not overlap and computes
//!    the statistics (`memory`).
//!
//! The result is a [`Program`] of plain data: kernels with their WGSL text, bindings,
//! dispatch grids, the buffer plan, and statistics.

mod checkpoint;
mod emit;
mod explain;
mod fuse;
mod fuse_products;
pub(crate) mod fuse_rows;
mod fuse_siblings;
mod loops;
mod memory;
mod placement;
mod plan;
mod program;
mod target;
mod tuning;
mod validate;

pub use explain::{Decision, Residency};
pub use fuse_products::Tiling;
pub use placement::Placement;
pub use plan::{KernelKind, KernelPlan, Load, MatmulPlan, Operand, Plan, RowPlan};
pub use program::{
    Buffer, BufferId, BufferRole, IoBinding, Kernel, KernelBinding, Program, StatePair, Stats, Step,
};
pub use target::{
    AdapterClass, LOOP_LIMIT, MATMUL_INVOCATIONS, MIN_PRODUCT_INVOCATIONS_CPU,
    MIN_PRODUCT_INVOCATIONS_GPU, MIN_SPLIT_RUN, MIN_TILE_USE, PRODUCT_TILES, QUICK_TILE,
    REDUCTION_CHUNK, REDUCTION_RUNS, ROW_MODES, ReductionShape, ReductionSplit, ReductionStages,
    RowShape, SPLIT_REDUCTION, SPLITS, Target, TargetFeatures, TileSource, Tuning,
};
pub use tuning::TuningFile;
pub use validate::validate_wgsl;

use crate::error::{Error, Result};
use crate::ir::{Graph, Side, Value, print, verify};
use crate::passes::{self, Optimizations};

/// What to compile for, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The target; the software-Vulkan preset by default.
    pub target: Target,
    /// The optimizations that run; all by default.
    pub optimizations: Optimizations,
    /// The size rule for loops: a loop is unrolled when its trip count times its body's
    /// node count (nested loops counted unrolled) is at most this, and otherwise runs on
    /// the device, its body's kernels dispatched once per iteration.
    /// [`DEFAULT_UNROLL_LIMIT`] by default; 0 runs every loop on the device.
    pub unroll_limit: usize,
}

/// The default [`Options::unroll_limit`]: a loop of at most this many nodes, unrolled,
/// is unrolled.
pub const DEFAULT_UNROLL_LIMIT: usize = 256;

impl Options {
    /// Every optimization, for `target`.
    pub fn new(target: Target) -> Options {
        Options {
            target,
            optimizations: Optimizations::default(),
            unroll_limit: DEFAULT_UNROLL_LIMIT,
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new(Target::software_vulkan())
    }
}

/// The IR after one step of the pipeline, for dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassDump {
    /// The pass's name.
    pub pass: String,
    /// The printed IR after it.
    pub ir: String,
}

/// What compiling found out beside the program itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The IR after every pass that changed it.
    pub passes: Vec<PassDump>,
    /// For every forward value: kept, recomputed or dropped by the backward pass.
    pub residency: Vec<Residency>,
    /// Every kernel and the decisions that shaped it ([`Plan::print`] writes it out).
    /// Empty for a program with loops on the device, whose pieces have plans of their own.
    pub plan: Plan,
    /// For a program with loops on the device: the report of each piece compiled on
    /// its own (the stretches between loops, and each loop's body), by kernel-name prefix.
    pub pieces: Vec<Piece>,
    /// For a program with loops on the device: how each loop runs — per carried value,
    /// how it starts, how its buffers are used (updated in place one window per
    /// iteration, a stack, or two alternating buffers) and what reads its final value.
    pub loops: Vec<String>,
}

/// A part of a program compiled on its own: a stretch between loops or a loop's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The prefix of its kernels' names (`seg0`, `loop1`).
    pub name: String,
    /// The graph compiled.
    pub graph: Graph,
    /// Its report.
    pub report: Report,
}

/// A compiled program, its report, and the side of each kernel.
pub(crate) struct Compiled {
    program: Program,
    report: Report,
    sides: Vec<Side>,
}

/// Compiles `graph` for `options.target`. Also returns the IR after every pass and
/// what the backward pass keeps of the forward one.
pub fn compile(graph: &Graph, options: &Options) -> Result<(Program, Report)> {
    let Compiled {
        mut program,
        report,
        ..
    } = compile_sided(graph, options)?;
    let target = &options.target;
    if let Some(quick) = target.quick()
        && program
            .tiles()
            .any(|t| target.slower_to_compile_than_quick(t))
    {
        let options = Options {
            target: quick,
            ..options.clone()
        };
        let clock = std::time::Instant::now();
        program.quick = Some(Box::new(compile_sided(graph, &options)?.program));
        log::debug!("quick tier compiled in {:?}", clock.elapsed());
    }
    Ok((program, report))
}

/// [`compile`], also returning each kernel's side.
fn compile_sided(graph: &Graph, options: &Options) -> Result<Compiled> {
    verify(graph)?;
    let target = &options.target;
    let mut g = graph.clone();
    let mut dumps = vec![PassDump {
        pass: "input".into(),
        ir: print(&g),
    }];
    let mut step = |name: &str, g: &Graph, changed: bool| -> Result<()> {
        if changed {
            if cfg!(debug_assertions) {
                verify(g)?;
            }
            dumps.push(PassDump {
                pass: name.into(),
                ir: print(g),
            });
        }
        Ok(())
    };
    let clock = std::time::Instant::now();
    if !g.regions().is_empty() {
        // Loops are optimized as loops first (invariant work hoisted, independent
        // iterations made whole-tensor), so that what is unrolled is what remains.
        passes::optimize_with(&mut g, &options.optimizations, |pass, g| {
            step(pass, g, true)
        })?;
    }
    let limit = options.unroll_limit;
    let changed = passes::unroll::run_where(&mut g, |trips, body| {
        (trips as usize).saturating_mul(passes::unroll::unrolled_size(body)) <= limit
    })?;
    step("unroll", &g, changed)?;
    passes::optimize_with(&mut g, &options.optimizations, |pass, g| {
        step(pass, g, true)
    })?;
    if g.has_loop() {
        return loops::compile(g, options, dumps);
    }
    // No invocation loops longer than every driver runs a loop.
    let changed = passes::split_long::run(&mut g, target.max_loop_iterations);
    step("split_long", &g, changed)?;
    let fusion = options.optimizations.fusion;
    if fusion {
        let changed = passes::split_rows::run(&mut g);
        step("split_rows", &g, changed)?;
    }

    // Place values in kernels; a kernel that would bind more buffers than the target
    // allows gets part of its expression split into a kernel of its own. Per-row
    // results that a reduction across rows reads are stored by their row kernel.
    log::debug!("passes: {} nodes in {:?}", g.len(), clock.elapsed());
    let clock = std::time::Instant::now();
    let place = fuse::place_within_limits(&g, target, &options.optimizations)?;
    log::debug!("placement: {:?}", clock.elapsed());
    let clock = std::time::Instant::now();
    let plan = plan::plan(&g, &place, target)?;
    let (mut buffers, buffer_of) = memory::assign(&g, &place, &plan, target)?;
    let labels = crate::ir::labels(&g);
    let cx = emit::Context {
        g: &g,
        place: &place,
        buffer_of: &buffer_of,
        target,
        labels: &labels,
    };
    let generated = emit::kernels(&cx, &plan, &mut buffers)?;
    log::debug!(
        "{} kernels planned, emitted and validated in {:?}",
        generated.len(),
        clock.elapsed()
    );
    let clock = std::time::Instant::now();
    let own = placement::kernel_values(&place);
    let sides = generated
        .iter()
        .map(|(root, _)| kernel_side(&g, &own[root.index()]))
        .collect::<Vec<_>>();
    let pairs: Vec<(Value, &Kernel)> = generated.iter().map(|(r, k)| (*r, k)).collect();
    let residency = explain::explain(&g, &place, &own, &pairs);
    let kernels = generated.into_iter().map(|(_, k)| k).collect::<Vec<_>>();

    let mut inputs = io_bindings(&g, &g.inputs, |v| buffer_of[v.index()])?;
    let mut outputs = io_bindings(&g, &g.outputs, |v| buffer_of[v.index()])?;
    let primal = memory::holds_primal(&g, &buffer_of, buffers.len());
    let residual = memory::residual_bytes(&buffers, &kernels, &sides, &primal);
    let mut kernels = kernels;
    let buffers = if options.optimizations.reuse_buffers {
        memory::plan(buffers, &mut kernels, &mut inputs, &mut outputs)
    } else {
        buffers
    };
    let state = state_pairs(&inputs, &outputs);
    let stats = memory::statistics(&buffers, &kernels, &outputs, residual);
    log::debug!("buffers and statistics: {:?}", clock.elapsed());
    Ok(Compiled {
        program: Program {
            graph: g,
            target: target.clone(),
            buffers,
            kernels,
            schedule: Vec::new(),
            inputs,
            outputs,
            state,
            stats,
            quick: None,
        },
        report: Report {
            passes: dumps,
            residency,
            plan,
            pieces: Vec::new(),
            loops: Vec::new(),
        },
        sides,
    })
}

/// Where each named value of `list` lives, by `buffer_of`; a value without a buffer is
/// an internal error.
fn io_bindings(
    g: &Graph,
    list: &[(String, Value)],
    buffer_of: impl Fn(Value) -> Option<BufferId>,
) -> Result<Vec<IoBinding>> {
    list.iter()
        .map(|(name, v)| {
            let buffer = buffer_of(*v)
                .ok_or_else(|| Error::Internal(format!("`{name}` ({v}) has no buffer")))?;
            Ok(IoBinding {
                name: name.clone(),
                buffer,
                ty: g.ty(*v).clone(),
            })
        })
        .collect()
}

/// The outputs `new.<name>` that replace an input `<name>` of the same type.
fn state_pairs(inputs: &[IoBinding], outputs: &[IoBinding]) -> Vec<StatePair> {
    outputs
        .iter()
        .filter_map(|o| {
            let input = o.name.strip_prefix("new.")?;
            let i = inputs.iter().find(|i| i.name == input)?;
            (i.ty == o.ty).then(|| StatePair {
                input: input.to_string(),
                output: o.name.clone(),
            })
        })
        .collect()
}

/// The side of a kernel, from the values it computes: adjoint when any of them is a
/// derivative's (reverse or forward mode).
fn kernel_side(g: &Graph, own: &[Value]) -> Side {
    if own.iter().any(|v| g.node(*v).side.is_derivative()) {
        Side::Adjoint
    } else {
        Side::Primal
    }
}
