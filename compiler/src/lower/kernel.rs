//! Kernel generation: one compute kernel per fusion-group root.
//!
//! Elementwise roots compute one element per invocation; `reduce`, `dot` and
//! `scatter_add` roots compute one output element per invocation with a loop over the
//! reduced (contracted, scattered) elements, so every sum runs in a fixed order and
//! results are bit-identical from run to run. The fused operand expressions are emitted
//! inside those loops.

use super::group::Placement;
use super::program::{Buffer, BufferId, BufferRole, Kernel};
use super::target::Target;
use super::wgsl::{Emitter, dot_operand_coords, reduce_parts};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Op, Scalar, Type, Value};

const REDUCE_TEMPLATE: &str = include_str!("../../../shaders/reduce.wgsl");

/// Reductions at least this long with few outputs run in two stages.
pub const SPLIT_REDUCTION: usize = 4096;
/// Elements folded by one invocation of the first stage of a split reduction.
const SPLIT_CHUNK: usize = 1024;

/// Generates the kernels computing `root` into its buffer (none for an empty tensor).
/// Scratch buffers a kernel needs are appended to `buffers`. `own` lists the values the
/// kernel computes (`group::kernel_values`).
#[allow(clippy::too_many_arguments)]
pub fn generate(
    g: &Graph,
    place: &[Placement],
    buffer_of: &[Option<BufferId>],
    buffers: &mut Vec<Buffer>,
    root: Value,
    own: &[Value],
    index: usize,
    target: &Target,
) -> Result<Vec<Kernel>> {
    let ty = g.ty(root).clone();
    let n = ty.numel();
    if n == 0 {
        return Ok(Vec::new());
    }
    let out_buffer = buffer_of[root.index()]
        .ok_or_else(|| Error::Compile(format!("root {root} has no buffer")))?;
    // A reduction computes its kernel, possibly with elementwise work on its result
    // fused after the loop (an epilogue).
    let reduction = own
        .iter()
        .copied()
        .find(|&v| matches!(g.node(v).op, Op::Reduce { .. }));
    if let Some(red) = reduction {
        return reduce(g, place, buffer_of, buffers, root, own, red, index, target);
    }
    let wg = target.workgroup_size();
    let (gx, gy) = grid(n, target, root)?;

    let mut e = Emitter::new(g, place, buffer_of);
    let out = e.bind(out_buffer, &ty, true);
    let coords = e.unravel("i", &ty.shape, "c");
    let node = g.node(root);
    let (variant, per_element) = match &node.op {
        Op::Dot(dims) => {
            let (l, r) = (node.args[0], node.args[1]);
            let kshape: Vec<usize> = dims
                .lhs_contract
                .iter()
                .map(|&a| g.ty(l).shape[a])
                .collect();
            let trips: usize = kshape.iter().product();
            let zero = e.literal(Scalar::of(ty.dtype, 0.0));
            e.line(format!(
                "var acc: {} = {zero};",
                super::wgsl::wgsl_type(ty.dtype)
            ));
            let saved = e.open(format!("for (var k: u32 = 0u; k < {trips}u; k = k + 1u)"));
            let kc = e.unravel("k", &kshape, "q");
            let (lc, rc) = dot_operand_coords(dims, g.ty(l).rank(), g.ty(r).rank(), &coords, &kc);
            e.ops = 0;
            let a = e.at(l, &lc)?;
            let b = e.at(r, &rc)?;
            e.line(format!("acc = acc + {a} * {b};"));
            let ops = e.ops + 2;
            e.close(saved);
            e.store(&out, "i", ty.dtype, "acc");
            ("matmul_naive", trips as u64 * ops)
        }
        Op::ScatterAdd { axis, .. } if g.ty(node.args[0]).shape[*axis] != 1 => {
            let (u, idx) = (node.args[0], node.args[1]);
            let trips = g.ty(u).shape[*axis];
            let zero = e.literal(Scalar::of(ty.dtype, 0.0));
            e.line(format!(
                "var acc: {} = {zero};",
                super::wgsl::wgsl_type(ty.dtype)
            ));
            let saved = e.open(format!("for (var j: u32 = 0u; j < {trips}u; j = j + 1u)"));
            let mut uc = coords.clone();
            uc[*axis] = "j".into();
            e.ops = 0;
            let ix = e.at(idx, &uc)?;
            let c = &coords[*axis];
            let hit = match g.ty(idx).dtype {
                DType::I32 => format!("{ix} >= 0i && u32({ix}) == {c}"),
                _ => format!("{ix} == {c}"),
            };
            let x = e.at(u, &uc)?;
            e.line(format!("acc = acc + select({zero}, {x}, {hit});"));
            let ops = e.ops + 2;
            e.close(saved);
            e.store(&out, "i", ty.dtype, "acc");
            ("scatter", trips as u64 * ops)
        }
        _ => {
            e.ops = 0;
            let x = e.root_expr(root, &coords)?;
            e.store(&out, "i", ty.dtype, &x);
            ("elementwise", e.ops)
        }
    };

    let fused: Vec<String> = own
        .iter()
        .filter(|v| **v != root)
        .map(|v| format!("%{} {}", v.0, g.node(*v).op.name()))
        .collect();
    let name = format!("{index:03}_{variant}_{}", node.op.name());
    let mut wgsl = format!(
        "// Kernel {name}: computes %{} = {} : {}.\n",
        root.0,
        node.op.name(),
        ty
    );
    if !fused.is_empty() {
        wgsl.push_str(&format!("// Fused: {}.\n", fused.join(", ")));
    }
    wgsl.push_str(&e.declarations());
    wgsl.push_str(&format!(
        "\n@compute @workgroup_size({wg})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n    let i: u32 = gid.x + gid.y * {}u;\n    if i >= {n}u {{\n        return;\n    }}\n",
        gx * wg as usize
    ));
    wgsl.push_str(&e.body());
    wgsl.push_str("}\n");

    let bytes_moved = e
        .bindings
        .iter()
        .map(|(_, t, _)| (t.numel() * t.dtype.size_bytes()) as u64)
        .sum();
    let bindings = e.kernel_bindings();
    check_bindings(e.bindings.len(), target, &name)?;
    Ok(vec![Kernel {
        name,
        variant: variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings,
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: n as u64 * per_element,
        bytes_moved,
    }])
}

/// An error when a kernel binds more storage buffers than the target allows.
pub fn check_bindings(count: usize, target: &Target, name: &str) -> Result<()> {
    if count as u32 > target.max_storage_buffers_per_shader_stage {
        return Err(Error::Limits {
            what: format!("max_storage_buffers_per_shader_stage (kernel {name})"),
            needed: count as u64,
            available: target.max_storage_buffers_per_shader_stage as u64,
        });
    }
    Ok(())
}

/// The dispatch grid for `n` invocations: 1-D, or 2-D when one dimension is not enough.
pub fn grid(n: usize, target: &Target, root: Value) -> Result<(usize, usize)> {
    let groups = n.div_ceil(target.workgroup_size() as usize);
    let max_dim = target.max_compute_workgroups_per_dimension as usize;
    let gx = groups.min(max_dim);
    let gy = groups.div_ceil(gx.max(1));
    if gy > max_dim {
        return Err(Error::Compile(format!(
            "{root} needs {groups} workgroups, more than a {max_dim}×{max_dim} grid"
        )));
    }
    Ok((gx, gy))
}

/// The kernels of a reduction, from `shaders/reduce.wgsl`: one stage, or two when the
/// reduction is long and has few outputs (partial runs, then a fold of the partials).
#[allow(clippy::too_many_arguments)]
fn reduce(
    g: &Graph,
    place: &[Placement],
    buffer_of: &[Option<BufferId>],
    buffers: &mut Vec<Buffer>,
    root: Value,
    own: &[Value],
    red: Value,
    index: usize,
    target: &Target,
) -> Result<Vec<Kernel>> {
    let node = g.node(red);
    let Op::Reduce { kind, axes } = &node.op else {
        return Err(Error::Compile(format!("{red} is not a reduction")));
    };
    let ty = g.ty(red).clone();
    let out_ty = g.ty(root).clone();
    let outputs = ty.numel();
    let src = g.ty(node.args[0]).shape.clone();
    let reduced: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
    let trips: usize = reduced.iter().product();
    let parts = if trips >= SPLIT_REDUCTION && outputs < 256 {
        trips.div_ceil(SPLIT_CHUNK)
    } else {
        1
    };
    let out_buffer = buffer_of[root.index()]
        .ok_or_else(|| Error::Compile(format!("root {root} has no buffer")))?;
    let t = super::wgsl::wgsl_type(ty.dtype);
    // The statements after the loop and the value stored: the accumulator, or the
    // epilogue's result computed from it at the output's coordinates.
    let finish = |e: &mut Emitter<'_>, coords: &[String]| -> Result<(String, String, u64)> {
        if root == red {
            return Ok((String::new(), "acc".to_string(), 0));
        }
        e.set_indent(1);
        e.clear_memo();
        e.seed(red, coords, "acc");
        e.ops = 0;
        let x = e.root_expr(root, coords)?;
        let value = match out_ty.dtype {
            DType::Bool => format!("select(0u, 1u, {x})"),
            _ => x,
        };
        Ok((e.take_lines(), value, e.ops))
    };

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
    let mut e = Emitter::new(g, place, buffer_of);
    e.bind(stage_buffer, &stage_ty, true);
    if parts > 1 {
        e.line(format!("let o: u32 = i / {parts}u;"));
        e.line(format!("let start: u32 = (i % {parts}u) * {SPLIT_CHUNK}u;"));
        e.line(format!(
            "let end: u32 = min(start + {SPLIT_CHUNK}u, {trips}u);"
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
    let mut full = Vec::with_capacity(src.len());
    let (mut kept, mut folded) = (coords.iter(), rc.iter());
    for a in 0..src.len() {
        let c = if axes.contains(&a) {
            folded.next()
        } else {
            kept.next()
        };
        full.push(c.cloned().unwrap_or_else(|| "0u".into()));
    }
    e.ops = 0;
    let x = e.at(node.args[0], &full)?;
    e.line(fold("acc", &x));
    let ops = e.ops + 1;
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = if parts == 1 {
        finish(&mut e, &coords)?
    } else {
        (String::new(), "acc".to_string(), 0)
    };
    let fused: Vec<String> = own
        .iter()
        .filter(|v| **v != root && **v != red)
        .map(|v| format!("%{} {}", v.0, g.node(*v).op.name()))
        .collect();
    let variant = if parts > 1 {
        "reduce_partial"
    } else {
        "reduce"
    };
    let name = format!("{index:03}_{variant}_{}", node.op.name());
    let mut header = format!(
        "// Kernel {name}: computes %{} = {} : {ty}",
        red.0,
        node.op.name()
    );
    if parts > 1 {
        header.push_str(&format!(
            ", stage 1 of 2: {parts} runs of {SPLIT_CHUNK} per output"
        ));
    }
    header.push('.');
    if !fused.is_empty() {
        header.push_str(&format!("\n// Fused: {}.", fused.join(", ")));
    }
    let mut kernels = vec![reduce_kernel(
        &e,
        target,
        root,
        ReduceParts {
            name,
            variant,
            header,
            t,
            init: &init,
            count,
            prologue,
            body,
            epilogue,
            store,
            flops: (outputs * trips) as u64 * ops + outputs as u64 * epilogue_ops,
        },
    )?];
    if parts == 1 {
        return Ok(kernels);
    }

    // Stage 2: fold each output's partial results, in order.
    let mut e = Emitter::new(g, place, buffer_of);
    e.bind(out_buffer, &out_ty, true);
    e.bind(stage_buffer, &stage_ty, false);
    let coords = e.unravel("i", &ty.shape, "c");
    e.line("let start: u32 = 0u;");
    e.line(format!("let end: u32 = {parts}u;"));
    let (init, fold) = reduce_parts(&mut e, *kind, ty.dtype);
    let prologue = e.take_lines();
    e.set_indent(2);
    e.line(fold("acc", &format!("b1[i * {parts}u + r]")));
    let body = e.take_lines();
    let (epilogue, store, epilogue_ops) = finish(&mut e, &coords)?;
    let name = format!("{:03}_reduce_final_{}", index + 1, node.op.name());
    let mut header = format!(
        "// Kernel {name}: computes %{} = {} : {ty}, stage 2 of 2: folds {parts} partial results per output.",
        red.0,
        node.op.name()
    );
    if root != red {
        // The work after the loop: the fused values that read the reduction's result.
        let after: Vec<String> = own
            .iter()
            .filter(|v| **v > red)
            .map(|v| format!("%{} {}", v.0, g.node(*v).op.name()))
            .collect();
        header.push_str(&format!("\n// Epilogue: {}.", after.join(", ")));
    }
    kernels.push(reduce_kernel(
        &e,
        target,
        root,
        ReduceParts {
            name,
            variant: "reduce_final",
            header,
            t,
            init: &init,
            count: outputs,
            prologue,
            body,
            epilogue,
            store,
            flops: (outputs * parts) as u64 + outputs as u64 * epilogue_ops,
        },
    )?);
    Ok(kernels)
}

/// What distinguishes one stage of a reduction.
struct ReduceParts<'a> {
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
fn reduce_kernel(
    e: &Emitter<'_>,
    target: &Target,
    root: Value,
    p: ReduceParts<'_>,
) -> Result<Kernel> {
    let wg = target.workgroup_size();
    let (gx, gy) = grid(p.count, target, root)?;
    let wgsl = super::wgsl::template(REDUCE_TEMPLATE)
        .replace("{{HEADER}}", &p.header)
        .replace("{{BINDINGS}}", e.declarations().trim_end())
        .replace("{{WG}}", &wg.to_string())
        .replace("{{ROW}}", &(gx * wg as usize).to_string())
        .replace("{{COUNT}}", &p.count.to_string())
        .replace("{{T}}", p.t)
        .replace("{{INIT}}", p.init)
        .replace("{{PROLOGUE}}", &p.prologue)
        .replace("{{BODY}}", &p.body)
        .replace(
            "{{EPILOGUE}}",
            &if p.epilogue.is_empty() {
                String::new()
            } else {
                format!("{}\n", p.epilogue)
            },
        )
        .replace("{{STORE}}", &p.store)
        + "\n";
    Ok(Kernel {
        name: p.name,
        variant: p.variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings: e.kernel_bindings(),
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: p.flops,
        bytes_moved: e
            .bindings
            .iter()
            .map(|(_, t, _)| (t.numel() * t.dtype.size_bytes()) as u64)
            .sum(),
    })
}
