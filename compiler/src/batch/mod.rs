//! Batching as a program-to-program transform, and the derivatives built on it.
//!
//! [`vmap`] turns a program over one example into a program over a batch: the chosen
//! inputs gain a new leading axis, and every value that depends on them gains it too.
//! Each op has one batching rule ([`rules::rule`], one table matched exhaustively like
//! the VJP and JVP tables); values that do not depend on a batched input are computed
//! once, not once per example, and a loop is batched as a whole (its body batched, the
//! carried values that become batched found by a fixed point). The result is an
//! ordinary program, so it can be differentiated, batched again, printed and compiled.
//!
//! On top of it, all single programs:
//! - [`jvp_directions`] and [`vjp_directions`]: k tangents or k cotangents at once;
//! - [`jacobian`], by forward or reverse mode, whichever needs fewer directions;
//! - [`hessian`]: forward over reverse, with the value and gradient beside it;
//! - [`directional`]: derivatives of every order up to k along one tangent;
//! - per-example gradients: [`vmap`] of [`grad`](crate::autodiff::grad).

pub mod rules;

use crate::autodiff;
use crate::error::{Error, Result};
use crate::ir::{Builder, CmpOp, DType, Graph, Op, Type, Value};
use crate::passes;

/// The program `graph` over a batch of `size` examples of the inputs `batched`.
///
/// Each input named in `batched` gains a leading axis of extent `size`; the others are
/// shared by every example. An output that depends on a batched input gains the leading
/// axis (row `k` is the output for example `k`); one that does not keeps its type,
/// since it is the same for every example. Names are unchanged.
///
/// ```
/// use std::collections::HashMap;
/// use wgrad_compiler::batch::vmap;
/// use wgrad_compiler::ir::{Tensor, Type, eval, parse};
///
/// // y = Σ x·w over one example x; batched over 2 examples, w shared.
/// let f = parse("%x = input x : f32[3]\n%w = input w : f32[3]\n%p = mul %x, %w : f32[3]\n%y = reduce_sum %p axes=[0] : f32[]\noutput y = %y\n")?;
/// let fb = vmap(&f, &["x"], 2)?;
/// let x = Tensor::new(Type::f32(&[2, 3]), vec![1.0, 2.0, 3.0, 0.0, 1.0, 0.0])?;
/// let w = Tensor::new(Type::f32(&[3]), vec![1.0, 1.0, 2.0])?;
/// let out = eval(&fb, &HashMap::from([("x".to_string(), x), ("w".to_string(), w)]))?;
/// assert_eq!(out[0].1.data, vec![9.0, 1.0]);
/// # Ok::<(), wgrad_compiler::Error>(())
/// ```
///
/// Fails with [`Error::Name`] for a name that is not an input or is named twice, or for
/// a batch of size 0.
pub fn vmap(graph: &Graph, batched: &[&str], size: usize) -> Result<Graph> {
    if size == 0 {
        return Err(Error::Name(
            "a batch needs at least one example (size 0)".into(),
        ));
    }
    let mut chosen = Vec::new();
    for name in batched {
        if chosen.contains(name) {
            return Err(Error::Name(format!("`{name}` is named twice in the batch")));
        }
        graph.input(name)?;
        chosen.push(*name);
    }
    let mut b = Builder::new();
    let mut inputs = Vec::with_capacity(graph.inputs.len());
    for (name, v) in &graph.inputs {
        let ty = graph.ty(*v);
        let is = chosen.contains(&name.as_str());
        let ty = if is { with_axis(ty, size) } else { ty.clone() };
        let nv = b.input(name, ty)?;
        b.copy_name(nv, graph, *v);
        inputs.push((nv, is));
    }
    let outputs = batch_graph(&mut b, graph, &inputs, size)?;
    for ((name, _), (v, _)) in graph.outputs.iter().zip(outputs) {
        b.output(name, v)?;
    }
    let mut g = b.finish()?;
    passes::optimize(&mut g)?;
    crate::ir::verify(&g)?;
    Ok(g)
}

/// `ty` with a leading axis of extent `size`.
fn with_axis(ty: &Type, size: usize) -> Type {
    let mut shape = vec![size];
    shape.extend(&ty.shape);
    Type::new(ty.dtype, &shape)
}

/// Copies `g` into `b` with its inputs bound to `inputs` (each with whether it is
/// batched), batching every node that depends on a batched one; returns its outputs,
/// each with whether it is batched.
fn batch_graph(
    b: &mut Builder,
    g: &Graph,
    inputs: &[(Value, bool)],
    size: usize,
) -> Result<Vec<(Value, bool)>> {
    let mut map: Vec<(Value, bool)> = Vec::with_capacity(g.len());
    let mut tuples: Vec<Vec<(Value, bool)>> = vec![Vec::new(); g.len()];
    let side = b.side();
    for (j, node) in g.nodes.iter().enumerate() {
        let args: Vec<(Value, bool)> = node.args.iter().map(|a| map[a.index()]).collect();
        b.set_side(node.side);
        let (v, is) = match &node.op {
            Op::Input { index } => *inputs
                .get(*index as usize)
                .ok_or_else(|| Error::Internal(format!("no value for input {index}")))?,
            Op::Loop {
                trips,
                carried,
                body,
            } => {
                tuples[j] = batch_loop(b, *trips, *carried as usize, g.region(*body), &args, size)?;
                // The tuple itself is never read: only its `get`s are.
                (Value(0), false)
            }
            Op::Get { index } => *tuples[node.args[0].index()]
                .get(*index as usize)
                .ok_or_else(|| Error::Internal(format!("no element {index} of a loop")))?,
            _ if args.iter().any(|&(_, is)| is) => (rules::rule(b, node, &args, size)?, true),
            op => {
                let vs: Vec<Value> = args.iter().map(|&(v, _)| v).collect();
                (b.push(op.clone(), &vs)?, false)
            }
        };
        if !matches!(node.op, Op::Input { .. } | Op::Loop { .. }) {
            b.copy_name(v, g, Value(j as u32));
        }
        map.push((v, is));
    }
    b.set_side(side);
    Ok(g.outputs.iter().map(|(_, v)| map[v.index()]).collect())
}

/// A loop whose operands may be batched: the carried values that become batched (from
/// a batched initial value, or a body that makes them so) are found by a fixed point,
/// their initial values lifted, and the body batched accordingly.
fn batch_loop(
    b: &mut Builder,
    trips: u32,
    carried: usize,
    body: &Graph,
    args: &[(Value, bool)],
    size: usize,
) -> Result<Vec<(Value, bool)>> {
    let (init, inv) = args.split_at(carried);
    let init_flags: Vec<bool> = init.iter().map(|&(_, is)| is).collect();
    let inv_flags: Vec<bool> = inv.iter().map(|&(_, is)| is).collect();
    let state = batched_state(body, &init_flags, &inv_flags);
    let init = lift_where(b, init, &state, size)?;
    let inv_values: Vec<Value> = inv.iter().map(|&(v, _)| v).collect();
    let finals = b.loop_(trips, &init, &inv_values, |inner, i, params, xs| {
        let mut inputs = vec![(i, false)];
        inputs.extend(params.iter().copied().zip(state.iter().copied()));
        inputs.extend(xs.iter().copied().zip(inv_flags.iter().copied()));
        let outs = batch_graph(inner, body, &inputs, size)?;
        lift_where(inner, &outs, &state, size)
    })?;
    Ok(finals.into_iter().zip(state).collect())
}

/// Which carried values of a loop over `body` are batched: those whose initial value
/// is (`init`), and those the body makes so from batched state or invariants (`inv`),
/// found by a fixed point.
fn batched_state(body: &Graph, init: &[bool], inv: &[bool]) -> Vec<bool> {
    let mut state = init.to_vec();
    loop {
        let flags: Vec<bool> = std::iter::once(false)
            .chain(state.iter().copied())
            .chain(inv.iter().copied())
            .collect();
        let out = depends(body, &flags);
        let next: Vec<bool> = state.iter().zip(&out).map(|(&s, &o)| s || o).collect();
        if next == state {
            return state;
        }
        state = next;
    }
}

/// `values` with the batch axis added ([`rules::lift`]) where `want` asks for it.
fn lift_where(
    b: &mut Builder,
    values: &[(Value, bool)],
    want: &[bool],
    size: usize,
) -> Result<Vec<Value>> {
    values
        .iter()
        .zip(want)
        .map(|(&(v, is), &want)| {
            if want {
                rules::lift(b, v, is, size)
            } else {
                Ok(v)
            }
        })
        .collect()
}

/// Which outputs of `g` depend on an input flagged in `inputs` (by position).
fn depends(g: &Graph, inputs: &[bool]) -> Vec<bool> {
    let mut on = vec![false; g.len()];
    let mut tuples: Vec<Vec<bool>> = vec![Vec::new(); g.len()];
    for (j, node) in g.nodes.iter().enumerate() {
        on[j] = match &node.op {
            Op::Input { index } => inputs.get(*index as usize).copied().unwrap_or(false),
            Op::Loop { carried, body, .. } => {
                let args: Vec<bool> = node.args.iter().map(|a| on[a.index()]).collect();
                let (init, inv) = args.split_at(*carried as usize);
                tuples[j] = batched_state(g.region(*body), init, inv);
                false
            }
            Op::Get { index } => tuples[node.args[0].index()]
                .get(*index as usize)
                .copied()
                .unwrap_or(false),
            _ => node.args.iter().any(|a| on[a.index()]),
        };
    }
    g.outputs.iter().map(|(_, v)| on[v.index()]).collect()
}

// ---- Derivatives built on batching ------------------------------------------------

/// How a [`jacobian`] is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JacobianMode {
    /// Whichever of the two needs fewer directions (forward on a tie).
    Auto,
    /// One JVP per input element, all in one batched program.
    Forward,
    /// One VJP per output element, all in one batched program.
    Reverse,
}

impl JacobianMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            JacobianMode::Auto => "auto",
            JacobianMode::Forward => "forward",
            JacobianMode::Reverse => "reverse",
        }
    }
}

/// A derivative program and how it was built: what [`jacobian`] and [`hessian`]
/// return.
#[derive(Clone, Debug)]
pub struct Derivative {
    /// The program: the original outputs, then the derivative.
    pub graph: Graph,
    /// The mode the Jacobian was computed in ([`JacobianMode::Forward`] or
    /// [`JacobianMode::Reverse`], never `Auto`).
    pub mode: JacobianMode,
    /// How many directions the batched program computes (input elements in forward
    /// mode, output elements in reverse mode).
    pub directions: usize,
    /// The name of the derivative's output.
    pub output: String,
}

/// The JVP of output `of` along `k` tangents at once: the program plus one input
/// `tan.<w>` of type `[k, …w]` per `w` and the output `tan.<of>` of type `[k, …of]`,
/// row `i` being the JVP along the `i`-th tangents. The program's own outputs keep
/// their types.
pub fn jvp_directions(graph: &Graph, of: Option<&str>, wrt: &[&str], k: usize) -> Result<Graph> {
    let d = autodiff::jvp(graph, of, wrt)?;
    let added = added_inputs(graph, &d);
    let names: Vec<&str> = added.iter().map(String::as_str).collect();
    vmap(&d, &names, k)
}

/// The VJP of output `of` with respect to `wrt` for `k` cotangents at once: the program
/// plus the input `ct.<of>` of type `[k, …of]` and outputs `grad.<w>` of type
/// `[k, …w]`.
pub fn vjp_directions(graph: &Graph, of: Option<&str>, wrt: &[&str], k: usize) -> Result<Graph> {
    let d = autodiff::vjp(graph, of, wrt)?;
    let added = added_inputs(graph, &d);
    let names: Vec<&str> = added.iter().map(String::as_str).collect();
    vmap(&d, &names, k)
}

/// The inputs of `d` that `graph` does not have, in order.
fn added_inputs(graph: &Graph, d: &Graph) -> Vec<String> {
    d.inputs
        .iter()
        .filter(|(n, _)| graph.input(n).is_err())
        .map(|(n, _)| n.clone())
        .collect()
}

/// The Jacobian of output `of` (default: the only output) with respect to the input
/// `wrt`, as one program: its outputs, then `jac.<wrt>` of type `[…of, …wrt]` (JAX's
/// layout). `mode` chooses forward mode (one batched JVP per element of `wrt`) or
/// reverse mode (one batched VJP per element of `of`); `Auto` takes whichever needs
/// fewer, and the result says which.
pub fn jacobian(
    graph: &Graph,
    of: Option<&str>,
    wrt: &str,
    mode: JacobianMode,
) -> Result<Derivative> {
    let (of_name, out) = autodiff::resolve_output(graph, of)?;
    let w = graph.input(wrt)?;
    let out_shape = graph.ty(out).shape.clone();
    let in_shape = graph.ty(w).shape.clone();
    let m: usize = out_shape.iter().product();
    let n: usize = in_shape.iter().product();
    let mode = match mode {
        JacobianMode::Auto if n <= m => JacobianMode::Forward,
        JacobianMode::Auto => JacobianMode::Reverse,
        other => other,
    };
    let mut full = out_shape.clone();
    full.extend(&in_shape);
    let (d, directions) = match mode {
        JacobianMode::Reverse => (autodiff::vjp(graph, Some(&of_name), &[wrt])?, m),
        _ => (autodiff::jvp(graph, Some(&of_name), &[wrt])?, n),
    };
    let seed_name = added_inputs(graph, &d)
        .pop()
        .ok_or_else(|| Error::Internal("the derivative added no input".into()))?;
    let batched = vmap(&d, &[&seed_name], directions)?;
    // The batched derivative is the last output; the seed becomes the identity basis.
    let mut b = Builder::new();
    let seed_ty = batched.ty(batched.input(&seed_name)?).clone();
    let mut args = Vec::with_capacity(batched.inputs.len());
    for (name, v) in &batched.inputs {
        if *name == seed_name {
            let eye = identity(&mut b, directions)?;
            args.push(b.reshape(eye, &seed_ty.shape)?);
        } else {
            args.push(b.input(name, batched.ty(*v).clone())?);
        }
    }
    let outs = b.inline_graph(&batched, &args)?;
    let (derivative, rest) = outs
        .split_last()
        .ok_or_else(|| Error::Internal("the derivative has no output".into()))?;
    for ((name, _), &v) in batched.outputs.iter().zip(rest) {
        b.output(name, v)?;
    }
    let jac = match mode {
        JacobianMode::Reverse => b.reshape(*derivative, &full)?,
        _ => {
            let flat = b.reshape(*derivative, &[n, m])?;
            let t = b.transpose(flat, &[1, 0])?;
            b.reshape(t, &full)?
        }
    };
    let name = fresh_output(b.graph(), &format!("jac.{wrt}"));
    b.output(&name, jac)?;
    let mut g = b.finish()?;
    passes::optimize(&mut g)?;
    crate::ir::verify(&g)?;
    Ok(Derivative {
        graph: g,
        mode,
        directions,
        output: name,
    })
}

/// The Hessian of the scalar output `of` (default: the only output) with respect to
/// the input `wrt`, as one program, forward over reverse: the program's outputs, the
/// gradient `grad.<wrt>`, then `hessian.<wrt>` of type `[…wrt, …wrt]`.
pub fn hessian(graph: &Graph, of: Option<&str>, wrt: &str) -> Result<Derivative> {
    let g1 = autodiff::grad(graph, of, &[wrt])?;
    let gname = g1
        .outputs
        .last()
        .map(|(n, _)| n.clone())
        .ok_or_else(|| Error::Internal("the gradient has no output".into()))?;
    let mut d = jacobian(&g1, Some(&gname), wrt, JacobianMode::Forward)?;
    let name = fresh_output(&d.graph, &format!("hessian.{wrt}"));
    if let Some(last) = d.graph.outputs.last_mut() {
        last.0 = name.clone();
    }
    d.output = name;
    Ok(d)
}

/// The highest order [`directional`] takes. Nested JVPs are taken one order at a time,
/// and differentiating the previous order's program grows exponentially with the order:
/// on W5 at N = 4, order 12 takes 0.5 s and 130 MB, order 16 takes 96 s and 7 GB.
pub const MAX_ORDER: usize = 12;

/// The derivatives of output `of` (default: the only output) of every order from 1 to
/// `order` along one tangent `tan.<wrt>`: the program plus that input and outputs
/// `d1.<of>` … `d<order>.<of>`, where `dk` is the k-th derivative applied to the tangent
/// k times (`f⁽ᵏ⁾(x)[v, …, v]`).
///
/// Fails for an order of 0 or above [`MAX_ORDER`].
pub fn directional(graph: &Graph, of: Option<&str>, wrt: &str, order: usize) -> Result<Graph> {
    if order == 0 {
        return Err(Error::Name(
            "the order of a derivative is at least 1".into(),
        ));
    }
    if order > MAX_ORDER {
        return Err(Error::Diff(format!(
            "order {order} is above the {MAX_ORDER} nested JVPs take: each order differentiates the last, and the work grows exponentially with it (W5 at order 16: 96 s and 7 GB)"
        )));
    }
    let (of_name, _) = autodiff::resolve_output(graph, of)?;
    let mut g = graph.clone();
    let mut of_k = of_name.clone();
    let mut tangents = Vec::new();
    let mut orders = Vec::new();
    for _ in 0..order {
        let d = autodiff::jvp(&g, Some(&of_k), &[wrt])?;
        tangents.extend(added_inputs(&g, &d));
        of_k = d
            .outputs
            .last()
            .map(|(n, _)| n.clone())
            .ok_or_else(|| Error::Internal("the JVP has no output".into()))?;
        orders.push(of_k.clone());
        g = d;
    }
    // One tangent input, bound to every nested JVP's.
    let tname = fresh_input(graph, &format!("tan.{wrt}"));
    let mut b = Builder::new();
    let ty = graph.ty(graph.input(wrt)?).clone();
    let mut args = Vec::with_capacity(g.inputs.len());
    let mut tangent = None;
    for (name, v) in &g.inputs {
        if tangents.contains(name) {
            let t = match tangent {
                Some(t) => t,
                None => {
                    let t = b.input(&tname, ty.clone())?;
                    tangent = Some(t);
                    t
                }
            };
            args.push(t);
        } else {
            args.push(b.input(name, g.ty(*v).clone())?);
        }
    }
    let outs = b.inline_graph(&g, &args)?;
    for ((name, _), v) in g.outputs.iter().zip(outs) {
        let name = match orders.iter().position(|o| o == name) {
            Some(k) => fresh_output(b.graph(), &format!("d{}.{of_name}", k + 1)),
            None => name.clone(),
        };
        b.output(&name, v)?;
    }
    let mut g = b.finish()?;
    passes::optimize(&mut g)?;
    crate::ir::verify(&g)?;
    Ok(g)
}

/// The `n × n` identity matrix in f32.
fn identity(b: &mut Builder, n: usize) -> Result<Value> {
    let rows = b.iota(DType::I32, &[n, n], 0)?;
    let cols = b.iota(DType::I32, &[n, n], 1)?;
    let eq = b.compare(CmpOp::Eq, rows, cols)?;
    b.cast(eq, DType::F32)
}

/// `name`, made unique among the outputs of `g` by repeating its first component.
fn fresh_output(g: &Graph, name: &str) -> String {
    autodiff::fresh(&g.outputs, name)
}

/// `name`, made unique among the inputs of `g` like [`fresh_output`].
fn fresh_input(g: &Graph, name: &str) -> String {
    autodiff::fresh(&g.inputs, name)
}
