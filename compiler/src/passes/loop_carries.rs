//! Dead and unchanging carried values of loops.
//!
//! A carried value is **dead** when nothing reads its final value and no carried value
//! that is read depends on it (the fixpoint over the body's dependencies): the loop
//! drops it. Reverse mode makes these: a loop's derivative accumulates a cotangent for
//! every float operand, and the ones no gradient asks for are dead.
//!
//! An invariant the body does not read is dropped too.
//!
//! A carried value is **unchanging** when the body returns it as it came in: its final
//! value is its initial one, and inside the loop it is an invariant. The loop reads it
//! as an invariant instead, so nothing copies it from one iteration to the next.

use super::rewrite::rebuild_loops;
use crate::error::{Error, Result};
use crate::ir::{Graph, Op, Value};

/// Drops dead carried values and turns unchanging ones into invariants, in every loop
/// (bodies first). Returns whether any loop changed.
pub fn run(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body)?;
    }
    // Which values a live node (one an output depends on) reads.
    let read = super::rewrite::live(graph);
    let mut plans = Vec::new();
    for v in graph.values() {
        let node = graph.node(v);
        let Some((_, n, body)) = node.op.as_loop() else {
            continue;
        };
        let mut used = vec![false; n];
        for u in graph.values() {
            let get = graph.node(u);
            if let (Op::Get { index }, [of]) = (&get.op, get.args.as_slice())
                && *of == v
                && read[u.index()]
            {
                used[*index as usize] = true;
            }
        }
        plans.push(plan(graph.region(body), n, &used));
    }
    if plans.iter().all(|p| {
        p.iter()
            .all(|c| *c == Carry::Kept || *c == Carry::Invariant)
    }) {
        return Ok(changed);
    }
    let mut next = 0;
    *graph = rebuild_loops(graph, |b, g, node, args| {
        let plan = &plans[next];
        next += 1;
        let (trips, n, body) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile("not a loop".into()))?;
        let body = g.region(body);
        let kept: Vec<usize> = (0..n).filter(|&k| plan[k] == Carry::Kept).collect();
        let fixed: Vec<usize> = (0..n).filter(|&k| plan[k] == Carry::Unchanging).collect();
        let read: Vec<usize> = (n..args.len())
            .filter(|&j| plan[j] == Carry::Invariant)
            .collect();
        let carried: Vec<Value> = kept.iter().map(|&k| args[k]).collect();
        let mut invariants: Vec<Value> = fixed.iter().map(|&k| args[k]).collect();
        invariants.extend(read.iter().map(|&j| args[j]));
        let results = b.loop_(trips, &carried, &invariants, |inner, i, params, inv| {
            let mut inputs = vec![i];
            let (mut p, mut f) = (0, 0);
            for (k, &c) in plan[..n].iter().enumerate() {
                inputs.push(match c {
                    Carry::Kept => {
                        p += 1;
                        params[p - 1]
                    }
                    Carry::Unchanging => {
                        f += 1;
                        inv[f - 1]
                    }
                    // Read by nothing kept: any value of the type will do, and
                    // dead-code elimination removes what reads it.
                    Carry::Dead | Carry::Invariant => {
                        inner.full(0.0, body.ty(body.inputs()[1 + k].1))?
                    }
                });
            }
            let mut r = fixed.len();
            for (j, &c) in plan.iter().enumerate().skip(n) {
                inputs.push(if c == Carry::Invariant {
                    r += 1;
                    inv[r - 1]
                } else {
                    inner.full(0.0, body.ty(body.inputs()[1 + j].1))?
                });
            }
            let outs = inner.inline_graph(body, &inputs)?;
            Ok(kept.iter().map(|&k| outs[k]).collect())
        })?;
        let mut out = args[..n].to_vec();
        for (r, &k) in results.into_iter().zip(&kept) {
            out[k] = r;
        }
        Ok(out)
    })?;
    Ok(true)
}

/// What becomes of one operand of a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carry {
    /// A carried value that stays one.
    Kept,
    /// A carried value nothing needs, or an invariant the body does not read: dropped.
    Dead,
    /// A carried value the body returns unchanged: an invariant from now on.
    Unchanging,
    /// An invariant the body reads.
    Invariant,
}

/// The fate of each operand of a loop of `n` carried values and body `body`, given
/// which final values are read (`used`).
fn plan(body: &Graph, n: usize, used: &[bool]) -> Vec<Carry> {
    let param = |k: usize| body.inputs()[1 + k].1;
    let out = |k: usize| body.outputs()[k].1;
    // The carried inputs each output depends on.
    let reaches = |k: usize| -> Vec<usize> {
        let mut seen = vec![false; body.len()];
        let mut stack = vec![out(k)];
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut seen[x.index()], true) {
                stack.extend(&body.node(x).args);
            }
        }
        (0..n).filter(|&j| seen[param(j).index()]).collect()
    };
    let mut live = used.to_vec();
    let mut work: Vec<usize> = (0..n).filter(|&k| live[k]).collect();
    while let Some(k) = work.pop() {
        for j in reaches(k) {
            if !live[j] {
                live[j] = true;
                work.push(j);
            }
        }
    }
    // The body's nodes that a live carried value's next value reads.
    let mut needed = vec![false; body.len()];
    let mut stack: Vec<Value> = (0..n).filter(|&k| live[k]).map(out).collect();
    while let Some(x) = stack.pop() {
        if !std::mem::replace(&mut needed[x.index()], true) {
            stack.extend(&body.node(x).args);
        }
    }
    let invariants = body.inputs().len() - 1 - n;
    (0..n)
        .map(|k| {
            if !live[k] {
                Carry::Dead
            } else if out(k) == param(k) {
                Carry::Unchanging
            } else {
                Carry::Kept
            }
        })
        .chain((0..invariants).map(|q| {
            if needed[body.inputs()[1 + n + q].1.index()] {
                Carry::Invariant
            } else {
                Carry::Dead
            }
        }))
        .collect()
}
