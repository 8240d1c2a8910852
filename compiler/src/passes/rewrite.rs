//! Machinery shared by the rewriting passes (`fold`, `simplify`, `cse`).
//!
//! Those passes walk the arena forward once. A node is either rewritten in place into
//! another node of *exactly* its type (its type is re-inferred with [`infer`], and a
//! rewrite that would change it is refused), or replaced by an earlier value of its type
//! (an alias). Later operands and the outputs are redirected through the aliases as the
//! walk reaches them, so a rule always sees its operands already rewritten. Replaced
//! nodes stay in the arena, dead; `dce` removes them. Only live nodes are rewritten, so
//! a second run over a rewritten graph finds nothing left to do and reports no change.

use crate::ir::{Graph, Node, Op, Scalar, Value, infer};

/// What a rule does to a node.
pub enum Rewrite {
    /// Use this earlier value, of the same type, instead.
    Alias(Value),
    /// Become this op applied to these operands (all earlier), of the same type.
    Replace(Op, Vec<Value>),
}

/// Runs `rule` on every live node of `graph` in arena order, applying what it returns;
/// returns whether anything changed. Loop bodies are not visited: a pass recurses into
/// `graph.regions` itself.
pub fn rewrite_live(
    graph: &mut Graph,
    mut rule: impl FnMut(&Graph, Value) -> Option<Rewrite>,
) -> bool {
    let live = live(graph);
    let mut alias: Vec<Value> = graph.values().collect();
    let mut changed = false;
    for v in graph.values() {
        let node = &mut graph.nodes[v.index()];
        for a in &mut node.args {
            *a = alias[a.index()];
        }
        if !live[v.index()] {
            continue;
        }
        match rule(graph, v) {
            Some(Rewrite::Alias(x)) if x < v && graph.node(x).ty == graph.node(v).ty => {
                alias[v.index()] = x;
                changed = true;
            }
            Some(Rewrite::Replace(op, args)) => changed |= replace(graph, v, op, args),
            Some(Rewrite::Alias(_)) | None => {}
        }
    }
    for (_, v) in &mut graph.outputs {
        *v = alias[v.index()];
    }
    changed
}

/// Makes `v` the node `op(args)` if that has exactly `v`'s type; returns whether the
/// node changed.
fn replace(graph: &mut Graph, v: Value, op: Op, args: Vec<Value>) -> bool {
    if args.iter().any(|a| a.index() >= v.index()) {
        return false;
    }
    let node = graph.node(v);
    if node.op == op && node.args == args {
        return false;
    }
    let tys: Vec<_> = args.iter().map(|a| &graph.node(*a).ty).collect();
    match infer(&graph.regions, &op, &tys) {
        Ok(ty) if ty == node.ty => {
            let side = node.side;
            graph.nodes[v.index()] = Node { op, args, ty, side };
            true
        }
        _ => false,
    }
}

/// Which nodes some output depends on.
pub fn live(graph: &Graph) -> Vec<bool> {
    let mut live = vec![false; graph.len()];
    for (_, v) in &graph.outputs {
        live[v.index()] = true;
    }
    for i in (0..graph.len()).rev() {
        if live[i] {
            for a in &graph.nodes[i].args {
                live[a.index()] = true;
            }
        }
    }
    live
}

/// The element value of `v` if it is a splat constant.
pub fn splat(graph: &Graph, v: Value) -> Option<Scalar> {
    match graph.node(v).op {
        Op::Constant { value, .. } => Some(value),
        _ => None,
    }
}

/// Whether `v` is a splat constant whose elements equal `x` (`0.0` matches `-0.0`).
pub fn is_splat_of(graph: &Graph, v: Value, x: f64) -> bool {
    splat(graph, v).is_some_and(|s| s.to_f64() == x)
}
