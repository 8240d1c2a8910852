//! The tensor IR: an arena of SSA values with typed handles.
//!
//! A [`Graph`] owns its nodes in one `Vec`; a [`Value`] is a `u32` index into it. Operands
//! always precede their users, so arena order is a topological order and walking it
//! backwards is a reverse pass. Every node carries its type. Loop bodies are graphs of
//! their own, stored in [`Graph::regions`] and referenced by [`Region`] handles.

mod builder;
mod infer;
mod interp;
mod op;
mod parse;
mod print;
mod types;
mod verify;

pub use builder::Builder;
pub use infer::infer;
pub use interp::{Budget, Rounding, Tensor, eval, eval_graph, eval_rounded, eval_with};
pub use op::{BinaryOp, CmpOp, DotDims, Op, OpClass, ReduceKind, Region, UnaryOp};
pub use parse::parse;
pub use print::{labels, print};
pub use types::{DType, Scalar, Type, fmt_shape, human_bytes};
pub use verify::verify;

use crate::error::{Error, Result};
use std::fmt;

/// A handle to a value (a node) of a [`Graph`], printed `%n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub u32);

impl Value {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// The type of a node's result: a tensor, or the tuple a loop returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// A tensor value.
    Tensor(Type),
    /// The tuple of a [`Op::Loop`], read with [`Op::Get`].
    Tuple(Vec<Type>),
}

/// Which side of differentiation a node belongs to.
///
/// Reverse mode tags every node it emits [`Side::Adjoint`] and forward mode
/// [`Side::Tangent`]; everything else is [`Side::Primal`]. Passes keep the tags, so
/// lowering can tell the forward values a derivative reads (residuals) from the ones it
/// recomputes, and printed programs show what each transform added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Side {
    /// Part of the original program.
    #[default]
    Primal,
    /// Emitted by a reverse-mode rule (`grad`, `vjp`): a cotangent or what computes one.
    Adjoint,
    /// Emitted by a forward-mode rule (`jvp`): a tangent or what computes one.
    Tangent,
}

impl Side {
    /// Whether differentiation emitted the node (reverse or forward mode).
    pub fn is_derivative(self) -> bool {
        self != Side::Primal
    }

    /// The tag printed after a node's type (empty for the primal side).
    pub fn tag(self) -> &'static str {
        match self {
            Side::Primal => "",
            Side::Adjoint => "adjoint",
            Side::Tangent => "tangent",
        }
    }
}

/// One operation and its result.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// The operands, all earlier in the arena.
    pub args: Vec<Value>,
    /// The result type.
    pub ty: NodeType,
    /// The side of differentiation it came from.
    pub side: Side,
    /// The name the value had in the program text (`%h` is `h`), kept through the
    /// transforms so that printed derivative programs and dumps use it. A debug name
    /// only: it never changes what the program computes, nor whether two nodes or two
    /// programs are equal.
    pub name: Option<Box<str>>,
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.op == other.op
            && self.args == other.args
            && self.ty == other.ty
            && self.side == other.side
    }
}

impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.op.hash(state);
        self.args.hash(state);
        self.ty.hash(state);
        self.side.hash(state);
    }
}

/// A program: nodes in topological order, named inputs and named outputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// The arena of nodes; a [`Value`] indexes it.
    pub(crate) nodes: Vec<Node>,
    /// Declared inputs in order: each name and its [`Op::Input`] node.
    pub(crate) inputs: Vec<(String, Value)>,
    /// Declared outputs in order: each name and the value returned.
    pub(crate) outputs: Vec<(String, Value)>,
    /// Loop bodies, referenced by [`Region`] handles.
    pub(crate) regions: Vec<Graph>,
}

impl Graph {
    /// The arena of nodes, in topological order; a [`Value`] indexes it. Nodes enter
    /// only through the [`Builder`], which infers every type.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Declared inputs in order: each name and its [`Op::Input`] node.
    pub fn inputs(&self) -> &[(String, Value)] {
        &self.inputs
    }

    /// Declared outputs in order: each name and the value returned.
    pub fn outputs(&self) -> &[(String, Value)] {
        &self.outputs
    }

    /// Loop bodies, referenced by [`Region`] handles.
    pub fn regions(&self) -> &[Graph] {
        &self.regions
    }

    /// Keeps only the outputs whose names `keep` accepts, in their order. Values no
    /// output reads any more stay in the arena until `passes::dce` removes them.
    pub fn retain_outputs(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.outputs.retain(|(name, _)| keep(name));
    }

    /// The node behind a value.
    pub fn node(&self, v: Value) -> &Node {
        &self.nodes[v.index()]
    }

    /// The tensor type of a value.
    ///
    /// # Panics
    /// If the value is a loop's tuple; the verifier guarantees only [`Op::Get`] reads
    /// those, so reaching this is a compiler bug.
    pub fn ty(&self, v: Value) -> &Type {
        match &self.nodes[v.index()].ty {
            NodeType::Tensor(t) => t,
            NodeType::Tuple(_) => panic!("{v} is a loop tuple, used as a tensor"),
        }
    }

    /// The body graph behind a region handle.
    pub fn region(&self, r: Region) -> &Graph {
        &self.regions[r.0 as usize]
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every value handle, in arena (topological) order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = Value> + use<> {
        (0..self.nodes.len() as u32).map(Value)
    }

    /// The input named `name`.
    pub fn input(&self, name: &str) -> Result<Value> {
        lookup(&self.inputs, name).ok_or_else(|| {
            Error::Name(format!(
                "no input named `{name}` (inputs: {})",
                names(&self.inputs)
            ))
        })
    }

    /// The output named `name`.
    pub fn output(&self, name: &str) -> Result<Value> {
        lookup(&self.outputs, name).ok_or_else(|| {
            Error::Name(format!(
                "no output named `{name}` (outputs: {})",
                names(&self.outputs)
            ))
        })
    }

    /// Whether any node (in this graph or a nested region) is a loop.
    pub fn has_loop(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.op, Op::Loop { .. }))
    }
}

fn lookup(list: &[(String, Value)], name: &str) -> Option<Value> {
    list.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
}

fn names(list: &[(String, Value)]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    list.iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `name` is a valid input or output name: `[A-Za-z_][A-Za-z0-9_.]*`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}
