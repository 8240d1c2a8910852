//! Machinery shared by the rewriting passes (`fold`, `simplify`, `cse`), and by the
//! loop passes (`unroll`, `licm`, `loop_to_map`), which copy a graph anew with each of
//! its loops replaced ([`rebuild_loops`]).
//!
//! Those passes walk the arena forward once. A node is either rewritten in place into
//! another node of *exactly* its type (its type is re-inferred with [`infer`], and a
//! rewrite that would change it is refused), or replaced by an earlier value of its type
//! (an alias). Later operands and the outputs are redirected through the aliases as the
//! walk reaches them, so a rule always sees its operands already rewritten. Replaced
//! nodes stay in the arena, dead; `dce` removes them. Only live nodes are rewritten, so
//! a second run over a rewritten graph finds nothing left to do and reports no change.

use crate::ir::{Builder, Graph, Node, Op, Scalar, Value, infer};

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
            let (side, name) = (node.side, node.name.clone());
            graph.nodes[v.index()] = Node {
                op,
                args,
                ty,
                side,
                name,
            };
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

/// Rebuilds `g` through the [`Builder`], for rewrites that add nodes (which cannot be
/// done in place, since operands must precede their users). For each value, `replace`
/// may emit its replacement, given the map from old values to new ones; every other
/// node is copied. Inputs, outputs and side tags are kept. Returns `None` (leaving the
/// caller's graph as it was) when emitting fails or a replacement changes a type, which
/// a correct rule never does.
pub fn rebuild(
    g: &Graph,
    mut replace: impl FnMut(&mut Builder, &[Value], Value) -> Option<crate::error::Result<Value>>,
) -> Option<Graph> {
    let mut b = Builder::from_graph(Graph {
        regions: g.regions.clone(),
        ..Graph::default()
    });
    let mut map: Vec<Value> = Vec::with_capacity(g.len());
    for v in g.values() {
        let node = g.node(v);
        b.set_side(node.side);
        let new = match &node.op {
            Op::Input { index } => {
                let (name, _) = g.inputs.get(*index as usize)?;
                let w = b.input(name, g.ty(v).clone()).ok()?;
                // Inputs are declared in arena order by every builder; keep the indices.
                if b.graph().inputs.len() != *index as usize + 1 {
                    return None;
                }
                w
            }
            op => match replace(&mut b, &map, v) {
                Some(result) => result.ok()?,
                None => {
                    let args: Vec<Value> = node.args.iter().map(|a| map[a.index()]).collect();
                    b.push(op.clone(), &args).ok()?
                }
            },
        };
        if b.graph().node(new).ty != node.ty {
            return None;
        }
        if b.graph().node(new).name.is_none() && new.index() >= map.len() {
            b.copy_name(new, g, v);
        }
        map.push(new);
    }
    for (name, v) in &g.outputs {
        b.output(name, map[v.index()]).ok()?;
    }
    b.finish().ok()
}

/// A copy of `graph` (same inputs, outputs and sides) in which every loop is what
/// `on_loop(builder, graph, loop node, operands)` makes of it: the values of the loop's
/// results, which its `get`s then read. Other nodes are copied as they are.
pub fn rebuild_loops(
    graph: &Graph,
    mut on_loop: impl FnMut(&mut Builder, &Graph, &Node, &[Value]) -> crate::error::Result<Vec<Value>>,
) -> crate::error::Result<Graph> {
    let mut b = Builder::new();
    let inputs = graph
        .inputs
        .iter()
        .map(|(name, v)| {
            let w = b.input(name, graph.ty(*v).clone())?;
            b.copy_name(w, graph, *v);
            Ok(w)
        })
        .collect::<crate::error::Result<Vec<Value>>>()?;
    let mut map: Vec<Vec<Value>> = Vec::with_capacity(graph.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        b.set_side(node.side);
        let args: Vec<Value> = node.args.iter().map(|a| map[a.index()][0]).collect();
        let mapped = match &node.op {
            Op::Input { index } => vec![inputs[*index as usize]],
            Op::Loop { .. } => on_loop(&mut b, graph, node, &args)?,
            Op::Get { index } => {
                let v = map[node.args[0].index()][*index as usize];
                if b.graph().node(v).name.is_none() {
                    b.copy_name(v, graph, Value(i as u32));
                }
                vec![v]
            }
            op => {
                let v = b.push(op.clone(), &args)?;
                b.copy_name(v, graph, Value(i as u32));
                vec![v]
            }
        };
        map.push(mapped);
    }
    for (name, v) in &graph.outputs {
        b.output(name, map[v.index()][0])?;
    }
    b.finish()
}
