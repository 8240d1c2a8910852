//! Kernel generation: one compute kernel per fusion-group root.
//!
//! Elementwise roots compute one element per invocation; `reduce`, `dot` and
//! `scatter_add` roots compute one output element per invocation with a loop over the
//! reduced (contracted, scattered) elements, so every sum runs in a fixed order and
//! results are bit-identical from run to run. The fused operand expressions are emitted
//! inside those loops.

use super::group::Placement;
use super::program::{BufferId, Kernel, KernelBinding};
use super::target::Target;
use super::wgsl::{Emitter, dot_operand_coords, reduce_parts};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Op, Scalar, Value};

/// Generates the kernel computing `root` into its buffer; `None` for an empty tensor.
pub fn generate(
    g: &Graph,
    place: &[Placement],
    buffer_of: &[Option<BufferId>],
    root: Value,
    index: usize,
    target: &Target,
) -> Result<Option<Kernel>> {
    let ty = g.ty(root).clone();
    let n = ty.numel();
    if n == 0 {
        return Ok(None);
    }
    let out_buffer = buffer_of[root.index()]
        .ok_or_else(|| Error::Compile(format!("root {root} has no buffer")))?;
    let wg = target.workgroup_size();
    let groups = n.div_ceil(wg as usize);
    let max_dim = target.max_compute_workgroups_per_dimension as usize;
    let gx = groups.min(max_dim);
    let gy = groups.div_ceil(gx);
    if gy > max_dim {
        return Err(Error::Compile(format!(
            "{root} {ty} needs {groups} workgroups, more than a {max_dim}×{max_dim} grid"
        )));
    }

    let mut e = Emitter::new(g, place, buffer_of);
    let out = e.bind(out_buffer, &ty, true);
    let coords = e.unravel("i", &ty.shape, "c");
    let node = g.node(root);
    let (variant, per_element) = match &node.op {
        Op::Reduce { kind, axes } => {
            let src = &g.ty(node.args[0]).shape;
            let reduced: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
            let (init, fold) = reduce_parts(&mut e, *kind, ty.dtype);
            e.line(format!(
                "var acc: {} = {init};",
                super::wgsl::wgsl_type(ty.dtype)
            ));
            let trips: usize = reduced.iter().product();
            let saved = e.open(format!("for (var r: u32 = 0u; r < {trips}u; r = r + 1u)"));
            let rc = e.unravel("r", &reduced, "q");
            let mut full = Vec::with_capacity(src.len());
            let (mut kept, mut red) = (coords.iter(), rc.iter());
            for a in 0..src.len() {
                let c = if axes.contains(&a) {
                    red.next()
                } else {
                    kept.next()
                };
                full.push(c.cloned().unwrap_or_else(|| "0u".into()));
            }
            e.ops = 0;
            let x = e.at(node.args[0], &full)?;
            e.line(fold("acc", &x));
            let ops = e.ops + 1;
            e.close(saved);
            e.store(&out, "i", ty.dtype, "acc");
            ("reduce", trips as u64 * ops)
        }
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
        Op::ScatterAdd { axis, .. } => {
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

    let fused: Vec<String> = (0..g.len())
        .filter(|&i| place[i] == Placement::Fused(root))
        .map(|i| format!("%{i} {}", g.nodes[i].op.name()))
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
    let bindings = e
        .bindings
        .iter()
        .enumerate()
        .map(|(k, (buffer, _, writable))| KernelBinding {
            binding: k as u32,
            buffer: *buffer,
            writable: *writable,
        })
        .collect();
    if e.bindings.len() as u32 > target.max_storage_buffers_per_shader_stage {
        return Err(Error::Limits {
            what: format!("max_storage_buffers_per_shader_stage (kernel {name})"),
            needed: e.bindings.len() as u64,
            available: target.max_storage_buffers_per_shader_stage as u64,
        });
    }
    Ok(Some(Kernel {
        name,
        variant: variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings,
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: n as u64 * per_element,
        bytes_moved,
    }))
}
