//! Linearity factoring: a sum of two products becomes one product.
//!
//! A product is linear in each operand, so two products that share an operand and are
//! only summed factor: `dot(a, w) + dot(b, w) == dot(a + b, w)`, one product instead of
//! two and an add (workload W3a, `x1·W + x2·W`, before differentiation; its gradient then
//! needs one product too, `(x1 + x2)ᵀ·g`, and the cotangent `g` once). Two products that
//! share nothing but a single contracted axis are one product over the concatenated
//! axis: `dot(a, c) + dot(b, d) == dot(concat(a, b), concat(c, d))` (W3b's weight
//! gradient `x1ᵀ·g1 + x2ᵀ·g2`, whose cotangents differ, becomes one product over the
//! concatenated batch). The first rule is tried first: it needs no copy. Both require
//! identical dimension numbers and that each product is read by the `add` alone (a
//! product read elsewhere is computed anyway, and factoring would add work). Chains of
//! sums factor one `add` per round of `optimize`, and concatenations along one axis are
//! flattened as they are built, so `k` uses give one product over `k` pieces. The rules
//! are exact in real arithmetic; in floating point they sum in another order.
//!
//! Replacing one node by several cannot be done in place (operands precede users), so a
//! graph with a match is rebuilt through the [`Builder`], every node re-inferred and
//! keeping its [`Side`](crate::ir::Side) (new nodes take the `add`'s); the replaced
//! products are left for `dce`.

use super::rewrite::{live, rebuild};
use crate::error::Result;
use crate::ir::{BinaryOp, Builder, DotDims, Graph, Op, Value};
use std::collections::HashSet;

/// Factors every live sum of two products, in loop bodies too. Returns whether any was.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    let live = live(graph);
    let mut uses = vec![0usize; graph.len()];
    for v in graph.values().filter(|v| live[v.index()]) {
        for a in &graph.node(v).args {
            uses[a.index()] += 1;
        }
    }
    for (_, v) in &graph.outputs {
        uses[v.index()] += 1;
    }
    // Sums of two values, live or about to be built, so that a new sum reuses the
    // operand order of an existing one and the two meet in `cse`.
    let mut sums: HashSet<(Value, Value)> = graph
        .values()
        .filter(|v| live[v.index()] && graph.node(*v).op == Op::Binary(BinaryOp::Add))
        .map(|v| (graph.node(v).args[0], graph.node(v).args[1]))
        .collect();
    let matches: Vec<Option<Match>> = graph
        .values()
        .map(|v| {
            let m = live[v.index()].then(|| find(graph, &uses, v)).flatten()?;
            Some(match m {
                Match::SharedRhs(a, b, w, dims) => {
                    let (a, b) = ordered(&mut sums, a, b);
                    Match::SharedRhs(a, b, w, dims)
                }
                Match::SharedLhs(a, b, w, dims) => {
                    let (a, b) = ordered(&mut sums, a, b);
                    Match::SharedLhs(a, b, w, dims)
                }
                m @ Match::Concat(..) => m,
            })
        })
        .collect();
    if matches.iter().all(Option::is_none) {
        return changed;
    }
    match rebuild(graph, |b, map, v| {
        matches[v.index()].as_ref().map(|m| emit(b, map, m))
    }) {
        Some(g) => {
            *graph = g;
            true
        }
        None => changed,
    }
}

/// What a sum of two products becomes.
enum Match {
    /// `dot(a + b, w)` with these dimension numbers.
    SharedRhs(Value, Value, Value, DotDims),
    /// `dot(w, a + b)` with these dimension numbers.
    SharedLhs(Value, Value, Value, DotDims),
    /// `dot(concat(a, b), concat(c, d))`, joined along the contracted axes.
    Concat([Value; 4], DotDims),
}

fn find(g: &Graph, uses: &[usize], v: Value) -> Option<Match> {
    let node = g.node(v);
    if node.op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (p, q) = (node.args[0], node.args[1]);
    let dot = |x: Value| match &g.node(x).op {
        Op::Dot(dims) if uses[x.index()] == 1 => Some(dims),
        _ => None,
    };
    let (dims, other) = (dot(p)?, dot(q)?);
    if p == q || dims != other {
        return None;
    }
    let [a, c] = [g.node(p).args[0], g.node(p).args[1]];
    let [b, d] = [g.node(q).args[0], g.node(q).args[1]];
    let dims = dims.clone();
    // dot(a, w) + dot(b, w) == dot(a + b, w)
    if c == d && g.ty(a) == g.ty(b) {
        return Some(Match::SharedRhs(a, b, c, dims));
    }
    // dot(w, c) + dot(w, d) == dot(w, c + d)
    if a == b && g.ty(c) == g.ty(d) {
        return Some(Match::SharedLhs(c, d, a, dims));
    }
    // dot(a, c) + dot(b, d) == dot(concat(a, b, ka), concat(c, d, kc))
    let ([ka], [kc]) = (dims.lhs_contract.as_slice(), dims.rhs_contract.as_slice()) else {
        return None;
    };
    (joinable(g, a, b, *ka) && joinable(g, c, d, *kc)).then_some(Match::Concat([a, b, c, d], dims))
}

/// `(a, b)`, or `(b, a)` if `b + a` is already among `sums` (addition commutes exactly):
/// the reverse sweep sums cotangents in reverse order, and its `x2 + x1` should be the
/// forward sweep's `x1 + x2`. Records the sum chosen.
fn ordered(sums: &mut HashSet<(Value, Value)>, a: Value, b: Value) -> (Value, Value) {
    let pair = if sums.contains(&(b, a)) {
        (b, a)
    } else {
        (a, b)
    };
    sums.insert(pair);
    pair
}

/// Whether `x` and `y` have one dtype and equal extents except along `axis`.
fn joinable(g: &Graph, x: Value, y: Value, axis: usize) -> bool {
    let (x, y) = (g.ty(x), g.ty(y));
    x.dtype == y.dtype
        && x.rank() == y.rank()
        && (0..x.rank()).all(|i| i == axis || x.shape[i] == y.shape[i])
}

/// `concat(x, y)` along `axis`, with either operand that is itself a concatenation along
/// `axis` spliced in.
fn concat(b: &mut Builder, x: Value, y: Value, axis: usize) -> Result<Value> {
    let mut pieces = Vec::new();
    for v in [x, y] {
        let n = b.graph().node(v);
        // concat(concat(x, y), z) == concat(x, y, z)
        if n.op == (Op::Concat { axis }) {
            pieces.extend_from_slice(&n.args);
        } else {
            pieces.push(v);
        }
    }
    b.concat(&pieces, axis)
}

/// Emits the product a match stands for, with operands already rebuilt (`map`).
fn emit(b: &mut Builder, map: &[Value], m: &Match) -> Result<Value> {
    let op = |dims: &DotDims| Op::Dot(dims.clone());
    match m {
        Match::SharedRhs(x, y, w, dims) => {
            let s = b.add(map[x.index()], map[y.index()])?;
            b.push(op(dims), &[s, map[w.index()]])
        }
        Match::SharedLhs(x, y, w, dims) => {
            let s = b.add(map[x.index()], map[y.index()])?;
            b.push(op(dims), &[map[w.index()], s])
        }
        Match::Concat([x, y, u, v], dims) => {
            let l = concat(b, map[x.index()], map[y.index()], dims.lhs_contract[0])?;
            let r = concat(b, map[u.index()], map[v.index()], dims.rhs_contract[0])?;
            b.push(op(dims), &[l, r])
        }
    }
}
