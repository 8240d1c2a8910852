//! Derivatives of loops, as loops.
//!
//! **Forward mode:** one loop carrying each float carried value's tangent beside it,
//! with the invariants' tangents as further invariants; its body is the body followed
//! by the body's forward sweep.
//!
//! **Reverse mode:** a forward loop that also stacks, along a new leading axis of
//! extent `trips - 1`, the carried values entering iterations 1, 2, … — only those the
//! reverse body reads (a value used linearly needs none: the cotangent of a `select` or
//! of a `dynamic_update_slice` does not read it) — then a loop over the iterations in
//! reverse. Its body reads the state entering iteration `i` (the initial value for
//! `i = 0`) and the state leaving it (the loop's final value for the last) from the
//! stacks, and pulls the carried values' cotangents back through the body with the
//! ordinary reverse sweep, which reads the state leaving the iteration where it would
//! read the body's results: what only the results' derivatives need (tanh's reads its
//! output) is not recomputed. T iterations keep T states, the final one included. The
//! invariants' cotangents accumulate across iterations as carried values.
//!
//! Both produce ordinary IR (loops, `dynamic_slice`, `dynamic_update_slice`), so they
//! compose: the gradient of a gradient through a loop differentiates these loops again.

use super::{backward_multi, forward_multi};
use crate::error::{Error, Result};
use crate::ir::{Builder, Graph, Scalar, Type, Value};

/// The parameters of the loop at `v`: its body, trip count, carried count, operands.
fn parts(g: &Graph, v: Value) -> Result<(&Graph, u32, usize, Vec<Value>)> {
    let node = g.node(v);
    let (trips, carried, body) = node
        .op
        .as_loop()
        .ok_or_else(|| Error::Diff(format!("{v} is not a loop")))?;
    Ok((g.region(body), trips, carried, node.args.clone()))
}

/// The tangents of the results of the loop at `v` (one per carried value, `None` for
/// a symbolic zero), given the tangents of its operands.
pub(super) fn jvp(
    b: &mut Builder,
    g: &Graph,
    v: Value,
    operand_tangents: &[Option<Value>],
) -> Result<Vec<Option<Value>>> {
    let (body, trips, n, args) = parts(g, v)?;
    let float = |x: Value| g.ty(x).dtype.is_float();
    // Every float carried value gets a tangent (zero at first when it has none): a
    // tangent entering through an invariant reaches it after one iteration.
    let tangent_carried: Vec<usize> = (0..n).filter(|&k| float(args[k])).collect();
    let tangent_invariants: Vec<usize> = (n..args.len())
        .filter(|&j| operand_tangents[j].is_some())
        .collect();
    let mut carried: Vec<Value> = args[..n].to_vec();
    for &k in &tangent_carried {
        carried.push(match operand_tangents[k] {
            Some(t) => t,
            None => b.full_like(0.0, args[k])?,
        });
    }
    let mut invariants: Vec<Value> = args[n..].to_vec();
    invariants.extend(
        tangent_invariants
            .iter()
            .filter_map(|&j| operand_tangents[j]),
    );
    let m = args.len() - n;
    let finals = b.loop_(trips, &carried, &invariants, |inner, i, params, inv| {
        let mut inputs = vec![i];
        inputs.extend(&params[..n]);
        inputs.extend(&inv[..m]);
        let outs = inner.inline_graph(body, &inputs)?;
        let mut tangents = vec![None; inner.graph().len()];
        for (t, &k) in tangent_carried.iter().enumerate() {
            tangents[params[k].index()] = Some(params[n + t]);
        }
        for (t, &j) in tangent_invariants.iter().enumerate() {
            tangents[inv[j - n].index()] = Some(inv[m + t]);
        }
        let mut next = outs.clone();
        let wanted: Vec<Value> = tangent_carried.iter().map(|&k| outs[k]).collect();
        let ts = forward_multi(inner, &mut tangents, &wanted)?;
        for (&k, t) in tangent_carried.iter().zip(ts) {
            next.push(match t {
                Some(t) => t,
                None => inner.full_like(0.0, outs[k])?,
            });
        }
        Ok(next)
    })?;
    let mut out = vec![None; n];
    for (t, &k) in tangent_carried.iter().enumerate() {
        out[k] = Some(finals[n + t]);
    }
    Ok(out)
}

/// The cotangents of the operands of the loop at `v` (carried values, then
/// invariants; `None` for a symbolic zero), given the cotangents of its results.
pub(super) fn vjp(
    b: &mut Builder,
    g: &Graph,
    v: Value,
    result_cts: &[Option<Value>],
) -> Result<Vec<Option<Value>>> {
    let (body, trips, n, args) = parts(g, v)?;
    let m = args.len() - n;
    let float = |x: Value| g.ty(x).dtype.is_float();
    let ct_carried: Vec<usize> = (0..n).filter(|&k| float(args[k])).collect();
    let ct_invariants: Vec<usize> = (n..args.len()).filter(|&j| float(args[j])).collect();
    if trips == 0 {
        // The loop returns its initial values.
        let mut out: Vec<Option<Value>> = result_cts.to_vec();
        out.resize(args.len(), None);
        return Ok(out);
    }
    // The carried values whose state the reverse body reads. With two or more trips
    // they are stacked: row i - 1 holds the state entering iteration i, for i ≥ 1 (the
    // state entering iteration 0 is the initial value, the one leaving the last is
    // the loop's final value), so T iterations keep T states, counting the final one.
    let reads = stacked_states(body, n, &ct_carried, &ct_invariants)?;
    let stacked: Vec<usize> = if trips >= 2 {
        reads.clone()
    } else {
        Vec::new()
    };
    let rows = trips as usize - 1;

    // The forward loop again, stacking those states. It is forward work, tagged primal:
    // its stacks are what the backward pass keeps (residuals). When the program also
    // runs the loop for its own results, `passes::loop_merge` keeps only this one.
    let side = b.side();
    b.set_side(crate::ir::Side::Primal);
    let (stacks, finals) = if stacked.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let mut carried: Vec<Value> = args[..n].to_vec();
        for &k in &stacked {
            let ty = g.ty(args[k]);
            let mut shape = vec![rows];
            shape.extend(&ty.shape);
            carried.push(b.full(0.0, &Type::new(ty.dtype, &shape))?);
        }
        let results = b.loop_(trips, &carried, &args[n..], |inner, i, params, inv| {
            let mut inputs = vec![i];
            inputs.extend(&params[..n]);
            inputs.extend(inv);
            let mut next = inner.inline_graph(body, &inputs)?;
            let one = inner.constant(Scalar::Int(1), &[])?;
            // Iteration 0 writes its state to row 0 too (the start -1 clamps to 0);
            // iteration 1 overwrites it.
            let prev = inner.sub(i, one)?;
            for (s, &k) in stacked.iter().enumerate() {
                let stack = params[n + s];
                let mut row = vec![1];
                row.extend(&inner.ty(params[k]).shape);
                let state = inner.reshape(params[k], &row)?;
                let starts = row_starts(inner, prev, row.len())?;
                next.push(inner.dynamic_update_slice(stack, state, &starts)?);
            }
            Ok(next)
        })?;
        let finals = stacked.iter().map(|&k| results[k]).collect();
        (results[n..].to_vec(), finals)
    };
    b.set_side(side);

    // Initial values the reverse body reads that are not constants it can rebuild.
    let splat = |k: usize| crate::passes::rewrite::splat(g, args[k]);
    let inits: Vec<usize> = reads
        .iter()
        .copied()
        .filter(|&k| splat(k).is_none())
        .collect();

    // The reverse loop: iteration r undoes iteration trips - 1 - r.
    let mut carried = Vec::new();
    for &k in &ct_carried {
        carried.push(match result_cts[k] {
            Some(ct) => ct,
            None => b.full_like(0.0, args[k])?,
        });
    }
    for &j in &ct_invariants {
        carried.push(b.full_like(0.0, args[j])?);
    }
    let mut invariants: Vec<Value> = args[n..].to_vec();
    invariants.extend(&stacks);
    invariants.extend(&finals);
    invariants.extend(inits.iter().map(|&k| args[k]));
    let s_count = stacked.len();
    let finals = b.loop_(trips, &carried, &invariants, |inner, r, params, inv| {
        let last = inner.constant(Scalar::Int(trips as i32 - 1), &[])?;
        let i = inner.sub(last, r)?;
        let zero = inner.constant(Scalar::Int(0), &[])?;
        let one = inner.constant(Scalar::Int(1), &[])?;
        let mut inputs = vec![i];
        for (k, &c) in args[..n].iter().enumerate() {
            let ty = g.ty(c).clone();
            if !reads.contains(&k) {
                // Not read by the reverse body: any value of the type will do.
                inputs.push(inner.full(0.0, &ty)?);
                continue;
            }
            let init = match splat(k) {
                Some(x) => inner.constant(x, &ty.shape)?,
                None => inv[m + 2 * s_count + inits.iter().position(|&q| q == k).unwrap_or(0)],
            };
            inputs.push(match stacked.iter().position(|&s| s == k) {
                Some(s) => {
                    let prev = inner.sub(i, one)?;
                    let row = stack_row(inner, inv[m + s], prev, &ty)?;
                    let first = inner.compare(crate::ir::CmpOp::Eq, i, zero)?;
                    inner.select(first, init, row)?
                }
                None => init,
            });
        }
        inputs.extend(&inv[..m]);
        let outs = inner.inline_graph(body, &inputs)?;
        // The state leaving iteration i is stacked too (or is the final value): the
        // reverse sweep reads it there rather than recomputing it, so a body whose
        // derivative reads only its results (tanh's reads its output) is not run again.
        let mut leaving = Vec::new();
        for (s, &k) in stacked.iter().enumerate() {
            let ty = g.ty(args[k]).clone();
            let row = stack_row(inner, inv[m + s], i, &ty)?;
            let is_last = inner.compare(crate::ir::CmpOp::Eq, i, last)?;
            leaving.push((outs[k], inner.select(is_last, inv[m + s_count + s], row)?));
        }
        let sweep = inner.graph().len();
        let seeds: Vec<(Value, Value)> = ct_carried
            .iter()
            .enumerate()
            .map(|(t, &k)| (outs[k], params[t]))
            .collect();
        let wrt: Vec<Value> = ct_carried
            .iter()
            .map(|&k| inputs[1 + k])
            .chain(ct_invariants.iter().map(|&j| inputs[1 + j]))
            .collect();
        let cts = backward_multi(inner, &seeds, &wrt)?;
        for (out, stored) in leaving {
            if !matches!(inner.graph().node(out).op, crate::ir::Op::Input { .. }) {
                inner.replace_reads_from(sweep, out, stored);
            }
        }
        let mut next = Vec::with_capacity(params.len());
        for (t, &k) in ct_carried.iter().enumerate() {
            next.push(match cts[t] {
                Some(ct) => ct,
                None => inner.full_like(0.0, inputs[1 + k])?,
            });
        }
        for (t, _) in ct_invariants.iter().enumerate() {
            let acc = params[ct_carried.len() + t];
            next.push(match cts[ct_carried.len() + t] {
                Some(ct) => accumulate(inner, acc, ct)?,
                None => acc,
            });
        }
        Ok(next)
    })?;
    let mut out = vec![None; args.len()];
    for (t, &k) in ct_carried.iter().enumerate() {
        out[k] = Some(finals[t]);
    }
    for (t, &j) in ct_invariants.iter().enumerate() {
        out[j] = Some(finals[ct_carried.len() + t]);
    }
    Ok(out)
}

/// `acc + ct`. When `ct` is zero but for one window (the cotangent of a
/// `dynamic_slice`), only that window is added to: `acc` updated at the window with its
/// own window plus the update. The loop's carried accumulator then changes only in a
/// window per iteration, which a loop on the device updates in place: a body that reads
/// `x[i]` keeps an O(1) gradient step rather than an O(len x) one.
fn accumulate(b: &mut Builder, acc: Value, ct: Value) -> Result<Value> {
    let node = b.graph().node(ct).clone();
    if node.op == crate::ir::Op::DynamicUpdateSlice
        && crate::passes::rewrite::is_splat_of(b.graph(), node.args[0], 0.0)
    {
        let (update, starts) = (node.args[1], &node.args[2..]);
        let sizes = b.ty(update).shape.clone();
        let old = b.dynamic_slice(acc, starts, &sizes)?;
        let sum = b.add(old, update)?;
        return b.dynamic_update_slice(acc, sum, starts);
    }
    b.add(acc, ct)
}

/// Row `at` of `stack`, as a value of type `ty`.
fn stack_row(b: &mut Builder, stack: Value, at: Value, ty: &Type) -> Result<Value> {
    let mut row = vec![1];
    row.extend(&ty.shape);
    let starts = row_starts(b, at, row.len())?;
    let state = b.dynamic_slice(stack, &starts, &row)?;
    b.reshape(state, &ty.shape)
}

/// `[i, 0, 0, …]`: the starts of row `i` of a stack of `rank` axes.
fn row_starts(b: &mut Builder, i: Value, rank: usize) -> Result<Vec<Value>> {
    let mut starts = vec![i];
    for _ in 1..rank {
        starts.push(b.constant(Scalar::Int(0), &[])?);
    }
    Ok(starts)
}

/// The carried values whose state at the start of an iteration the reverse body reads:
/// the body's reverse sweep is built once, aside, and the carried inputs its
/// cotangents reach are the ones to stack.
fn stacked_states(
    body: &Graph,
    n: usize,
    ct_carried: &[usize],
    ct_invariants: &[usize],
) -> Result<Vec<usize>> {
    let mut b = Builder::new();
    let mut inputs = Vec::with_capacity(body.inputs.len());
    for (name, x) in &body.inputs {
        inputs.push(b.input(name, body.ty(*x).clone())?);
    }
    let outs = b.inline_graph(body, &inputs)?;
    let mut seeds = Vec::new();
    for &k in ct_carried {
        let ty = body.ty(outs[k]).clone();
        let seed = b.input(&format!("ct.{k}"), ty)?;
        seeds.push((outs[k], seed));
    }
    let wrt: Vec<Value> = ct_carried
        .iter()
        .chain(ct_invariants)
        .map(|&k| inputs[1 + k])
        .collect();
    let cts = backward_multi(&mut b, &seeds, &wrt)?;
    // Which nodes the cotangents read, back to the inputs.
    let scratch = b.graph();
    let mut live = vec![false; scratch.len()];
    let mut stack: Vec<Value> = cts.into_iter().flatten().collect();
    while let Some(x) = stack.pop() {
        if !std::mem::replace(&mut live[x.index()], true) {
            stack.extend(&scratch.node(x).args);
        }
    }
    Ok((0..n).filter(|&k| live[inputs[1 + k].index()]).collect())
}
