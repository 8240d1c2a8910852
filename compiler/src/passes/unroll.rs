//! Loop unrolling: replaces every `loop` by copies of its body, one per iteration.
//!
//! Kernels have no control flow across dispatches, so lowering runs this pass first:
//! each iteration's index becomes a constant and its carried values flow from one copy
//! of the body to the next. Nested loops unroll from the inside out. The result has no
//! regions; a loop whose unrolled size would exceed [`MAX_UNROLLED_NODES`] is an error
//! rather than an enormous program.

use crate::error::{Error, Result};
use crate::ir::{Builder, Graph, Node, Op, Scalar, Value};

/// The largest number of nodes unrolling may create.
pub const MAX_UNROLLED_NODES: usize = 200_000;

/// Unrolls every loop. Returns whether the graph had any.
pub fn run(graph: &mut Graph) -> Result<bool> {
    run_where(graph, |_, _| true)
}

/// Unrolls the top-level loops for which `unroll(trips, body)` holds (with every loop
/// nested in them) and keeps the others as loops. Returns whether any was unrolled.
pub fn run_where(graph: &mut Graph, mut unroll: impl FnMut(u32, &Graph) -> bool) -> Result<bool> {
    if graph.regions.is_empty() {
        return Ok(false);
    }
    let mut changed = false;
    *graph = super::rewrite::rebuild_loops(graph, |b, g, node, args| {
        let (trips, carried, body) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile("not a loop".into()))?;
        let body = g.region(body);
        if unroll(trips, body) {
            changed = true;
            return unroll_loop(b, g, node, args);
        }
        let (c, x) = args.split_at(carried);
        b.loop_of(trips, c, x, body)
    })?;
    Ok(changed)
}

/// The number of nodes `g` would have with every loop in it unrolled, saturating.
pub fn unrolled_size(g: &Graph) -> usize {
    g.nodes
        .iter()
        .fold(0usize, |n, node| match node.op.as_loop() {
            Some((trips, _, body)) => {
                n.saturating_add((trips as usize).saturating_mul(unrolled_size(g.region(body))))
            }
            None => n.saturating_add(1),
        })
}

/// Copies `g`'s nodes into `b` with its inputs bound to `inputs`, unrolling loops;
/// returns the values of `g`'s outputs.
fn inline(b: &mut Builder, g: &Graph, inputs: &[Value]) -> Result<Vec<Value>> {
    let mut map: Vec<Vec<Value>> = Vec::with_capacity(g.len());
    for (i, node) in g.nodes.iter().enumerate() {
        if b.graph().len() > MAX_UNROLLED_NODES {
            return Err(Error::Compile(format!(
                "unrolling loops would create more than {MAX_UNROLLED_NODES} nodes"
            )));
        }
        let args: Vec<Value> = node.args.iter().map(|a| map[a.index()][0]).collect();
        let mapped = match &node.op {
            Op::Input { index } => vec![inputs[*index as usize]],
            Op::Loop { .. } => unroll_loop(b, g, node, &args)?,
            Op::Get { index } => {
                let tuple = &map[node.args[0].index()];
                vec![tuple[*index as usize]]
            }
            op => {
                b.set_side(node.side);
                let v = b.push(op.clone(), &args)?;
                // Each iteration's copy keeps the body's name; printing tells them apart.
                b.copy_name(v, g, Value(i as u32));
                vec![v]
            }
        };
        map.push(mapped);
    }
    Ok(g.outputs.iter().map(|(_, v)| map[v.index()][0]).collect())
}

/// The loop `node` of `g` over operands `args`, unrolled into `b`: its body once per
/// iteration, the index a constant; returns the final carried values.
fn unroll_loop(b: &mut Builder, g: &Graph, node: &Node, args: &[Value]) -> Result<Vec<Value>> {
    let (trips, carried, body) = node
        .op
        .as_loop()
        .ok_or_else(|| Error::Compile("not a loop".into()))?;
    let body = g.region(body);
    let mut state: Vec<Value> = args[..carried].to_vec();
    let invariants = &args[carried..];
    for i in 0..trips {
        b.set_side(node.side);
        let index = b.constant(Scalar::Int(i as i32), &[])?;
        let mut body_inputs = vec![index];
        body_inputs.extend(&state);
        body_inputs.extend(invariants);
        state = inline(b, body, &body_inputs)?;
    }
    Ok(state)
}
