//! Batching rules: one entry per op, mapping a node whose operands may carry a new
//! leading batch axis to the node (or nodes) computing the batched result.
//!
//! Every rule sees each operand as `(value, batched)`. An operand that is not batched
//! holds the same value for every example; a rule either uses it as it is (the right
//! operand of a product whose left one is batched) or broadcasts it along the batch axis
//! first ([`lift`]), which lowering computes where it is read rather than storing. A
//! rule is only called when at least one operand is batched, and its result then always
//! is.
//!
//! Two rules have no closed form in the IR: a `dynamic_slice` or `dynamic_update_slice`
//! whose start indices differ per example. They run the op once per example on static
//! slices and concatenate the results, which is correct but grows the program by the
//! batch size; their operands, if batched, are sliced out by example.

use crate::error::{Error, Result};
use crate::ir::{Builder, DotDims, Node, Op, Scalar, Value};

/// The batched result of `node` (neither a loop nor a `get`) given its operands
/// in the new graph, each with whether it is batched, and the batch size.
pub fn rule(b: &mut Builder, node: &Node, args: &[(Value, bool)], size: usize) -> Result<Value> {
    let plain = |args: &[(Value, bool)]| args.iter().map(|&(v, _)| v).collect::<Vec<_>>();
    let lifted = |b: &mut Builder| -> Result<Vec<Value>> {
        args.iter().map(|&(v, bt)| lift(b, v, bt, size)).collect()
    };
    let shifted = |axes: &[usize]| axes.iter().map(|a| a + 1).collect::<Vec<_>>();
    let leading = |rest: &[usize], first: usize| {
        std::iter::once(first)
            .chain(rest.iter().copied())
            .collect::<Vec<_>>()
    };
    let x = args.first().map(|&(v, _)| v);
    let op = match &node.op {
        Op::Input { .. } | Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. } => {
            return Err(Error::Internal(format!(
                "`{}` has no operands to batch",
                node.op.name()
            )));
        }
        Op::Loop { .. } | Op::Get { .. } => {
            return Err(Error::Internal(
                "loops are batched as a whole, not by the rule table".into(),
            ));
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Select
        | Op::Cast { .. }
        | Op::StopGradient => {
            let vs = lifted(b)?;
            return b.push(node.op.clone(), &vs);
        }
        Op::Broadcast { shape, dims } => Op::Broadcast {
            shape: leading(shape, size),
            dims: leading(&shifted(dims), 0),
        },
        Op::Reshape { shape } => Op::Reshape {
            shape: leading(shape, size),
        },
        Op::Transpose { perm } => Op::Transpose {
            perm: leading(&shifted(perm), 0),
        },
        Op::Slice { start, limit } => Op::Slice {
            start: leading(start, 0),
            limit: leading(limit, size),
        },
        Op::Pad { low, high, value } => Op::Pad {
            low: leading(low, 0),
            high: leading(high, 0),
            value: *value,
        },
        Op::Reduce { kind, axes } => Op::Reduce {
            kind: *kind,
            axes: shifted(axes),
        },
        Op::OneHot { .. } => node.op.clone(),
        Op::Concat { axis } => {
            let vs = lifted(b)?;
            return b.push(Op::Concat { axis: axis + 1 }, &vs);
        }
        Op::Gather { axis } | Op::ScatterAdd { axis, .. } => {
            let vs = lifted(b)?;
            let op = match &node.op {
                Op::ScatterAdd { size: n, .. } => Op::ScatterAdd {
                    axis: axis + 1,
                    size: *n,
                },
                _ => Op::Gather { axis: axis + 1 },
            };
            return b.push(op, &vs);
        }
        Op::Dot(d) => return dot(b, d, args),
        Op::DynamicSlice { sizes } => {
            if args[1..].iter().any(|&(_, bt)| bt) {
                return per_example(b, node, args, size);
            }
            let zero = b.constant(Scalar::Int(0), &[])?;
            let mut vs = vec![args[0].0, zero];
            vs.extend(plain(&args[1..]));
            return b.push(
                Op::DynamicSlice {
                    sizes: leading(sizes, size),
                },
                &vs,
            );
        }
        Op::DynamicUpdateSlice => {
            if args[2..].iter().any(|&(_, bt)| bt) {
                return per_example(b, node, args, size);
            }
            let x = lift(b, args[0].0, args[0].1, size)?;
            let u = lift(b, args[1].0, args[1].1, size)?;
            let zero = b.constant(Scalar::Int(0), &[])?;
            let mut vs = vec![x, u, zero];
            vs.extend(plain(&args[2..]));
            return b.push(Op::DynamicUpdateSlice, &vs);
        }
    };
    // A reindexing op of one batched operand.
    let Some(x) = x else {
        return Err(Error::Internal(format!(
            "`{}` lacks its operand",
            node.op.name()
        )));
    };
    b.push(op, &[x])
}

/// `v` with the batch axis: itself when it has one, otherwise broadcast along a new
/// leading axis of extent `size`.
pub fn lift(b: &mut Builder, v: Value, batched: bool, size: usize) -> Result<Value> {
    if batched {
        return Ok(v);
    }
    let shape = b.shape(v);
    let mut out = vec![size];
    out.extend(&shape);
    let dims: Vec<usize> = (1..=shape.len()).collect();
    b.broadcast_in_dim(v, &out, &dims)
}

/// A product with a batched operand. Both batched: the batch axis becomes the product's
/// first batch axis. One batched: it is a free axis of that operand, moved to the front
/// afterwards if the product's own batch axes (or the left operand's free axes) come
/// before it. The unbatched operand is never copied per example.
fn dot(b: &mut Builder, d: &DotDims, args: &[(Value, bool)]) -> Result<Value> {
    let (lhs, lb) = args[0];
    let (rhs, rb) = args[1];
    let shift = |axes: &[usize]| axes.iter().map(|a| a + 1).collect::<Vec<_>>();
    if lb && rb {
        let mut lhs_batch = vec![0];
        lhs_batch.extend(shift(&d.lhs_batch));
        let mut rhs_batch = vec![0];
        rhs_batch.extend(shift(&d.rhs_batch));
        let dims = DotDims {
            lhs_batch,
            rhs_batch,
            lhs_contract: shift(&d.lhs_contract),
            rhs_contract: shift(&d.rhs_contract),
        };
        return b.dot(lhs, rhs, dims);
    }
    let nb = d.lhs_batch.len();
    let (dims, at) = if lb {
        let dims = DotDims {
            lhs_batch: shift(&d.lhs_batch),
            rhs_batch: d.rhs_batch.clone(),
            lhs_contract: shift(&d.lhs_contract),
            rhs_contract: d.rhs_contract.clone(),
        };
        (dims, nb)
    } else {
        let lhs_rank = b.ty(lhs).rank();
        let lhs_free = DotDims::free_axes(lhs_rank, &d.lhs_batch, &d.lhs_contract).len();
        let dims = DotDims {
            lhs_batch: d.lhs_batch.clone(),
            rhs_batch: shift(&d.rhs_batch),
            lhs_contract: d.lhs_contract.clone(),
            rhs_contract: shift(&d.rhs_contract),
        };
        (dims, nb + lhs_free)
    };
    let out = b.dot(lhs, rhs, dims)?;
    if at == 0 {
        return Ok(out);
    }
    let rank = b.ty(out).rank();
    let perm: Vec<usize> = std::iter::once(at)
        .chain((0..rank).filter(|&a| a != at))
        .collect();
    b.transpose(out, &perm)
}

/// The fallback for ops whose per-example operands have no batched form in the IR: the
/// op once per example on that example's slices, the results stacked along a new
/// leading axis.
fn per_example(b: &mut Builder, node: &Node, args: &[(Value, bool)], size: usize) -> Result<Value> {
    let mut rows = Vec::with_capacity(size);
    for k in 0..size {
        let mut vs = Vec::with_capacity(args.len());
        for &(v, bt) in args {
            vs.push(if bt { example(b, v, k)? } else { v });
        }
        let r = b.push(node.op.clone(), &vs)?;
        let mut shape = vec![1];
        shape.extend(b.shape(r));
        rows.push(b.reshape(r, &shape)?);
    }
    b.concat(&rows, 0)
}

/// Example `k` of the batched value `v`: its slice along the batch axis, without it.
fn example(b: &mut Builder, v: Value, k: usize) -> Result<Value> {
    let shape = b.shape(v);
    let mut start = vec![0; shape.len()];
    start[0] = k;
    let mut limit = shape.clone();
    limit[0] = k + 1;
    let s = b.slice(v, &start, &limit)?;
    b.reshape(s, &shape[1..])
}
