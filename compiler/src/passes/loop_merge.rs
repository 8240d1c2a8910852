//! Merging a loop into a later loop that computes everything it does.
//!
//! Reverse mode runs a loop's iterations again to stack the states its reverse loop
//! reads: a second loop with the same trip count, initial values and invariants, whose
//! body is the first body plus the stacking, and whose extra carried values start as
//! constants. The first loop's results are then the second's first results, so the
//! first is redundant: this pass builds the second loop where the first was (its extra
//! initial values are constants, available anywhere) and reads both loops' results from
//! it, so the forward iterations run once.
//!
//! Loop `A` is merged into a later loop `B` when they have the same trip count, `B`'s
//! carried operands start with `A`'s and continue with constants, their invariants are
//! the same values, and value numbering `A`'s body against `B`'s (with `A`'s inputs
//! mapped to `B`'s) finds every node of `A`'s body in `B`'s and `A`'s outputs among
//! `B`'s first ones. Bodies with nested loops are left alone.

use super::rewrite::rebuild_loops;
use crate::error::{Error, Result};
use crate::ir::{Graph, Op, Value};
use std::collections::HashMap;

/// Merges every loop that a later loop subsumes. Returns whether any was merged.
pub fn run(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body)?;
    }
    let loops: Vec<Value> = graph
        .values()
        .filter(|v| graph.node(*v).op.as_loop().is_some())
        .collect();
    // For each loop (by ordinal) the later loop it merges into.
    let mut into: Vec<Option<usize>> = vec![None; loops.len()];
    let mut absorbed = vec![false; loops.len()];
    for a in 0..loops.len() {
        for b in a + 1..loops.len() {
            if !absorbed[b] && subsumes(graph, loops[a], loops[b]) {
                into[a] = Some(b);
                absorbed[b] = true;
                break;
            }
        }
    }
    if into.iter().all(Option::is_none) {
        return Ok(changed);
    }
    let mut ordinal = 0;
    let mut built: HashMap<usize, Vec<Value>> = HashMap::new();
    *graph = rebuild_loops(graph, |bld, g, node, args| {
        let o = ordinal;
        ordinal += 1;
        if let Some(r) = built.remove(&o) {
            return Ok(r);
        }
        let (trips, n, body) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile("not a loop".into()))?;
        let (target, carried, invariants) = match into[o] {
            Some(b) => {
                let later = g.node(loops[b]);
                let (_, nb, _) = later
                    .op
                    .as_loop()
                    .ok_or_else(|| Error::Compile("not a loop".into()))?;
                let mut carried = args[..n].to_vec();
                for extra in &later.args[n..nb] {
                    let c = g.node(*extra);
                    carried.push(bld.push(c.op.clone(), &[])?);
                }
                (Some((b, later)), carried, args[n..].to_vec())
            }
            None => (None, args[..n].to_vec(), args[n..].to_vec()),
        };
        let body = match target {
            Some((_, later)) => {
                let (_, _, region) = later
                    .op
                    .as_loop()
                    .ok_or_else(|| Error::Compile("not a loop".into()))?;
                g.region(region)
            }
            None => g.region(body),
        };
        let results = bld.loop_of(trips, &carried, &invariants, body)?;
        Ok(match target {
            Some((b, _)) => {
                built.insert(b, results.clone());
                results[..n].to_vec()
            }
            None => results,
        })
    })?;
    Ok(true)
}

/// Whether the loop at `b` computes every result of the loop at `a` as its first
/// results, from the same operands.
fn subsumes(g: &Graph, a: Value, b: Value) -> bool {
    let (na, nb) = (g.node(a), g.node(b));
    let (Some((ta, ca, ra)), Some((tb, cb, rb))) = (na.op.as_loop(), nb.op.as_loop()) else {
        return false;
    };
    if ta != tb
        || ca > cb
        || na.args[..ca] != nb.args[..ca]
        || na.args[ca..] != nb.args[cb..]
        || !nb.args[ca..cb]
            .iter()
            .all(|x| matches!(g.node(*x).op, Op::Constant { .. }))
    {
        return false;
    }
    let (body_a, body_b) = (g.region(ra), g.region(rb));
    if body_a.has_loop() || body_b.has_loop() {
        return false;
    }
    let mut numbering: HashMap<(&Op, &[Value]), Value> = HashMap::new();
    for v in body_b.values() {
        let node = body_b.node(v);
        if !matches!(node.op, Op::Input { .. }) {
            numbering.entry((&node.op, &node.args)).or_insert(v);
        }
    }
    // Only what `A`'s outputs read has to be found: dead nodes may differ.
    let mut live = vec![false; body_a.len()];
    let mut stack: Vec<Value> = body_a.outputs().iter().map(|(_, v)| *v).collect();
    while let Some(x) = stack.pop() {
        if !std::mem::replace(&mut live[x.index()], true) {
            stack.extend(&body_a.node(x).args);
        }
    }
    let mut map: Vec<Value> = Vec::with_capacity(body_a.len());
    for v in body_a.values() {
        let node = body_a.node(v);
        if !live[v.index()] && !matches!(node.op, Op::Input { .. }) {
            map.push(v);
            continue;
        }
        let mapped = match node.op {
            Op::Input { index } => {
                let j = index as usize;
                let k = if j <= ca { j } else { j - ca + cb };
                match body_b.inputs().get(k) {
                    Some((_, x)) if body_b.ty(*x) == body_a.ty(v) => *x,
                    _ => return false,
                }
            }
            _ => {
                let args: Vec<Value> = node.args.iter().map(|x| map[x.index()]).collect();
                match numbering.get(&(&node.op, args.as_slice())) {
                    Some(x) => *x,
                    None => return false,
                }
            }
        };
        map.push(mapped);
    }
    (0..ca).all(|k| map[body_a.outputs()[k].1.index()] == body_b.outputs()[k].1)
}
