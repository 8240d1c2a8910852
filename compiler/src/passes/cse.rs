//! Common-subexpression elimination by hash-consing: a node equal to an earlier one (the
//! same op with the same parameters, applied to the same operands) is replaced by it.
//!
//! Ops are pure, so equal nodes compute equal values; walking the arena forward with
//! operands already redirected merges whole duplicate expressions in one run, such as the
//! two `mul` nodes a gradient of `x * x` creates. Inputs are never merged (each is a
//! distinct parameter), and neither are loops, whose bodies are separate regions; `get`
//! nodes of one loop merge like any other op. Loop bodies are cleaned separately, never
//! merged with the enclosing graph. No commutativity is assumed: `a * b` and `b * a`
//! stay two nodes.

use super::rewrite::{Rewrite, rewrite_live};
use crate::ir::{Graph, Op, Value};
use std::collections::HashMap;

/// Merges duplicate live nodes, in loop bodies too. Returns whether any were merged.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    let mut seen: HashMap<(Op, Vec<Value>), Value> = HashMap::new();
    changed
        | rewrite_live(graph, |g, v| {
            let node = g.node(v);
            if matches!(node.op, Op::Input { .. } | Op::Loop { .. }) {
                return None;
            }
            let first = *seen
                .entry((node.op.clone(), node.args.clone()))
                .or_insert(v);
            (first != v).then_some(Rewrite::Alias(first))
        })
}
