//! Reverse-mode rules: one entry per op, mapping the cotangent of a node's result to
//! cotangent contributions for each operand (`None` is a symbolic zero).
//!
//! Rules read primal values only where the derivative is nonlinear: `exp` reads its own
//! output, `mul` the other operand, `dot` the other operand; linear ops (add, reshape,
//! transpose, broadcast, slice, pad, concat, reduce_sum, gather, dynamic_slice,
//! dynamic_update_slice) read none (beyond integer indices). Comparisons,
//! integer ops, `sign`, `one_hot`, `iota` and `stop_gradient` contribute zero.

use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Builder, DotDims, Graph, Op, ReduceKind, Scalar, Type, Value};

/// The cotangent contributions of `v`'s operands given the cotangent `ct` of `v`.
pub fn rule(b: &mut Builder, g: &Graph, v: Value, ct: Value) -> Result<Vec<Option<Value>>> {
    let node = g.node(v);
    let x = &node.args;
    if !g.ty(v).dtype.is_float() {
        return Ok(vec![None; x.len()]);
    }
    let y = v;
    Ok(match &node.op {
        Op::Input { .. } | Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. } => vec![],
        // An elementwise function's Jacobian is diagonal, hence symmetric: its
        // transpose applied to the cotangent is the forward rule applied to it.
        Op::Unary(_) => vec![super::jvp_rules::rule(b, g, v, &[Some(ct)])?],
        Op::Binary(op) => {
            let (l, r) = (x[0], x[1]);
            match op {
                BinaryOp::Add => vec![Some(ct), Some(ct)],
                BinaryOp::Sub => vec![Some(ct), Some(b.neg(ct)?)],
                BinaryOp::Mul => vec![Some(b.mul(ct, r)?), Some(b.mul(ct, l)?)],
                // d(l/r)/dr = -y / r.
                BinaryOp::Div => {
                    let cy = b.mul(ct, y)?;
                    let q = b.div(cy, r)?;
                    vec![Some(b.div(ct, r)?), Some(b.neg(q)?)]
                }
                BinaryOp::Max | BinaryOp::Min => {
                    let w = tie_weight(b, *op, l, r)?;
                    let cl = b.mul(ct, w)?;
                    vec![Some(cl), Some(b.sub(ct, cl)?)]
                }
                // d(l^r)/dl = r·l^(r-1); d(l^r)/dr = y·log l.
                BinaryOp::Pow => {
                    let one = b.full_like(1.0, r)?;
                    let rm1 = b.sub(r, one)?;
                    let p = b.pow(l, rm1)?;
                    let p = b.mul(p, r)?;
                    let ll = b.log(l)?;
                    let q = b.mul(y, ll)?;
                    vec![Some(b.mul(ct, p)?), Some(b.mul(ct, q)?)]
                }
            }
        }
        Op::Compare(_) => vec![None, None],
        Op::Select => {
            let zero = b.full_like(0.0, ct)?;
            // relu: for y = select(x > 0, x, 0), (x > 0) == (y > 0), so the mask is
            // derived from the output, which the backward pass keeps anyway.
            let cond = if is_relu(g, v) { b.gt(y, zero)? } else { x[0] };
            vec![
                None,
                Some(b.select(cond, ct, zero)?),
                Some(b.select(cond, zero, ct)?),
            ]
        }
        Op::Cast { .. } => vec![g.ty(x[0]).dtype.is_float().then_some(ct)],
        Op::StopGradient | Op::OneHot { .. } => vec![None],
        Op::Broadcast { dims, .. } => vec![Some(unbroadcast(b, ct, g.ty(x[0]), dims)?)],
        Op::Reshape { .. } => vec![Some(b.reshape(ct, &g.ty(x[0]).shape)?)],
        Op::Transpose { perm } => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            vec![Some(b.transpose(ct, &inv)?)]
        }
        Op::Slice { start, limit } => {
            let shape = &g.ty(x[0]).shape;
            let high: Vec<usize> = limit.iter().zip(shape).map(|(l, d)| d - l).collect();
            vec![Some(b.pad(ct, start, &high, Scalar::float(0.0))?)]
        }
        Op::Pad { low, .. } => {
            let shape = &g.ty(x[0]).shape;
            let limit: Vec<usize> = low.iter().zip(shape).map(|(l, d)| l + d).collect();
            vec![Some(b.slice(ct, low, &limit)?)]
        }
        Op::Concat { axis } => {
            let mut start = vec![0; g.ty(v).rank()];
            let mut out = Vec::with_capacity(x.len());
            for &a in x {
                let mut limit = g.ty(v).shape.clone();
                limit[*axis] = start[*axis] + g.ty(a).shape[*axis];
                out.push(Some(b.slice(ct, &start, &limit)?));
                start[*axis] = limit[*axis];
            }
            out
        }
        Op::Reduce { kind, axes } => {
            let shape = g.ty(x[0]).shape.clone();
            let kept: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
            match kind {
                ReduceKind::Sum => vec![Some(b.broadcast_in_dim(ct, &shape, &kept)?)],
                // The cotangent is shared evenly among the elements equal to the extremum.
                ReduceKind::Max | ReduceKind::Min => {
                    let yb = b.broadcast_in_dim(y, &shape, &kept)?;
                    let hit = b.eq(x[0], yb)?;
                    let mask = b.cast(hit, g.ty(v).dtype)?;
                    let count = b.sum(mask, axes)?;
                    let share = b.div(ct, count)?;
                    let share = b.broadcast_in_dim(share, &shape, &kept)?;
                    vec![Some(b.mul(share, mask)?)]
                }
            }
        }
        Op::Dot(dims) => {
            let (dl, dr) = dot_transpose(b, g, x[0], x[1], dims, ct)?;
            vec![Some(dl), Some(dr)]
        }
        Op::Gather { axis } => {
            let size = g.ty(x[0]).shape[*axis];
            vec![Some(b.scatter_add(ct, x[1], *axis, size)?), None]
        }
        Op::ScatterAdd { axis, .. } => vec![Some(b.gather(ct, x[1], *axis)?), None],
        // The cotangent of a window is an update of zeros at the same starts; the starts
        // are integers and get none.
        Op::DynamicSlice { .. } => {
            let zero = b.full(0.0, g.ty(x[0]))?;
            let mut out = vec![Some(b.dynamic_update_slice(zero, ct, &x[1..])?)];
            out.resize(x.len(), None);
            out
        }
        // The update gets the window of the cotangent; the operand the cotangent with the
        // window zeroed (those elements were overwritten).
        Op::DynamicUpdateSlice => {
            let u = g.ty(x[1]);
            let zero = b.full(0.0, u)?;
            let mut out = vec![
                Some(b.dynamic_update_slice(ct, zero, &x[2..])?),
                Some(b.dynamic_slice(ct, &x[2..], &u.shape)?),
            ];
            out.resize(x.len(), None);
            out
        }
        Op::Loop { .. } | Op::Get { .. } => {
            return Err(Error::Diff(format!("no reverse rule for the loop at {v}")));
        }
    })
}

/// Whether `v` is `select(x > 0, x, 0)`.
fn is_relu(g: &Graph, v: Value) -> bool {
    let zero =
        |u: Value| matches!(g.node(u).op, Op::Constant { value, .. } if value.to_f64() == 0.0);
    let x = &g.node(v).args;
    let c = g.node(x[0]);
    c.op == Op::Compare(crate::ir::CmpOp::Gt) && c.args[0] == x[1] && zero(c.args[1]) && zero(x[2])
}

/// `x * c` for a literal `c`.
pub fn scaled(b: &mut Builder, x: Value, c: f64) -> Result<Value> {
    let k = b.full_like(c, x)?;
    b.mul(x, k)
}

/// The share of the cotangent that goes to the left operand of `max`/`min`: 1 where it
/// wins, ½ on ties, 0 where it loses.
pub fn tie_weight(b: &mut Builder, op: BinaryOp, l: Value, r: Value) -> Result<Value> {
    let wins = if op == BinaryOp::Max {
        b.gt(l, r)?
    } else {
        b.lt(l, r)?
    };
    let tie = b.eq(l, r)?;
    let one = b.full_like(1.0, l)?;
    let half = b.full_like(0.5, l)?;
    let zero = b.full_like(0.0, l)?;
    let t = b.select(tie, half, zero)?;
    b.select(wins, one, t)
}

/// Reduces a cotangent of a broadcast's result back to the operand's type: sums over
/// the new axes and over the operand's extent-1 axes that were expanded.
pub fn unbroadcast(b: &mut Builder, ct: Value, operand: &Type, dims: &[usize]) -> Result<Value> {
    let out_shape = b.shape(ct);
    let axes: Vec<usize> = (0..out_shape.len())
        .filter(|&a| match dims.iter().position(|&d| d == a) {
            None => true,
            Some(i) => operand.shape[i] != out_shape[a],
        })
        .collect();
    let summed = if axes.is_empty() {
        ct
    } else {
        b.sum(ct, &axes)?
    };
    b.reshape(summed, &operand.shape)
}

/// The cotangents of both operands of a [`Op::Dot`], each a dot of the cotangent with
/// the other operand followed by a transpose back to the operand's axis order.
fn dot_transpose(
    b: &mut Builder,
    g: &Graph,
    l: Value,
    r: Value,
    d: &DotDims,
    ct: Value,
) -> Result<(Value, Value)> {
    let (lr, rr) = (g.ty(l).rank(), g.ty(r).rank());
    let nb = d.lhs_batch.len();
    let lf = DotDims::free_axes(lr, &d.lhs_batch, &d.lhs_contract);
    let rf = DotDims::free_axes(rr, &d.rhs_batch, &d.rhs_contract);
    let batch: Vec<usize> = (0..nb).collect();
    let ct_lf: Vec<usize> = (nb..nb + lf.len()).collect();
    let ct_rf: Vec<usize> = (nb + lf.len()..nb + lf.len() + rf.len()).collect();

    // dl = ct · r over r's free axes: result [batch, l-free, r-contract (sorted)].
    let dl = b.dot(
        ct,
        r,
        DotDims {
            lhs_batch: batch.clone(),
            rhs_batch: d.rhs_batch.clone(),
            lhs_contract: ct_rf,
            rhs_contract: rf.clone(),
        },
    )?;
    let mut rc_sorted = d.rhs_contract.clone();
    rc_sorted.sort_unstable();
    let mut pos_l = vec![0; lr];
    for (i, &a) in d.lhs_batch.iter().enumerate() {
        pos_l[a] = i;
    }
    for (j, &a) in lf.iter().enumerate() {
        pos_l[a] = nb + j;
    }
    for (k, &a) in d.lhs_contract.iter().enumerate() {
        let rank = rc_sorted
            .iter()
            .position(|&x| x == d.rhs_contract[k])
            .unwrap_or(0);
        pos_l[a] = nb + lf.len() + rank;
    }
    let dl = permute(b, dl, &pos_l)?;

    // dr = l · ct over l's free axes: result [batch, l-contract (sorted), r-free].
    let dr = b.dot(
        l,
        ct,
        DotDims {
            lhs_batch: d.lhs_batch.clone(),
            rhs_batch: batch,
            lhs_contract: lf,
            rhs_contract: ct_lf,
        },
    )?;
    let mut lc_sorted = d.lhs_contract.clone();
    lc_sorted.sort_unstable();
    let mut pos_r = vec![0; rr];
    for (i, &a) in d.rhs_batch.iter().enumerate() {
        pos_r[a] = i;
    }
    for (k, &a) in d.rhs_contract.iter().enumerate() {
        let rank = lc_sorted
            .iter()
            .position(|&x| x == d.lhs_contract[k])
            .unwrap_or(0);
        pos_r[a] = nb + rank;
    }
    for (j, &a) in rf.iter().enumerate() {
        pos_r[a] = nb + d.lhs_contract.len() + j;
    }
    let dr = permute(b, dr, &pos_r)?;
    Ok((dl, dr))
}

/// Transposes by `perm` unless it is the identity.
fn permute(b: &mut Builder, x: Value, perm: &[usize]) -> Result<Value> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        Ok(x)
    } else {
        b.transpose(x, perm)
    }
}
