//! The kernel plan: every kernel the program runs, in dispatch order, each with every
//! decision its emitter needs, made before any WGSL is written.
//!
//! Fusion ([`super::fuse`]) says which values each kernel computes; [`plan`] turns
//! that into one [`KernelPlan`] per kernel: its variant and, for each variant, the
//! choices that shape the code (reduction stages; a product's tile, how it loads each
//! operand, its epilogue and the sums beside it; a row kernel's rows and invocations
//! per row). A plan the target cannot run (too many bindings, too large a grid) is
//! rejected here or by the placement before it, so emission never has to undo a
//! decision. The plan prints as text (`plan.txt` in dumps).
//!
//! Kernels run one after another today. A device-side loop would be one more kind of
//! entry whose body is itself a plan, run a number of times; several results over one
//! domain are already one kernel ([`KernelPlan::results`]).

use super::fuse::row_scatter;
use super::fuse_products::{Tiling, prologue_operand, tileable, vec4_prologue_applies};
use super::placement::{Placement, computed_by, kernel_order, kernel_values};
use super::target::{AdapterClass, ReductionShape, ReductionSplit, RowShape, Target, TileSource};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Op, OpClass, Value};
use crate::passes::split_rows::Rows;
use std::fmt::Write;

/// Invocations sharing a row on GPUs (a power of two).
pub const ROW_THREADS: usize = 64;
/// Workgroup memory a row kernel may use for partial results, in bytes: WebGPU's
/// guaranteed minimum.
pub const WORKGROUP_MEMORY: usize = 16384;

/// Every kernel of a program, in dispatch order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The kernels, each after the kernels whose results it reads.
    pub kernels: Vec<KernelPlan>,
}

/// One kernel (or, for a two-stage reduction, one pair of kernels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPlan {
    /// The value that names the kernel: its result, or its last result.
    pub root: Value,
    /// Every value the kernel computes — its root, what is fused into it, what it
    /// computes beside it — in arena order.
    pub values: Vec<Value>,
    /// The results it stores for other kernels or the host.
    pub results: Vec<Value>,
    /// What kind of kernel, and how it is shaped.
    pub kind: KernelKind,
}

/// The variants of kernels, each with the decisions that shape its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// One element of the root per invocation.
    Elementwise,
    /// A contraction the tiled kernel does not take: one element per invocation, with
    /// a loop over the contracted elements.
    Contraction {
        /// Contracted elements per output element.
        trips: usize,
    },
    /// `scatter_add` along `axis`: one element per invocation, with a loop over the
    /// scattered elements.
    Scatter {
        /// The scattered axis.
        axis: usize,
        /// Elements scattered into each output element.
        trips: usize,
    },
    /// A reduction (with elementwise work on its result fused after the loop when the
    /// root is not the reduction itself), and its siblings: reductions of the same
    /// domain computed in the same loop, each into its own accumulator, and
    /// elementwise results over the reduced operand's elements, each stored as the
    /// loop visits its element.
    Reduce {
        /// The reduction.
        reduction: Value,
        /// The other reductions of the same domain, and the elementwise results over
        /// its operand's elements, that it computes (`fuse_siblings`); empty for a
        /// reduction of its own.
        siblings: Vec<Value>,
        /// Elements folded into each output.
        trips: usize,
        /// Outputs of the reduction.
        outputs: usize,
        /// Runs per output in a first stage (then a second stage folds them), or 1 for
        /// a single stage.
        parts: usize,
        /// Elements per run (`trips` for a single stage).
        run: usize,
        /// Whether the stages come from the tuning file.
        tuned: bool,
    },
    /// The register-tiled product.
    Matmul(MatmulPlan),
    /// A row kernel: a few passes over each row, per-row values in registers.
    Row(RowPlan),
}

/// How the tiled product kernel reads an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// One element at a time from its buffer.
    Scalar,
    /// Four consecutive elements along K, as one `vec4`.
    Vec4AlongK,
    /// Four consecutive elements along the free axis (M for A, N for B), as one
    /// `vec4`: the rows of a transposed A, the rows of B.
    Vec4AlongFree,
    /// Computed as it is loaded (its prologue), one element at a time.
    Prologue,
    /// Computed as it is loaded, four elements along K at a time.
    Prologue4AlongK,
    /// Computed as it is loaded, four elements along M at a time.
    Prologue4AlongFree,
}

impl Load {
    /// Whether the operand is computed rather than read from a buffer.
    pub fn is_prologue(self) -> bool {
        matches!(
            self,
            Load::Prologue | Load::Prologue4AlongK | Load::Prologue4AlongFree
        )
    }

    /// Whether four elements along K are loaded at a time.
    pub fn along_k(self) -> bool {
        matches!(self, Load::Vec4AlongK | Load::Prologue4AlongK)
    }

    /// Whether four elements along the free axis are loaded at a time.
    pub fn along_free(self) -> bool {
        matches!(self, Load::Vec4AlongFree | Load::Prologue4AlongFree)
    }

    fn describe(self) -> &'static str {
        match self {
            Load::Scalar => "one element at a time",
            Load::Vec4AlongK => "vec4 along K",
            Load::Vec4AlongFree => "vec4 along its rows",
            Load::Prologue => "computed as loaded",
            Load::Prologue4AlongK => "computed as loaded, vec4 along K",
            Load::Prologue4AlongFree => "computed as loaded, vec4 along M",
        }
    }
}

/// Which operand of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The left operand, `A`.
    A,
    /// The right operand, `B`.
    B,
}

/// A product computed by the register-tiled kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulPlan {
    /// The `dot`.
    pub dot: Value,
    /// Its shape and operand layouts.
    pub tiling: Tiling,
    /// Result elements per invocation, `[rows, columns]`.
    pub tile: [usize; 2],
    /// Where the tile comes from: the preset, the product's shape or the tuning file.
    pub tile_source: TileSource,
    /// Invocations per workgroup, `[x, y]` (columns and rows of tiles). With shared
    /// loads a row of tiles is a subgroup, and the workgroup is dispatched 1-D.
    pub workgroup: [usize; 2],
    /// The subgroup width when A's tile rows are read once per subgroup
    /// ([`Target::shared_loads`](super::Target::shared_loads)): each lane loads a share
    /// and broadcasts it to the subgroup, whose lanes compute tiles of the same rows.
    pub shared: Option<usize>,
    /// How A is read.
    pub a: Load,
    /// How B is read.
    pub b: Load,
    /// Whether elementwise work on the product (up to the kernel's root) is applied
    /// to every element stored.
    pub epilogue: bool,
    /// A sum of an operand over K computed from the values loaded (a bias gradient).
    pub column_sum: Option<(Value, Operand)>,
    /// A sum of the whole result computed from the values stored (a loss): one sum
    /// per invocation, added in order by a second, one-invocation kernel.
    pub total: Option<Value>,
    /// Into how many parts the contraction is split (1: not split): each part
    /// computes the product over its share of K into a partial result, and a second
    /// kernel adds the parts in order and applies the epilogue.
    pub split: usize,
}

impl MatmulPlan {
    /// The dispatch grid in workgroups, `[x, y]`.
    pub fn grid(&self) -> [usize; 2] {
        let [tm, tn] = self.tile;
        let [wx, wy] = self.workgroup;
        [
            self.tiling.n.div_ceil(wx * tn),
            self.tiling.m.div_ceil(wy * tm),
        ]
    }

    /// The steps of K one iteration of the kernel's loop takes.
    pub fn k_step(&self) -> usize {
        if self.a.along_k() { 4 } else { 1 }
    }

    /// The share of K each part of a split product computes: K over the parts,
    /// rounded up to whole steps of the kernel's loop.
    pub fn split_run(&self) -> usize {
        let step = self.k_step();
        self.tiling.k.div_ceil(self.split).div_ceil(step) * step
    }
}

/// A row kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowPlan {
    /// The rows it runs along.
    pub rows: Rows,
    /// The kernels merged into it, by root (the last is the plan's root).
    pub members: Vec<Value>,
    /// Every value it computes, including values recomputed wherever they are read.
    pub computed: Vec<Value>,
    /// Invocations per row: 1 on CPU adapters, a workgroup on GPUs, or what the
    /// tuning file names for its shape.
    pub threads: usize,
    /// Its shape, as the tuning file names it.
    pub shape: RowShape,
    /// Whether `threads` comes from the tuning file.
    pub tuned: bool,
}

/// Plans every kernel of a placed graph, in dispatch order.
pub fn plan(g: &Graph, place: &[Placement], target: &Target) -> Result<Plan> {
    let own = kernel_values(place);
    let order = kernel_order(g, place);
    if order.len() != place.iter().filter(|p| **p == Placement::Root).count() {
        return Err(Error::Compile(
            "the kernels read each other's results in a cycle".into(),
        ));
    }
    let is_output = |v: Value| g.outputs.iter().any(|(_, o)| *o == v);
    let readers = super::placement::readers(g, place);
    let mut kernels = Vec::new();
    for root in order {
        let values = own[root.index()].clone();
        let results: Vec<Value> = values
            .iter()
            .copied()
            .filter(|&v| {
                v == root
                    || place[v.index()] == Placement::Also(root)
                        && (is_output(v) || !readers[v.index()].is_empty())
            })
            .collect();
        if let Some(kind) = kind(g, place, root, &values, target)? {
            check_grid(g, root, &kind, target)?;
            kernels.push(KernelPlan {
                root,
                values,
                results,
                kind,
            });
        }
    }
    Ok(Plan { kernels })
}

/// An error when a kernel needs more workgroups than the target's dispatch grid holds
/// (a tiled product's grid was checked when it was chosen).
fn check_grid(g: &Graph, root: Value, kind: &KernelKind, target: &Target) -> Result<()> {
    let what = root.to_string();
    match kind {
        KernelKind::Elementwise | KernelKind::Contraction { .. } | KernelKind::Scatter { .. } => {
            target.grid(g.ty(root).numel(), &what)?;
        }
        KernelKind::Reduce {
            reduction, parts, ..
        } => {
            target.grid(g.ty(*reduction).numel() * parts, &what)?;
        }
        KernelKind::Row(r) if r.threads == 1 => {
            target.grid(r.rows.count(), &what)?;
        }
        KernelKind::Row(r) => {
            target.grid_of(r.rows.count(), &what)?;
        }
        KernelKind::Matmul(_) => {}
    }
    Ok(())
}

/// The kind of the kernel of `root` computing `values`; `None` when it has nothing
/// to compute (an empty result).
fn kind(
    g: &Graph,
    place: &[Placement],
    root: Value,
    values: &[Value],
    target: &Target,
) -> Result<Option<KernelKind>> {
    let beside = values
        .iter()
        .any(|v| place[v.index()] == Placement::Also(root));
    let also = |v: &&Value| place[v.index()] == Placement::Also(root);
    // Sibling reductions: reductions of the root's domain beside it
    // (or elementwise results over its operand's elements, stored as the loop visits
    // them), which nothing in the kernel reads (a row kernel's reductions feed each
    // other).
    let same_domain = |v: Value| match (&g.node(v).op, &g.node(root).op) {
        (Op::Reduce { axes: a, .. }, Op::Reduce { axes: b, .. }) => {
            a == b && g.ty(g.node(v).args[0]) == g.ty(g.node(root).args[0])
                || super::fuse_siblings::small_total(g, v.index(), target)
                    && super::fuse_siblings::small_total(g, root.index(), target)
        }
        (op, Op::Reduce { .. }) if op.class() == OpClass::Elementwise => {
            g.ty(v).shape == g.ty(g.node(root).args[0]).shape
        }
        _ => false,
    };
    let siblings = beside
        && values.iter().filter(also).all(|v| same_domain(*v))
        && !values.iter().any(|v| {
            g.node(*v)
                .args
                .iter()
                .any(|a| *a == root || place[a.index()] == Placement::Also(root))
        });
    if let Op::Reduce { axes, .. } = &g.node(root).op
        && siblings
    {
        // Sibling reductions (`fuse_siblings`): one loop, several accumulators; over
        // the longest operand when they fold operands of different shapes.
        let src = &g.ty(g.node(root).args[0]).shape;
        let operand = g.ty(g.node(root).args[0]);
        let trips: usize = values
            .iter()
            .filter(|v| place[v.index()] == Placement::Also(root))
            .filter(|v| matches!(g.node(**v).op, Op::Reduce { .. }))
            .map(|v| g.ty(g.node(*v).args[0]))
            .filter(|t| *t != operand)
            .map(|t| t.numel())
            .fold(axes.iter().map(|&a| src[a]).product(), usize::max);
        let outputs = g.ty(root).numel();
        let ReductionSplit { parts, run, tuned } =
            target.reduction_split(ReductionShape { trips, outputs });
        return Ok(Some(KernelKind::Reduce {
            reduction: root,
            siblings: values.iter().filter(also).copied().collect(),
            trips,
            outputs,
            parts,
            run,
            tuned,
        }));
    }
    // A product computed beside the root, or fused into a value computed beside it,
    // belongs to a row kernel, which computes it inline.
    let inline = |v: Value| match place[v.index()] {
        Placement::Also(r) => r == root,
        Placement::Fused(u) => place[u.index()] == Placement::Also(root),
        _ => false,
    };
    let dot = values
        .iter()
        .copied()
        .find(|v| matches!(g.node(*v).op, Op::Dot(_)) && !inline(*v));
    if beside && dot.is_none() {
        return row(g, place, root, values, target).map(|r| r.map(KernelKind::Row));
    }
    if let Some(d) = dot
        && let Some(m) = matmul(g, place, root, values, d, target)
    {
        return Ok(Some(KernelKind::Matmul(m)));
    }
    if beside {
        return Err(Error::Compile(format!(
            "{root}: the product computing a sum beside it is not tiled"
        )));
    }
    let ty = g.ty(root);
    if ty.numel() == 0 {
        return Ok(None);
    }
    let reduction = values.iter().find_map(|&v| match &g.node(v).op {
        Op::Reduce { axes, .. } => Some((v, axes)),
        _ => None,
    });
    if let Some((red, axes)) = reduction {
        let src = &g.ty(g.node(red).args[0]).shape;
        let trips: usize = axes.iter().map(|&a| src[a]).product();
        let outputs = g.ty(red).numel();
        let ReductionSplit { parts, run, tuned } =
            target.reduction_split(ReductionShape { trips, outputs });
        return Ok(Some(KernelKind::Reduce {
            reduction: red,
            siblings: Vec::new(),
            trips,
            outputs,
            parts,
            run,
            tuned,
        }));
    }
    let node = g.node(root);
    Ok(Some(match (node.op.class(), &node.op) {
        (OpClass::Contraction, Op::Dot(dims)) => KernelKind::Contraction {
            trips: dims
                .lhs_contract
                .iter()
                .map(|&a| g.ty(node.args[0]).shape[a])
                .product(),
        },
        (OpClass::Scatter, Op::ScatterAdd { axis, .. }) if !row_scatter(g, root) => {
            KernelKind::Scatter {
                axis: *axis,
                trips: g.ty(node.args[0]).shape[*axis],
            }
        }
        (
            OpClass::Input
            | OpClass::Generated
            | OpClass::Elementwise
            | OpClass::Identity
            | OpClass::Reindex
            | OpClass::Indexed
            | OpClass::Scatter
            | OpClass::Reduction
            | OpClass::Loop,
            _,
        ) => KernelKind::Elementwise,
        (OpClass::Contraction, _) => {
            return Err(Error::Internal(format!(
                "{root}: a contraction that is not a dot"
            )));
        }
    }))
}

/// The row kernel of the group rooted at `head`; `None` for zero rows.
fn row(
    g: &Graph,
    place: &[Placement],
    head: Value,
    values: &[Value],
    target: &Target,
) -> Result<Option<RowPlan>> {
    let members: Vec<Value> = values
        .iter()
        .copied()
        .filter(|&v| v == head || place[v.index()] == Placement::Also(head))
        .collect();
    let computed = computed_by(g, place, values);
    let reductions = computed
        .iter()
        .filter(|v| matches!(g.node(**v).op, Op::Reduce { .. }))
        .count();
    let rows = computed
        .iter()
        .find(|v| matches!(g.node(**v).op, Op::Reduce { .. }))
        .and_then(|&r| Rows::of_reduction(g, r))
        .ok_or_else(|| Error::Compile(format!("row kernel {head}: no reduction along a row")))?;
    if rows.count() == 0 {
        return Ok(None);
    }
    // On GPUs a workgroup shares each row; CPU adapters, where barriers are slow, give
    // each row to one invocation — unless there is one row only (one invocation would
    // leave every other lane idle: W4's gradient at N = 16,384 runs about twice as fast
    // shared), or its passes over the row (at most one per reduction, and one more)
    // could run more loop iterations than one invocation may.
    // An inline product loops over its K for every element it computes.
    let inner = computed
        .iter()
        .filter(|v| matches!(g.node(**v).op, Op::Dot(_)))
        .map(|&d| g.ty(g.node(d).args[0]).shape[1])
        .max()
        .unwrap_or(1);
    let too_long = (reductions + 1)
        .saturating_mul(rows.len)
        .saturating_mul(inner)
        > target.max_loop_iterations;
    let fits = reductions * ROW_THREADS * 4 <= WORKGROUP_MEMORY;
    let share = target.class != AdapterClass::Cpu || too_long || rows.count() == 1;
    let shape = RowShape {
        rows: rows.count(),
        len: rows.len,
        sums: reductions,
    };
    // The tuning file's mode, where the row allows it.
    let tuned = target
        .row_threads(&shape)
        .filter(|&t| if t == 1 { !too_long } else { fits });
    let threads = if let Some(t) = tuned {
        t
    } else if fits && share {
        ROW_THREADS
    } else if too_long {
        return Err(Error::Compile(format!(
            "row kernel {head}: rows of {} with {reductions} sums are too long for one invocation's {} loop iterations, and too many sums for one workgroup's memory",
            rows.len, target.max_loop_iterations
        )));
    } else {
        1
    };
    Ok(Some(RowPlan {
        rows,
        members,
        computed,
        threads,
        shape,
        tuned: tuned.is_some(),
    }))
}

/// The tiled kernel computing `root` from product `dot`, when the product's shape,
/// its operands and what the kernel computes beside it allow; `None` otherwise.
fn matmul(
    g: &Graph,
    place: &[Placement],
    root: Value,
    values: &[Value],
    dot: Value,
    target: &Target,
) -> Option<MatmulPlan> {
    let stored = |v: Value| place[v.index()].is_stored();
    // An operand computed as it is loaded (its prologue) rather than read.
    let inline = |v: Value| {
        prologue_operand(g, v)
            && matches!(
                place[v.index()],
                Placement::Everywhere | Placement::Fused(_)
            )
    };
    let tiling = tileable(g, dot, target, |v| stored(v) || inline(v))?;
    let Tiling {
        a_transposed,
        b_transposed,
        m,
        n,
        k,
        batch,
    } = tiling;
    let (l, r) = (g.node(dot).args[0], g.node(dot).args[1]);
    let (inline_a, inline_b) = (!stored(l), !stored(r));
    if batch > 1 && (inline_a || inline_b) {
        return None;
    }
    let ct = g.ty(root);
    if root != dot && (ct.dtype != DType::F32 || ct.shape != [m, n]) {
        return None;
    }
    let (tile, tile_source) = target.product_tile(&tiling);
    let [tm, tn] = tile.map(|t| t.max(1) as usize);
    // B's rows as vec4 (B row-major).
    let vec4 = !b_transposed && !inline_b && n % 4 == 0 && tn % 4 == 0;
    // Both operands contiguous along K (A row-major, B transposed): four steps of K at
    // a time, as vec4 loads of each and dot products.
    let along_k = !a_transposed && b_transposed && !inline_a && !inline_b && k % 4 == 0;
    // A transposed ([K,M]): the tile's rows at one k are contiguous, read as vec4.
    let a_rows4 = a_transposed && !inline_a && m % 4 == 0 && tm % 4 == 0;
    // An operand computed as it is loaded can be computed four elements at a time when
    // its one op applies to vectors (the `x1 + x2` of a shared weight): along M when A
    // is transposed, along K when it is row-major.
    let prologue4 = inline_a && vec4_prologue_applies(g, l);
    let a4_prologue = prologue4 && a_transposed && m % 4 == 0 && tm % 4 == 0;
    // A row-major and B read as vec4 rows: four steps of K at a time, A as vec4 along K.
    let a_k4 = vec4 && !a_transposed && k % 4 == 0 && (!inline_a || prologue4);
    let a = match (inline_a, a4_prologue, a_k4 || along_k, a_rows4) {
        (true, true, _, _) => Load::Prologue4AlongFree,
        (true, false, true, _) => Load::Prologue4AlongK,
        (true, false, false, _) => Load::Prologue,
        (false, _, true, _) => Load::Vec4AlongK,
        (false, _, false, true) => Load::Vec4AlongFree,
        (false, _, false, false) => Load::Scalar,
    };
    let b = if inline_b {
        Load::Prologue
    } else if along_k {
        Load::Vec4AlongK
    } else if vec4 {
        Load::Vec4AlongFree
    } else {
        Load::Scalar
    };
    // Sums computed beside the product: of the whole result (a loss), or of an
    // operand over K (a bias gradient).
    let beside: Vec<Value> = values
        .iter()
        .copied()
        .filter(|v| place[v.index()] == Placement::Also(root))
        .collect();
    let whole = |s: &Value| g.node(*s).args[0] == root;
    let total = beside.iter().copied().find(whole);
    let sums: Vec<Value> = beside.iter().copied().filter(|s| !whole(s)).collect();
    if total.is_some() && (batch > 1 || !sums.is_empty()) {
        return None;
    }
    let column_sum = match sums[..] {
        [] => None,
        [s] if batch == 1 => {
            let x = g.node(s).args[0];
            Some((
                s,
                if x == l && x != r {
                    Operand::A
                } else {
                    Operand::B
                },
            ))
        }
        _ => return None,
    };
    // Split-K computes partial products: the sums beside the product would need
    // partial sums of their own.
    let split = if total.is_none() && column_sum.is_none() {
        target.split_k(&tiling, tile)
    } else {
        1
    };
    Some(MatmulPlan {
        split,
        dot,
        tiling,
        tile: [tm, tn],
        tile_source,
        workgroup: target.matmul_workgroup(&tiling).map(|w| w as usize),
        shared: target.shared_loads(&tiling).map(|w| w as usize),
        a,
        b,
        epilogue: root != dot,
        column_sum,
        total,
    })
}

impl Plan {
    /// The plan as text: one paragraph per kernel, with the decisions that shape it.
    /// Values are named as printed IR names them.
    pub fn print(&self, g: &Graph) -> String {
        let mut s = String::new();
        let labels = crate::ir::labels(g);
        let label = |v: Value| match labels.get(v.index()) {
            Some(l) => format!("%{l}"),
            None => v.to_string(),
        };
        let list = |vs: &mut dyn Iterator<Item = Value>| {
            vs.map(|v| format!("{} {}", label(v), g.node(v).op.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, k) in self.kernels.iter().enumerate() {
            let root = g.node(k.root);
            let _ = write!(
                s,
                "kernel {i}: {} {} {}",
                label(k.root),
                root.op.name(),
                g.ty(k.root)
            );
            let _ = match &k.kind {
                KernelKind::Elementwise => writeln!(s, ", elementwise"),
                KernelKind::Contraction { trips } => {
                    writeln!(s, ", product, a loop of {trips} per element")
                }
                KernelKind::Scatter { axis, trips } => {
                    writeln!(
                        s,
                        ", scatter along axis {axis}, a loop of {trips} per element"
                    )
                }
                KernelKind::Reduce {
                    reduction,
                    siblings,
                    trips,
                    parts,
                    run,
                    tuned,
                    ..
                } => {
                    let mut stages = if *parts > 1 {
                        format!("two stages: {parts} runs of {run} per output, then their fold")
                    } else {
                        "one stage".to_string()
                    };
                    if *tuned {
                        stages.push_str(" (tuning file)");
                    }
                    let with: String = siblings
                        .iter()
                        .map(|v| format!(", {}", label(*v)))
                        .collect();
                    writeln!(
                        s,
                        ", reduction {}{with} of {trips} per output, {stages}",
                        label(*reduction)
                    )
                }
                KernelKind::Matmul(m) => {
                    let _ = writeln!(s, ", tiled product {}", m.tiling);
                    let _ = writeln!(
                        s,
                        "  tile {}×{} ({}), workgroup {}×{}, grid {:?}; A {}{}, B {}; K step {}",
                        m.tile[0],
                        m.tile[1],
                        m.tile_source.describe(),
                        m.workgroup[0],
                        m.workgroup[1],
                        m.grid(),
                        m.a.describe(),
                        match m.shared {
                            Some(width) => format!(" shared by subgroups of {width}"),
                            None => String::new(),
                        },
                        m.b.describe(),
                        m.k_step()
                    );
                    if m.split > 1 {
                        let _ = writeln!(
                            s,
                            "  K split into {} parts of {}, added by a second kernel",
                            m.split,
                            m.split_run()
                        );
                    }
                    if let Some((v, of)) = m.column_sum {
                        let _ =
                            writeln!(s, "  beside it: {} reduce_sum of {of:?} over K", label(v));
                    }
                    if let Some(v) = m.total {
                        let _ = writeln!(
                            s,
                            "  beside it: {} reduce_sum of the whole result (one sum per invocation, then their fold)",
                            label(v)
                        );
                    }
                    Ok(())
                }
                KernelKind::Row(r) => writeln!(
                    s,
                    ", row kernel over {} rows of {}, {} per row{}",
                    r.rows.count(),
                    r.rows.len,
                    if r.threads == 1 {
                        "one invocation".to_string()
                    } else {
                        format!("a workgroup of {}", r.threads)
                    },
                    if r.tuned { " (tuning file)" } else { "" }
                ),
            };
            let _ = writeln!(s, "  computes: {}", list(&mut k.values.iter().copied()));
            let _ = writeln!(s, "  stores: {}", list(&mut k.results.iter().copied()));
        }
        s
    }
}
