//! Sums and products too long for one invocation's loop, split.
//!
//! llvmpipe (behind lavapipe) silently ends a shader loop after 65,535 iterations
//! (`lower::LOOP_LIMIT`, the target's `max_loop_iterations`), and nesting the loop does not help. So lowering never asks
//! one invocation to loop longer; this pass, run by lowering after `optimize`, rewrites
//! the work that would:
//!
//! - a reduction over several axes whose total is too long for its kernel becomes one
//!   reduction per axis, the last axis first;
//! - a reduction along one axis whose run per invocation would be too long (a
//!   one-stage reduction of more than the limit per output, or a two-stage one whose
//!   final stage would fold more partials than the limit) pads the axis with the
//!   reduction's identity to `c` chunks of [`CHUNK`] elements, folds each chunk, then the `c`
//!   chunk results;
//! - a product contracting more elements than the limit splits its first contracted
//!   axis into `c` chunks, made a batch axis, and sums the `c` partial products;
//! - a scatter-add of more updates along its axis than the limit scatters them in
//!   chunks and adds the results in order.
//!
//! Padding and reshaping are read in place by the kernels that consume them, so nothing
//! is copied. Results stay deterministic (a fixed order), and are exact wherever the
//! unsplit sum is: the chunks' partial sums are added in order.

use super::rewrite::rebuild;
use crate::error::Result;
use crate::ir::{Builder, DType, DotDims, Graph, Op, ReduceKind, Scalar, Value};

/// Elements per chunk of a split reduction or product (or the limit, if smaller).
pub const CHUNK: usize = 32_768;

/// Splits every reduction and product that one invocation could not loop over within
/// `limit` iterations. Returns whether any was.
pub fn run(graph: &mut Graph, limit: usize) -> bool {
    // A split's own sums are built within the limit, but a product split finely (many
    // contracted axes) sums many chunks: a second round splits those.
    let mut changed = false;
    for _ in 0..8 {
        if !run_once(graph, limit) {
            break;
        }
        changed = true;
    }
    changed
}

fn run_once(graph: &mut Graph, limit: usize) -> bool {
    let needs = |g: &Graph, v: Value| match &g.node(v).op {
        Op::Reduce { axes, .. } => reduce_too_long(g, v, axes, limit),
        Op::Dot(dims) => dot_too_long(g, v, dims, limit),
        Op::ScatterAdd { axis, .. } => g.ty(g.node(v).args[0]).shape[*axis] > limit,
        _ => false,
    };
    if !graph.values().any(|v| needs(graph, v)) {
        return false;
    }
    let rebuilt = rebuild(graph, |b, map, v| {
        if !needs(graph, v) {
            return None;
        }
        let node = graph.node(v);
        let args: Vec<Value> = node.args.iter().map(|a| map[a.index()]).collect();
        Some(match &node.op {
            Op::Reduce { kind, axes } => reduce(b, *kind, args[0], axes, limit),
            Op::Dot(dims) => dot(b, args[0], args[1], dims, limit),
            Op::ScatterAdd { axis, size } => {
                scatter_add(b, args[0], args[1], *axis, *size, CHUNK.min(limit))
            }
            _ => return None,
        })
    });
    match rebuilt {
        Some(g) => {
            *graph = g;
            true
        }
        None => false,
    }
}

/// How many elements one invocation folds, at most, when the planner reduces `trips`
/// elements per output into `outputs` outputs (`lower::target::reduction_parts`).
fn longest_run(trips: usize, outputs: usize) -> usize {
    if trips >= crate::lower::SPLIT_REDUCTION && outputs < 256 {
        trips
            .div_ceil(crate::lower::REDUCTION_CHUNK)
            .max(crate::lower::REDUCTION_CHUNK)
    } else {
        trips
    }
}

fn reduce_too_long(g: &Graph, v: Value, axes: &[usize], limit: usize) -> bool {
    let shape = &g.ty(g.node(v).args[0]).shape;
    let trips: usize = axes.iter().map(|&a| shape[a]).product();
    longest_run(trips, g.ty(v).numel()) > limit
}

fn dot_too_long(g: &Graph, v: Value, dims: &DotDims, limit: usize) -> bool {
    // An outer product (the gradient of a matrix–vector product has one) contracts
    // nothing.
    if dims.lhs_contract.is_empty() {
        return false;
    }
    let shape = &g.ty(g.node(v).args[0]).shape;
    let trips: usize = dims.lhs_contract.iter().map(|&a| shape[a]).product();
    trips > limit
}

/// The identity of a reduction, in `dtype`.
fn identity(kind: ReduceKind, dtype: DType) -> Scalar {
    match (kind, dtype) {
        (ReduceKind::Sum, _) => Scalar::of(dtype, 0.0),
        (ReduceKind::Max, DType::I32) => Scalar::Int(i32::MIN),
        (ReduceKind::Max, DType::U32) => Scalar::Uint(0),
        (ReduceKind::Max, _) => Scalar::of(dtype, f64::NEG_INFINITY),
        (ReduceKind::Min, DType::I32) => Scalar::Int(i32::MAX),
        (ReduceKind::Min, DType::U32) => Scalar::Uint(u32::MAX),
        (ReduceKind::Min, _) => Scalar::of(dtype, f64::INFINITY),
    }
}

/// `reduce(kind, x, axes)` with no invocation folding more than `limit` elements.
fn reduce(
    b: &mut Builder,
    kind: ReduceKind,
    x: Value,
    axes: &[usize],
    limit: usize,
) -> Result<Value> {
    let shape = b.ty(x).shape.clone();
    let trips: usize = axes.iter().map(|&a| shape[a]).product();
    let outputs: usize = shape.iter().product::<usize>() / trips.max(1);
    if longest_run(trips, outputs) <= limit {
        return b.reduce(kind, x, axes);
    }
    if axes.len() > 1 {
        // One axis at a time, the last first: the earlier axes keep their positions.
        let mut y = x;
        for &a in axes.iter().rev() {
            y = reduce(b, kind, y, &[a], limit)?;
        }
        return Ok(y);
    }
    let a = axes[0];
    let len = shape[a];
    let chunk = CHUNK.min(limit);
    if len <= chunk {
        // Nothing shorter to split into (a limit below the planner's own runs).
        return b.reduce(kind, x, axes);
    }
    let chunks = len.div_ceil(chunk);
    let mut high = vec![0; shape.len()];
    high[a] = chunks * chunk - len;
    let low = vec![0; shape.len()];
    let dtype = b.ty(x).dtype;
    let padded = if high[a] > 0 {
        b.pad(x, &low, &high, identity(kind, dtype))?
    } else {
        x
    };
    let mut split = shape[..a].to_vec();
    split.extend([chunks, chunk]);
    split.extend(&shape[a + 1..]);
    let y = b.reshape(padded, &split)?;
    let folded = reduce(b, kind, y, &[a + 1], limit)?;
    reduce(b, kind, folded, &[a], limit)
}

/// `dot(l, r)` contracting its first contracted axis longer than 1 in chunks: the axis
/// split into `(c, chunk)`, `c` made a batch axis, and the `c` products summed. A chunk
/// times the other contracted axes' extents stays within `limit` when it can.
fn dot(b: &mut Builder, l: Value, r: Value, dims: &DotDims, limit: usize) -> Result<Value> {
    let lshape = b.ty(l).shape.clone();
    let k = dims
        .lhs_contract
        .iter()
        .position(|&a| lshape[a] > 1)
        .unwrap_or(0);
    let (la, ra) = (dims.lhs_contract[k], dims.rhs_contract[k]);
    let len = lshape[la];
    let rest: usize = dims
        .lhs_contract
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != k)
        .map(|(_, &a)| lshape[a])
        .product();
    // When the other contracted axes alone are too long, this one becomes a batch axis
    // whole (chunks of 1), and a later round splits the next.
    let chunk = (CHUNK.min(limit) / rest.max(1)).max(1);
    let chunks = len.div_ceil(chunk);
    let split = |b: &mut Builder, x: Value, axis: usize| -> Result<Value> {
        let shape = b.ty(x).shape.clone();
        let mut high = vec![0; shape.len()];
        high[axis] = chunks * chunk - len;
        let low = vec![0; shape.len()];
        let dtype = b.ty(x).dtype;
        let padded = if high[axis] > 0 {
            b.pad(x, &low, &high, Scalar::of(dtype, 0.0))?
        } else {
            x
        };
        let mut to = shape[..axis].to_vec();
        to.extend([chunks, chunk]);
        to.extend(&shape[axis + 1..]);
        b.reshape(padded, &to)
    };
    let (ls, rs) = (split(b, l, la)?, split(b, r, ra)?);
    // Axes after the split one move up by one.
    let shift = |axes: &[usize], at: usize| -> Vec<usize> {
        axes.iter()
            .map(|&x| if x > at { x + 1 } else { x })
            .collect()
    };
    let mut lhs_batch = shift(&dims.lhs_batch, la);
    lhs_batch.push(la);
    let mut rhs_batch = shift(&dims.rhs_batch, ra);
    rhs_batch.push(ra);
    let mut lhs_contract = shift(&dims.lhs_contract, la);
    lhs_contract[k] = la + 1;
    let mut rhs_contract = shift(&dims.rhs_contract, ra);
    rhs_contract[k] = ra + 1;
    let split_dims = DotDims {
        lhs_batch,
        rhs_batch,
        lhs_contract,
        rhs_contract,
    };
    let partial = b.push(Op::Dot(split_dims), &[ls, rs])?;
    // The chunk axis is the last batch axis of the result.
    b.sum(partial, &[dims.lhs_batch.len()])
}

/// `scatter_add(u, idx)` along `axis` in chunks of `chunk` updates: each chunk scattered
/// on its own, the results added in order.
fn scatter_add(
    b: &mut Builder,
    u: Value,
    idx: Value,
    axis: usize,
    size: usize,
    chunk: usize,
) -> Result<Value> {
    let shape = b.ty(u).shape.clone();
    let mut acc: Option<Value> = None;
    for start in (0..shape[axis]).step_by(chunk.max(1)) {
        let mut lo = vec![0; shape.len()];
        let mut hi = shape.clone();
        lo[axis] = start;
        hi[axis] = (start + chunk).min(shape[axis]);
        let (us, is) = (b.slice(u, &lo, &hi)?, b.slice(idx, &lo, &hi)?);
        let part = b.scatter_add(us, is, axis, size)?;
        acc = Some(match acc {
            Some(a) => b.add(a, part)?,
            None => part,
        });
    }
    match acc {
        Some(a) => Ok(a),
        None => b.scatter_add(u, idx, axis, size),
    }
}
