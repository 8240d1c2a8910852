//! The register-tiled product kernel, specialized from `shaders/matmul.wgsl` as its
//! plan ([`MatmulPlan`]) says: the operand loads, the FMA block, the stores with the
//! epilogue, the sums computed beside the product, and the second kernel that adds up
//! a summed result (the reduction's final stage).
//!
//! Every invocation computes a `tile` of the result in registers. Operands are read
//! one element at a time or as `vec4` (along K, or along the rows of a transposed A
//! and of B), or computed as they are loaded (a prologue, such as the `x1 + x2` of a
//! weight shared by two inputs).

use super::Context;
use super::expr::{Emitter, fill};
use super::reduce::{FinalFold, FinalStage, final_stage};
use crate::error::{Error, Result};
use crate::ir::{BinaryOp, DType, Op, ReduceKind, Type, UnaryOp, Value};
use crate::lower::plan::{KernelPlan, Load, MatmulPlan, Operand};
use crate::lower::program::{Buffer, BufferId, BufferRole, Kernel, KernelBinding};
use crate::lower::target::TileSource;
use std::fmt::Write;

const TEMPLATE: &str = include_str!("../../../../shaders/matmul.wgsl");

/// The unrolled tile: declarations before the loop, loads and FMAs inside it, stores
/// after it.
#[derive(Default)]
struct Tile {
    acc: String,
    loads: String,
    fmas: String,
    stores: String,
}

/// What the kernel writes besides the product: its extra bindings (numbered after C,
/// A and B) and functions, and the operations they add per element.
struct Extras {
    /// The binding declarations and functions, for `{{EPILOGUE}}`.
    text: String,
    /// The extra bindings.
    bindings: Vec<(BufferId, Type, bool)>,
    /// Operations per result element of the epilogue.
    epilogue_ops: u64,
    /// The name of the binding that receives each invocation's sum of its results.
    partial: Option<(BufferId, String)>,
    /// The name of the binding that receives an operand's sums over K.
    column_sum: Option<String>,
}

/// The kernels of plan `k`, a tiled product as `m` says, numbered from `index`: the
/// product, and when it sums its whole result, the fold of the invocations' sums.
pub fn emit(
    cx: &Context<'_>,
    k: &KernelPlan,
    m: &MatmulPlan,
    index: usize,
    buffers: &mut Vec<Buffer>,
) -> Result<Vec<Kernel>> {
    let (g, root, dot) = (cx.g, k.root, m.dot);
    let [gx, gy] = m.grid();
    let extras = extras(cx, k, m, buffers)?;
    // Split-K: the parts' partial results, `split` per result element.
    let parts = m.split;
    let partials = (parts > 1).then(|| {
        let ty = Type::f32(&[g.ty(dot).numel() * parts]);
        buffers.push(Buffer {
            bytes: (ty.numel() * 4) as u64,
            ty: ty.clone(),
            role: BufferRole::Computed,
        });
        (BufferId(buffers.len() as u32 - 1), ty)
    });
    let partial = extras.partial.as_ref().map(|(_, name)| name.as_str());
    let tile = tile(m, partial, extras.column_sum.as_deref());
    let variant = format!(
        "matmul_tiled{}x{}{}",
        m.tile[0],
        m.tile[1],
        if m.shared.is_some() { "_shared" } else { "" }
    );
    // A 1-D workgroup with shared loads: naga takes subgroup ids only in those.
    let wg = match m.shared {
        Some(_) => [m.workgroup[0] * m.workgroup[1], 1],
        None => m.workgroup,
    };
    // An invocation outside the product ends at once (storing 0 as its sum). With
    // shared loads, only a whole subgroup outside does: the others' loads are needed.
    let outside = match m.shared {
        Some(width) => format!("row0 >= M || wg.x * {}u >= N", width * m.tile[1]),
        None => "row0 >= M || col0 >= N".to_string(),
    };
    let exit = format!(
        "    if {outside} {{\n{}        return;\n    }}\n",
        match &extras.partial {
            Some((_, p)) => format!(
                "        {p}[gid.y * {}u + gid.x] = 0.0f;\n",
                gx * m.workgroup[0]
            ),
            None => String::new(),
        }
    );
    let (builtins, mut invocation) = match m.shared {
        Some(width) => (
            "@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32",
            format!(
                "    // Subgroup `sg` computes one row of tiles: its lanes read the same rows of A.\n    let gid = vec3<u32>(wg.x * {width}u + lane, wg.y * {}u + sg, wg.z);\n",
                m.workgroup[1]
            ),
        ),
        None => (
            "@builtin(global_invocation_id) gid: vec3<u32>",
            String::new(),
        ),
    };
    let run = m.split_run();
    let (batch, k_from, k_to) = if parts > 1 {
        let _ = writeln!(
            invocation,
            "    // Part `part` of the {parts} computes steps [part·{run}, part·{run} + {run}) of K.\n    part = gid.z % {parts}u;"
        );
        (
            format!("(gid.z / {parts}u)"),
            format!("part * {run}u"),
            format!("min(part * {run}u + {run}u, K)"),
        )
    } else {
        ("gid.z".to_string(), "0u".to_string(), "K".to_string())
    };
    let name = format!("{index:03}_{variant}_dot");
    let wgsl = fill(
        TEMPLATE,
        &name,
        &[
            ("HEADER", &header(cx, k, m, &name)),
            ("A_BINDING", a_binding(m.a)),
            ("B_BINDING", &b_binding(m.b)),
            ("EPILOGUE", extras.text.trim_end()),
            (
                "STORE_FNS",
                &format!("\n{}", store_fns(m, partial.is_some()).trim_end()),
            ),
            ("WG_X", &wg[0].to_string()),
            ("WG_Y", &wg[1].to_string()),
            ("BUILTINS", builtins),
            ("INVOCATION", &invocation),
            ("M", &m.tiling.m.to_string()),
            ("N", &m.tiling.n.to_string()),
            ("K", &m.tiling.k.to_string()),
            ("TM", &m.tile[0].to_string()),
            ("TN", &m.tile[1].to_string()),
            ("K_STEP", &format!("{}u", m.k_step())),
            ("BATCH", &batch),
            ("K_FROM", &k_from),
            ("K_TO", &k_to),
            ("A_STRIDE", &(m.tiling.m * m.tiling.k).to_string()),
            ("B_STRIDE", &(m.tiling.k * m.tiling.n).to_string()),
            ("C_STRIDE", &(m.tiling.m * m.tiling.n).to_string()),
            ("ACC", tile.acc.trim_end()),
            ("LOADS", tile.loads.trim_end()),
            ("FMAS", tile.fmas.trim_end()),
            ("STORES", tile.stores.trim_end()),
            ("EXIT", &exit),
        ],
    )?;
    let (l, r) = (g.node(dot).args[0], g.node(dot).args[1]);
    let result = match &partials {
        Some((buffer, ty)) => (*buffer, ty),
        None => (cx.buffer(root)?, g.ty(root)),
    };
    let mut bindings = vec![(0, result.0, true, result.1)];
    if !m.a.is_prologue() {
        bindings.push((1, cx.buffer(l)?, false, g.ty(l)));
    }
    if !m.b.is_prologue() {
        bindings.push((2, cx.buffer(r)?, false, g.ty(r)));
    }
    for (i, (buffer, ty, writable)) in extras.bindings.iter().enumerate() {
        bindings.push((3 + i as u32, *buffer, *writable, ty));
    }
    cx.target.check_bindings(bindings.len(), &name)?;
    let bytes_moved = bindings
        .iter()
        .map(|(_, _, _, ty)| (ty.numel() * 4) as u64)
        .sum();
    let product = Kernel {
        name,
        variant,
        wgsl,
        entry_point: "main".into(),
        bindings: bindings
            .iter()
            .map(|&(binding, buffer, writable, _)| KernelBinding {
                binding,
                buffer,
                writable,
            })
            .collect(),
        workgroup_size: [wg[0] as u32, wg[1] as u32, 1],
        dispatch: [gx as u32, gy as u32, (m.tiling.batch * parts) as u32],
        flops: flops(m, extras.epilogue_ops),
        bytes_moved,
    };
    if let Some((buffer, ty)) = &partials {
        // The parts added in order, each output by one invocation, then the epilogue.
        let name = format!("{:03}_reduce_final_split", index + 1);
        let header = format!(
            "// Kernel {name}: computes {} = dot : {}, adding the {parts} partial products of kernel {index:03} (K split into parts of {run}) in order{}.",
            cx.label(dot),
            g.ty(dot),
            if root != dot {
                ", then the epilogue"
            } else {
                ""
            }
        );
        let out = (cx.buffer(root)?, g.ty(root));
        let epilogue = (root != dot).then_some((root, dot));
        let fold = sum_in_order(cx, (name, header), out, (*buffer, ty), parts, epilogue)?;
        return Ok(vec![product, fold]);
    }
    let (Some(t), Some((partials, _))) = (m.total, extras.partial) else {
        return Ok(vec![product]);
    };
    // The invocations' sums, added in order by one invocation.
    let slots = gx * m.workgroup[0] * gy * m.workgroup[1];
    let name = format!("{:03}_reduce_final_reduce_sum", index + 1);
    let header = format!(
        "// Kernel {name}: computes {} = reduce_sum : {}, adding the {slots} sums of kernel {index:03}'s invocations in order.",
        cx.label(t),
        g.ty(t),
    );
    let out = (cx.buffer(t)?, g.ty(t));
    let fold = sum_in_order(
        cx,
        (name, header),
        out,
        (partials, &Type::f32(&[slots])),
        slots,
        None,
    )?;
    Ok(vec![product, fold])
}

/// The kernel named and headed `name`, `header` that stores into `out` the sum, in
/// order, of each element's `parts` partial results in `partials` (then the epilogue
/// `(root, reduction)`, if any).
fn sum_in_order(
    cx: &Context<'_>,
    (name, header): (String, String),
    out: (BufferId, &Type),
    partials: (BufferId, &Type),
    parts: usize,
    epilogue: Option<(Value, Value)>,
) -> Result<Kernel> {
    final_stage(
        cx,
        FinalStage {
            name,
            header,
            folds: vec![FinalFold {
                kind: ReduceKind::Sum,
                dtype: DType::F32,
                out,
                partials,
            }],
            shape: &out.1.shape,
            parts,
            epilogue,
        },
    )
}

/// The prologues (operands computed as they are loaded), the epilogue (elementwise
/// work on the product), and the bindings of the sums beside the product.
fn extras(
    cx: &Context<'_>,
    k: &KernelPlan,
    m: &MatmulPlan,
    buffers: &mut Vec<Buffer>,
) -> Result<Extras> {
    let (g, root, dot) = (cx.g, k.root, m.dot);
    let (l, r) = (g.node(dot).args[0], g.node(dot).args[1]);
    let (mm, kk) = (m.tiling.m, m.tiling.k);
    let mut functions = String::new();
    let mut e = Emitter::new(g, cx.place, cx.buffer_of).with_bindings_from(3, "e");
    let mut function =
        |e: &mut Emitter<'_>, header: &str, v: Value, coords: [&str; 2]| -> Result<()> {
            let coords = coords.map(str::to_string);
            if v == dot {
                e.seed(dot, &coords, "acc");
            }
            let x = e.root_expr(if v == dot { root } else { v }, &coords)?;
            let _ = write!(
                functions,
                "\n{header} {{\n{}\n    return {x};\n}}\n",
                e.take_lines()
            );
            e.clear_memo();
            Ok(())
        };
    // A operand computed four elements at a time, along M or along K.
    let mut load_a4 = String::new();
    match m.a {
        Load::Prologue4AlongFree | Load::Prologue4AlongK => {
            let (params, index) = if m.a == Load::Prologue4AlongFree {
                ("k: u32, row4: u32", format!("k * {}u + row4", mm / 4))
            } else {
                ("row: u32, k: u32", format!("row * {}u + k / 4u", kk / 4))
            };
            let x = vec4_prologue(&mut e, cx, l, &index)?;
            load_a4 = format!("\nfn load_a4({params}) -> vec4<f32> {{\n    return {x};\n}}\n");
            e.ops += 1;
        }
        Load::Prologue => {
            let coords = if m.tiling.a_transposed {
                ["k", "row"]
            } else {
                ["row", "k"]
            };
            function(&mut e, "fn load_a(row: u32, k: u32) -> f32", l, coords)?;
        }
        Load::Scalar | Load::Vec4AlongK | Load::Vec4AlongFree => {}
    }
    if m.b.is_prologue() {
        let coords = if m.tiling.b_transposed {
            ["col", "k"]
        } else {
            ["k", "col"]
        };
        function(&mut e, "fn load_b(k: u32, col: u32) -> f32", r, coords)?;
    }
    let prologue_ops = e.ops;
    let mut epilogue_ops = 0;
    // With split-K the kernel adding the parts applies the epilogue.
    if m.epilogue && m.split == 1 {
        function(
            &mut e,
            "fn epilogue(acc: f32, row: u32, col: u32) -> f32",
            dot,
            ["row", "col"],
        )?;
        epilogue_ops = e.ops - prologue_ops;
    }
    // The invocations' sums of the result, one slot per invocation of the grid.
    let partial = match m.total {
        Some(_) => {
            let [gx, gy] = m.grid();
            let slots = gx * m.workgroup[0] * gy * m.workgroup[1];
            let ty = Type::f32(&[slots]);
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
    let column_sum = match m.column_sum {
        Some((s, _)) => Some(e.bind(cx.buffer(s)?, g.ty(s), true)),
        None => None,
    };
    Ok(Extras {
        text: format!("\n{}\n{load_a4}{functions}", e.declarations().trim_end()),
        bindings: e.bindings.clone(),
        epilogue_ops,
        partial,
        column_sum,
    })
}

/// The unrolled tile: A's loads, then per column of the tile B's loads, the FMAs and
/// the stores, then the sums beside the product.
fn tile(m: &MatmulPlan, partial: Option<&str>, column_sum: Option<&str>) -> Tile {
    let mut t = Tile::default();
    let total = partial.is_some();
    if total {
        let _ = writeln!(t.acc, "    var total: f32 = 0.0f;");
    }
    a_loads(m, &mut t);
    let store = |i: usize, col: usize, value: String| store(total, i, col, value, false);
    let [tm, tn] = m.tile;
    let (n, k) = (m.tiling.n, m.tiling.k);
    let b_names = |j: usize| -> Vec<String> {
        if m.a.along_k() && m.b.along_free() {
            (0..4).map(|kk| format!("b{j}_{kk}")).collect()
        } else {
            vec![format!("b{j}")]
        }
    };
    match m.b {
        Load::Vec4AlongK | Load::Prologue4AlongK => {
            for j in 0..tn {
                let col = format!("min(col0 + {j}u, {}u)", n - 1);
                let _ = writeln!(
                    t.loads,
                    "        let b{j} = b[(b_base + {col} * {k}u + k) / 4u];"
                );
                for i in 0..tm {
                    let _ = writeln!(t.acc, "    var acc{i}_{j}: f32 = 0.0f;");
                    let _ = writeln!(t.fmas, "        acc{i}_{j} = acc{i}_{j} + dot(a{i}, b{j});");
                    let _ = writeln!(t.stores, "{}", store(i, j, format!("acc{i}_{j}")));
                }
            }
        }
        Load::Vec4AlongFree | Load::Prologue4AlongFree => {
            for j in 0..tn / 4 {
                let col4 = format!("min(col0 / 4u + {j}u, {}u)", n / 4 - 1);
                for (kk, b) in b_names(j).iter().enumerate() {
                    let row = if m.a.along_k() {
                        format!("(k + {kk}u)")
                    } else {
                        "k".to_string()
                    };
                    let _ = writeln!(
                        t.loads,
                        "        let {b} = b[b_base / 4u + {row} * {}u + {col4}];",
                        n / 4
                    );
                }
                for i in 0..tm {
                    let _ = writeln!(t.acc, "    var acc{i}_{j}: vec4<f32> = vec4<f32>(0.0f);");
                    for (kk, b) in b_names(j).iter().enumerate() {
                        let a = if m.a.along_k() {
                            format!("a{i}[{kk}]")
                        } else {
                            format!("a{i}")
                        };
                        let _ = writeln!(
                            t.fmas,
                            "        acc{i}_{j} = fma(vec4<f32>({a}), {b}, acc{i}_{j});"
                        );
                    }
                    let _ = writeln!(
                        t.stores,
                        "{}",
                        self::store(total, i, 4 * j, format!("acc{i}_{j}"), true)
                    );
                }
            }
        }
        Load::Scalar | Load::Prologue => {
            for j in 0..tn {
                let col = format!("min(col0 + {j}u, {}u)", n - 1);
                let _ = if m.b == Load::Prologue {
                    writeln!(t.loads, "        let b{j} = load_b(k, {col});")
                } else if m.tiling.b_transposed {
                    writeln!(t.loads, "        let b{j} = b[b_base + {col} * {k}u + k];")
                } else {
                    writeln!(t.loads, "        let b{j} = b[b_base + k * {n}u + {col}];")
                };
                for i in 0..tm {
                    let _ = writeln!(t.acc, "    var acc{i}_{j}: f32 = 0.0f;");
                    let _ = writeln!(t.fmas, "        acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});");
                    let _ = writeln!(t.stores, "{}", store(i, j, format!("acc{i}_{j}")));
                }
            }
        }
    }
    if let (Some(out), Some((_, of))) = (column_sum, m.column_sum) {
        column_sums(m, &mut t, out, of, &b_names);
    }
    if let Some(p) = partial {
        let _ = writeln!(
            t.stores,
            "    {p}[gid.y * {}u + gid.x] = total;",
            m.grid()[0] * m.workgroup[0]
        );
    }
    t
}

/// The loads of A's tile rows at one step of K.
fn a_loads(m: &MatmulPlan, t: &mut Tile) {
    if let Some(width) = m.shared {
        return shared_a_loads(m, width, t);
    }
    let (mm, k) = (m.tiling.m, m.tiling.k);
    for i in 0..m.tile[0] {
        let row = format!("min(row0 + {i}u, {}u)", mm - 1);
        let _ = match m.a {
            Load::Vec4AlongFree | Load::Prologue4AlongFree => {
                if i % 4 == 0 {
                    let (q, last) = (i / 4, mm / 4 - 1);
                    let _ = if m.a == Load::Prologue4AlongFree {
                        writeln!(
                            t.loads,
                            "        let av{q} = load_a4(k, min(row0 / 4u + {q}u, {last}u));"
                        )
                    } else {
                        writeln!(
                            t.loads,
                            "        let av{q} = a[(a_base + k * {mm}u) / 4u + min(row0 / 4u + {q}u, {last}u)];"
                        )
                    };
                }
                writeln!(t.loads, "        let a{i} = av{}[{}];", i / 4, i % 4)
            }
            Load::Prologue4AlongK => writeln!(t.loads, "        let a{i} = load_a4({row}, k);"),
            Load::Vec4AlongK => writeln!(
                t.loads,
                "        let a{i} = a[(a_base + {row} * {k}u + k) / 4u];"
            ),
            Load::Prologue => writeln!(t.loads, "        let a{i} = load_a({row}, k);"),
            Load::Scalar if m.tiling.a_transposed => {
                writeln!(t.loads, "        let a{i} = a[a_base + k * {mm}u + {row}];")
            }
            Load::Scalar => writeln!(t.loads, "        let a{i} = a[a_base + {row} * {k}u + k];"),
        };
    }
}

/// The loads of A's tile rows at one step of K, shared by a subgroup of `width` lanes:
/// lane `l` loads rows (or, for a transposed A read as `vec4`, groups of four rows)
/// `l`, `l + width`, … of the tile, and `subgroupBroadcast` gives each to every lane.
/// Rows past the tile's (or the product's, clamped) are loaded and not used.
fn shared_a_loads(m: &MatmulPlan, width: usize, t: &mut Tile) {
    let (mm, k) = (m.tiling.m, m.tiling.k);
    let quads = m.a.along_free();
    let units = if quads { m.tile[0] / 4 } else { m.tile[0] };
    for p in 0..units.div_ceil(width) {
        let unit = format!("lane + {}u", p * width);
        let row = format!("min(row0 + {unit}, {}u)", mm - 1);
        let quad = || format!("min(row0 / 4u + {unit}, {}u)", mm / 4 - 1);
        let load = match m.a {
            Load::Vec4AlongFree => format!("a[(a_base + k * {mm}u) / 4u + {}]", quad()),
            Load::Prologue4AlongFree => format!("load_a4(k, {})", quad()),
            Load::Prologue4AlongK => format!("load_a4({row}, k)"),
            Load::Vec4AlongK => format!("a[(a_base + {row} * {k}u + k) / 4u]"),
            Load::Prologue => format!("load_a({row}, k)"),
            Load::Scalar if m.tiling.a_transposed => format!("a[a_base + k * {mm}u + {row}]"),
            Load::Scalar => format!("a[a_base + {row} * {k}u + k]"),
        };
        let _ = writeln!(t.loads, "        let own{p} = {load};");
    }
    for u in 0..units {
        let name = if quads { "av" } else { "a" };
        let _ = writeln!(
            t.loads,
            "        let {name}{u} = subgroupBroadcast(own{}, {}u);",
            u / width,
            u % width
        );
        if quads {
            for i in 4 * u..4 * u + 4 {
                let _ = writeln!(t.loads, "        let a{i} = av{u}[{}];", i % 4);
            }
        }
    }
}

/// The statement storing one result element, or four (a `vec4` accumulator), through
/// the store functions ([`store_fns`]).
fn store(total: bool, i: usize, col: usize, value: String, wide: bool) -> String {
    let put = if wide { "put4" } else { "put" };
    if total {
        format!("    total = {put}(c_base, row0 + {i}u, col0 + {col}u, {value}, total);")
    } else {
        format!("    {put}(c_base, row0 + {i}u, col0 + {col}u, {value});")
    }
}

/// The functions that store one result element (`put`) or four consecutive ones
/// (`put4`) at `row`, `col` of batch `base` when inside the result, through the
/// epilogue, and when the kernel sums its result, add each stored value to `total` in
/// order and return it. One call per accumulator instead of an inline `if` per
/// element keeps the WGSL short: a 16×16 tile's 256 inline stores took naga longer to
/// parse than the rest of the kernel.
fn store_fns(m: &MatmulPlan, total: bool) -> String {
    let value = |v: &str, col: &str| {
        if m.epilogue && m.split == 1 {
            format!("epilogue({v}, row, {col})")
        } else {
            v.to_string()
        }
    };
    let mut s = String::new();
    if m.split > 1 {
        // A part's partial result for each element, its `split` parts side by side.
        let _ = writeln!(
            s,
            "var<private> part: u32;\n\nfn put(base: u32, row: u32, col: u32, acc: f32) {{\n    if row < M && col < N {{\n        c[(base + row * N + col) * {}u + part] = acc;\n    }}\n}}",
            m.split
        );
        if matches!(m.b, Load::Vec4AlongFree | Load::Prologue4AlongFree) {
            let _ = writeln!(
                s,
                "fn put4(base: u32, row: u32, col: u32, acc: vec4<f32>) {{"
            );
            for lane in 0..4 {
                let _ = writeln!(s, "    put(base, row, col + {lane}u, acc[{lane}]);");
            }
            let _ = writeln!(s, "}}");
        }
        return s;
    }
    let wide = matches!(m.b, Load::Vec4AlongFree | Load::Prologue4AlongFree);
    if total {
        let _ = writeln!(
            s,
            "fn put(base: u32, row: u32, col: u32, acc: f32, total: f32) -> f32 {{\n    if row < M && col < N {{\n        let v = {};\n        c[base + row * N + col] = v;\n        return total + v;\n    }}\n    return total;\n}}",
            value("acc", "col")
        );
    } else {
        let _ = writeln!(
            s,
            "fn put(base: u32, row: u32, col: u32, acc: f32) {{\n    if row < M && col < N {{\n        c[base + row * N + col] = {};\n    }}\n}}",
            value("acc", "col")
        );
    }
    if wide {
        let (ret, param, sum) = if total {
            (" -> f32", ", total: f32", "t = ")
        } else {
            ("", "", "")
        };
        let _ = writeln!(
            s,
            "fn put4(base: u32, row: u32, col: u32, acc: vec4<f32>{param}){ret} {{"
        );
        if total {
            let _ = writeln!(s, "    var t = total;");
        }
        for lane in 0..4 {
            let call = if total {
                format!("put(base, row, col + {lane}u, acc[{lane}], t)")
            } else {
                format!("put(base, row, col + {lane}u, acc[{lane}])")
            };
            let _ = writeln!(s, "    {sum}{call};");
        }
        if total {
            let _ = writeln!(s, "    return t;");
        }
        let _ = writeln!(s, "}}");
    }
    s
}

/// An operand's sums over K from the values loaded: every invocation sums what it
/// loads; those of the first tile column (for A's rows) or row (for B's columns)
/// store them into `out`.
fn column_sums(
    m: &MatmulPlan,
    t: &mut Tile,
    out: &str,
    of: Operand,
    b_names: &dyn Fn(usize) -> Vec<String>,
) {
    let [tm, tn] = m.tile;
    let wide_a = m.a.along_k();
    match of {
        Operand::A => {
            let _ = writeln!(t.stores, "    if gid.x == 0u {{");
            let (ty, zero) = if wide_a {
                ("vec4<f32>", "vec4<f32>(0.0f)")
            } else {
                ("f32", "0.0f")
            };
            for i in 0..tm {
                let _ = writeln!(t.acc, "    var sum{i}: {ty} = {zero};");
                let _ = writeln!(t.fmas, "        sum{i} = sum{i} + a{i};");
                let value = if wide_a {
                    format!("(sum{i}.x + sum{i}.y) + (sum{i}.z + sum{i}.w)")
                } else {
                    format!("sum{i}")
                };
                let _ = writeln!(
                    t.stores,
                    "        if row0 + {i}u < M {{ {out}[row0 + {i}u] = {value}; }}"
                );
            }
            let _ = writeln!(t.stores, "    }}");
        }
        Operand::B => {
            let _ = writeln!(t.stores, "    if gid.y == 0u {{");
            let (vec4, along_k) = (m.b.along_free(), m.b.along_k());
            let lanes = if vec4 { 4 } else { 1 };
            for j in 0..tn / lanes {
                let (ty, zero) = if vec4 || along_k {
                    ("vec4<f32>", "vec4<f32>(0.0f)")
                } else {
                    ("f32", "0.0f")
                };
                let _ = writeln!(t.acc, "    var sum{j}: {ty} = {zero};");
                for b in b_names(j) {
                    let _ = writeln!(t.fmas, "        sum{j} = sum{j} + {b};");
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
                        t.stores,
                        "        if col0 + {col}u < N {{ {out}[col0 + {col}u] = {value}; }}"
                    );
                }
            }
            let _ = writeln!(t.stores, "    }}");
        }
    }
}

/// The comment at the top of the kernel: the product, its layout, what it computes
/// beside it and its epilogue.
fn header(cx: &Context<'_>, k: &KernelPlan, m: &MatmulPlan, name: &str) -> String {
    let g = cx.g;
    let (root, dot) = (k.root, m.dot);
    let mut header = format!(
        "// Kernel {name}: computes {} = dot : {} as {}.",
        cx.label(dot),
        g.ty(dot),
        m.tiling
    );
    let from = match m.tile_source {
        TileSource::Preset => None,
        TileSource::Shape => Some("chosen by the product's shape"),
        TileSource::TuningFile => Some("from the tuning file"),
    };
    if let Some(from) = from {
        header.push_str(&format!("\n// Tile {}x{} {from}.", m.tile[0], m.tile[1]));
    }
    if let Some(s) = m.total {
        header.push_str(&format!(
            "\n// Also sums its result for {} = reduce_sum : {} (one sum per invocation, added by the next kernel).",
            cx.label(s),
            g.ty(s)
        ));
    }
    if let Some((s, of)) = m.column_sum {
        header.push_str(&format!(
            "\n// Also computes {} = reduce_sum of {} over K: {}.",
            cx.label(s),
            match of {
                Operand::A => "A",
                Operand::B => "B",
            },
            g.ty(s)
        ));
    }
    if m.epilogue {
        let fused: Vec<String> = k
            .values
            .iter()
            .filter(|v| **v != root && **v != dot && m.column_sum.is_none_or(|(s, _)| s != **v))
            .filter(|v| m.total != Some(**v))
            .map(|v| format!("{} {}", cx.label(*v), g.node(*v).op.name()))
            .chain(std::iter::once(format!(
                "{} {}",
                cx.label(root),
                g.node(root).op.name()
            )))
            .collect();
        let by = if m.split > 1 {
            " (applied by the kernel adding the parts)"
        } else {
            ""
        };
        header.push_str(&format!("\n// Epilogue{by}: {}.", fused.join(", ")));
    }
    header
}

/// A's declaration, or a note that it is computed as it is loaded.
fn a_binding(a: Load) -> &'static str {
    match a {
        Load::Prologue4AlongFree | Load::Prologue4AlongK => {
            "// A is computed as it is loaded, four elements at a time: see load_a4."
        }
        Load::Prologue => "// A is computed as it is loaded: see load_a.",
        Load::Vec4AlongK | Load::Vec4AlongFree => {
            "@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;"
        }
        Load::Scalar => "@group(0) @binding(1) var<storage, read> a: array<f32>;",
    }
}

/// B's declaration, or a note that it is computed as it is loaded.
fn b_binding(b: Load) -> String {
    if b.is_prologue() {
        return "// B is computed as it is loaded: see load_b.".to_string();
    }
    format!(
        "@group(0) @binding(2) var<storage, read> b: array<{}>;",
        if b == Load::Scalar {
            "f32"
        } else {
            "vec4<f32>"
        }
    )
}

/// The kernel's operations: the product's, the epilogue's and the sum's per element,
/// the sums beside it, and the prologues' per load.
fn flops(m: &MatmulPlan, epilogue_ops: u64) -> u64 {
    let t = &m.tiling;
    let [tm, tn] = m.tile;
    let (mm, n, k) = (t.m, t.n, t.k);
    2 * (t.batch * mm * n * k) as u64
        + (mm * n) as u64 * (epilogue_ops + u64::from(m.total.is_some()))
        + match m.column_sum {
            Some((_, Operand::A)) => (n.div_ceil(tn) * mm * k) as u64,
            Some((_, Operand::B)) => (mm.div_ceil(tm) * n * k) as u64,
            None => 0,
        }
        + (mm * k * n.div_ceil(tn) * usize::from(m.a.is_prologue())
            + k * n * mm.div_ceil(tm) * usize::from(m.b.is_prologue())) as u64
}

/// Four consecutive elements of the product operand `v` as one `vec4<f32>`
/// expression: its inputs are bound as `array<vec4<f32>>` and read at `index`, in units
/// of four elements.
fn vec4_prologue(e: &mut Emitter<'_>, cx: &Context<'_>, v: Value, index: &str) -> Result<String> {
    let g = cx.g;
    let node = g.node(v);
    let mut args = Vec::new();
    for &a in &node.args {
        args.push(match g.node(a).op {
            Op::Constant { value, .. } => format!("vec4<f32>({:?}f)", value.to_f64() as f32),
            _ => format!("{}[{index}]", e.bind_vec4(cx.buffer(a)?, g.ty(a))),
        });
    }
    Ok(match (&node.op, &args[..]) {
        (Op::Binary(BinaryOp::Add), [a, b]) => format!("{a} + {b}"),
        (Op::Binary(BinaryOp::Sub), [a, b]) => format!("{a} - {b}"),
        (Op::Binary(BinaryOp::Mul), [a, b]) => format!("{a} * {b}"),
        (Op::Binary(BinaryOp::Div), [a, b]) => format!("{a} / {b}"),
        (Op::Unary(UnaryOp::Neg), [a]) => format!("-{a}"),
        (Op::Unary(UnaryOp::Exp), [a]) => format!("exp({a})"),
        (Op::Unary(UnaryOp::Log), [a]) => format!("log({a})"),
        (op, _) => {
            return Err(Error::Internal(format!(
                "{v}: `{}` cannot be computed four elements at a time",
                op.name()
            )));
        }
    })
}
