//! Reduction kernels, specialized from `shaders/reduce.wgsl`: each invocation folds a
//! run of elements into one accumulator in a fixed order. A long reduction with few
//! outputs takes two stages (runs of the operand, then a fold of each output's runs);
//! that second stage ([`final_stage`]) also adds up the sums a product kernel computes
//! of its own result.

use super::Context;
use super::expr::{Emitter, fill, reduce_parts, wgsl_type};
use crate::error::{Error, Result};
use crate::ir::{DType, Op, ReduceKind, Type, Value};
use crate::lower::plan::KernelPlan;
use crate::lower::program::{Buffer, BufferId, BufferRole, Kernel};
use crate::lower::target::REDUCTION_CHUNK;

const TEMPLATE: &str = include_str!("../../../../shaders/reduce.wgsl");

/// The kernels of plan `k`, a reduction `red` in `parts` runs per output (one stage
/// when `parts` is 1), numbered from `index`. The partial results of a first stage get
/// a scratch buffer appended to `buffers`.
pub fn emit(
    cx: &Context<'_>,
    k: &KernelPlan,
    red: Value,
    parts: usize,
    index: usize,
    buffers: &mut Vec<Buffer>,
) -> Result<Vec<Kernel>> {
    let (g, root) = (cx.g, k.root);
    let node = g.node(red);
    let Op::Reduce { kind, axes } = &node.op else {
        return Err(Error::Compile(format!("{red} is not a reduction")));
    };
    let ty = g.ty(red).clone();
    let outputs = ty.numel();
    let src = g.ty(node.args[0]).shape.clone();
    let reduced: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
    let trips: usize = reduced.iter().product();
    let out_buffer = cx.buffer(root)?;
    let out_ty = g.ty(root).clone();

    // Stage 1 (or the only stage): fold runs of the fused operand.
    let (stage_buffer, stage_ty) = if parts > 1 {
        let scratch = Type::new(ty.dtype, &[outputs, parts]);
        buffers.push(Buffer {
            bytes: (scratch.numel() * 4) as u64,
            ty: scratch.clone(),
            role: BufferRole::Computed,
        });
        (BufferId(buffers.len() as u32 - 1), scratch)
    } else {
        (out_buffer, out_ty.clone())
    };
    let count = outputs * parts;
    let mut e = Emitter::new(g, cx.place, cx.buffer_of);
    e.bind(stage_buffer, &stage_ty, true);
    if parts > 1 {
        e.line(format!("let o: u32 = i / {parts}u;"));
        e.line(format!(
            "let start: u32 = (i % {parts}u) * {REDUCTION_CHUNK}u;"
        ));
        e.line(format!(
            "let end: u32 = min(start + {REDUCTION_CHUNK}u, {trips}u);"
        ));
    } else {
        e.line("let o: u32 = i;");
        e.line("let start: u32 = 0u;");
        e.line(format!("let end: u32 = {trips}u;"));
    }
    let coords = e.unravel("o", &ty.shape, "c");
    let (init, fold) = reduce_parts(&mut e, *kind, ty.dtype);
    let prologue = e.take_lines();
    e.set_indent(2);
    let rc = e.unravel("r", &reduced, "q");
    let full = operand_coords(src.len(), axes, &coords, &rc);
    e.ops = 0;
    let x = e.at(node.args[0], &full)?;
    e.line(fold("acc", &x));
    let ops = e.ops + 1;
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = if parts == 1 {
        finish(&mut e, root, red, &coords)?
    } else {
        (String::new(), "acc".to_string(), 0)
    };
    let variant = if parts > 1 {
        "reduce_partial"
    } else {
        "reduce"
    };
    let name = format!("{index:03}_{variant}_{}", node.op.name());
    let header = first_header(cx, k, red, parts, &name);
    let first = stage(
        cx,
        &e,
        Stage {
            name,
            variant,
            header,
            t: wgsl_type(ty.dtype),
            init: &init,
            count,
            prologue,
            body,
            epilogue,
            store,
            flops: (outputs * trips) as u64 * ops + outputs as u64 * epilogue_ops,
        },
    )?;
    if parts == 1 {
        return Ok(vec![first]);
    }

    // Stage 2: fold each output's partial results, in order.
    let name = format!("{:03}_reduce_final_{}", index + 1, node.op.name());
    let mut header = format!(
        "// Kernel {name}: computes {} = {} : {ty}, stage 2 of 2: folds {parts} partial results per output.",
        cx.label(red),
        node.op.name()
    );
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
            kind: *kind,
            dtype: ty.dtype,
            shape: &ty.shape,
            out: (out_buffer, &out_ty),
            partials: (stage_buffer, &stage_ty),
            parts,
            epilogue: (root != red).then_some((root, red)),
        },
    )?;
    Ok(vec![first, last])
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
fn first_header(cx: &Context<'_>, k: &KernelPlan, red: Value, parts: usize, name: &str) -> String {
    let g = cx.g;
    let fused: Vec<String> = k
        .values
        .iter()
        .filter(|v| **v != k.root && **v != red)
        .map(|v| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
        .collect();
    let mut header = format!(
        "// Kernel {name}: computes {} = {} : {}",
        cx.label(red),
        g.node(red).op.name(),
        g.ty(red)
    );
    if parts > 1 {
        header.push_str(&format!(
            ", stage 1 of 2: {parts} runs of {REDUCTION_CHUNK} per output"
        ));
    }
    header.push('.');
    if !fused.is_empty() {
        header.push_str(&format!("\n// Fused: {}.", fused.join(", ")));
    }
    header
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

/// A kernel folding, for every output, `parts` partial results in order.
pub struct FinalStage<'a> {
    /// The kernel's name.
    pub name: String,
    /// The comment at its top.
    pub header: String,
    /// The fold.
    pub kind: ReduceKind,
    /// The accumulator's dtype.
    pub dtype: DType,
    /// The shape of the reduction's result.
    pub shape: &'a [usize],
    /// The buffer stored, and its type.
    pub out: (BufferId, &'a Type),
    /// The partial results, `parts` per output, and their type.
    pub partials: (BufferId, &'a Type),
    /// Partial results per output.
    pub parts: usize,
    /// Elementwise work on the result (its root and the reduction it reads), if any.
    pub epilogue: Option<(Value, Value)>,
}

/// The second stage of a reduction: one invocation per output folds its partial
/// results in order (and applies the epilogue, if any).
pub fn final_stage(cx: &Context<'_>, s: FinalStage<'_>) -> Result<Kernel> {
    let outputs: usize = s.shape.iter().product();
    let parts = s.parts;
    let mut e = Emitter::new(cx.g, cx.place, cx.buffer_of);
    e.bind(s.out.0, s.out.1, true);
    e.bind(s.partials.0, s.partials.1, false);
    let coords = e.unravel("i", s.shape, "c");
    e.line("let start: u32 = 0u;");
    e.line(format!("let end: u32 = {parts}u;"));
    let (init, fold) = reduce_parts(&mut e, s.kind, s.dtype);
    let prologue = e.take_lines();
    e.set_indent(2);
    e.line(fold("acc", &format!("b1[i * {parts}u + r]")));
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = match s.epilogue {
        Some((root, red)) => finish(&mut e, root, red, &coords)?,
        None => (String::new(), "acc".to_string(), 0),
    };
    stage(
        cx,
        &e,
        Stage {
            name: s.name,
            variant: "reduce_final",
            header: s.header,
            t: wgsl_type(s.dtype),
            init: &init,
            count: outputs,
            prologue,
            body,
            epilogue,
            store,
            flops: (outputs * parts) as u64 + outputs as u64 * epilogue_ops,
        },
    )
}

/// What distinguishes one stage of a reduction.
struct Stage<'a> {
    name: String,
    variant: &'a str,
    header: String,
    t: &'a str,
    init: &'a str,
    count: usize,
    prologue: String,
    body: String,
    epilogue: String,
    store: String,
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
            ("T", p.t),
            ("INIT", p.init),
            ("PROLOGUE", &p.prologue),
            ("BODY", &p.body),
            ("EPILOGUE", &epilogue),
            ("STORE", &p.store),
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
