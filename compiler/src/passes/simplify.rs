//! Algebraic simplification: targeted rewrite rules, each one way and never worse on the
//! right, each under the identity it applies.
//!
//! A rule replaces a node by one of its (transitive) operands or by one node of the same
//! type; it never adds nodes. Every rule is exact on every value the interpreter can
//! hold, with one documented exception: `x + 0 == x` keeps the sign of a zero `x`
//! (`-0.0 + 0.0` is `+0.0`), the usual compiler convention that treats the two zeros as
//! equal. Rules that are not exact are deliberately absent: `x * 0 == 0` (NaN or an
//! infinite `x` gives NaN) and `x - x == 0` (likewise). There is no general
//! commutativity or associativity. `stop_gradient` is kept, even after differentiation:
//! it means something to a later derivative and costs nothing in a kernel. Splat
//! constants reach these rules already folded by `fold` (`broadcast(constant 1.0)` is
//! `constant 1.0`).

use super::rewrite::{Rewrite, is_splat_of, rewrite_live, splat};
use crate::ir::{BinaryOp, DotDims, Graph, Op, Scalar, UnaryOp, Value};

/// Applies the rules to every live node, in loop bodies too. Returns whether any fired.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    let uses = uses(graph);
    changed | rewrite_live(graph, |g, v| simplify(g, v, &uses))
}

/// How many nodes and outputs read each value, counted before the pass.
fn uses(graph: &Graph) -> Vec<usize> {
    let mut uses = vec![0; graph.len()];
    for node in &graph.nodes {
        for a in &node.args {
            uses[a.index()] += 1;
        }
    }
    for (_, v) in &graph.outputs {
        uses[v.index()] += 1;
    }
    uses
}

fn simplify(g: &Graph, v: Value, uses: &[usize]) -> Option<Rewrite> {
    let node = g.node(v);
    let arg = |k: usize| node.args[k];
    let operand = |x: Value| g.node(x);
    // Whether `x` has this node's type: for the re-indexing ops, that they do nothing.
    let same_type = |x: Value| g.node(x).ty == node.ty;
    let alias = |x: Value| Some(Rewrite::Alias(x));
    match &node.op {
        Op::Binary(BinaryOp::Mul) => {
            // x * 1 == x
            if is_splat_of(g, arg(1), 1.0) {
                return alias(arg(0));
            }
            // 1 * x == x
            if is_splat_of(g, arg(0), 1.0) {
                return alias(arg(1));
            }
            // x * -1 == neg(x)
            if is_splat_of(g, arg(1), -1.0) {
                return Some(Rewrite::Replace(Op::Unary(UnaryOp::Neg), vec![arg(0)]));
            }
            // -1 * x == neg(x)
            if is_splat_of(g, arg(0), -1.0) {
                return Some(Rewrite::Replace(Op::Unary(UnaryOp::Neg), vec![arg(1)]));
            }
        }
        Op::Binary(BinaryOp::Add) => {
            // x + 0 == x
            if is_splat_of(g, arg(1), 0.0) {
                return alias(arg(0));
            }
            // 0 + x == x
            if is_splat_of(g, arg(0), 0.0) {
                return alias(arg(1));
            }
        }
        Op::Binary(BinaryOp::Sub) => {
            // x - 0 == x
            if is_splat_of(g, arg(1), 0.0) {
                return alias(arg(0));
            }
        }
        Op::Binary(BinaryOp::Div) => {
            // x / 1 == x
            if is_splat_of(g, arg(1), 1.0) {
                return alias(arg(0));
            }
        }
        Op::Unary(UnaryOp::Neg) => {
            // neg(neg(x)) == x
            if let Op::Unary(UnaryOp::Neg) = operand(arg(0)).op {
                return alias(operand(arg(0)).args[0]);
            }
        }
        Op::StopGradient => {
            // stop_gradient(stop_gradient(x)) == stop_gradient(x)
            if let Op::StopGradient = operand(arg(0)).op {
                return alias(arg(0));
            }
        }
        Op::Cast { .. } => {
            // cast(x) to x's own dtype == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
        }
        Op::Select => {
            // select(c, x, x) == x
            if arg(1) == arg(2) {
                return alias(arg(1));
            }
            // select(true, x, y) == x
            if splat(g, arg(0)) == Some(Scalar::Bool(true)) {
                return alias(arg(1));
            }
            // select(false, x, y) == y
            if splat(g, arg(0)) == Some(Scalar::Bool(false)) {
                return alias(arg(2));
            }
        }
        Op::Broadcast { shape, dims } => {
            // broadcast(x) to x's own shape == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
            // broadcast(broadcast(x, d1), d2) == broadcast(x, d2∘d1)
            if let Op::Broadcast { dims: inner, .. } = &operand(arg(0)).op {
                let dims = inner.iter().map(|&d| dims[d]).collect();
                let shape = shape.clone();
                let x = operand(arg(0)).args[0];
                return Some(Rewrite::Replace(Op::Broadcast { shape, dims }, vec![x]));
            }
        }
        Op::Reshape { shape } => {
            // reshape(x) to x's own shape == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
            // reshape(reshape(x)) == reshape(x)
            if let Op::Reshape { .. } = operand(arg(0)).op {
                let x = operand(arg(0)).args[0];
                let shape = shape.clone();
                return Some(Rewrite::Replace(Op::Reshape { shape }, vec![x]));
            }
        }
        Op::Transpose { perm } => {
            // transpose(x, identity) == x
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return alias(arg(0));
            }
            // transpose(transpose(x, p), q) == transpose(x, p∘q)
            if let Op::Transpose { perm: inner } = &operand(arg(0)).op {
                let perm = perm.iter().map(|&q| inner[q]).collect();
                let x = operand(arg(0)).args[0];
                return Some(Rewrite::Replace(Op::Transpose { perm }, vec![x]));
            }
            // transpose(dot(a, b)) == dot(b, a), for a matrix product read only here
            // (the same products summed in the same order, with no transpose kernel)
            if let Op::Dot(d) = &operand(arg(0)).op
                && perm[..] == [1, 0]
                && d.lhs_batch.is_empty()
                && uses.get(arg(0).index()) == Some(&1)
            {
                let dims = DotDims {
                    lhs_batch: vec![],
                    rhs_batch: vec![],
                    lhs_contract: d.rhs_contract.clone(),
                    rhs_contract: d.lhs_contract.clone(),
                };
                let (a, b) = (operand(arg(0)).args[0], operand(arg(0)).args[1]);
                return Some(Rewrite::Replace(Op::Dot(dims), vec![b, a]));
            }
        }
        Op::Slice { start, limit } => {
            // slice(x) of all of x == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
            // A slice of a concatenation inside one of its pieces is a slice of that
            // piece (the piece itself when it is all of it).
            if let Op::Concat { axis } = operand(arg(0)).op {
                let mut offset = 0;
                for &piece in &operand(arg(0)).args {
                    let extent = g.ty(piece).shape[axis];
                    if start[axis] >= offset && limit[axis] <= offset + extent {
                        let mut start = start.clone();
                        let mut limit = limit.clone();
                        start[axis] -= offset;
                        limit[axis] -= offset;
                        if g.ty(piece) == g.ty(v) {
                            return alias(piece);
                        }
                        return Some(Rewrite::Replace(Op::Slice { start, limit }, vec![piece]));
                    }
                    offset += extent;
                }
            }
        }
        Op::Pad { .. } => {
            // pad(x) by nothing == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
        }
        Op::Reduce { .. } => {
            // reduce(x) over no axes == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
        }
        Op::Concat { .. } => {
            // concat(x, empty..) == x
            if same_type(arg(0)) {
                return alias(arg(0));
            }
        }
        Op::DynamicSlice { sizes } => {
            // dynamic_slice(x) of all of x == x (every start clamps to 0)
            if same_type(arg(0)) {
                return alias(arg(0));
            }
            // At constant starts, a window read from an update is the update when it is
            // the window written, and a read of what was there before when the two do
            // not overlap: unrolled loops read their stacked states directly.
            let inner = operand(arg(0));
            if inner.op == Op::DynamicUpdateSlice {
                let shape = &g.ty(arg(0)).shape;
                let written = &g.ty(inner.args[1]).shape;
                let read = constant_window(g, &node.args[1..], shape, sizes);
                let wrote = constant_window(g, &inner.args[2..], shape, written);
                if let (Some(read), Some(wrote)) = (read, wrote) {
                    if read == wrote && sizes == written {
                        return alias(inner.args[1]);
                    }
                    let disjoint = (0..shape.len()).any(|k| {
                        read[k] + sizes[k] <= wrote[k] || wrote[k] + written[k] <= read[k]
                    });
                    if disjoint {
                        let mut args = vec![inner.args[0]];
                        args.extend(&node.args[1..]);
                        return Some(Rewrite::Replace(node.op.clone(), args));
                    }
                }
            }
        }
        Op::DynamicUpdateSlice => {
            // dynamic_update_slice(x, u) with u as large as x == u (every start clamps
            // to 0)
            if g.node(arg(1)).ty == node.ty {
                return alias(arg(1));
            }
        }
        Op::Input { .. }
        | Op::Constant { .. }
        | Op::Literal { .. }
        | Op::Iota { .. }
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Dot(_)
        | Op::OneHot { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Loop { .. }
        | Op::Get { .. } => {}
    }
    None
}

/// The clamped starts of a window of extents `sizes` in `shape` when every start is a
/// constant.
fn constant_window(
    g: &Graph,
    starts: &[Value],
    shape: &[usize],
    sizes: &[usize],
) -> Option<Vec<usize>> {
    starts
        .iter()
        .zip(shape.iter().zip(sizes))
        .map(|(s, (&dim, &size))| match g.node(*s).op {
            Op::Constant { value, .. } => {
                Some(value.to_f64().clamp(0.0, dim.saturating_sub(size) as f64) as usize)
            }
            _ => None,
        })
        .collect()
}
