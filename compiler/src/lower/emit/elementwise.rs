//! Kernels of one element per invocation: elementwise work, and the contractions
//! and scatters the specialized kernels do not take, with a loop per element over the
//! contracted (scattered) elements in a fixed order, so results are bit-identical
//! from run to run. Fused operand expressions are emitted inside the loop.

use super::Context;
use super::expr::{Emitter, dot_operand_coords, wgsl_type};
use crate::error::{Error, Result};
use crate::ir::{DType, Op, Scalar};
use crate::lower::plan::{KernelKind, KernelPlan};
use crate::lower::program::Kernel;

/// The kernel of plan `k`, numbered `index`.
pub fn emit(cx: &Context<'_>, k: &KernelPlan, index: usize) -> Result<Kernel> {
    let (g, target, root) = (cx.g, cx.target, k.root);
    let ty = g.ty(root).clone();
    let n = ty.numel();
    let out_buffer = cx.buffer(root)?;
    let wg = target.workgroup_size();
    let [gx, gy] = target.grid(n, &root.to_string())?;

    let mut e = Emitter::new(g, cx.place, cx.buffer_of);
    let out = e.bind(out_buffer, &ty, true);
    let coords = e.unravel("i", &ty.shape, "c");
    let node = g.node(root);
    let (variant, per_element) = match &k.kind {
        KernelKind::Contraction { trips } => {
            let Op::Dot(dims) = &node.op else {
                return Err(Error::Compile(format!(
                    "{root}: a contraction that is not a dot"
                )));
            };
            let trips = *trips;
            let (l, r) = (node.args[0], node.args[1]);
            let kshape: Vec<usize> = dims
                .lhs_contract
                .iter()
                .map(|&a| g.ty(l).shape[a])
                .collect();
            let zero = e.literal(Scalar::of(ty.dtype, 0.0));
            e.line(format!("var acc: {} = {zero};", wgsl_type(ty.dtype)));
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
        KernelKind::Scatter { axis, trips } => {
            let (axis, trips) = (*axis, *trips);
            let (u, idx) = (node.args[0], node.args[1]);
            let zero = e.literal(Scalar::of(ty.dtype, 0.0));
            e.line(format!("var acc: {} = {zero};", wgsl_type(ty.dtype)));
            let saved = e.open(format!("for (var j: u32 = 0u; j < {trips}u; j = j + 1u)"));
            let mut uc = coords.clone();
            uc[axis] = "j".into();
            e.ops = 0;
            let ix = e.at(idx, &uc)?;
            let c = &coords[axis];
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
        KernelKind::Elementwise => {
            e.ops = 0;
            let x = e.root_expr(root, &coords)?;
            e.store(&out, "i", ty.dtype, &x);
            ("elementwise", e.ops)
        }
        KernelKind::Reduce { .. } | KernelKind::Matmul(_) | KernelKind::Row(_) => {
            return Err(Error::Compile(format!(
                "{root}: not a kernel of one element per invocation"
            )));
        }
    };

    let fused: Vec<String> = k
        .values
        .iter()
        .filter(|v| **v != root)
        .map(|v| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
        .collect();
    let name = format!("{index:03}_{variant}_{}", node.op.name());
    let mut wgsl = format!(
        "// Kernel {name}: computes {} = {} : {}.\n",
        cx.label(root),
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

    let bytes_moved = e.bytes_bound();
    let bindings = e.kernel_bindings();
    target.check_bindings(e.bindings.len(), &name)?;
    Ok(Kernel {
        name,
        variant: variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings,
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: n as u64 * per_element,
        bytes_moved,
    })
}
