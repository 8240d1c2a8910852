//! The printer: a [`Graph`] as readable text that [`parse`](crate::ir::parse()) reads back.
//!
//! Each node takes one line, `%n = op operands attributes : type`, in arena order, and the
//! graph's outputs follow as `output name = %v` lines. A value is printed by its debug name
//! ([`Node::name`], the name it had in the program text, kept through the transforms) or,
//! without one, by its arena index: `%h`, `%12`. Where two values share a name (the
//! copies of an unrolled loop's body), the later ones get `.2`, `.3`, ... appended, so
//! every label is unique and `print(parse(print(g)))` equals `print(g)`. A loop prints its body inline, indented by
//! two spaces, whatever the body's index in [`Graph::regions`]. The printer never panics,
//! even on a graph that breaks the IR invariants, because the verifier prints the IR
//! around the bad value it reports.

use super::op::{AttrValue, Op};
use super::types::Scalar;
use super::{Graph, Node, NodeType, Value};
use std::collections::HashSet;
use std::fmt::Write;

/// The label each value of `graph` is printed with (without the `%`): its debug name,
/// made unique by a `.k` suffix where an earlier value has it, or its arena index.
/// Loop bodies label their own values.
pub fn labels(graph: &Graph) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(graph.nodes.len());
    let mut taken: HashSet<String> = HashSet::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let label = match node.name.as_deref() {
            Some(name) if !taken.contains(name) => name.to_string(),
            Some(name) => (2..)
                .map(|k| format!("{name}.{k}"))
                .find(|l| !taken.contains(l))
                .unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        };
        taken.insert(label.clone());
        out.push(label);
    }
    out
}

/// The text form of `graph`, one line per node and per output, each ending in `\n`.
pub fn print(graph: &Graph) -> String {
    let mut out = String::new();
    write_graph(&mut out, graph, 0);
    out
}

/// Appends `graph` at indentation `indent` (in spaces).
fn write_graph(out: &mut String, graph: &Graph, indent: usize) {
    let labels = labels(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        write_node(out, graph, &labels, Value(i as u32), node, indent);
    }
    for (name, v) in &graph.outputs {
        pad(out, indent);
        // Writing to a `String` cannot fail.
        let _ = writeln!(out, "output {name} = {}", label(&labels, *v));
    }
}

/// `%label` of `v`, or its index for a value out of range (a broken graph, which the
/// verifier reports).
fn label(labels: &[String], v: Value) -> String {
    match labels.get(v.index()) {
        Some(l) => format!("%{l}"),
        None => v.to_string(),
    }
}

/// Appends the line (or, for a loop, the lines) of one node.
fn write_node(
    out: &mut String,
    graph: &Graph,
    labels: &[String],
    v: Value,
    node: &Node,
    indent: usize,
) {
    pad(out, indent);
    let _ = write!(out, "{} = {}", label(labels, v), node.op.name());
    match &node.op {
        Op::Input { index } => match graph.inputs.get(*index as usize) {
            Some((name, _)) => {
                let _ = write!(out, " {name}");
            }
            // Only a broken graph gets here; the verifier reports it.
            None => {
                let _ = write!(out, " <undeclared input {index}>");
            }
        },
        Op::Constant { value, .. } => {
            let _ = write!(out, " {value}");
        }
        Op::Literal { values, shape, .. } => {
            out.push(' ');
            write_nested(out, values, shape);
        }
        _ => {}
    }
    for (k, a) in node.args.iter().enumerate() {
        let sep = if k == 0 { " " } else { ", " };
        let _ = write!(out, "{sep}{}", label(labels, *a));
    }
    for (key, value) in node.op.attributes() {
        let _ = write!(out, " {key}=");
        write_value(out, &value);
    }
    if let Op::Loop { body, .. } = &node.op {
        out.push_str(" {\n");
        match graph.regions.get(body.0 as usize) {
            Some(region) => write_graph(out, region, indent + 2),
            None => {
                pad(out, indent + 2);
                let _ = writeln!(out, "# missing region {}", body.0);
            }
        }
        pad(out, indent);
        out.push('}');
    }
    out.push_str(" : ");
    write_type(out, &node.ty);
    if node.side.is_derivative() {
        out.push(' ');
        out.push_str(node.side.tag());
    }
    out.push('\n');
}

/// Appends an attribute's value: an integer, a list `[a,b,c]` or a literal.
fn write_value(out: &mut String, value: &AttrValue) {
    let _ = match value {
        AttrValue::Int(x) => write!(out, "{x}"),
        AttrValue::Index(x) => write!(out, "{x}"),
        AttrValue::List(items) => {
            write_list(out, items);
            Ok(())
        }
        AttrValue::Literal(x) => write!(out, "{x}"),
    };
}

/// Appends `[a,b,c]`, with no spaces.
fn write_list(out: &mut String, items: &[usize]) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
}

/// Appends a node type: `f32[2,3]`, or `(f32[3], f32[])` for a loop's tuple.
fn write_type(out: &mut String, ty: &NodeType) {
    match ty {
        NodeType::Tensor(t) => {
            let _ = write!(out, "{t}");
        }
        NodeType::Tuple(items) => {
            out.push('(');
            for (i, t) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{t}");
            }
            out.push(')');
        }
    }
}

/// Appends `indent` spaces.
fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes the row-major `values` of a tensor of `shape` as nested lists,
/// `[[1.0, 0.0], [2.0, 3.0]]`, one level per axis.
fn write_nested(out: &mut String, values: &[Scalar], shape: &[usize]) {
    let Some((&n, inner)) = shape.split_first() else {
        if let Some(v) = values.first() {
            let _ = write!(out, "{v}");
        }
        return;
    };
    let step: usize = inner.iter().product();
    out.push('[');
    for k in 0..n {
        if k > 0 {
            out.push_str(", ");
        }
        let part = values.get(k * step..(k + 1) * step).unwrap_or(&[]);
        write_nested(out, part, inner);
    }
    out.push(']');
}
