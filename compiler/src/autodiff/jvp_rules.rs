//! Forward-mode rules: one entry per op, mapping the tangents of a node's operands
//! (`None` is a symbolic zero) to the tangent of its result.
//!
//! Linear ops apply themselves to the tangents; nonlinear ops multiply by the same local
//! derivatives the reverse rules use. At least one operand tangent is nonzero whenever a
//! rule is called.

use super::vjp_rules::{scaled, tie_weight};
use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Builder, Graph, Op, ReduceKind, UnaryOp, Value};

/// The tangent of `v` given the tangents `t` of its operands.
pub fn rule(b: &mut Builder, g: &Graph, v: Value, t: &[Option<Value>]) -> Result<Option<Value>> {
    let node = g.node(v);
    let x = &node.args;
    if !g.ty(v).dtype.is_float() {
        return Ok(None);
    }
    let y = v;
    Ok(match &node.op {
        Op::Input { .. } | Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. } => None,
        Op::Unary(u) => {
            let Some(t) = t[0] else { return Ok(None) };
            match u {
                UnaryOp::Neg => Some(b.neg(t)?),
                UnaryOp::Exp => Some(b.mul(t, y)?),
                UnaryOp::Log => Some(b.div(t, x[0])?),
                UnaryOp::Sin => {
                    let c = b.cos(x[0])?;
                    Some(b.mul(t, c)?)
                }
                UnaryOp::Cos => {
                    let s = b.sin(x[0])?;
                    let p = b.mul(t, s)?;
                    Some(b.neg(p)?)
                }
                UnaryOp::Tanh => {
                    let one = b.full_like(1.0, y)?;
                    let yy = b.mul(y, y)?;
                    let d = b.sub(one, yy)?;
                    Some(b.mul(t, d)?)
                }
                UnaryOp::Sqrt => {
                    let half = scaled(b, t, 0.5)?;
                    Some(b.div(half, y)?)
                }
                UnaryOp::Rsqrt => {
                    let p = scaled(b, t, -0.5)?;
                    let p = b.mul(p, y)?;
                    Some(b.div(p, x[0])?)
                }
                UnaryOp::Recip => {
                    let yy = b.mul(y, y)?;
                    let p = b.mul(t, yy)?;
                    Some(b.neg(p)?)
                }
                UnaryOp::Abs => {
                    let s = b.sign(x[0])?;
                    Some(b.mul(t, s)?)
                }
                UnaryOp::Sign => None,
                UnaryOp::Lgamma => {
                    let d = b.digamma(x[0])?;
                    Some(b.mul(t, d)?)
                }
                UnaryOp::Digamma => {
                    let d = b.trigamma(x[0])?;
                    Some(b.mul(t, d)?)
                }
            }
        }
        Op::Binary(op) => {
            let (l, r) = (x[0], x[1]);
            match op {
                BinaryOp::Add => add_opt(b, t[0], t[1])?,
                BinaryOp::Sub => match (t[0], t[1]) {
                    (Some(a), Some(c)) => Some(b.sub(a, c)?),
                    (Some(a), None) => Some(a),
                    (None, Some(c)) => Some(b.neg(c)?),
                    (None, None) => None,
                },
                BinaryOp::Mul => {
                    let a = t[0].map(|t| b.mul(t, r)).transpose()?;
                    let c = t[1].map(|t| b.mul(l, t)).transpose()?;
                    add_opt(b, a, c)?
                }
                // d(l/r) = dl/r - dr·y/r.
                BinaryOp::Div => {
                    let a = t[0].map(|t| b.div(t, r)).transpose()?;
                    let c = match t[1] {
                        Some(t) => {
                            let p = b.mul(t, y)?;
                            let q = b.div(p, r)?;
                            Some(b.neg(q)?)
                        }
                        None => None,
                    };
                    add_opt(b, a, c)?
                }
                BinaryOp::Max | BinaryOp::Min => {
                    let w = tie_weight(b, *op, l, r)?;
                    let one = b.full_like(1.0, w)?;
                    let wr = b.sub(one, w)?;
                    let a = t[0].map(|t| b.mul(t, w)).transpose()?;
                    let c = t[1].map(|t| b.mul(t, wr)).transpose()?;
                    add_opt(b, a, c)?
                }
                BinaryOp::Pow => {
                    let a = match t[0] {
                        Some(t) => {
                            let one = b.full_like(1.0, r)?;
                            let rm1 = b.sub(r, one)?;
                            let p = b.pow(l, rm1)?;
                            let p = b.mul(p, r)?;
                            Some(b.mul(t, p)?)
                        }
                        None => None,
                    };
                    let c = match t[1] {
                        Some(t) => {
                            let ll = b.log(l)?;
                            let q = b.mul(y, ll)?;
                            Some(b.mul(t, q)?)
                        }
                        None => None,
                    };
                    add_opt(b, a, c)?
                }
            }
        }
        Op::Compare(_) | Op::StopGradient | Op::OneHot { .. } => None,
        Op::Select => {
            if t[1].is_none() && t[2].is_none() {
                return Ok(None);
            }
            let a = or_zero(b, t[1], x[1])?;
            let c = or_zero(b, t[2], x[2])?;
            Some(b.select(x[0], a, c)?)
        }
        Op::Cast { .. } => {
            if g.ty(x[0]).dtype.is_float() {
                t[0]
            } else {
                None
            }
        }
        Op::Broadcast { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Reduce {
            kind: ReduceKind::Sum,
            ..
        } => match t[0] {
            // A linear op applied to the tangent; a padding value is a constant, so the
            // tangent pads with zero.
            Some(t) => {
                let op = match &node.op {
                    Op::Pad { low, high, .. } => Op::Pad {
                        low: low.clone(),
                        high: high.clone(),
                        value: crate::ir::Scalar::float(0.0),
                    },
                    other => other.clone(),
                };
                Some(b.push(op, &[t])?)
            }
            None => None,
        },
        Op::Concat { .. } => {
            let mut parts = Vec::with_capacity(x.len());
            for (&a, &ta) in x.iter().zip(t) {
                parts.push(or_zero(b, ta, a)?);
            }
            Some(b.push(node.op.clone(), &parts)?)
        }
        Op::Reduce { kind: _, axes } => {
            let Some(t) = t[0] else { return Ok(None) };
            let shape = g.ty(x[0]).shape.clone();
            let kept: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
            let yb = b.broadcast_in_dim(y, &shape, &kept)?;
            let hit = b.eq(x[0], yb)?;
            let mask = b.cast(hit, g.ty(v).dtype)?;
            let count = b.sum(mask, axes)?;
            let tm = b.mul(t, mask)?;
            let s = b.sum(tm, axes)?;
            Some(b.div(s, count)?)
        }
        Op::Dot(dims) => {
            let a = t[0].map(|t| b.dot(t, x[1], dims.clone())).transpose()?;
            let c = t[1].map(|t| b.dot(x[0], t, dims.clone())).transpose()?;
            add_opt(b, a, c)?
        }
        Op::Gather { axis } => t[0].map(|t| b.gather(t, x[1], *axis)).transpose()?,
        // Both are linear in the tensors, at the same (integer, tangent-free) starts.
        Op::DynamicSlice { sizes } => t[0]
            .map(|t| b.dynamic_slice(t, &x[1..], sizes))
            .transpose()?,
        Op::DynamicUpdateSlice => {
            if t[0].is_none() && t[1].is_none() {
                return Ok(None);
            }
            let tx = or_zero(b, t[0], x[0])?;
            let tu = or_zero(b, t[1], x[1])?;
            Some(b.dynamic_update_slice(tx, tu, &x[2..])?)
        }
        Op::ScatterAdd { axis, size } => t[0]
            .map(|t| b.scatter_add(t, x[1], *axis, *size))
            .transpose()?,
        Op::Loop { .. } | Op::Get { .. } => {
            return Err(Error::Diff(format!("no forward rule for the loop at {v}")));
        }
    })
}

/// Tangent sum where either side may be a symbolic zero.
fn add_opt(b: &mut Builder, a: Option<Value>, c: Option<Value>) -> Result<Option<Value>> {
    Ok(match (a, c) {
        (Some(a), Some(c)) => Some(b.add(a, c)?),
        (a, c) => a.or(c),
    })
}

/// The tangent, materializing a symbolic zero of `like`'s type where an op needs every
/// operand.
fn or_zero(b: &mut Builder, t: Option<Value>, like: Value) -> Result<Value> {
    match t {
        Some(t) => Ok(t),
        None => b.full_like(0.0, like),
    }
}
