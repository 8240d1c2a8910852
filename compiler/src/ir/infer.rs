//! Shape and dtype inference: one typing rule per op.
//!
//! [`infer`] computes a node's result type from its op and operand types, or returns a
//! [`TypeError`] naming the op and the shapes involved. It never panics, whatever the
//! operands: the builder, the parser and the verifier all rely on it.

use super::op::{DotDims, Op, ReduceKind};
use super::types::{DType, Type, fmt_shape};
use super::{Graph, NodeType};
use crate::error::TypeError;

/// The result type of `op` applied to operands of types `args`; `regions` resolves a
/// loop's body.
pub fn infer(regions: &[Graph], op: &Op, args: &[&NodeType]) -> Result<NodeType, TypeError> {
    let name = op.name();
    let err = |m: String| TypeError::new(name, m);
    if let Op::Get { index } = op {
        return match args {
            [NodeType::Tuple(items)] => items
                .get(*index as usize)
                .map(|t| NodeType::Tensor(t.clone()))
                .ok_or_else(|| err(format!("index {index} out of a {}-tuple", items.len()))),
            [NodeType::Tensor(t)] => Err(err(format!("operand is the tensor {t}, not a loop"))),
            _ => Err(err(format!("takes 1 operand, got {}", args.len()))),
        };
    }
    let mut tys = Vec::with_capacity(args.len());
    for a in args {
        match a {
            NodeType::Tensor(t) => tys.push(t),
            NodeType::Tuple(_) => {
                return Err(err("a loop tuple can only be read with `get`".into()));
            }
        }
    }
    let arity = |n: usize| {
        if tys.len() == n {
            Ok(())
        } else {
            Err(err(format!("takes {n} operand(s), got {}", tys.len())))
        }
    };
    let same = |a: &Type, b: &Type| {
        if a == b {
            Ok(())
        } else {
            Err(err(format!(
                "operands must have equal shape and dtype, got {a} and {b}"
            )))
        }
    };
    let t = match op {
        Op::Input { .. } => return Err(err("an input's type is declared, not inferred".into())),
        Op::Get { .. } => unreachable!("handled above"),
        Op::Constant { value, shape } => {
            arity(0)?;
            Type::new(value.dtype(), shape)
        }
        Op::Literal {
            dtype,
            values,
            shape,
        } => {
            arity(0)?;
            let numel = checked_numel(shape).unwrap_or(usize::MAX);
            if values.len() != numel {
                return Err(err(format!(
                    "a literal of {} elements for shape {}, which holds {numel}",
                    values.len(),
                    fmt_shape(shape)
                )));
            }
            if let Some(bad) = values.iter().find(|v| v.dtype() != *dtype) {
                return Err(err(format!(
                    "a {} element `{bad}` in a {} literal",
                    bad.dtype().name(),
                    dtype.name()
                )));
            }
            Type::new(*dtype, shape)
        }
        Op::Iota { dtype, shape, axis } => {
            arity(0)?;
            if *axis >= shape.len() {
                return Err(err(format!(
                    "axis {axis} out of range for shape {}",
                    fmt_shape(shape)
                )));
            }
            if *dtype == DType::Bool {
                return Err(err("iota needs a numeric dtype".into()));
            }
            Type::new(*dtype, shape)
        }
        Op::Unary(u) => {
            arity(1)?;
            let a = tys[0];
            if !(a.dtype.is_float() || u.accepts_int() && a.dtype.is_int()) {
                return Err(err(format!("not defined on {a}")));
            }
            a.clone()
        }
        Op::Binary(b) => {
            arity(2)?;
            same(tys[0], tys[1])?;
            let a = tys[0];
            if !(a.dtype.is_float() || b.accepts_int() && a.dtype.is_int()) {
                return Err(err(format!("not defined on {a}")));
            }
            a.clone()
        }
        Op::Compare(_) => {
            arity(2)?;
            same(tys[0], tys[1])?;
            tys[0].with_dtype(DType::Bool)
        }
        Op::Select => {
            arity(3)?;
            if tys[0].dtype != DType::Bool {
                return Err(err(format!("condition must be bool, got {}", tys[0])));
            }
            same(tys[1], tys[2])?;
            if tys[0].shape != tys[1].shape {
                return Err(err(format!(
                    "condition {} and values {} differ in shape",
                    tys[0], tys[1]
                )));
            }
            tys[1].clone()
        }
        Op::Cast { dtype } => {
            arity(1)?;
            tys[0].with_dtype(*dtype)
        }
        Op::StopGradient => {
            arity(1)?;
            tys[0].clone()
        }
        Op::Broadcast { shape, dims } => {
            arity(1)?;
            let a = tys[0];
            if dims.len() != a.rank() {
                return Err(err(format!(
                    "dims {dims:?} must name one result axis per operand axis of {a}"
                )));
            }
            for (i, &d) in dims.iter().enumerate() {
                if d >= shape.len() || (i > 0 && dims[i - 1] >= d) {
                    return Err(err(format!(
                        "dims {dims:?} must be strictly increasing axes of {}",
                        fmt_shape(shape)
                    )));
                }
                if a.shape[i] != shape[d] && a.shape[i] != 1 {
                    return Err(err(format!(
                        "cannot broadcast {a} to {}: axis {i} has extent {}, result axis {d} has {}",
                        fmt_shape(shape),
                        a.shape[i],
                        shape[d]
                    )));
                }
            }
            Type::new(a.dtype, shape)
        }
        Op::Reshape { shape } => {
            arity(1)?;
            let a = tys[0];
            if checked_numel(shape) != Some(a.numel()) {
                return Err(err(format!(
                    "cannot reshape {a} ({} elements) to {}",
                    a.numel(),
                    fmt_shape(shape)
                )));
            }
            Type::new(a.dtype, shape)
        }
        Op::Transpose { perm } => {
            arity(1)?;
            let a = tys[0];
            let mut seen = vec![false; a.rank()];
            if perm.len() != a.rank()
                || perm
                    .iter()
                    .any(|&p| p >= a.rank() || std::mem::replace(&mut seen[p], true))
            {
                return Err(err(format!(
                    "{perm:?} is not a permutation of the axes of {a}"
                )));
            }
            let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
            Type::new(a.dtype, &shape)
        }
        Op::Slice { start, limit } => {
            arity(1)?;
            let a = tys[0];
            if start.len() != a.rank() || limit.len() != a.rank() {
                return Err(err(format!(
                    "start {start:?} and limit {limit:?} need one entry per axis of {a}"
                )));
            }
            for i in 0..a.rank() {
                if start[i] > limit[i] || limit[i] > a.shape[i] {
                    return Err(err(format!(
                        "bounds {}..{} out of range for axis {i} of {a}",
                        start[i], limit[i]
                    )));
                }
            }
            let shape: Vec<usize> = (0..a.rank()).map(|i| limit[i] - start[i]).collect();
            Type::new(a.dtype, &shape)
        }
        Op::Concat { axis } => {
            let Some(first) = tys.first() else {
                return Err(err("needs at least one operand".into()));
            };
            if *axis >= first.rank() {
                return Err(err(format!("axis {axis} out of range for {first}")));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for t in &tys {
                let compatible = t.dtype == first.dtype
                    && t.rank() == first.rank()
                    && (0..t.rank()).all(|i| i == *axis || t.shape[i] == first.shape[i]);
                if !compatible {
                    return Err(err(format!(
                        "operands {first} and {t} do not agree off axis {axis}"
                    )));
                }
                shape[*axis] = shape[*axis]
                    .checked_add(t.shape[*axis])
                    .ok_or_else(|| err(format!("extent along axis {axis} overflows")))?;
            }
            Type::new(first.dtype, &shape)
        }
        Op::Pad { low, high, value } => {
            arity(1)?;
            let a = tys[0];
            if low.len() != a.rank() || high.len() != a.rank() {
                return Err(err(format!(
                    "low {low:?} and high {high:?} need one entry per axis of {a}"
                )));
            }
            if value.dtype() != a.dtype {
                return Err(err(format!("padding value {value} is not of {a}'s dtype")));
            }
            let shape: Vec<usize> = (0..a.rank())
                .map(|i| a.shape[i] + low[i] + high[i])
                .collect();
            Type::new(a.dtype, &shape)
        }
        Op::Reduce { kind, axes } => {
            arity(1)?;
            let a = tys[0];
            if axes
                .iter()
                .enumerate()
                .any(|(i, &x)| x >= a.rank() || (i > 0 && axes[i - 1] >= x))
            {
                return Err(err(format!(
                    "axes {axes:?} must be strictly increasing axes of {a}"
                )));
            }
            if a.dtype == DType::Bool {
                return Err(err(format!("cannot reduce {a}")));
            }
            if *kind != ReduceKind::Sum && axes.iter().any(|&x| a.shape[x] == 0) {
                return Err(err(format!("{} over an empty axis of {a}", kind.name())));
            }
            let shape: Vec<usize> = (0..a.rank())
                .filter(|i| !axes.contains(i))
                .map(|i| a.shape[i])
                .collect();
            Type::new(a.dtype, &shape)
        }
        Op::Dot(dims) => {
            arity(2)?;
            dot_type(tys[0], tys[1], dims).map_err(err)?
        }
        Op::OneHot { depth, dtype } => {
            arity(1)?;
            let a = tys[0];
            if !a.dtype.is_int() {
                return Err(err(format!("indices must be integers, got {a}")));
            }
            let mut shape = a.shape.clone();
            shape.push(*depth);
            Type::new(*dtype, &shape)
        }
        Op::Gather { axis } => {
            arity(2)?;
            let (x, idx) = (tys[0], tys[1]);
            if !idx.dtype.is_int() {
                return Err(err(format!("indices must be integers, got {idx}")));
            }
            if *axis >= x.rank()
                || idx.rank() != x.rank()
                || (0..x.rank()).any(|i| i != *axis && x.shape[i] != idx.shape[i])
            {
                return Err(err(format!(
                    "indices {idx} must match {x} on every axis but axis {axis}"
                )));
            }
            Type::new(x.dtype, &idx.shape)
        }
        Op::DynamicSlice { sizes } => {
            let Some(x) = tys.first() else {
                return Err(err("needs an operand and one start per axis".into()));
            };
            dynamic_starts(&tys[1..], x).map_err(&err)?;
            if sizes.len() != x.rank() || sizes.iter().zip(&x.shape).any(|(s, d)| s > d) {
                return Err(err(format!(
                    "sizes {sizes:?} need one extent per axis of {x}, each at most the axis's"
                )));
            }
            Type::new(x.dtype, sizes)
        }
        Op::DynamicUpdateSlice => {
            let (Some(x), Some(u)) = (tys.first(), tys.get(1)) else {
                return Err(err(
                    "needs an operand, an update and one start per axis".into()
                ));
            };
            dynamic_starts(&tys[2..], x).map_err(&err)?;
            if u.dtype != x.dtype
                || u.rank() != x.rank()
                || u.shape.iter().zip(&x.shape).any(|(a, b)| a > b)
            {
                return Err(err(format!(
                    "the update {u} must have the dtype and rank of {x}, each extent at most the operand's"
                )));
            }
            (*x).clone()
        }
        Op::ScatterAdd { axis, size } => {
            arity(2)?;
            let (u, idx) = (tys[0], tys[1]);
            if !idx.dtype.is_int() {
                return Err(err(format!("indices must be integers, got {idx}")));
            }
            if *axis >= u.rank() || idx.shape != u.shape {
                return Err(err(format!(
                    "indices {idx} must have the shape of {u}, with axis {axis} in range"
                )));
            }
            if u.dtype == DType::Bool {
                return Err(err(format!("cannot add {u}")));
            }
            let mut shape = u.shape.clone();
            shape[*axis] = *size;
            Type::new(u.dtype, &shape)
        }
        Op::Loop {
            trips: _,
            carried,
            body,
        } => {
            let Some(body) = regions.get(body.0 as usize) else {
                return Err(err(format!("no region {}", body.0)));
            };
            let carried = *carried as usize;
            if carried > tys.len() {
                return Err(err(format!(
                    "{carried} carried values but only {} operands",
                    tys.len()
                )));
            }
            if body.inputs.len() != tys.len() + 1 {
                return Err(err(format!(
                    "body takes {} inputs, expected the index and {} operands",
                    body.inputs.len(),
                    tys.len()
                )));
            }
            if body.outputs.len() != carried {
                return Err(err(format!(
                    "body returns {} values for {carried} carried values",
                    body.outputs.len()
                )));
            }
            let index_ty = body.ty(body.inputs[0].1);
            if *index_ty != Type::i32(&[]) {
                return Err(err(format!(
                    "the body's first input (the index) must be i32[], got {index_ty}"
                )));
            }
            for (i, t) in tys.iter().enumerate() {
                let declared = body.ty(body.inputs[i + 1].1);
                if declared != *t {
                    return Err(err(format!(
                        "operand {i} is {t} but the body's input `{}` is {declared}",
                        body.inputs[i + 1].0
                    )));
                }
            }
            for (i, (name, v)) in body.outputs.iter().enumerate() {
                if body.ty(*v) != tys[i] {
                    return Err(err(format!(
                        "body output `{name}` is {} but carried value {i} is {}",
                        body.ty(*v),
                        tys[i]
                    )));
                }
            }
            return Ok(NodeType::Tuple(
                tys[..carried].iter().map(|t| (*t).clone()).collect(),
            ));
        }
    };
    if checked_numel(&t.shape).is_none() {
        return Err(err(too_large(&t)));
    }
    Ok(NodeType::Tensor(t))
}

/// Why a type fails [`checked_numel`]: its size, and the limit.
pub fn too_large(t: &Type) -> String {
    format!(
        "{t} is {}: more than wgrad counts (a tensor has at most 2^61 elements)",
        super::types::human_bytes(t.bytes())
    )
}

/// The element count of `shape`, or `None` when it, or its size in bytes at 8 bytes an
/// element (the interpreter's), overflows `usize`: every size computed from a type is
/// then exact.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    n.checked_mul(8).map(|_| n)
}

/// The result type of a [`Op::Dot`], or what is wrong with its dimension numbers.
fn dot_type(l: &Type, r: &Type, d: &DotDims) -> Result<Type, String> {
    if l.dtype != r.dtype || l.dtype == DType::Bool {
        return Err(format!("operands {l} and {r} must share a numeric dtype"));
    }
    let valid = |axes: &[usize], t: &Type| {
        let mut seen = vec![false; t.rank()];
        axes.iter()
            .all(|&a| a < t.rank() && !std::mem::replace(&mut seen[a], true))
    };
    let lhs_axes: Vec<usize> = d.lhs_batch.iter().chain(&d.lhs_contract).copied().collect();
    let rhs_axes: Vec<usize> = d.rhs_batch.iter().chain(&d.rhs_contract).copied().collect();
    if d.lhs_batch.len() != d.rhs_batch.len()
        || d.lhs_contract.len() != d.rhs_contract.len()
        || !valid(&lhs_axes, l)
        || !valid(&rhs_axes, r)
    {
        return Err(format!("invalid dimension numbers {d:?} for {l} and {r}"));
    }
    for (&a, &b) in lhs_axes.iter().zip(&rhs_axes) {
        if l.shape[a] != r.shape[b] {
            return Err(format!(
                "lhs axis {a} of {l} and rhs axis {b} of {r} must have equal extents"
            ));
        }
    }
    let mut shape: Vec<usize> = d.lhs_batch.iter().map(|&a| l.shape[a]).collect();
    shape.extend(
        DotDims::free_axes(l.rank(), &d.lhs_batch, &d.lhs_contract)
            .iter()
            .map(|&a| l.shape[a]),
    );
    shape.extend(
        DotDims::free_axes(r.rank(), &d.rhs_batch, &d.rhs_contract)
            .iter()
            .map(|&a| r.shape[a]),
    );
    Ok(Type::new(l.dtype, &shape))
}

/// Checks the start operands of a dynamic slice or update of `x`: one `i32` scalar per
/// axis.
fn dynamic_starts(starts: &[&Type], x: &Type) -> std::result::Result<(), String> {
    if starts.len() != x.rank() {
        return Err(format!(
            "needs one start index per axis of {x}, got {}",
            starts.len()
        ));
    }
    match starts
        .iter()
        .find(|t| t.dtype != DType::I32 || t.rank() != 0)
    {
        Some(t) => Err(format!("start indices must be i32 scalars, got {t}")),
        None => Ok(()),
    }
}
