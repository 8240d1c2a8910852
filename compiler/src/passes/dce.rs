//! Dead-code elimination: drops every node no output depends on.
//!
//! Inputs are part of a program's signature and are always kept, used or not. The
//! surviving nodes keep their relative (topological) order and are renumbered densely;
//! loop bodies are cleaned recursively and regions no longer referenced are dropped.
//! Differentiation relies on this pass: derivative rules emit the partials of every
//! operand, and the ones nothing needs are removed here.

use crate::ir::{Graph, Node, Op, Region, Value};

/// Removes dead nodes and unused regions. Returns whether anything was removed.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    let mut live = vec![false; graph.nodes.len()];
    for (_, v) in graph.inputs.iter().chain(&graph.outputs) {
        live[v.index()] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if live[i] {
            for a in &graph.nodes[i].args {
                live[a.index()] = true;
            }
        }
    }
    let mut remap = vec![Value(u32::MAX); graph.nodes.len()];
    let mut region_remap = vec![None; graph.regions.len()];
    let old_regions = std::mem::take(&mut graph.regions);
    let old_nodes = std::mem::take(&mut graph.nodes);
    let mut old_regions: Vec<Option<Graph>> = old_regions.into_iter().map(Some).collect();
    for (i, node) in old_nodes.into_iter().enumerate() {
        if !live[i] {
            changed = true;
            continue;
        }
        let Node {
            mut op,
            args,
            ty,
            side,
            name,
        } = node;
        if let Op::Loop { body, .. } = &mut op {
            let mut g = old_regions[body.0 as usize].take().unwrap_or_default();
            changed |= run(&mut g);
            let new = Region(graph.regions.len() as u32);
            region_remap[body.0 as usize] = Some(new);
            graph.regions.push(g);
            *body = new;
        }
        let args = args.iter().map(|a| remap[a.index()]).collect();
        remap[i] = Value(graph.nodes.len() as u32);
        graph.nodes.push(Node {
            op,
            args,
            ty,
            side,
            name,
        });
    }
    changed |= old_regions.iter().any(Option::is_some);
    for (_, v) in graph.inputs.iter_mut().chain(graph.outputs.iter_mut()) {
        *v = remap[v.index()];
    }
    changed
}
