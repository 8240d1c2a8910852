//! Constant folding: an op whose operands are all splat constants, and whose result is
//! therefore a splat too, becomes a `constant`.
//!
//! Elementwise ops (unary, binary, comparisons, `select`, `cast`) are evaluated by the
//! reference interpreter itself on one-element operands, so a folded value is exactly
//! what evaluating the program would compute: floats in f64, integers wrapping as in
//! WGSL, `a / 0 == a`. Re-indexing a splat (`broadcast`, `reshape`, `transpose`,
//! `slice`, `stop_gradient`, `pad` with the splat's own value, `concat` of equal
//! splats) gives the same splat at the new shape, and a reduction of a splat is
//! computed in the interpreter's order. Ops whose result need not be a splat (`iota`,
//! `dot`, `gather`, ...) are left alone. This pass turns `grad`'s seed,
//! `broadcast(constant 1.0)`, into a plain constant that `simplify` then removes
//! (`1 * x == x`). A folded node keeps its type exactly; operands it no longer reads are
//! left for `dce`.
//!
//! An op whose operands are all constants, some of them dense literals, is evaluated by
//! the interpreter into a literal of at most 4,096 elements (a splat when its elements
//! are equal): `Σ lgamma(constant [...])`, a prior's normalizing constant, costs no
//! kernel.

use super::rewrite::{Rewrite, rewrite_live, splat};
use crate::ir::{Builder, Graph, NodeType, Op, ReduceKind, Scalar, Value, eval_graph};

/// The most additions a folded float `reduce_sum` may replay one by one.
const MAX_REPLAYED_SUM: usize = 1 << 20;

/// Folds every live op of splat constants, in loop bodies too. Returns whether any was.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    changed | rewrite_live(graph, fold)
}

fn fold(g: &Graph, v: Value) -> Option<Rewrite> {
    let node = g.node(v);
    let NodeType::Tensor(ty) = &node.ty else {
        return None;
    };
    if node.args.is_empty() {
        return None;
    }
    let Some(c) = node
        .args
        .iter()
        .map(|&a| splat(g, a))
        .collect::<Option<Vec<Scalar>>>()
    else {
        return fold_dense(g, v);
    };
    let value = match &node.op {
        // f(splat a, splat b) == splat f(a, b)
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. } => {
            eval_scalar(&node.op, &c)?
        }
        // reindex(splat c) == splat c
        Op::Broadcast { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::StopGradient => c[0],
        // pad(splat c) with c == splat c
        Op::Pad { value, .. } if *value == c[0] => c[0],
        // concat(splat c, splat c) == splat c
        Op::Concat { .. } if c.iter().all(|&x| x == c[0]) => c[0],
        // reduce_max(splat c) == splat c, and likewise reduce_min
        Op::Reduce {
            kind: ReduceKind::Max | ReduceKind::Min,
            ..
        } => c[0],
        // reduce_sum(splat c) over n elements == splat (0 + c + .. + c)
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes,
        } => {
            let shape = &g.ty(node.args[0]).shape;
            let n = axes.iter().map(|&a| shape[a]).product();
            repeated_sum(c[0], n)?
        }
        _ => return None,
    };
    Some(Rewrite::Replace(
        Op::Constant {
            value,
            shape: ty.shape.clone(),
        },
        vec![],
    ))
}

/// The most elements a folded dense literal may have (what a kernel embeds).
const MAX_FOLDED: usize = 4096;

/// An op whose operands are all constants, some of them dense literals (a table of
/// `lgamma` arguments, say), evaluated by the interpreter into a literal (or a splat,
/// when every element is equal) of at most [`MAX_FOLDED`] elements.
fn fold_dense(g: &Graph, v: Value) -> Option<Rewrite> {
    let node = g.node(v);
    let NodeType::Tensor(ty) = &node.ty else {
        return None;
    };
    if node.op.class() == crate::ir::OpClass::Loop || ty.numel() > MAX_FOLDED {
        return None;
    }
    let mut b = Builder::new();
    let mut args = Vec::with_capacity(node.args.len());
    for &a in &node.args {
        let op = &g.node(a).op;
        if !matches!(op, Op::Constant { .. } | Op::Literal { .. }) {
            return None;
        }
        args.push(b.push(op.clone(), &[]).ok()?);
    }
    let folded = b.push(node.op.clone(), &args).ok()?;
    b.output("folded", folded).ok()?;
    let out = eval_graph(&b.finish().ok()?, &[]).ok()?;
    let t = out.first()?;
    let values: Vec<Scalar> = t.data.iter().map(|&x| Scalar::of(t.ty.dtype, x)).collect();
    let op = match values.first() {
        Some(&first) if values.iter().all(|&x| x == first) => Op::Constant {
            value: first,
            shape: ty.shape.clone(),
        },
        _ => Op::Literal {
            dtype: ty.dtype,
            values,
            shape: ty.shape.clone(),
        },
    };
    Some(Rewrite::Replace(op, vec![]))
}

/// `op` applied to one-element operands of values `args`, by the reference interpreter.
fn eval_scalar(op: &Op, args: &[Scalar]) -> Option<Scalar> {
    let mut b = Builder::new();
    let args = args
        .iter()
        .map(|&s| b.constant(s, &[]))
        .collect::<crate::Result<Vec<Value>>>()
        .ok()?;
    let v = b.push(op.clone(), &args).ok()?;
    b.output("folded", v).ok()?;
    let out = eval_graph(&b.finish().ok()?, &[]).ok()?;
    let t = out.first()?;
    Some(Scalar::of(t.ty.dtype, *t.data.first()?))
}

/// The interpreter's sum of `n` copies of `c`: integers wrap; floats add one at a time
/// from `0.0`. `None` for a float sum too long to replay whose result is not exact.
fn repeated_sum(c: Scalar, n: usize) -> Option<Scalar> {
    match c {
        // A product wrapped to 32 bits equals the wrapped sum: both are exact mod 2^32.
        Scalar::Int(x) => Some(Scalar::Int(x.wrapping_mul(n as i32))),
        Scalar::Uint(x) => Some(Scalar::Uint(x.wrapping_mul(n as u32))),
        Scalar::Float(bits) => float_sum(f64::from_bits(bits), n).map(Scalar::float),
        Scalar::Bool(_) => None,
    }
}

fn float_sum(c: f64, n: usize) -> Option<f64> {
    if n == 0 || !c.is_finite() {
        // `0 + inf + inf == inf`, and NaN stays NaN.
        return Some(if n == 0 { 0.0 } else { c });
    }
    // With c = m·2^e (m odd), every partial sum k·c is exact while k·|m| < 2^53, so the
    // one-at-a-time sum is the exact product. `0.0 +` makes a sum of -0.0 give +0.0.
    let bits = c.to_bits();
    let exponent = (bits >> 52) & 0x7ff;
    let fraction = bits & ((1 << 52) - 1);
    let significand = if exponent == 0 {
        fraction
    } else {
        fraction | 1 << 52
    };
    let odd = significand >> significand.trailing_zeros().min(63);
    let product = n as f64 * c;
    if (odd as u128) * (n as u128) < 1 << 53 && product.is_finite() {
        return Some(0.0 + product);
    }
    (n <= MAX_REPLAYED_SUM).then(|| (0..n).fold(0.0, |acc, _| acc + c))
}
