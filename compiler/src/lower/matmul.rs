//! The register-tiled matmul variant, specialized from `shaders/matmul.wgsl`.
//!
//! It applies to a `dot` that is a (batched) matrix product of two stored operands:
//! one contracted axis each, batch axes leading and paired in order, each operand
//! either in row-major or transposed layout. The tile shape comes from the target
//! ([`Target::matmul_tile`]); rows of `B` are loaded as `vec4` when `B` is row-major
//! and its width is a multiple of 4, and so are the rows of a transposed `A` when its
//! height is. Anything else uses the generic product kernel. The kernel may also sum
//! `B` over the contracted axis (a bias gradient beside its weight gradient, see
//! `group::fuse_column_sums`).

use super::group::Placement;
use super::program::{Buffer, BufferId, BufferRole, Kernel, KernelBinding};
use super::target::Target;
use super::wgsl::Emitter;
use crate::ir::{DType, Graph, Op, Value};
use std::fmt::Write;

const TEMPLATE: &str = include_str!("../../../shaders/matmul.wgsl");

/// The shape of a product the tiled kernel computes.
#[derive(Clone, Copy, Debug)]
pub struct Tiling {
    a_transposed: bool,
    b_transposed: bool,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
}

/// Whether the tiled kernel computes `dot` on `target`, given which values are stored.
pub fn tileable(
    g: &Graph,
    dot: Value,
    target: &Target,
    stored: impl Fn(Value) -> bool,
) -> Option<Tiling> {
    let node = g.node(dot);
    let Op::Dot(d) = &node.op else { return None };
    let (l, r) = (node.args[0], node.args[1]);
    let (lt, rt, ct) = (g.ty(l), g.ty(r), g.ty(dot));
    let nb = d.lhs_batch.len();
    let leading: Vec<usize> = (0..nb).collect();
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
    let [tm, tn] = target.matmul_tile.map(|t| t.max(1) as usize);
    let max = target.max_compute_workgroups_per_dimension as usize;
    let fits = n.div_ceil(8 * tn) <= max && m.div_ceil(8 * tm) <= max && batch <= max;
    (m * n * batch > 0 && k > 0 && fits).then_some(Tiling {
        a_transposed,
        b_transposed,
        m,
        n,
        k,
        batch,
    })
}

/// The tiled kernel computing `root`: a product, or an elementwise function of a
/// product fused into its group (the product's epilogue), when shapes allow it.
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
) -> Option<Vec<Kernel>> {
    let dot = *own.iter().find(|v| {
        matches!(g.node(**v).op, Op::Dot(_)) && place[v.index()] != Placement::Also(root)
    })?;
    let stored = |v: Value| matches!(place[v.index()], Placement::Input | Placement::Root);
    // An operand computed as it is loaded (its prologue) rather than read.
    let inline = |v: Value| {
        super::group::prologue_operand(g, v)
            && matches!(
                place[v.index()],
                Placement::Everywhere | Placement::Fused(_)
            )
    };
    let Tiling {
        a_transposed,
        b_transposed,
        m,
        n,
        k,
        batch,
    } = tileable(g, dot, target, |v| stored(v) || inline(v))?;
    let node = g.node(dot);
    let (l, r) = (node.args[0], node.args[1]);
    let (inline_a, inline_b) = (!stored(l), !stored(r));
    if batch > 1 && (inline_a || inline_b) {
        return None;
    }
    let ct = g.ty(root);
    if root != dot && (ct.dtype != DType::F32 || ct.shape != [m, n]) {
        return None;
    }
    let [tm, tn] = target.matmul_tile.map(|t| t.max(1) as usize);
    let vec4 = !b_transposed && !inline_b && n % 4 == 0 && tn % 4 == 0;
    // Both operands contiguous along K (A row-major, B transposed): four steps of K at
    // a time, as vec4 loads of each and dot products.
    let along_k = !a_transposed && b_transposed && !inline_a && !inline_b && k % 4 == 0;
    // A transposed ([K,M]): the tile's rows at one k are contiguous, read as vec4.
    let a_rows4 = a_transposed && !inline_a && m % 4 == 0 && tm % 4 == 0;
    // A row-major and B read as vec4 rows: four steps of K at a time, A as vec4 along K.
    // An operand computed as it is loaded can be computed four elements at a time when
    // its one op applies to vectors (the `x1 + x2` of a shared weight): along M when A
    // is transposed, along K when it is row-major.
    let prologue4 = inline_a && vec4_prologue_applies(g, l);
    let a4_prologue = prologue4 && a_transposed && m % 4 == 0 && tm % 4 == 0;
    let a_k4 = vec4 && !a_transposed && k % 4 == 0 && (!inline_a || prologue4);
    // Steps of K per iteration, and the names of the B values loaded for column `j`.
    let k_step = if along_k || a_k4 { 4 } else { 1 };
    let b_names = |j: usize| -> Vec<String> {
        if a_k4 {
            (0..4).map(|kk| format!("b{j}_{kk}")).collect()
        } else {
            vec![format!("b{j}")]
        }
    };
    // `tileable` checked that this grid fits the target.
    let (gx, gy) = (n.div_ceil(8 * tn), m.div_ceil(8 * tm));

    // Prologues compute inline operands as they are loaded; an epilogue evaluates the
    // root from the accumulator, the row and the column. They share one set of extra
    // bindings, numbered after C, A and B.
    let mut functions = String::new();
    let mut e = Emitter::new(g, place, buffer_of).with_bindings_from(3, "e");
    let mut extra_ops = 0;
    let mut function =
        |e: &mut Emitter<'_>, header: &str, v: Value, coords: [&str; 2]| -> Option<()> {
            let coords = coords.map(str::to_string);
            if v == dot {
                e.seed(dot, &coords, "acc");
            }
            let x = e.root_expr(if v == dot { root } else { v }, &coords).ok()?;
            let _ = write!(
                functions,
                "\n{header} {{\n{}\n    return {x};\n}}\n",
                e.take_lines()
            );
            e.clear_memo();
            Some(())
        };
    // A transposed operand computed as it is loaded is computed four rows at a time
    // when its one op applies to vec4 values, like the `x1 + x2` of a shared weight.
    let mut load_a4 = String::new();
    if a4_prologue || (inline_a && a_k4) {
        let (params, index) = if a4_prologue {
            ("k: u32, row4: u32", format!("k * {}u + row4", m / 4))
        } else {
            ("row: u32, k: u32", format!("row * {}u + k / 4u", k / 4))
        };
        let x = vec4_prologue(&mut e, g, buffer_of, l, &index)?;
        load_a4 = format!("\nfn load_a4({params}) -> vec4<f32> {{\n    return {x};\n}}\n");
        e.ops += 1;
    } else if inline_a {
        let coords = if a_transposed {
            ["k", "row"]
        } else {
            ["row", "k"]
        };
        function(&mut e, "fn load_a(row: u32, k: u32) -> f32", l, coords)?;
    }
    if inline_b {
        let coords = if b_transposed {
            ["col", "k"]
        } else {
            ["k", "col"]
        };
        function(&mut e, "fn load_b(k: u32, col: u32) -> f32", r, coords)?;
    }
    let prologue_ops = e.ops;
    if root != dot {
        function(
            &mut e,
            "fn epilogue(acc: f32, row: u32, col: u32) -> f32",
            dot,
            ["row", "col"],
        )?;
        extra_ops = e.ops - prologue_ops;
    }
    // Sums computed beside the product: of the whole result (a loss), or of an
    // operand over K (a bias gradient), from the values the kernel stores or loads.
    let beside: Vec<Value> = own
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
    // The invocations' sums of the result, one slot per invocation of the grid.
    let slots = gx * 8 * gy * 8;
    let partial = match total {
        Some(_) => {
            let ty = crate::ir::Type::f32(&[slots]);
            buffers.push(Buffer {
                bytes: (slots * 4) as u64,
                ty: ty.clone(),
                role: BufferRole::Computed,
            });
            let id = BufferId(buffers.len() as u32 - 1);
            Some((id, e.bind(id, &ty, true)))
        }
        None => None,
    };
    // Which operand the sum is of: B over K (its columns), or A over K (its rows).
    let of_a = |s: Value| g.node(s).args[0] == l && g.node(s).args[0] != r;
    let column_sum = match sums[..] {
        [] => None,
        [s] if batch == 1 => Some((e.bind(buffer_of[s.index()]?, g.ty(s), true), of_a(s))),
        _ => return None,
    };
    let epilogue = format!("\n{}\n{load_a4}{functions}", e.declarations().trim_end());
    let extra = e.bindings.clone();
    let store = |i: usize, col: usize, value: String| {
        let value = if root == dot {
            value
        } else {
            format!("epilogue({value}, row0 + {i}u, col0 + {col}u)")
        };
        if partial.is_some() {
            format!(
                "    if row0 + {i}u < M && col0 + {col}u < N {{ let v = {value}; c[c_base + (row0 + {i}u) * N + col0 + {col}u] = v; total = total + v; }}"
            )
        } else {
            format!(
                "    if row0 + {i}u < M && col0 + {col}u < N {{ c[c_base + (row0 + {i}u) * N + col0 + {col}u] = {value}; }}"
            )
        }
    };

    let mut acc = String::new();
    if partial.is_some() {
        let _ = writeln!(acc, "    var total: f32 = 0.0f;");
    }
    let mut loads = String::new();
    let mut fmas = String::new();
    let mut stores = String::new();
    for i in 0..tm {
        let row = format!("min(row0 + {i}u, {}u)", m - 1);
        if a_rows4 || a4_prologue {
            if i % 4 == 0 {
                let (q, last) = (i / 4, m / 4 - 1);
                let _ = if a4_prologue {
                    writeln!(
                        loads,
                        "        let av{q} = load_a4(k, min(row0 / 4u + {q}u, {last}u));"
                    )
                } else {
                    writeln!(
                        loads,
                        "        let av{q} = a[(a_base + k * {m}u) / 4u + min(row0 / 4u + {q}u, {last}u)];"
                    )
                };
            }
            let _ = writeln!(loads, "        let a{i} = av{}[{}];", i / 4, i % 4);
            continue;
        }
        if along_k || a_k4 {
            let _ = if inline_a {
                writeln!(loads, "        let a{i} = load_a4({row}, k);")
            } else {
                writeln!(
                    loads,
                    "        let a{i} = a[(a_base + {row} * {k}u + k) / 4u];"
                )
            };
            continue;
        }
        let a_idx = if a_transposed {
            format!("a_base + k * {m}u + {row}")
        } else {
            format!("a_base + {row} * {k}u + k")
        };
        if inline_a {
            let _ = writeln!(loads, "        let a{i} = load_a({row}, k);");
        } else {
            let _ = writeln!(loads, "        let a{i} = a[{a_idx}];");
        }
    }
    if along_k {
        for j in 0..tn {
            let col = format!("min(col0 + {j}u, {}u)", n - 1);
            let _ = writeln!(
                loads,
                "        let b{j} = b[(b_base + {col} * {k}u + k) / 4u];"
            );
            for i in 0..tm {
                let _ = writeln!(acc, "    var acc{i}_{j}: f32 = 0.0f;");
                let _ = writeln!(fmas, "        acc{i}_{j} = acc{i}_{j} + dot(a{i}, b{j});");
                let _ = writeln!(stores, "{}", store(i, j, format!("acc{i}_{j}")));
            }
        }
    } else if vec4 {
        for j in 0..tn / 4 {
            let col4 = format!("min(col0 / 4u + {j}u, {}u)", n / 4 - 1);
            for (kk, b) in b_names(j).iter().enumerate() {
                let row = if a_k4 {
                    format!("(k + {kk}u)")
                } else {
                    "k".to_string()
                };
                let _ = writeln!(
                    loads,
                    "        let {b} = b[b_base / 4u + {row} * {}u + {col4}];",
                    n / 4
                );
            }
            for i in 0..tm {
                let _ = writeln!(acc, "    var acc{i}_{j}: vec4<f32> = vec4<f32>(0.0f);");
                for (kk, b) in b_names(j).iter().enumerate() {
                    let a = if a_k4 {
                        format!("a{i}[{kk}]")
                    } else {
                        format!("a{i}")
                    };
                    let _ = writeln!(
                        fmas,
                        "        acc{i}_{j} = fma(vec4<f32>({a}), {b}, acc{i}_{j});"
                    );
                }
                for lane in 0..4 {
                    let _ = writeln!(
                        stores,
                        "{}",
                        store(i, 4 * j + lane, format!("acc{i}_{j}[{lane}]"))
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
            if inline_b {
                let _ = writeln!(loads, "        let b{j} = load_b(k, {col});");
            } else {
                let _ = writeln!(loads, "        let b{j} = b[{b_idx}];");
            }
            for i in 0..tm {
                let _ = writeln!(acc, "    var acc{i}_{j}: f32 = 0.0f;");
                let _ = writeln!(fmas, "        acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});");
                let _ = writeln!(stores, "{}", store(i, j, format!("acc{i}_{j}")));
            }
        }
    }
    if let Some((out, true)) = &column_sum {
        // Every invocation sums the A values it loads; those of the first tile column
        // store the sums of their rows.
        let _ = writeln!(stores, "    if gid.x == 0u {{");
        let (ty, zero) = if along_k || a_k4 {
            ("vec4<f32>", "vec4<f32>(0.0f)")
        } else {
            ("f32", "0.0f")
        };
        for i in 0..tm {
            let _ = writeln!(acc, "    var sum{i}: {ty} = {zero};");
            let _ = writeln!(fmas, "        sum{i} = sum{i} + a{i};");
            let value = if along_k || a_k4 {
                format!("(sum{i}.x + sum{i}.y) + (sum{i}.z + sum{i}.w)")
            } else {
                format!("sum{i}")
            };
            let _ = writeln!(
                stores,
                "        if row0 + {i}u < M {{ {out}[row0 + {i}u] = {value}; }}"
            );
        }
        let _ = writeln!(stores, "    }}");
    }
    if let Some((out, false)) = &column_sum {
        // Every invocation sums the B values it loads; those of the first tile row
        // store the sums of their columns.
        let _ = writeln!(stores, "    if gid.y == 0u {{");
        let lanes = if vec4 { 4 } else { 1 };
        for j in 0..tn / lanes {
            let (ty, zero) = if vec4 || along_k {
                ("vec4<f32>", "vec4<f32>(0.0f)")
            } else {
                ("f32", "0.0f")
            };
            let _ = writeln!(acc, "    var sum{j}: {ty} = {zero};");
            for b in b_names(j) {
                let _ = writeln!(fmas, "        sum{j} = sum{j} + {b};");
            }
            for lane in 0..lanes {
                let col = lanes * j + lane;
                let value = if along_k {
                    format!("(sum{j}.x + sum{j}.y) + (sum{j}.z + sum{j}.w)")
                } else if vec4 {
                    format!("sum{j}[{lane}]")
                } else {
                    format!("sum{j}")
                };
                let _ = writeln!(
                    stores,
                    "        if col0 + {col}u < N {{ {out}[col0 + {col}u] = {value}; }}"
                );
            }
        }
        let _ = writeln!(stores, "    }}");
    }
    if let Some((_, p)) = &partial {
        let _ = writeln!(stores, "    {p}[gid.y * {}u + gid.x] = total;", gx * 8);
    }
    let variant = format!("matmul_tiled{tm}x{tn}");
    let name = format!("{index:03}_{variant}_dot");
    let mut header = format!(
        "// Kernel {name}: computes %{} = dot : {} as {batch}×[{m}×{k}]·[{k}×{n}]{}{}.",
        dot.0,
        g.ty(dot),
        if a_transposed { ", A transposed" } else { "" },
        if b_transposed { ", B transposed" } else { "" },
    );
    if let Some(t) = total {
        header.push_str(&format!(
            "\n// Also sums its result for %{} = reduce_sum : {} (one sum per invocation, added by the next kernel).",
            t.0,
            g.ty(t)
        ));
    }
    for &s in &sums {
        header.push_str(&format!(
            "\n// Also computes %{} = reduce_sum of {} over K: {}.",
            s.0,
            if of_a(s) { "A" } else { "B" },
            g.ty(s)
        ));
    }
    if root != dot {
        let fused: Vec<String> = own
            .iter()
            .filter(|v| place[v.index()] == Placement::Fused(root) && **v != dot)
            .map(|v| format!("%{} {}", v.0, g.node(*v).op.name()))
            .chain(std::iter::once(format!(
                "%{} {}",
                root.0,
                g.node(root).op.name()
            )))
            .collect();
        header.push_str(&format!("\n// Epilogue: {}.", fused.join(", ")));
    }
    let wgsl = super::wgsl::template(TEMPLATE)
        .replace("{{HEADER}}", &header)
        .replace(
            "{{A_BINDING}}",
            if inline_a {
                if a4_prologue || a_k4 {
                    "// A is computed as it is loaded, four elements at a time: see load_a4."
                } else {
                    "// A is computed as it is loaded: see load_a."
                }
            } else if along_k || a_rows4 || a_k4 {
                "@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;"
            } else {
                "@group(0) @binding(1) var<storage, read> a: array<f32>;"
            },
        )
        .replace(
            "{{B_BINDING}}",
            &if inline_b {
                "// B is computed as it is loaded: see load_b.".to_string()
            } else {
                format!(
                    "@group(0) @binding(2) var<storage, read> b: array<{}>;",
                    if vec4 || along_k { "vec4<f32>" } else { "f32" }
                )
            },
        )
        .replace("{{M}}", &m.to_string())
        .replace("{{N}}", &n.to_string())
        .replace("{{K}}", &k.to_string())
        .replace("{{TM}}", &tm.to_string())
        .replace("{{TN}}", &tn.to_string())
        .replace("{{K_STEP}}", &format!("{k_step}u"))
        .replace("{{A_STRIDE}}", &(m * k).to_string())
        .replace("{{B_STRIDE}}", &(k * n).to_string())
        .replace("{{C_STRIDE}}", &(m * n).to_string())
        .replace("{{ACC}}", acc.trim_end())
        .replace("{{LOADS}}", loads.trim_end())
        .replace("{{FMAS}}", fmas.trim_end())
        .replace("{{STORES}}", stores.trim_end())
        .replace("{{EPILOGUE}}", epilogue.trim_end())
        .replace(
            "{{EXIT}}",
            &match &partial {
                Some((_, p)) => format!("        {p}[gid.y * {}u + gid.x] = 0.0f;\n", gx * 8),
                None => String::new(),
            },
        )
        + "\n";
    let binding = |k: u32, v: Value, writable: bool| {
        buffer_of[v.index()].map(|buffer| KernelBinding {
            binding: k,
            buffer,
            writable,
        })
    };
    let mut bindings = vec![binding(0, root, true)?];
    let mut bytes_moved = (g.ty(root).numel() * 4) as u64;
    if !inline_a {
        bindings.push(binding(1, l, false)?);
        bytes_moved += (g.ty(l).numel() * 4) as u64;
    }
    if !inline_b {
        bindings.push(binding(2, r, false)?);
        bytes_moved += (g.ty(r).numel() * 4) as u64;
    }
    for (k, (buffer, ty, writable)) in extra.into_iter().enumerate() {
        bytes_moved += (ty.numel() * 4) as u64;
        bindings.push(KernelBinding {
            binding: 3 + k as u32,
            buffer,
            writable,
        });
    }
    let product = Kernel {
        name,
        variant,
        wgsl,
        entry_point: "main".into(),
        bindings,
        workgroup_size: [8, 8, 1],
        dispatch: [gx as u32, gy as u32, batch as u32],
        flops: 2 * (batch * m * n * k) as u64
            + (m * n) as u64 * (extra_ops + u64::from(partial.is_some()))
            + match column_sum {
                Some((_, true)) => (n.div_ceil(tn) * m * k) as u64,
                Some((_, false)) => (m.div_ceil(tm) * n * k) as u64,
                None => 0,
            }
            + (m * k * n.div_ceil(tn) * usize::from(inline_a)
                + k * n * m.div_ceil(tm) * usize::from(inline_b)) as u64,
        bytes_moved,
    };
    let (Some(t), Some((partials, _))) = (total, partial) else {
        return Some(vec![product]);
    };
    // The invocations' sums, added in order by one invocation.
    let name = format!("{:03}_reduce_final_reduce_sum", index + 1);
    let wgsl = format!(
        "// Kernel {name}: computes %{} = reduce_sum : {}, adding the {slots} sums of kernel {:03}'s invocations in order.\n\
         @group(0) @binding(0) var<storage, read_write> b0: array<f32>; // {}\n\
         @group(0) @binding(1) var<storage, read> b1: array<f32>; // f32[{slots}]\n\n\
         @compute @workgroup_size(1)\n\
         fn main() {{\n    var acc: f32 = 0.0f;\n    for (var r: u32 = 0u; r < {slots}u; r = r + 1u) {{\n        acc = acc + b1[r];\n    }}\n    b0[0] = acc;\n}}\n",
        t.0,
        g.ty(t),
        index,
        g.ty(t),
    );
    let fold = Kernel {
        name,
        variant: "reduce_final".into(),
        wgsl,
        entry_point: "main".into(),
        bindings: vec![
            KernelBinding {
                binding: 0,
                buffer: buffer_of[t.index()]?,
                writable: true,
            },
            KernelBinding {
                binding: 1,
                buffer: partials,
                writable: false,
            },
        ],
        workgroup_size: [1, 1, 1],
        dispatch: [1, 1, 1],
        flops: slots as u64,
        bytes_moved: (slots * 4 + 4) as u64,
    };
    Some(vec![product, fold])
}

/// Whether [`vec4_prologue`] can compute the product operand `v`: one op that WGSL
/// applies to vectors (`+ - * /`, `neg`, `exp`, `log`) on `f32` program inputs and
/// finite splat constants.
fn vec4_prologue_applies(g: &Graph, v: Value) -> bool {
    use crate::ir::{BinaryOp, UnaryOp};
    let node = g.node(v);
    let op_ok = matches!(
        node.op,
        Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)
            | Op::Unary(UnaryOp::Neg | UnaryOp::Exp | UnaryOp::Log)
    );
    op_ok
        && node.args.iter().all(|&a| {
            g.ty(a).dtype == DType::F32
                && match g.node(a).op {
                    Op::Input { .. } => true,
                    Op::Constant { value, .. } => (value.to_f64() as f32).is_finite(),
                    _ => false,
                }
        })
}

/// Four consecutive elements of the product operand `v` as one `vec4<f32>`
/// expression: its inputs are bound as `array<vec4<f32>>` and read at `index`, in units
/// of four elements.
fn vec4_prologue(
    e: &mut Emitter<'_>,
    g: &Graph,
    buffer_of: &[Option<BufferId>],
    v: Value,
    index: &str,
) -> Option<String> {
    use crate::ir::{BinaryOp, UnaryOp};
    let node = g.node(v);
    let mut args = Vec::new();
    for &a in &node.args {
        args.push(match g.node(a).op {
            Op::Constant { value, .. } => format!("vec4<f32>({:?}f)", value.to_f64() as f32),
            _ => format!("{}[{index}]", e.bind_vec4(buffer_of[a.index()]?, g.ty(a))),
        });
    }
    Some(match (&node.op, &args[..]) {
        (Op::Binary(BinaryOp::Add), [a, b]) => format!("{a} + {b}"),
        (Op::Binary(BinaryOp::Sub), [a, b]) => format!("{a} - {b}"),
        (Op::Binary(BinaryOp::Mul), [a, b]) => format!("{a} * {b}"),
        (Op::Binary(BinaryOp::Div), [a, b]) => format!("{a} / {b}"),
        (Op::Unary(UnaryOp::Neg), [a]) => format!("-{a}"),
        (Op::Unary(UnaryOp::Exp), [a]) => format!("exp({a})"),
        (Op::Unary(UnaryOp::Log), [a]) => format!("log({a})"),
        _ => return None,
    })
}
