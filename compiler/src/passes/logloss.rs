//! Softmax and log-loss fusion: a `log` of exponentials, written from primitives, becomes
//! the stable log-softmax or logsumexp with the row maximum subtracted.
//!
//! A log-loss written literally, `-Σ y · log(exp(z) / Σ_row exp(z))`, overflows once a
//! logit passes ≈ 88 in f32 (`exp` is infinite, the loss NaN) and its gradient keeps the
//! exp→log round trip: a divide by the softmax, then a multiply by it. This pass rewrites
//! the `log` node, the only non-linear step between the exponentials and the loss, into
//! `z - logsumexp(z)` where `logsumexp(z) = log Σ exp(z - m) + m` and
//! `m = stop_gradient(max_row z)`, exactly what [`Builder::logsumexp`] builds (so `cse`
//! merges it with a composite written next to it). What reads the `log` (a product with
//! one-hot or dense targets, `one_hot`, `gather` of integer labels, sums, means,
//! negations in any place) is linear in it and is left alone: the loss becomes
//! `Σ y · (z - logsumexp(z))`, finite for any finite logits, and differentiating it gives
//! `g · (softmax(z) · Σy - y)` with no log tensor and no divide by the softmax. It runs
//! before differentiation, in `optimize`, so the derivative is taken of the stable form.
//!
//! The softmax is recognized as `exp(z) / broadcast(Σ exp(z))` or as a product with the
//! reciprocal of the sum, where the broadcast puts the sum back along exactly the reduced
//! axes and both exponentials read the same `z`; a `z` that already has its row maximum
//! subtracted (as in [`Builder::softmax`]) is used without the shift, which cancels. The
//! `log` may reach the softmax, the sum or the `exp` through re-indexing (`reshape`,
//! `transpose`, `slice`, `broadcast`, `gather`), which commutes with an elementwise `log`.
//! A `log` of a sum of exponentials whose operand already has its maximum subtracted is
//! stable and left alone; that is also what makes the pass idempotent, since it is what
//! the pass emits. Like `simplify` the rules are one way and exact in real arithmetic;
//! in floating point they differ by rounding, and beyond that only where the literal form
//! overflows or underflows (where they are finite instead), for non-finite logits (a row holding `±inf` gives NaN,
//! as with [`Builder::logsumexp`]), and for a `gather` index out of range (it reads 0
//! after the `log` instead of before, so such a label contributes 0, not `-inf`).
//!
//! Replacing one node by several cannot be done in place (operands precede users), so a
//! graph with a match is rebuilt through the [`Builder`], every node re-inferred and keeping
//! its [`Side`](crate::ir::Side); replaced nodes' operands are left for `dce`.

use super::rewrite::{live, rebuild};
use crate::error::Result;
use crate::ir::{BinaryOp, Builder, Graph, Op, ReduceKind, UnaryOp, Value};

/// Rewrites every live `log` of exponentials, in loop bodies too. Returns whether any was.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    let live = live(graph);
    let matches: Vec<Option<Match>> = graph
        .values()
        .map(|v| live[v.index()].then(|| find(graph, v)).flatten())
        .collect();
    if matches.iter().all(Option::is_none) {
        return changed;
    }
    match rebuild(graph, |b, map, v| {
        matches[v.index()].as_ref().map(|m| emit(b, graph, map, m))
    }) {
        Some(g) => {
            *graph = g;
            true
        }
        None => changed,
    }
}

/// What a `log` node is the logarithm of, seen through re-indexing.
struct Match {
    /// The re-indexing nodes between the `log` and the core, outermost first.
    chain: Vec<Value>,
    core: Core,
}

/// The value under the re-indexing, and what its logarithm is.
enum Core {
    /// `exp(x)`: its log is `x`.
    Exp(Value),
    /// `Σ_axes exp(x)`: its log is `logsumexp(x)`.
    SumExp(Value, Vec<usize>),
    /// `exp(x) / broadcast(Σ_axes exp(x))`: its log is `x - broadcast(logsumexp(x))`.
    Softmax(Value, Vec<usize>),
}

fn find(g: &Graph, v: Value) -> Option<Match> {
    let node = g.node(v);
    if node.op != Op::Unary(UnaryOp::Log) {
        return None;
    }
    let mut chain = Vec::new();
    let mut c = node.args[0];
    loop {
        // log(exp(x) / Σ exp(x)) == x − logsumexp(x)
        if let Some((x, axes)) = softmax(g, c) {
            let x = shifted_from(g, x, &axes).unwrap_or(x);
            return Some(Match {
                chain,
                core: Core::Softmax(x, axes),
            });
        }
        // log(Σ exp(x)) == logsumexp(x)
        if let Some((x, axes)) = sum_of_exp(g, c) {
            if shifted_from(g, x, &axes).is_some() {
                // Already stable: the form this pass emits.
                return None;
            }
            return Some(Match {
                chain,
                core: Core::SumExp(x, axes),
            });
        }
        let n = g.node(c);
        // log(exp(x)) == x
        if n.op == Op::Unary(UnaryOp::Exp) {
            return Some(Match {
                chain,
                core: Core::Exp(n.args[0]),
            });
        }
        // log(r(y)) == r(log(y)) for a re-indexing r
        match n.op {
            Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Broadcast { .. }
            | Op::Gather { .. } => {
                chain.push(c);
                c = n.args[0];
            }
            _ => return None,
        }
    }
}

/// The axes a value reduced over `axes` keeps, which a broadcast maps it back to.
fn kept(rank: usize, axes: &[usize]) -> Vec<usize> {
    (0..rank).filter(|a| !axes.contains(a)).collect()
}

/// `Σ_axes exp(x)` over at least one axis: `(x, axes)`.
fn sum_of_exp(g: &Graph, s: Value) -> Option<(Value, Vec<usize>)> {
    let n = g.node(s);
    let Op::Reduce {
        kind: ReduceKind::Sum,
        axes,
    } = &n.op
    else {
        return None;
    };
    let e = g.node(n.args[0]);
    (!axes.is_empty() && e.op == Op::Unary(UnaryOp::Exp)).then(|| (e.args[0], axes.clone()))
}

/// The operand of `b` if `b` broadcasts a value reduced over `axes` back to `shape`,
/// along exactly the axes the reduction kept.
fn unreduced(g: &Graph, b: Value, axes: &[usize], shape: &[usize]) -> Option<Value> {
    let n = g.node(b);
    match &n.op {
        Op::Broadcast { shape: s, dims } if s == shape && *dims == kept(shape.len(), axes) => {
            Some(n.args[0])
        }
        _ => None,
    }
}

/// `broadcast(Σ_axes exp(x))` back to `shape`: `(x, axes)`.
fn broadcast_sum_of_exp(g: &Graph, b: Value, shape: &[usize]) -> Option<(Value, Vec<usize>)> {
    let Op::Broadcast { .. } = g.node(b).op else {
        return None;
    };
    let (x, axes) = sum_of_exp(g, g.node(b).args[0])?;
    unreduced(g, b, &axes, shape)?;
    Some((x, axes))
}

/// The reciprocal of a broadcast sum of exponentials, `1 / broadcast(s)` or
/// `broadcast(1 / s)`: `(x, axes)`.
fn recip_sum_of_exp(g: &Graph, r: Value, shape: &[usize]) -> Option<(Value, Vec<usize>)> {
    let n = g.node(r);
    match n.op {
        Op::Unary(UnaryOp::Recip) => broadcast_sum_of_exp(g, n.args[0], shape),
        Op::Broadcast { .. } => {
            let inner = g.node(n.args[0]);
            if inner.op != Op::Unary(UnaryOp::Recip) {
                return None;
            }
            let (x, axes) = sum_of_exp(g, inner.args[0])?;
            unreduced(g, r, &axes, shape)?;
            Some((x, axes))
        }
        _ => None,
    }
}

/// The softmax `exp(x) / broadcast(Σ_axes exp(x))`, or `exp(x)` times the reciprocal of
/// the sum (either order), with both exponentials reading the same `x`: `(x, axes)`.
fn softmax(g: &Graph, q: Value) -> Option<(Value, Vec<usize>)> {
    let n = g.node(q);
    let shape = &g.ty(q).shape;
    let exp_of = |e: Value| {
        let e = g.node(e);
        (e.op == Op::Unary(UnaryOp::Exp)).then(|| e.args[0])
    };
    let (x, (y, axes)) = match n.op {
        Op::Binary(BinaryOp::Div) => (
            exp_of(n.args[0])?,
            broadcast_sum_of_exp(g, n.args[1], shape)?,
        ),
        Op::Binary(BinaryOp::Mul) => [(n.args[0], n.args[1]), (n.args[1], n.args[0])]
            .into_iter()
            .find_map(|(e, r)| Some((exp_of(e)?, recip_sum_of_exp(g, r, shape)?)))?,
        _ => return None,
    };
    (x == y).then_some((x, axes))
}

/// `x` if `d` is `x − broadcast(m)` with `m` the maximum of `x` over `axes`, possibly under
/// `stop_gradient`: a shift that cancels in a log-softmax and makes a logsumexp stable.
fn shifted_from(g: &Graph, d: Value, axes: &[usize]) -> Option<Value> {
    let n = g.node(d);
    if n.op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let x = n.args[0];
    let mut m = unreduced(g, n.args[1], axes, &g.ty(x).shape)?;
    if g.node(m).op == Op::StopGradient {
        m = g.node(m).args[0];
    }
    let mn = g.node(m);
    let is_max = matches!(&mn.op, Op::Reduce { kind: ReduceKind::Max, axes: a } if a == axes);
    (is_max && mn.args[0] == x).then_some(x)
}

/// `log Σ_axes exp(x − m) + m` with `m = stop_gradient(max_axes x)`, node for node what
/// [`Builder::logsumexp`] builds.
fn logsumexp(b: &mut Builder, x: Value, axes: &[usize]) -> Result<Value> {
    let shape = b.shape(x);
    let m = b.reduce(ReduceKind::Max, x, axes)?;
    let m = b.stop_gradient(m)?;
    let mb = b.broadcast_in_dim(m, &shape, &kept(shape.len(), axes))?;
    let d = b.sub(x, mb)?;
    let e = b.exp(d)?;
    let s = b.sum(e, axes)?;
    let l = b.log(s)?;
    b.add(l, m)
}

/// Emits the value a match stands for, with operands already rebuilt (`map`).
fn emit(b: &mut Builder, g: &Graph, map: &[Value], m: &Match) -> Result<Value> {
    let mut v = match &m.core {
        Core::Exp(x) => map[x.index()],
        Core::SumExp(x, axes) => logsumexp(b, map[x.index()], axes)?,
        Core::Softmax(x, axes) => {
            let x = map[x.index()];
            let shape = b.shape(x);
            let lse = logsumexp(b, x, axes)?;
            let lse = b.broadcast_in_dim(lse, &shape, &kept(shape.len(), axes))?;
            b.sub(x, lse)?
        }
    };
    for &r in m.chain.iter().rev() {
        let n = g.node(r);
        let args: Vec<Value> = std::iter::once(v)
            .chain(n.args[1..].iter().map(|a| map[a.index()]))
            .collect();
        v = b.push(n.op.clone(), &args)?;
    }
    Ok(v)
}
