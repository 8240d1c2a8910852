//! The verifier: checks the invariants every pass may assume.
//!
//! Operands precede their users; each node's stored type is what [`infer`] computes;
//! every `input` node is declared exactly once at its index; outputs name tensors; loop
//! bodies are verified recursively and referenced by exactly one loop. A failure on a
//! graph that came from the builder, the parser or a transform is a compiler bug, so the
//! error shows the IR around the bad value.

use super::infer::infer;
use super::op::Op;
use super::{Graph, NodeType, Value};
use crate::error::VerifyError;

/// Checks `graph` and all its regions.
pub fn verify(graph: &Graph) -> Result<(), VerifyError> {
    let mut region_users = vec![0usize; graph.regions.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let v = Value(i as u32);
        let fail = |message: String| Err(error_at(graph, v, message));
        if let Some(bad) = node.args.iter().find(|a| a.index() >= i) {
            return fail(format!("operand {bad} does not precede its user"));
        }
        match &node.op {
            Op::Input { index } => {
                match graph.inputs.get(*index as usize) {
                    Some((_, d)) if *d == v => {}
                    _ => return fail(format!("input node {index} is not declared at that index")),
                }
                if !node.args.is_empty() || !matches!(node.ty, NodeType::Tensor(_)) {
                    return fail("an input takes no operands and is a tensor".into());
                }
                continue;
            }
            Op::Loop { body, .. } => match region_users.get_mut(body.0 as usize) {
                Some(n) => *n += 1,
                None => return fail(format!("loop body region {} does not exist", body.0)),
            },
            _ => {}
        }
        let tys: Vec<&NodeType> = node
            .args
            .iter()
            .map(|a| &graph.nodes[a.index()].ty)
            .collect();
        match infer(&graph.regions, &node.op, &tys) {
            Ok(t) if t == node.ty => {}
            Ok(t) => return fail(format!("stored type {:?} but inferred {:?}", node.ty, t)),
            Err(e) => return fail(e.to_string()),
        }
    }
    for (k, (name, v)) in graph.inputs.iter().enumerate() {
        match graph.nodes.get(v.index()).map(|n| &n.op) {
            Some(Op::Input { index }) if *index as usize == k => {}
            _ => {
                return Err(error_at(
                    graph,
                    *v,
                    format!("input `{name}` is not an input node"),
                ));
            }
        }
    }
    for (name, v) in &graph.outputs {
        match graph.nodes.get(v.index()).map(|n| &n.ty) {
            Some(NodeType::Tensor(_)) => {}
            Some(NodeType::Tuple(_)) => {
                return Err(error_at(
                    graph,
                    *v,
                    format!("output `{name}` is a loop tuple"),
                ));
            }
            None => {
                return Err(VerifyError {
                    value: v.0,
                    message: format!("output `{name}` is undefined"),
                });
            }
        }
    }
    if let Some(r) = region_users.iter().position(|&n| n != 1) {
        return Err(VerifyError {
            value: 0,
            message: format!("region {r} is used by {} loops, not one", region_users[r]),
        });
    }
    for body in &graph.regions {
        verify(body)?;
    }
    Ok(())
}

/// A verifier error at `v`, with the printed IR of the nodes just before and after it.
fn error_at(graph: &Graph, v: Value, message: String) -> VerifyError {
    let text = super::print(graph);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{v} ")))
        .unwrap_or(0);
    let context = lines[at.saturating_sub(3)..(at + 2).min(lines.len())].join("\n");
    VerifyError {
        value: v.0,
        message: format!("{message}\n{context}"),
    }
}
