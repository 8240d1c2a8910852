//! The f64 reference interpreter: the numeric oracle every other backend is checked against.
//!
//! [`eval`] and [`eval_graph`] run a [`Graph`] on host [`Tensor`]s and implement exactly
//! the semantics documented on [`Op`]. Every dtype is stored as `f64`. Floats (`f32`) are
//! computed in full f64 precision and never rounded to f32, so the interpreter is the
//! more accurate side of any comparison. Integers follow WGSL: they are computed exactly
//! in `i64` and wrapped to 32 bits, integer division truncates, `a / 0 == a` and
//! `i32::MIN / -1 == i32::MIN`. Booleans are 0 or 1.
//!
//! Where the op docs leave a choice open, the interpreter propagates NaN: elementwise and
//! reduced `max`/`min` of anything with a NaN is NaN, as in NumPy and JAX. Float sums
//! (reductions, products, `scatter_add`) accumulate in row-major order, starting from 0.
//!
//! The graph is verified before it runs, so every kernel may rely on its operands' types;
//! inputs are checked against their declarations. Bad inputs are errors, never panics.

use super::op::{BinaryOp, CmpOp, DotDims, Op, ReduceKind, UnaryOp};
use super::types::{DType, Type};
use super::{Graph, Node, NodeType};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// A host tensor: a type and row-major data.
///
/// Every dtype is stored as `f64`: integers exactly, booleans as 0 or 1. [`Tensor::new`]
/// checks that the data fits the type; the fields are public for reading, and [`eval`]
/// checks them again for tensors built by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The element type and shape.
    pub ty: Type,
    /// The elements in row-major order.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor of type `ty` holding `data`.
    ///
    /// Fails with [`Error::Input`] (named `<tensor>`) when the length is not the type's
    /// element count, or when an `i32`, `u32` or `bool` element is not a value of that
    /// type (integral and in range; 0 or 1 for `bool`).
    pub fn new(ty: Type, data: Vec<f64>) -> Result<Tensor> {
        check_data(&ty, &data).map_err(|message| Error::Input {
            name: "<tensor>".to_string(),
            message,
        })?;
        Ok(Tensor { ty, data })
    }

    /// An `f32` scalar.
    pub fn scalar(x: f64) -> Tensor {
        Tensor {
            ty: Type::f32(&[]),
            data: vec![x],
        }
    }

    /// A tensor of type `ty` whose elements are all zero (`false` for `bool`).
    pub fn zeros(ty: &Type) -> Tensor {
        Tensor {
            ty: ty.clone(),
            data: vec![0.0; ty.numel()],
        }
    }

    /// An `f32` tensor of `shape`; fails when the length does not match.
    pub fn from_f32(shape: &[usize], data: Vec<f64>) -> Result<Tensor> {
        Tensor::new(Type::f32(shape), data)
    }

    /// An `i32` tensor of `shape`; fails when the length does not match.
    pub fn from_i32(shape: &[usize], data: &[i32]) -> Result<Tensor> {
        Tensor::new(Type::i32(shape), data.iter().map(|&x| x as f64).collect())
    }

    /// A `u32` tensor of `shape`; fails when the length does not match.
    pub fn from_u32(shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let data = data.iter().map(|&x| x as f64).collect();
        Tensor::new(Type::new(DType::U32, shape), data)
    }

    /// A `bool` tensor of `shape`; fails when the length does not match.
    pub fn from_bool(shape: &[usize], data: &[bool]) -> Result<Tensor> {
        let data = data.iter().map(|&b| b as u8 as f64).collect();
        Tensor::new(Type::new(DType::Bool, shape), data)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.ty.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.ty.dtype
    }
}

/// Why `data` is not a valid value of type `ty`, if it is not.
fn check_data(ty: &Type, data: &[f64]) -> Result<(), String> {
    if super::infer::checked_numel(&ty.shape).is_none() {
        return Err(super::infer::too_large(ty));
    }
    if data.len() != ty.numel() {
        return Err(format!(
            "{ty} has {} elements, got {}",
            ty.numel(),
            data.len()
        ));
    }
    let (lo, hi) = match ty.dtype {
        DType::F32 => return Ok(()),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::Bool => (0.0, 1.0),
    };
    match data
        .iter()
        .position(|&x| x.fract() != 0.0 || x < lo || x > hi)
    {
        Some(i) => Err(format!(
            "element {i} of {ty} is {}, not a {} value",
            data[i], ty.dtype
        )),
        None => Ok(()),
    }
}

/// How much the interpreter may hold and do before it stops with an error, rather than
/// exhausting memory or running for hours: it is a reference for tests and small
/// programs, not an engine for big ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most elements one tensor may have (each takes 8 bytes).
    pub max_elements: u64,
    /// The most element operations (one per result element, times the contracted
    /// length of a product, plus one per element read by a reduction) of one run,
    /// loop iterations included.
    pub max_work: u64,
}

impl Default for Budget {
    /// 2²⁸ elements per tensor (2 GiB) and 2³⁵ element operations (a few minutes):
    /// a comfortable fit for a machine with 24 GiB.
    fn default() -> Budget {
        Budget {
            max_elements: 1 << 28,
            max_work: 1 << 35,
        }
    }
}

/// What one loop iteration costs against [`Budget::max_work`], body aside.
const ITERATION_COST: u64 = 1024;

/// The element operations running `node` (not a loop) charges: one per result
/// element, times the contracted length of a product, plus one per element a reduction
/// or scatter reads; nothing for a tuple.
fn node_cost(graph: &Graph, node: &Node) -> u64 {
    let NodeType::Tensor(ty) = &node.ty else {
        return 0;
    };
    let numel = ty
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    let per = match &node.op {
        Op::Dot(dims) => {
            let l = graph.node(node.args[0]);
            match &l.ty {
                NodeType::Tensor(lt) => dims
                    .lhs_contract
                    .iter()
                    .map(|&a| lt.shape[a] as u64)
                    .product(),
                NodeType::Tuple(_) => 1,
            }
        }
        _ => 1,
    };
    let read: u64 = match &node.op {
        Op::Reduce { .. } | Op::ScatterAdd { .. } => node
            .args
            .iter()
            .map(|a| match &graph.node(*a).ty {
                NodeType::Tensor(t) => t.numel() as u64,
                NodeType::Tuple(_) => 0,
            })
            .sum(),
        _ => 0,
    };
    numel.saturating_mul(per).saturating_add(read)
}

/// What one run of `graph` will charge, loops included (their trips times an
/// iteration's cost and their body's), computed without running it: shapes are
/// static, so a run that could never fit the budget fails before it starts.
fn static_cost(graph: &Graph) -> u64 {
    graph
        .nodes
        .iter()
        .map(|node| match node.op.as_loop() {
            Some((trips, _, body)) => u64::from(trips)
                .saturating_mul(ITERATION_COST.saturating_add(static_cost(graph.region(body)))),
            None => node_cost(graph, node),
        })
        .fold(0, u64::saturating_add)
}

/// What [`eval_rounded`] calls on each floating-point result: the graph or loop body
/// holding the node, the node that produced it, and its elements, which it may change in
/// place.
pub type Rounding<'r> = &'r dyn Fn(&Graph, &Node, &mut [f64]);

/// A [`Budget`] as it is spent during one run, and the rounding applied to each
/// floating-point result, if any.
struct Spending<'r> {
    budget: Budget,
    work: std::cell::Cell<u64>,
    rounding: Option<Rounding<'r>>,
}

impl Spending<'_> {
    /// Charges the node about to run, before anything is allocated.
    fn charge(&self, graph: &Graph, node: &Node) -> Result<()> {
        let NodeType::Tensor(ty) = &node.ty else {
            return Ok(());
        };
        let numel = ty
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        if numel > self.budget.max_elements {
            return Err(Error::Eval(format!(
                "`{}` : {ty} has {numel} elements, more than the interpreter's budget of {} per tensor",
                node.op.name(),
                self.budget.max_elements
            )));
        }
        let cost = node_cost(graph, node);
        let spent = self.work.get().saturating_add(cost);
        if spent > self.budget.max_work {
            return Err(Error::Eval(format!(
                "the program needs more than the interpreter's budget of {} element operations (at `{}` : {ty})",
                self.budget.max_work,
                node.op.name()
            )));
        }
        self.work.set(spent);
        Ok(())
    }

    /// Fails now if `ahead` more element operations would exceed the budget.
    fn check_ahead(&self, ahead: u64) -> Result<()> {
        if self.work.get().saturating_add(ahead) > self.budget.max_work {
            let need = match ahead {
                u64::MAX => "more than 2^64".to_string(),
                n => n.to_string(),
            };
            return Err(Error::Eval(format!(
                "the program needs more than the interpreter's budget of {} element operations (a loop needs {need})",
                self.budget.max_work
            )));
        }
        Ok(())
    }

    /// Charges one loop iteration: as much as [`ITERATION_COST`] element operations,
    /// about what the interpreter spends setting one up.
    fn charge_iteration(&self) -> Result<()> {
        let spent = self.work.get().saturating_add(ITERATION_COST);
        if spent > self.budget.max_work {
            return Err(Error::Eval(format!(
                "the program needs more than the interpreter's budget of {} element operations (in a loop)",
                self.budget.max_work
            )));
        }
        self.work.set(spent);
        Ok(())
    }
}

/// Runs `graph` on named inputs and returns its outputs, named, in declared order.
///
/// Fails with [`Error::Name`] for a name in `inputs` that the graph does not declare,
/// with [`Error::Input`] for a declared input that is missing or whose type or data is
/// wrong, and with [`Error::Verify`] when the graph itself is malformed.
pub fn eval(graph: &Graph, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
    eval_with(graph, inputs, Budget::default())
}

/// [`eval`] within `budget`: fails with [`Error::Eval`] before a tensor or the total
/// work would exceed it.
pub fn eval_with(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    budget: Budget,
) -> Result<Vec<(String, Tensor)>> {
    eval_inner(graph, inputs, budget, None)
}

/// [`eval`] with `rounding` applied to every floating-point result as it is computed,
/// inside loop bodies too: a tool for error analysis. Perturbing each result by the
/// rounding error a device's `f32` arithmetic may make (Monte Carlo arithmetic) shows
/// how far that error can move each output, which no input perturbation shows: the
/// derivative of `tanh` formed as `1 - y·y` from a saturated `y`, for one, loses most
/// of its digits in `f32` whatever the device.
pub fn eval_rounded(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    rounding: Rounding<'_>,
) -> Result<Vec<(String, Tensor)>> {
    eval_inner(graph, inputs, Budget::default(), Some(rounding))
}

fn eval_inner(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    budget: Budget,
    rounding: Option<Rounding<'_>>,
) -> Result<Vec<(String, Tensor)>> {
    super::verify(graph)?;
    let mut names: Vec<&str> = inputs.keys().map(String::as_str).collect();
    names.sort_unstable();
    for name in names {
        // Fails for an undeclared name, listing the declared inputs.
        graph.input(name)?;
    }
    let args = graph
        .inputs
        .iter()
        .map(|(name, v)| {
            let given = inputs.get(name).ok_or_else(|| Error::Input {
                name: name.clone(),
                message: "missing".to_string(),
            })?;
            check_input(name, graph.ty(*v), given)?;
            Ok(given)
        })
        .collect::<Result<Vec<&Tensor>>>()?;
    let spending = Spending {
        budget,
        work: std::cell::Cell::new(0),
        rounding,
    };
    let outputs = run(graph, &args, &spending)?;
    Ok(graph
        .outputs
        .iter()
        .map(|(name, _)| name.clone())
        .zip(outputs)
        .collect())
}

/// Runs `graph` on positional inputs, in declared order, and returns its outputs in
/// declared order.
///
/// Fails like [`eval`]; a missing trailing input is [`Error::Input`] naming it, and a
/// surplus input is [`Error::Name`].
pub fn eval_graph(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    super::verify(graph)?;
    let declared = graph.inputs.len();
    if inputs.len() > declared {
        return Err(Error::Name(format!(
            "got {} inputs, but the graph declares {declared}",
            inputs.len()
        )));
    }
    if let Some((name, _)) = graph.inputs.get(inputs.len()) {
        return Err(Error::Input {
            name: name.clone(),
            message: format!("missing (got {} of {declared} inputs)", inputs.len()),
        });
    }
    for ((name, v), given) in graph.inputs.iter().zip(inputs) {
        check_input(name, graph.ty(*v), given)?;
    }
    let args: Vec<&Tensor> = inputs.iter().collect();
    let spending = Spending {
        budget: Budget::default(),
        work: std::cell::Cell::new(0),
        rounding: None,
    };
    run(graph, &args, &spending)
}

/// Checks a given input against its declared type.
fn check_input(name: &str, declared: &Type, given: &Tensor) -> Result<()> {
    let message = if given.ty != *declared {
        format!("expected {declared}, got {}", given.ty)
    } else if let Err(m) = check_data(&given.ty, &given.data) {
        m
    } else {
        return Ok(());
    };
    Err(Error::Input {
        name: name.to_string(),
        message,
    })
}

/// The value of a node while a graph runs: a tensor, borrowed from the inputs or owned,
/// or a loop's tuple.
enum Val<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
    Tuple(Vec<Tensor>),
}

impl Val<'_> {
    fn tensor(&self) -> Result<&Tensor> {
        match self {
            Val::Borrowed(t) => Ok(t),
            Val::Owned(t) => Ok(t),
            Val::Tuple(_) => Err(Error::Eval("a loop tuple is used as a tensor".into())),
        }
    }
}

/// Runs a verified graph on inputs of the declared types. A value is dropped after its
/// last reader runs, and outputs are moved out rather than copied, so a run holds little
/// more than the values still needed.
fn run(graph: &Graph, inputs: &[&Tensor], spending: &Spending) -> Result<Vec<Tensor>> {
    let n = graph.nodes.len();
    // The last node reading each value; outputs are read at the end.
    let mut last_use: Vec<usize> = vec![0; n];
    for (j, node) in graph.nodes.iter().enumerate() {
        for a in &node.args {
            if let Some(l) = last_use.get_mut(a.index()) {
                *l = (*l).max(j);
            }
        }
    }
    for (_, v) in &graph.outputs {
        if let Some(l) = last_use.get_mut(v.index()) {
            *l = usize::MAX;
        }
    }
    let mut vals: Vec<Val> = Vec::with_capacity(n);
    for (j, node) in graph.nodes.iter().enumerate() {
        spending.charge(graph, node)?;
        let val = step(graph, node, &vals, inputs, spending)?;
        vals.push(val);
        for a in &node.args {
            if last_use.get(a.index()) == Some(&j) {
                vals[a.index()] = Val::Tuple(Vec::new());
            }
        }
    }
    let mut out = Vec::with_capacity(graph.outputs.len());
    for (k, (_, v)) in graph.outputs.iter().enumerate() {
        let i = v.index();
        lookup(&vals, i)?.tensor()?;
        // An output named again later is copied; its last naming takes the value.
        let again = graph.outputs[k + 1..].iter().any(|(_, w)| w == v);
        let t = if again {
            vals[i].tensor()?.clone()
        } else {
            match std::mem::replace(&mut vals[i], Val::Tuple(Vec::new())) {
                Val::Owned(t) => t,
                Val::Borrowed(t) => t.clone(),
                Val::Tuple(_) => {
                    return Err(Error::Eval("a loop tuple is used as a tensor".into()));
                }
            }
        };
        out.push(t);
    }
    Ok(out)
}

fn lookup<'v, 'a>(vals: &'v [Val<'a>], index: usize) -> Result<&'v Val<'a>> {
    vals.get(index)
        .ok_or_else(|| Error::Eval(format!("%{index} is used before it is defined")))
}

/// Evaluates one node, whose operands are all in `vals`: one arm per op.
fn step<'a>(
    graph: &Graph,
    node: &Node,
    vals: &[Val<'a>],
    inputs: &[&'a Tensor],
    spending: &Spending,
) -> Result<Val<'a>> {
    let operand = |k: usize| match node.args.get(k) {
        Some(v) => lookup(vals, v.index()),
        None => Err(Error::Eval(format!(
            "`{}` lacks operand {k}",
            node.op.name()
        ))),
    };
    let arg = |k: usize| operand(k)?.tensor();
    let args = || (0..node.args.len()).map(arg).collect::<Result<Vec<_>>>();
    let data = match &node.op {
        Op::Input { index } => {
            return match inputs.get(*index as usize) {
                Some(t) => Ok(Val::Borrowed(t)),
                None => Err(Error::Eval(format!("no value for input {index}"))),
            };
        }
        Op::Loop {
            trips,
            carried,
            body,
        } => {
            let body = graph.region(*body);
            let state = run_loop(body, *trips, *carried as usize, &args()?, spending)?;
            return Ok(Val::Tuple(state));
        }
        Op::Get { index } => {
            return match operand(0)? {
                Val::Tuple(items) => match items.get(*index as usize) {
                    Some(t) => Ok(Val::Owned(t.clone())),
                    None => Err(Error::Eval(format!("no element {index} in a loop tuple"))),
                },
                Val::Borrowed(_) | Val::Owned(_) => {
                    Err(Error::Eval("`get` reads a tensor, not a loop tuple".into()))
                }
            };
        }
        Op::Constant { value, shape } => vec![value.to_f64(); shape.iter().product()],
        Op::Literal { values, .. } => values.iter().map(|v| v.to_f64()).collect(),
        Op::Iota { shape, axis, .. } => iota(shape, *axis),
        Op::Unary(op) => unary(*op, arg(0)?)?,
        Op::Binary(op) => binary(*op, arg(0)?, arg(1)?)?,
        Op::Compare(op) => compare(*op, arg(0)?, arg(1)?),
        Op::Select => select(arg(0)?, arg(1)?, arg(2)?),
        Op::Cast { dtype } => cast(arg(0)?, *dtype),
        Op::Broadcast { shape, dims } => broadcast(arg(0)?, shape, dims),
        Op::Reshape { .. } | Op::StopGradient => arg(0)?.data.clone(),
        Op::Transpose { perm } => permute(arg(0)?, perm),
        Op::Slice { start, limit } => slice(arg(0)?, start, limit),
        Op::Concat { axis } => concat(&args()?, *axis),
        Op::Pad { low, high, value } => pad(arg(0)?, low, high, value.to_f64()),
        Op::Reduce { kind, axes } => reduce(*kind, arg(0)?, axes),
        Op::Dot(dims) => dot(arg(0)?, arg(1)?, dims)?,
        Op::OneHot { depth, .. } => one_hot(arg(0)?, *depth),
        Op::Gather { axis } => gather(arg(0)?, arg(1)?, *axis),
        Op::DynamicSlice { sizes } => {
            let args = args()?;
            let x = arg(0)?;
            let start = clamped_starts(&args[1..], &x.ty.shape, sizes);
            let st = strides(&x.ty.shape);
            read(&x.data, sizes, &st, ravel(&start, &st))
        }
        Op::DynamicUpdateSlice => {
            let args = args()?;
            let (x, u) = (arg(0)?, arg(1)?);
            let start = clamped_starts(&args[2..], &x.ty.shape, &u.ty.shape);
            let st = strides(&x.ty.shape);
            let mut out = x.data.clone();
            for (o, v) in Offsets::new(&u.ty.shape, &st, ravel(&start, &st)).zip(&u.data) {
                out[o] = *v;
            }
            out
        }
        Op::ScatterAdd { axis, size } => scatter_add(arg(0)?, arg(1)?, *axis, *size),
    };
    match &node.ty {
        NodeType::Tensor(ty) => {
            let mut data = data;
            if let Some(rounding) = spending.rounding.filter(|_| ty.dtype.is_float()) {
                rounding(graph, node, &mut data);
            }
            Ok(Val::Owned(Tensor {
                ty: ty.clone(),
                data,
            }))
        }
        NodeType::Tuple(_) => Err(Error::Eval(format!(
            "`{}` is typed as a tuple",
            node.op.name()
        ))),
    }
}

/// Runs a loop body `trips` times. Its inputs are the index, the carried values and the
/// invariants; its outputs are the next carried values. Returns the final ones.
fn run_loop(
    body: &Graph,
    trips: u32,
    carried: usize,
    operands: &[&Tensor],
    spending: &Spending,
) -> Result<Vec<Tensor>> {
    let Some((init, invariants)) = operands.split_at_checked(carried) else {
        return Err(Error::Eval(format!(
            "a loop carries {carried} of {} operands",
            operands.len()
        )));
    };
    spending.check_ahead(
        u64::from(trips).saturating_mul(ITERATION_COST.saturating_add(static_cost(body))),
    )?;
    let mut state: Vec<Tensor> = init.iter().map(|&t| t.clone()).collect();
    for i in 0..trips {
        let index = Tensor {
            ty: Type::i32(&[]),
            data: vec![i as i32 as f64],
        };
        let args: Vec<&Tensor> = std::iter::once(&index)
            .chain(&state)
            .chain(invariants.iter().copied())
            .collect();
        // Every iteration costs something, so an empty body with 2³² trips ends too.
        spending.charge_iteration()?;
        state = run(body, &args, spending)?;
    }
    Ok(state)
}

// ---- Strided indexing ---------------------------------------------------------------

/// Row-major strides of `shape`: how far apart neighbours along each axis lie.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (1..shape.len()).rev() {
        s[i - 1] = s[i] * shape[i];
    }
    s
}

/// The linear offset of the multi-index `index` under `strides`.
fn ravel(index: &[usize], strides: &[usize]) -> usize {
    index.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// The offsets `base + ravel(index, strides)` of every multi-index of `shape`, in
/// row-major order. An odometer makes each step O(1) amortized without allocating, and a
/// stride of 0 repeats an element (a broadcast axis).
struct Offsets<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    index: Vec<usize>,
    offset: usize,
    left: usize,
}

impl<'a> Offsets<'a> {
    fn new(shape: &'a [usize], strides: &'a [usize], base: usize) -> Offsets<'a> {
        Offsets {
            shape,
            strides,
            index: vec![0; shape.len()],
            offset: base,
            left: shape.iter().product(),
        }
    }
}

impl Iterator for Offsets<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let here = self.offset;
        for axis in (0..self.shape.len()).rev() {
            self.index[axis] += 1;
            self.offset += self.strides[axis];
            if self.index[axis] < self.shape[axis] {
                break;
            }
            self.offset -= self.strides[axis] * self.shape[axis];
            self.index[axis] = 0;
        }
        Some(here)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Offsets<'_> {}

/// The elements of `data` at the offsets of `shape` under `strides` from `base`.
fn read(data: &[f64], shape: &[usize], strides: &[usize], base: usize) -> Vec<f64> {
    Offsets::new(shape, strides, base)
        .map(|o| data[o])
        .collect()
}

/// The elements of `x` with its axes reordered: result axis `i` is `x`'s axis `order[i]`.
fn permute(x: &Tensor, order: &[usize]) -> Vec<f64> {
    let src = strides(&x.ty.shape);
    let shape: Vec<usize> = order.iter().map(|&a| x.ty.shape[a]).collect();
    let st: Vec<usize> = order.iter().map(|&a| src[a]).collect();
    read(&x.data, &shape, &st, 0)
}

// ---- Leaves and elementwise ops -----------------------------------------------------

fn iota(shape: &[usize], axis: usize) -> Vec<f64> {
    let stride = strides(shape)[axis];
    let n: usize = shape.iter().product();
    (0..n)
        .map(|flat| ((flat / stride) % shape[axis]) as f64)
        .collect()
}

/// Wraps an exact integer result to the 32 bits of `dtype`, as WGSL does.
fn wrap(dtype: DType, x: i64) -> f64 {
    match dtype {
        DType::I32 => x as i32 as f64,
        DType::U32 => x as u32 as f64,
        DType::F32 => x as f64,
        DType::Bool => (x != 0) as u8 as f64,
    }
}

fn undefined(op: &str, ty: &Type) -> Error {
    Error::Eval(format!("`{op}` is not defined on {ty}"))
}

fn float_unary(op: UnaryOp) -> fn(f64) -> f64 {
    match op {
        UnaryOp::Neg => |x| -x,
        UnaryOp::Exp => f64::exp,
        UnaryOp::Log => f64::ln,
        UnaryOp::Sin => f64::sin,
        UnaryOp::Cos => f64::cos,
        UnaryOp::Tanh => f64::tanh,
        UnaryOp::Sqrt => f64::sqrt,
        UnaryOp::Rsqrt => |x| 1.0 / x.sqrt(),
        UnaryOp::Recip => |x| 1.0 / x,
        UnaryOp::Abs => f64::abs,
        UnaryOp::Sign => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        },
        UnaryOp::Lgamma => lgamma,
        UnaryOp::Digamma => digamma,
    }
}

/// `ln |Γ(x)|` in f64: the Lanczos approximation (g = 7, 9 terms, relative error
/// about 1e-15), by reflection below ½; `+inf` at 0 and the negative integers.
pub fn lgamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x.is_nan() {
        return x;
    }
    if x <= 0.0 && x.floor() == x {
        return f64::INFINITY;
    }
    if x < 0.5 {
        let s = (std::f64::consts::PI * x).sin().abs();
        return (std::f64::consts::PI / s).ln() - lgamma(1.0 - x);
    }
    let z = x - 1.0;
    let t = z + 7.5;
    let mut a = G[0];
    for (k, c) in G.iter().enumerate().skip(1) {
        a += c / (z + k as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + a.ln()
}

/// `ψ(x)` in f64: shifted past 10 by `ψ(x) = ψ(x + 1) - 1/x`, then the asymptotic
/// series; by reflection below ½; NaN at 0 and the negative integers.
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 && x.floor() == x {
        return f64::NAN;
    }
    let (mut z, mut acc) = (x, 0.0);
    if x < 0.5 {
        acc = -std::f64::consts::PI / (std::f64::consts::PI * x).tan();
        z = 1.0 - x;
    }
    while z < 10.0 {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let z2 = 1.0 / (z * z);
    let series = z2
        * (1.0 / 12.0 - z2 * (1.0 / 120.0 - z2 * (1.0 / 252.0 - z2 * (1.0 / 240.0 - z2 / 132.0))));
    acc + z.ln() - 0.5 / z - series
}

/// The integer version of `op` on exact values, before wrapping; `None` if float-only.
fn int_unary(op: UnaryOp) -> Option<fn(i64) -> i64> {
    match op {
        UnaryOp::Neg => Some(i64::wrapping_neg),
        UnaryOp::Abs => Some(i64::wrapping_abs),
        UnaryOp::Sign => Some(i64::signum),
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Recip
        | UnaryOp::Lgamma
        | UnaryOp::Digamma => None,
    }
}

fn unary(op: UnaryOp, x: &Tensor) -> Result<Vec<f64>> {
    let dtype = x.ty.dtype;
    match dtype {
        DType::F32 => {
            let f = float_unary(op);
            Ok(x.data.iter().map(|&a| f(a)).collect())
        }
        DType::I32 | DType::U32 => {
            let f = int_unary(op).ok_or_else(|| undefined(op.name(), &x.ty))?;
            Ok(x.data.iter().map(|&a| wrap(dtype, f(a as i64))).collect())
        }
        DType::Bool => Err(undefined(op.name(), &x.ty)),
    }
}

/// `max` that propagates NaN.
fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// `min` that propagates NaN.
fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

fn float_binary(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        BinaryOp::Max => fmax,
        BinaryOp::Min => fmin,
        BinaryOp::Pow => f64::powf,
    }
}

/// The integer version of `op` on exact values, before wrapping; `None` if float-only.
/// Wrapping `i64` arithmetic agrees with 32-bit wrapping arithmetic modulo 2^32.
fn int_binary(op: BinaryOp) -> Option<fn(i64, i64) -> i64> {
    match op {
        BinaryOp::Add => Some(i64::wrapping_add),
        BinaryOp::Sub => Some(i64::wrapping_sub),
        BinaryOp::Mul => Some(i64::wrapping_mul),
        // WGSL: `a / 0 == a`; `i32::MIN / -1` is 2^31 here, which wraps to `i32::MIN`.
        BinaryOp::Div => Some(|a, b| if b == 0 { a } else { a / b }),
        BinaryOp::Max => Some(<i64 as Ord>::max),
        BinaryOp::Min => Some(<i64 as Ord>::min),
        BinaryOp::Pow => None,
    }
}

fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    let dtype = a.ty.dtype;
    let pairs = a.data.iter().zip(&b.data);
    match dtype {
        DType::F32 => {
            let f = float_binary(op);
            Ok(pairs.map(|(&x, &y)| f(x, y)).collect())
        }
        DType::I32 | DType::U32 => {
            let f = int_binary(op).ok_or_else(|| undefined(op.name(), &a.ty))?;
            Ok(pairs
                .map(|(&x, &y)| wrap(dtype, f(x as i64, y as i64)))
                .collect())
        }
        DType::Bool => Err(undefined(op.name(), &a.ty)),
    }
}

/// Compares stored values; this is exact for every dtype, since integers are stored
/// exactly.
fn compare(op: CmpOp, a: &Tensor, b: &Tensor) -> Vec<f64> {
    let f: fn(&f64, &f64) -> bool = match op {
        CmpOp::Eq => f64::eq,
        CmpOp::Ne => f64::ne,
        CmpOp::Lt => f64::lt,
        CmpOp::Le => f64::le,
        CmpOp::Gt => f64::gt,
        CmpOp::Ge => f64::ge,
    };
    let pairs = a.data.iter().zip(&b.data);
    pairs.map(|(x, y)| f(x, y) as u8 as f64).collect()
}

fn select(cond: &Tensor, a: &Tensor, b: &Tensor) -> Vec<f64> {
    let triples = cond.data.iter().zip(a.data.iter().zip(&b.data));
    triples
        .map(|(&c, (&x, &y))| if c != 0.0 { x } else { y })
        .collect()
}

fn cast(x: &Tensor, to: DType) -> Vec<f64> {
    let f: fn(f64) -> f64 = match (x.ty.dtype, to) {
        (_, DType::Bool) => |x| (x != 0.0) as u8 as f64,
        (_, DType::F32) => |x| x,
        // Truncates toward zero and saturates; NaN gives 0 (Rust's `as` and WGSL agree).
        (DType::F32, DType::I32) => |x| x as i32 as f64,
        (DType::F32, DType::U32) => |x| x as u32 as f64,
        // Integers and bools are exact; between i32 and u32 the bits are reinterpreted.
        (DType::I32 | DType::U32 | DType::Bool, DType::I32) => |x| x as i64 as i32 as f64,
        (DType::I32 | DType::U32 | DType::Bool, DType::U32) => |x| x as i64 as u32 as f64,
    };
    x.data.iter().map(|&a| f(a)).collect()
}

// ---- Shapes -------------------------------------------------------------------------

fn broadcast(x: &Tensor, shape: &[usize], dims: &[usize]) -> Vec<f64> {
    let src = strides(&x.ty.shape);
    let mut st = vec![0; shape.len()];
    for (i, &d) in dims.iter().enumerate() {
        // An axis of extent 1 expands: stride 0 repeats its one element.
        if x.ty.shape[i] != 1 {
            st[d] = src[i];
        }
    }
    read(&x.data, shape, &st, 0)
}

/// The start of a window of extents `sizes` in `shape` at the run-time `starts` (one
/// scalar each), each clamped into `0 ..= dim - size` as [`Op::DynamicSlice`] documents.
fn clamped_starts(starts: &[&Tensor], shape: &[usize], sizes: &[usize]) -> Vec<usize> {
    starts
        .iter()
        .zip(shape.iter().zip(sizes))
        .map(|(s, (&dim, &size))| {
            let i = s.data.first().copied().unwrap_or(0.0);
            i.clamp(0.0, (dim - size) as f64) as usize
        })
        .collect()
}

fn slice(x: &Tensor, start: &[usize], limit: &[usize]) -> Vec<f64> {
    let st = strides(&x.ty.shape);
    let shape: Vec<usize> = start.iter().zip(limit).map(|(s, l)| l - s).collect();
    read(&x.data, &shape, &st, ravel(start, &st))
}

fn concat(xs: &[&Tensor], axis: usize) -> Vec<f64> {
    let Some(first) = xs.first() else {
        return Vec::new();
    };
    let outer: usize = first.ty.shape[..axis].iter().product();
    let total = xs.iter().map(|x| x.data.len()).sum();
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for x in xs {
            // Each operand contributes one contiguous block per index of the outer axes.
            let block: usize = x.ty.shape[axis..].iter().product();
            out.extend_from_slice(&x.data[o * block..(o + 1) * block]);
        }
    }
    out
}

fn pad(x: &Tensor, low: &[usize], high: &[usize], value: f64) -> Vec<f64> {
    let shape: Vec<usize> = (0..x.ty.rank())
        .map(|i| low[i] + x.ty.shape[i] + high[i])
        .collect();
    let st = strides(&shape);
    let mut out = vec![value; shape.iter().product()];
    for (o, &v) in Offsets::new(&x.ty.shape, &st, ravel(low, &st)).zip(&x.data) {
        out[o] = v;
    }
    out
}

// ---- Reductions and products --------------------------------------------------------

/// `a + b` in `dtype`: wrapping for integers.
fn add(dtype: DType, a: f64, b: f64) -> f64 {
    if dtype.is_int() {
        wrap(dtype, a as i64 + b as i64)
    } else {
        a + b
    }
}

fn reduce(kind: ReduceKind, x: &Tensor, axes: &[usize]) -> Vec<f64> {
    let shape = &x.ty.shape;
    let dtype = x.ty.dtype;
    // Kept axes first and reduced axes last, so that each result element reduces one
    // contiguous row, in row-major order.
    let order: Vec<usize> = (0..shape.len())
        .filter(|a| !axes.contains(a))
        .chain(axes.iter().copied())
        .collect();
    let data = permute(x, &order);
    let row: usize = axes.iter().map(|&a| shape[a]).product();
    let rows: usize = (0..shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| shape[a])
        .product();
    (0..rows)
        .map(|r| {
            let row = data[r * row..(r + 1) * row].iter().copied();
            match kind {
                ReduceKind::Sum => row.fold(0.0, |a, b| add(dtype, a, b)),
                // The shape rule rejects max and min over an empty axis.
                ReduceKind::Max => row.reduce(fmax).unwrap_or(f64::NEG_INFINITY),
                ReduceKind::Min => row.reduce(fmin).unwrap_or(f64::INFINITY),
            }
        })
        .collect()
}

/// `out[b,i,j] = Σ_p l[b,i,p] · r[b,p,j]` for contiguous `l[B,M,K]` and `r[B,K,N]`,
/// accumulating over `p` in order with `mul_add(acc, l, r)`.
fn matmul<T: Copy>(
    l: &[T],
    r: &[T],
    [b, m, k, n]: [usize; 4],
    zero: T,
    mul_add: impl Fn(T, T, T) -> T,
) -> Vec<T> {
    let mut out = vec![zero; b * m * n];
    for batch in 0..b {
        for i in 0..m {
            let row = batch * m + i;
            let out_row = &mut out[row * n..(row + 1) * n];
            for p in 0..k {
                let a = l[row * k + p];
                let r_row = &r[(batch * k + p) * n..(batch * k + p + 1) * n];
                for (o, &y) in out_row.iter_mut().zip(r_row) {
                    *o = mul_add(*o, a, y);
                }
            }
        }
    }
    out
}

fn dot(l: &Tensor, r: &Tensor, dims: &DotDims) -> Result<Vec<f64>> {
    let (ls, rs) = (&l.ty.shape, &r.ty.shape);
    let l_free = DotDims::free_axes(ls.len(), &dims.lhs_batch, &dims.lhs_contract);
    let r_free = DotDims::free_axes(rs.len(), &dims.rhs_batch, &dims.rhs_contract);
    let extent = |shape: &[usize], axes: &[usize]| axes.iter().map(|&a| shape[a]).product();
    let sizes = [
        extent(ls, &dims.lhs_batch),
        extent(ls, &l_free),
        extent(ls, &dims.lhs_contract),
        extent(rs, &r_free),
    ];
    // Lay the operands out as contiguous [batch, free, contract] and [batch, contract,
    // free]; the result's axis order (batch, lhs free, rhs free) is then [B, M, N].
    let lhs = permute(
        l,
        &[&dims.lhs_batch[..], &l_free, &dims.lhs_contract].concat(),
    );
    let rhs = permute(
        r,
        &[&dims.rhs_batch[..], &dims.rhs_contract, &r_free].concat(),
    );
    let dtype = l.ty.dtype;
    match dtype {
        DType::F32 => Ok(matmul(&lhs, &rhs, sizes, 0.0, |acc, a, b| acc + a * b)),
        DType::I32 | DType::U32 => {
            let to_int = |v: Vec<f64>| v.into_iter().map(|x| x as i64).collect::<Vec<_>>();
            let out = matmul(&to_int(lhs), &to_int(rhs), sizes, 0, |acc: i64, a, b| {
                acc.wrapping_add(a.wrapping_mul(b))
            });
            Ok(out.into_iter().map(|x| wrap(dtype, x)).collect())
        }
        DType::Bool => Err(undefined("dot", &l.ty)),
    }
}

// ---- Indexing -----------------------------------------------------------------------

fn one_hot(idx: &Tensor, depth: usize) -> Vec<f64> {
    let mut out = vec![0.0; idx.data.len() * depth];
    for (row, &i) in idx.data.iter().enumerate() {
        if i >= 0.0 && i < depth as f64 {
            out[row * depth + i as usize] = 1.0;
        }
    }
    out
}

/// The extents before and after `axis`: the tensor is `[outer, shape[axis], inner]`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

fn gather(x: &Tensor, idx: &Tensor, axis: usize) -> Vec<f64> {
    // `x` and `idx` agree off `axis`, so both are [outer, _, inner].
    let (outer, inner) = around(&idx.ty.shape, axis);
    let (n, m) = (x.ty.shape[axis], idx.ty.shape[axis]);
    let mut out = Vec::with_capacity(idx.data.len());
    for o in 0..outer {
        for j in 0..m {
            for q in 0..inner {
                let i = idx.data[(o * m + j) * inner + q];
                let in_range = i >= 0.0 && i < n as f64;
                out.push(if in_range {
                    x.data[(o * n + i as usize) * inner + q]
                } else {
                    0.0
                });
            }
        }
    }
    out
}

fn scatter_add(u: &Tensor, idx: &Tensor, axis: usize, size: usize) -> Vec<f64> {
    let (outer, inner) = around(&u.ty.shape, axis);
    let m = u.ty.shape[axis];
    let dtype = u.ty.dtype;
    let mut out = vec![0.0; outer * size * inner];
    // `j` runs before `q` within each `o`, so every output element accumulates its
    // contributions in order of `j`.
    for o in 0..outer {
        for j in 0..m {
            for q in 0..inner {
                let at = (o * m + j) * inner + q;
                let i = idx.data[at];
                if i >= 0.0 && i < size as f64 {
                    let dst = &mut out[(o * size + i as usize) * inner + q];
                    *dst = add(dtype, *dst, u.data[at]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::eval_graph;
    use crate::error::Error;
    use crate::ir::{Builder, NodeType, Tensor, Type};

    #[test]
    fn a_malformed_graph_is_an_error_not_a_panic() {
        // Only code inside the crate can break a graph's invariants (nodes enter through
        // the builder); the interpreter still verifies before evaluating.
        let mut b = Builder::new();
        let x = b.input("x", Type::f32(&[2, 3])).unwrap();
        let y = b.input("y", Type::f32(&[3])).unwrap();
        let s = b.add(x, y).unwrap();
        b.output("s", s).unwrap();
        let mut graph = b.finish().unwrap();
        graph.nodes[2].ty = NodeType::Tensor(Type::f32(&[7]));
        let x = Tensor::new(Type::f32(&[2, 3]), vec![0.0; 6]).unwrap();
        let y = Tensor::new(Type::f32(&[3]), vec![0.0; 3]).unwrap();
        let e = eval_graph(&graph, &[x, y]).unwrap_err();
        assert!(matches!(e, Error::Verify(_)), "{e:?}");
    }
}
