//! The register-tiled matmul variant, specialized from `shaders/matmul.wgsl`.
//!
//! It applies to a `dot` that is a (batched) matrix product of two stored operands:
//! one contracted axis each, batch axes leading and paired in order, each operand
//! either in row-major or transposed layout. The tile shape comes from the target
//! ([`Target::matmul_tile`]); rows of `B` are loaded as `vec4` when `B` is row-major
//! and its width is a multiple of 4. Anything else uses the generic product kernel.

use super::group::Placement;
use super::program::{BufferId, Kernel, KernelBinding};
use super::target::Target;
use crate::ir::{DType, Graph, Op, Value};
use std::fmt::Write;

const TEMPLATE: &str = include_str!("../../../shaders/matmul.wgsl");

/// The tiled kernel for `root`, when its shape and operands allow it.
pub fn generate(
    g: &Graph,
    place: &[Placement],
    buffer_of: &[Option<BufferId>],
    root: Value,
    index: usize,
    target: &Target,
) -> Option<Kernel> {
    let node = g.node(root);
    let Op::Dot(d) = &node.op else { return None };
    let (l, r) = (node.args[0], node.args[1]);
    let (lt, rt, ct) = (g.ty(l), g.ty(r), g.ty(root));
    let nb = d.lhs_batch.len();
    let leading: Vec<usize> = (0..nb).collect();
    let stored = |v: Value| matches!(place[v.index()], Placement::Input | Placement::Root);
    if ct.dtype != DType::F32
        || !stored(l)
        || !stored(r)
        || lt.rank() != nb + 2
        || rt.rank() != nb + 2
        || d.lhs_batch != leading
        || d.rhs_batch != leading
        || d.lhs_contract.len() != 1
    {
        return None;
    }
    // A is [M,K] (row-major) or [K,M] (transposed); B is [K,N] or [N,K].
    let a_transposed = d.lhs_contract[0] == nb;
    let b_transposed = d.rhs_contract[0] == nb + 1;
    let (m, k) = if a_transposed {
        (lt.shape[nb + 1], lt.shape[nb])
    } else {
        (lt.shape[nb], lt.shape[nb + 1])
    };
    let n = if b_transposed {
        rt.shape[nb]
    } else {
        rt.shape[nb + 1]
    };
    let batch: usize = lt.shape[..nb].iter().product();
    if m * n * batch == 0 || k == 0 {
        return None;
    }
    let [tm, tn] = target.matmul_tile.map(|t| t.max(1) as usize);
    let vec4 = !b_transposed && n % 4 == 0 && tn % 4 == 0;
    let (gx, gy) = (n.div_ceil(8 * tn), m.div_ceil(8 * tm));
    let max = target.max_compute_workgroups_per_dimension as usize;
    if gx > max || gy > max || batch > max {
        return None;
    }

    let mut acc = String::new();
    let mut loads = String::new();
    let mut fmas = String::new();
    let mut stores = String::new();
    for i in 0..tm {
        let row = format!("min(row0 + {i}u, {}u)", m - 1);
        let a_idx = if a_transposed {
            format!("a_base + k * {m}u + {row}")
        } else {
            format!("a_base + {row} * {k}u + k")
        };
        let _ = writeln!(loads, "        let a{i} = a[{a_idx}];");
    }
    if vec4 {
        for j in 0..tn / 4 {
            let col4 = format!("min(col0 / 4u + {j}u, {}u)", n / 4 - 1);
            let _ = writeln!(
                loads,
                "        let b{j} = b[b_base / 4u + k * {}u + {col4}];",
                n / 4
            );
            for i in 0..tm {
                let _ = writeln!(acc, "    var acc{i}_{j}: vec4<f32> = vec4<f32>(0.0f);");
                let _ = writeln!(
                    fmas,
                    "        acc{i}_{j} = fma(vec4<f32>(a{i}), b{j}, acc{i}_{j});"
                );
                for lane in 0..4 {
                    let _ = writeln!(
                        stores,
                        "    if row0 + {i}u < M && col0 + {}u < N {{ c[c_base + (row0 + {i}u) * N + col0 + {}u] = acc{i}_{j}[{lane}]; }}",
                        4 * j + lane,
                        4 * j + lane
                    );
                }
            }
        }
    } else {
        for j in 0..tn {
            let col = format!("min(col0 + {j}u, {}u)", n - 1);
            let b_idx = if b_transposed {
                format!("b_base + {col} * {k}u + k")
            } else {
                format!("b_base + k * {n}u + {col}")
            };
            let _ = writeln!(loads, "        let b{j} = b[{b_idx}];");
            for i in 0..tm {
                let _ = writeln!(acc, "    var acc{i}_{j}: f32 = 0.0f;");
                let _ = writeln!(fmas, "        acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});");
                let _ = writeln!(
                    stores,
                    "    if row0 + {i}u < M && col0 + {j}u < N {{ c[c_base + (row0 + {i}u) * N + col0 + {j}u] = acc{i}_{j}; }}"
                );
            }
        }
    }
    let variant = format!("matmul_tiled{tm}x{tn}");
    let name = format!("{index:03}_{variant}_dot");
    let header = format!(
        "// Kernel {name}: computes %{} = dot : {ct} as {batch}×[{m}×{k}]·[{k}×{n}]{}{}.",
        root.0,
        if a_transposed { ", A transposed" } else { "" },
        if b_transposed { ", B transposed" } else { "" },
    );
    let wgsl = TEMPLATE
        .lines()
        .skip_while(|line| line.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{{HEADER}}", &header)
        .replace("{{B_TYPE}}", if vec4 { "vec4<f32>" } else { "f32" })
        .replace("{{M}}", &m.to_string())
        .replace("{{N}}", &n.to_string())
        .replace("{{K}}", &k.to_string())
        .replace("{{TM}}", &tm.to_string())
        .replace("{{TN}}", &tn.to_string())
        .replace("{{A_STRIDE}}", &(m * k).to_string())
        .replace("{{B_STRIDE}}", &(k * n).to_string())
        .replace("{{C_STRIDE}}", &(m * n).to_string())
        .replace("{{ACC}}", acc.trim_end())
        .replace("{{LOADS}}", loads.trim_end())
        .replace("{{FMAS}}", fmas.trim_end())
        .replace("{{STORES}}", stores.trim_end())
        + "\n";
    let binding = |k: u32, v: Value, writable: bool| {
        buffer_of[v.index()].map(|buffer| KernelBinding {
            binding: k,
            buffer,
            writable,
        })
    };
    let bindings = vec![
        binding(0, root, true)?,
        binding(1, l, false)?,
        binding(2, r, false)?,
    ];
    let bytes = |v: Value| (g.ty(v).numel() * 4) as u64;
    Some(Kernel {
        name,
        variant,
        wgsl,
        entry_point: "main".into(),
        bindings,
        workgroup_size: [8, 8, 1],
        dispatch: [gx as u32, gy as u32, batch as u32],
        flops: 2 * (batch * m * n * k) as u64,
        bytes_moved: bytes(l) + bytes(r) + bytes(root),
    })
}
