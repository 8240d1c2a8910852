//! Reduction kernels, specialized from `shaders/reduce.wgsl`: each invocation folds a
//! run of elements into one accumulator in a fixed order. A long reduction with few
//! outputs takes two stages (runs of the operand, then a fold of each output's runs);
//! that second stage ([`final_stage`]) also adds up the sums a product kernel computes
//! of its own result.

use super::Context;
use super::expr::{Emitter, fill, reduce_parts, wgsl_type};
use crate::error::{Error, Result};
use crate::ir::{DType, Op, ReduceKind, Type, Value};
use crate::lower::placement::Placement;
use crate::lower::plan::{KernelKind, KernelPlan};
use crate::lower::program::{Buffer, BufferId, BufferRole, Kernel};
use crate::lower::target::ReductionShape;

const TEMPLATE: &str = include_str!("../../../../shaders/reduce.wgsl");

/// The kernels of plan `k`, a [`KernelKind::Reduce`]: its reduction and siblings
/// (reductions of the same domain, or short whole-operand ones, each with its own
/// accumulator and result; elementwise results stored as the loop visits their
/// elements) in `parts` runs per output (one stage when `parts` is 1), numbered from
/// `index`. The partial results of a first stage get a scratch buffer per reduction
/// appended to `buffers`.
pub fn emit(
    cx: &Context<'_>,
    k: &KernelPlan,
    index: usize,
    buffers: &mut Vec<Buffer>,
) -> Result<Vec<Kernel>> {
    let KernelKind::Reduce {
        reduction: red,
        ref siblings,
        trips,
        parts,
        run,
        tuned,
        ..
    } = k.kind
    else {
        return Err(Error::Internal(format!(
            "{}: not a reduction kernel",
            k.root
        )));
    };
    let (g, root) = (cx.g, k.root);
    let node = g.node(red);
    let Op::Reduce { axes, .. } = &node.op else {
        return Err(Error::Compile(format!("{red} is not a reduction")));
    };
    let ty = g.ty(red).clone();
    let outputs = ty.numel();
    let src = g.ty(node.args[0]).shape.clone();
    let reduced: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
    // `trips` is the plan's: with siblings folding whole operands of other shapes
    // (`fuse_siblings::small_total`), the one loop runs over the longest.
    // Reductions fold into accumulators; elementwise siblings are stored per element.
    let (reductions, elementwise): (Vec<Value>, Vec<Value>) = siblings
        .iter()
        .partition(|v| matches!(g.node(**v).op, Op::Reduce { .. }));
    let members: Vec<Value> = std::iter::once(red).chain(reductions).collect();
    let mut folds = Vec::with_capacity(members.len());
    for (m, &v) in members.iter().enumerate() {
        let Op::Reduce { kind, .. } = &g.node(v).op else {
            return Err(Error::Compile(format!("{v} is not a reduction")));
        };
        // The head stores its root (itself, or its epilogue's result).
        let stored = if m == 0 { root } else { v };
        let out = (cx.buffer(stored)?, g.ty(stored).clone());
        let dtype = g.ty(v).dtype;
        let stage = if parts > 1 {
            let scratch = Type::new(dtype, &[outputs, parts]);
            buffers.push(Buffer {
                bytes: (scratch.numel() * 4) as u64,
                ty: scratch.clone(),
                role: BufferRole::Computed,
            });
            (BufferId(buffers.len() as u32 - 1), scratch)
        } else {
            out.clone()
        };
        folds.push(Fold {
            value: v,
            kind: *kind,
            dtype,
            out,
            stage,
        });
    }

    // Stage 1 (or the only stage): fold runs of the fused operands.
    let count = outputs * parts;
    let mut e = Emitter::new(g, cx.place, cx.buffer_of);
    let targets: Vec<String> = folds
        .iter()
        .map(|f| e.bind(f.stage.0, &f.stage.1, true))
        .collect();
    let beside: Vec<(Value, String)> = elementwise
        .iter()
        .map(|&v| Ok((v, e.bind(cx.buffer(v)?, g.ty(v), true))))
        .collect::<Result<_>>()?;
    if parts > 1 {
        e.line(format!("let o: u32 = i / {parts}u;"));
        e.line(format!("let start: u32 = (i % {parts}u) * {run}u;"));
        e.line(format!("let end: u32 = min(start + {run}u, {trips}u);"));
    } else {
        e.line("let o: u32 = i;");
        e.line("let start: u32 = 0u;");
        e.line(format!("let end: u32 = {trips}u;"));
    }
    let coords = e.unravel("o", &ty.shape, "c");
    let accumulators = declare(&mut e, folds.iter().map(|f| (f.kind, f.dtype)));
    let prologue = e.take_lines();
    e.set_indent(2);
    let rc = e.unravel("r", &reduced, "q");
    let full = operand_coords(src.len(), axes, &coords, &rc);
    e.ops = 0;
    for (m, f) in folds.iter().enumerate() {
        let operand = g.node(f.value).args[0];
        let (_, fold) = reduce_parts(&mut e, f.kind, f.dtype);
        let own: usize = reduced.iter().product();
        if g.ty(operand).shape == src && own == trips {
            let x = e.at(operand, &full)?;
            e.line(fold(&accumulator(m), &x));
            continue;
        }
        // A whole operand of another shape, folded while the loop is within it.
        let shape = g.ty(operand).shape.clone();
        let n: usize = shape.iter().product();
        let saved = e.open(format!("if r < {n}u"));
        let at = e.unravel("r", &shape, &format!("p{m}_"));
        let x = e.at(operand, &at)?;
        e.line(fold(&accumulator(m), &x));
        e.close(saved);
    }
    if !beside.is_empty() {
        let index = e.linear(&full, &src);
        let at = e.let_("u32", index);
        for (v, b) in &beside {
            let x = e.root_expr(*v, &full)?;
            e.store(b, &at, g.ty(*v).dtype, &x);
        }
    }
    let ops = e.ops + folds.len() as u64;
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = if parts == 1 {
        finish(&mut e, root, red, &coords)?
    } else {
        (String::new(), "acc".to_string(), 0)
    };
    let stores = stores(&targets, &store);
    let variant = if parts > 1 {
        "reduce_partial"
    } else {
        "reduce"
    };
    let name = format!("{index:03}_{variant}_{}", node.op.name());
    let shape = ReductionShape { trips, outputs };
    let mut header = first_header(cx, k, &members, (shape, parts, run, tuned), &name);
    if !beside.is_empty() {
        let stored: Vec<String> = beside
            .iter()
            .map(|(v, _)| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
            .collect();
        header.push_str(&format!(
            "\n// Also stores, element by element in the same loop: {}.",
            stored.join(", ")
        ));
    }
    let first = stage(
        cx,
        &e,
        Stage {
            name,
            variant,
            header,
            accumulators,
            count,
            prologue,
            body,
            epilogue,
            stores,
            flops: (outputs * trips) as u64 * ops + outputs as u64 * epilogue_ops,
        },
    )?;
    if parts == 1 {
        return Ok(vec![first]);
    }

    // Stage 2: fold each output's partial results, in order.
    let name = format!("{:03}_reduce_final_{}", index + 1, node.op.name());
    let mut header = format!(
        "// Kernel {name}: computes {} = {} : {ty} ({shape})",
        labels(cx, &members),
        node.op.name()
    );
    header.push_str(&format!(
        ", stage 2 of 2: folds {parts} partial results per output."
    ));
    if root != red {
        // The work after the loop: the fused values that read the reduction's result.
        let after: Vec<String> = k
            .values
            .iter()
            .filter(|v| **v > red)
            .map(|v| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
            .collect();
        header.push_str(&format!("\n// Epilogue: {}.", after.join(", ")));
    }
    let last = final_stage(
        cx,
        FinalStage {
            name,
            header,
            folds: folds
                .iter()
                .map(|f| FinalFold {
                    kind: f.kind,
                    dtype: f.dtype,
                    out: (f.out.0, &f.out.1),
                    partials: (f.stage.0, &f.stage.1),
                })
                .collect(),
            shape: &ty.shape,
            parts,
            epilogue: (root != red).then_some((root, red)),
        },
    )?;
    Ok(vec![first, last])
}

/// One reduction of a reduction kernel (the `m`-th folds into [`accumulator`]`(m)`): its
/// result and the buffer its first stage writes (the result itself for one stage).
struct Fold {
    value: Value,
    kind: ReduceKind,
    dtype: DType,
    out: (BufferId, Type),
    stage: (BufferId, Type),
}

/// The accumulator of the `m`-th reduction of a kernel: `acc` for the first, as a
/// kernel with one reduction has always named it.
fn accumulator(m: usize) -> String {
    match m {
        0 => "acc".to_string(),
        m => format!("acc_{m}"),
    }
}

/// One `var` per accumulator, at its initial value: accumulator `m` ([`accumulator`])
/// folds with the `m`-th `(kind, dtype)`.
fn declare(e: &mut Emitter<'_>, folds: impl Iterator<Item = (ReduceKind, DType)>) -> String {
    folds
        .enumerate()
        .map(|(m, (kind, dtype))| {
            let (init, _) = reduce_parts(e, kind, dtype);
            format!("    var {}: {} = {init};", accumulator(m), wgsl_type(dtype))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The stores after the loop, one per binding in `targets`: the first result is
/// `first` (its accumulator or its epilogue's result), every other its accumulator.
fn stores(targets: &[String], first: &str) -> String {
    targets
        .iter()
        .enumerate()
        .map(|(m, b)| {
            let v = if m == 0 {
                first.to_string()
            } else {
                accumulator(m)
            };
            format!("    {b}[i] = {v};")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The labels of a kernel's reductions, `%a, %b`, for its header.
fn labels(cx: &Context<'_>, members: &[Value]) -> String {
    members
        .iter()
        .map(|v| cx.label(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The coordinates of a reduction's operand: the output's `kept` coordinates on the
/// axes kept, the run's `folded` ones on the reduced `axes`.
fn operand_coords(rank: usize, axes: &[usize], kept: &[String], folded: &[String]) -> Vec<String> {
    let (mut kept, mut folded) = (kept.iter(), folded.iter());
    (0..rank)
        .map(|a| {
            let c = if axes.contains(&a) {
                folded.next()
            } else {
                kept.next()
            };
            c.cloned().unwrap_or_else(|| "0u".into())
        })
        .collect()
}

/// The comment at the top of a reduction's first (or only) stage.
fn first_header(
    cx: &Context<'_>,
    k: &KernelPlan,
    members: &[Value],
    (shape, parts, run, tuned): (ReductionShape, usize, usize, bool),
    name: &str,
) -> String {
    let g = cx.g;
    let red = members[0];
    let fused: Vec<String> = k
        .values
        .iter()
        .filter(|v| **v != k.root && !members.contains(v) && fused(cx, **v))
        .map(|v| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
        .collect();
    let mut header = format!(
        "// Kernel {name}: computes {} = {} : {} ({shape})",
        labels(cx, members),
        g.node(red).op.name(),
        g.ty(red)
    );
    if parts > 1 {
        header.push_str(&format!(", stage 1 of 2: {parts} runs of {run} per output"));
    }
    if tuned {
        header.push_str(", stages from the tuning file");
    }
    header.push('.');
    if !fused.is_empty() {
        header.push_str(&format!("\n// Fused: {}.", fused.join(", ")));
    }
    header
}

/// Whether `v` is computed inside another value's expression, not a result of its own.
fn fused(cx: &Context<'_>, v: Value) -> bool {
    matches!(cx.place[v.index()], Placement::Fused(_))
}

/// The statements after the loop and the value stored: the accumulator, or the
/// epilogue's result (`root`, computed from reduction `red`'s accumulator) at the
/// output's coordinates, with its operation count.
fn finish(
    e: &mut Emitter<'_>,
    root: Value,
    red: Value,
    coords: &[String],
) -> Result<(String, String, u64)> {
    if root == red {
        return Ok((String::new(), "acc".to_string(), 0));
    }
    e.set_indent(1);
    e.clear_memo();
    e.seed(red, coords, "acc");
    e.ops = 0;
    let x = e.root_expr(root, coords)?;
    let value = match e.graph().ty(root).dtype {
        DType::Bool => format!("select(0u, 1u, {x})"),
        _ => x,
    };
    Ok((e.take_lines(), value, e.ops))
}

/// A kernel folding, for every output, `parts` partial results in order, for one
/// reduction or several of one shape.
pub struct FinalStage<'a> {
    /// The kernel's name.
    pub name: String,
    /// The comment at its top.
    pub header: String,
    /// The reductions folded, each into its own result.
    pub folds: Vec<FinalFold<'a>>,
    /// The shape of each reduction's result.
    pub shape: &'a [usize],
    /// Partial results per output.
    pub parts: usize,
    /// Elementwise work on the first result (its root and the reduction it reads), if
    /// any.
    pub epilogue: Option<(Value, Value)>,
}

/// One reduction of a [`FinalStage`].
pub struct FinalFold<'a> {
    /// The fold.
    pub kind: ReduceKind,
    /// The accumulator's dtype.
    pub dtype: DType,
    /// The buffer stored, and its type.
    pub out: (BufferId, &'a Type),
    /// The partial results, `parts` per output, and their type.
    pub partials: (BufferId, &'a Type),
}

/// The second stage of a reduction: one invocation per output folds its partial
/// results in order (and applies the epilogue, if any).
pub fn final_stage(cx: &Context<'_>, s: FinalStage<'_>) -> Result<Kernel> {
    let outputs: usize = s.shape.iter().product();
    let parts = s.parts;
    let mut e = Emitter::new(cx.g, cx.place, cx.buffer_of);
    let targets: Vec<String> = s
        .folds
        .iter()
        .map(|f| e.bind(f.out.0, f.out.1, true))
        .collect();
    let sources: Vec<String> = s
        .folds
        .iter()
        .map(|f| e.bind(f.partials.0, f.partials.1, false))
        .collect();
    let coords = e.unravel("i", s.shape, "c");
    e.line("let start: u32 = 0u;");
    e.line(format!("let end: u32 = {parts}u;"));
    let accumulators = declare(&mut e, s.folds.iter().map(|f| (f.kind, f.dtype)));
    let prologue = e.take_lines();
    e.set_indent(2);
    for (m, (f, src)) in s.folds.iter().zip(&sources).enumerate() {
        let (_, fold) = reduce_parts(&mut e, f.kind, f.dtype);
        e.line(fold(&accumulator(m), &format!("{src}[i * {parts}u + r]")));
    }
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = match s.epilogue {
        Some((root, red)) => finish(&mut e, root, red, &coords)?,
        None => (String::new(), "acc".to_string(), 0),
    };
    let stores = stores(&targets, &store);
    stage(
        cx,
        &e,
        Stage {
            name: s.name,
            variant: "reduce_final",
            header: s.header,
            accumulators,
            count: outputs,
            prologue,
            body,
            epilogue,
            stores,
            flops: (outputs * parts * s.folds.len()) as u64 + outputs as u64 * epilogue_ops,
        },
    )
}

/// What distinguishes one stage of a reduction.
struct Stage<'a> {
    name: String,
    variant: &'a str,
    header: String,
    accumulators: String,
    count: usize,
    prologue: String,
    body: String,
    epilogue: String,
    stores: String,
    flops: u64,
}

/// Specializes `shaders/reduce.wgsl` for one stage.
fn stage(cx: &Context<'_>, e: &Emitter<'_>, p: Stage<'_>) -> Result<Kernel> {
    let target = cx.target;
    let wg = target.workgroup_size();
    let [gx, gy] = target.grid(p.count, &p.name)?;
    target.check_bindings(e.bindings.len(), &p.name)?;
    let epilogue = if p.epilogue.is_empty() {
        String::new()
    } else {
        format!("{}\n", p.epilogue)
    };
    let wgsl = fill(
        TEMPLATE,
        &p.name,
        &[
            ("HEADER", &p.header),
            ("BINDINGS", e.declarations().trim_end()),
            ("WG", &wg.to_string()),
            ("ROW", &(gx * wg as usize).to_string()),
            ("COUNT", &p.count.to_string()),
            ("PROLOGUE", &p.prologue),
            ("ACCUMULATORS", &p.accumulators),
            ("BODY", &p.body),
            ("EPILOGUE", &epilogue),
            ("STORES", &p.stores),
        ],
    )?;
    Ok(Kernel {
        name: p.name,
        variant: p.variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings: e.kernel_bindings(),
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: p.flops,
        bytes_moved: e.bytes_bound(),
    })
}
