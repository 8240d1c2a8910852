//! Fusion decisions about products: which products the register-tiled kernel computes
//! ([`tileable`]), which operands it computes as it loads them (prologues), which
//! elementwise work on its result runs as its epilogue, and which sums it computes
//! beside the product — a bias gradient from an operand it loads, a loss from the
//! result it stores.

use super::placement::{Placement, depends_on, kernel_values, reading_kernel};
use super::target::{SPLIT_REDUCTION, Target};
use crate::ir::{DType, Graph, Op, OpClass, Value};

/// The shape of a product the tiled kernel computes (also what a tuning file keys a
/// tile by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tiling {
    /// A is stored `[K, M]` rather than `[M, K]`.
    pub a_transposed: bool,
    /// B is stored `[N, K]` rather than `[K, N]`.
    pub b_transposed: bool,
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// The contracted extent.
    pub k: usize,
    /// Products in the batch.
    pub batch: usize,
}

impl std::fmt::Display for Tiling {
    /// The product as `batch×[M×K]·[K×N]`, with the transposed operands named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}×[{}×{}]·[{}×{}]{}{}",
            self.batch,
            self.m,
            self.k,
            self.k,
            self.n,
            if self.a_transposed {
                ", A transposed"
            } else {
                ""
            },
            if self.b_transposed {
                ", B transposed"
            } else {
                ""
            },
        )
    }
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
    let tiling = Tiling {
        a_transposed,
        b_transposed,
        m,
        n,
        k,
        batch,
    };
    let [tm, tn] = target.product_tile(&tiling).0.map(|t| t.max(1) as usize);
    let [wx, wy] = target.matmul_workgroup(&tiling).map(|w| w as usize);
    let max = target.max_compute_workgroups_per_dimension as usize;
    let fits = n.div_ceil(wx * tn) <= max && m.div_ceil(wy * tm) <= max && batch <= max;
    (m * n * batch > 0 && k > 0 && fits).then_some(tiling)
}

/// Whether a product may compute its operand `v` as it loads it (a prologue), instead
/// of reading it from a buffer: one elementwise op on program inputs and constants,
/// such as the `x1 + x2` of a weight shared by two inputs.
pub fn prologue_operand(g: &Graph, v: Value) -> bool {
    let node = g.node(v);
    // A comparison is elementwise too, but its result is never `f32`.
    node.op.class() == OpClass::Elementwise
        && g.ty(v).dtype == DType::F32
        && node
            .args
            .iter()
            .all(|a| matches!(g.node(*a).op, Op::Input { .. } | Op::Constant { .. }))
}

/// Whether a product kernel can compute its operand `v` four elements at a time: one op that WGSL
/// applies to vectors (`+ - * /`, `neg`, `exp`, `log`) on `f32` program inputs and
/// finite splat constants.
pub fn vec4_prologue_applies(g: &Graph, v: Value) -> bool {
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

/// A product read only by elementwise work of its own shape runs that work as the
/// tiled matmul kernel's epilogue: the product itself is then not stored. This fuses a
/// layer's bias and activation (and, in a backward pass, the activation's mask) into
/// the product that feeds them.
pub fn fuse_epilogues(
    g: &Graph,
    place: &mut [Placement],
    users: &[Vec<usize>],
    split: &[bool],
    target: &Target,
) {
    for d in 0..g.len() {
        if place[d] != Placement::Root
            || !matches!(g.nodes[d].op, Op::Dot(_))
            || g.outputs.iter().any(|(_, v)| v.index() == d)
            || split.get(d).copied().unwrap_or(false)
        {
            continue;
        }
        // Every reader of the product must sit in one kernel, rooted at `root`.
        let Some(root) = reading_kernel(place, &users[d]) else {
            continue;
        };
        let shape = &g.ty(Value(d as u32)).shape;
        let stored = |v: Value| {
            matches!(place[v.index()], Placement::Input | Placement::Root) || prologue_operand(g, v)
        };
        let fits = shape.len() == 2
            && g.ty(Value(root as u32)).shape == *shape
            && g.ty(Value(root as u32)).dtype == DType::F32
            && depends_elementwise(g, place, Value(root as u32), Value(d as u32))
            && !(0..g.len()).any(|i| {
                place[i] == Placement::Fused(Value(root as u32))
                    && matches!(g.nodes[i].op, Op::Dot(_))
            })
            && tileable(g, Value(d as u32), target, stored).is_some();
        if fits {
            for p in place.iter_mut() {
                if *p == Placement::Fused(Value(d as u32)) {
                    *p = Placement::Fused(Value(root as u32));
                }
            }
            place[d] = Placement::Fused(Value(root as u32));
        }
    }
}

/// Whether every value of `root`'s kernel that depends on `dot` (and `root` itself) is
/// elementwise, so each reads the product at its own coordinates.
pub fn depends_elementwise(g: &Graph, place: &[Placement], root: Value, dot: Value) -> bool {
    let mut depends = vec![false; root.index() + 1];
    depends[dot.index()] = true;
    for i in dot.index() + 1..=root.index() {
        let in_kernel = i == root.index() || place[i] == Placement::Fused(root);
        if !in_kernel {
            continue;
        }
        if g.nodes[i]
            .args
            .iter()
            .any(|a| a.index() <= root.index() && depends[a.index()])
        {
            depends[i] = true;
            let elementwise = matches!(
                g.nodes[i].op.class(),
                OpClass::Elementwise | OpClass::Identity
            );
            if !elementwise || g.ty(Value(i as u32)).shape != g.ty(dot).shape {
                return false;
            }
        }
    }
    depends[root.index()]
}

/// A sum of a product's operand over the axis the product contracts — `reduce_sum(B,
/// axes=[k])`, as in the bias gradient `Σ_rows dy` beside the weight gradient `xᵀ·dy`,
/// or the same of `A`, as beside `dyᵀ·x` for a weight stored `[out, in]` — is computed
/// by the tiled product kernel from the operand values it loads anyway (the
/// invocations of the first tile row, or column, store it): one kernel instead of two,
/// and the operand read once.
pub fn fuse_column_sums(g: &Graph, place: &mut [Placement], target: &Target) {
    let n = g.len();
    let own = kernel_values(place);
    let mut taken = vec![false; n];
    // The products reading each value as an operand, and which.
    let mut products_of: std::collections::HashMap<Value, Vec<(usize, usize)>> = Default::default();
    for (d, node) in g.nodes.iter().enumerate() {
        if let Op::Dot(_) = node.op {
            for (k, &a) in node.args.iter().enumerate() {
                products_of.entry(a).or_default().push((d, k));
            }
        }
    }
    for s in 0..n {
        let Some((b, axes)) = matrix_sum(g, place, s) else {
            continue;
        };
        if axes.len() != 1 || !matches!(place[b.index()], Placement::Input | Placement::Root) {
            continue;
        }
        // The product's kernel must compute nothing that depends on the sum.
        let candidates = products_of.get(&b).map(Vec::as_slice).unwrap_or(&[]);
        let product = candidates.iter().copied().find(|&(d, operand)| {
            let Op::Dot(dims) = &g.nodes[d].op else {
                return false;
            };
            let contract = if operand == 0 {
                &dims.lhs_contract
            } else {
                &dims.rhs_contract
            };
            let root = match place[d] {
                Placement::Root => d,
                Placement::Fused(r) if place[r.index()] == Placement::Root => r.index(),
                _ => return false,
            };
            contract == axes
                && g.nodes[d].args[0] != g.nodes[d].args[1]
                && dims.lhs_batch.is_empty()
                && !taken[root]
                && tiled(g, place, Value(d as u32), target)
                && !depends_on(g, &own[root], Value(s as u32))
        });
        if let Some((d, _)) = product {
            let root = match place[d] {
                Placement::Fused(r) => r.index(),
                _ => d,
            };
            taken[root] = true;
            place[s] = Placement::Also(Value(root as u32));
        }
    }
}

/// The sum of all of a product kernel's result — a loss `Σ tanh(x·W)` — is computed
/// by that kernel: each invocation adds up the elements it stores, and a one-invocation
/// kernel adds the invocations' sums in order. That replaces the two stages of a long
/// reduction, which would read the whole result back; a short one stays a single
/// reduction kernel.
pub fn fuse_product_sums(g: &Graph, place: &mut [Placement], target: &Target) {
    let own = kernel_values(place);
    let mut taken = vec![false; g.len()];
    for s in 0..g.len() {
        let Some((o, axes)) = matrix_sum(g, place, s) else {
            continue;
        };
        if place[o.index()] != Placement::Root
            || axes[..] != [0, 1]
            || g.ty(o).numel() < SPLIT_REDUCTION
            || taken[o.index()]
        {
            continue;
        }
        // `o` must be a product kernel's root, computing nothing beside it yet.
        let values = &own[o.index()];
        let dot = values.iter().find(|v| matches!(g.node(**v).op, Op::Dot(_)));
        let alone = !values
            .iter()
            .any(|v| matches!(place[v.index()], Placement::Also(_)));
        let fits = dot.is_some_and(|&d| {
            let Op::Dot(dims) = &g.node(d).op else {
                return false;
            };
            dims.lhs_batch.is_empty()
                && g.ty(d).shape == g.ty(o).shape
                && tiled(g, place, d, target)
        });
        if alone && fits {
            taken[o.index()] = true;
            place[s] = Placement::Also(o);
        }
    }
}

/// The operand and axes of `s` when it is a kernel root summing an `f32` matrix.
fn matrix_sum<'g>(g: &'g Graph, place: &[Placement], s: usize) -> Option<(Value, &'g [usize])> {
    let node = &g.nodes[s];
    let Op::Reduce {
        kind: crate::ir::ReduceKind::Sum,
        axes,
    } = &node.op
    else {
        return None;
    };
    let x = node.args[0];
    (place[s] == Placement::Root && g.ty(x).rank() == 2 && g.ty(x).dtype == DType::F32)
        .then_some((x, axes.as_slice()))
}

/// Whether the tiled kernel computes product `d`, its operands stored or computed as
/// they are loaded.
fn tiled(g: &Graph, place: &[Placement], d: Value, target: &Target) -> bool {
    tileable(g, d, target, |v| {
        matches!(place[v.index()], Placement::Input | Placement::Root) || prologue_operand(g, v)
    })
    .is_some()
}
