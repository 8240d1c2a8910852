//! Loop-to-map: a loop whose iterations are independent becomes the whole-tensor
//! computation it spells out one row at a time.
//!
//! The pattern is JAX's `out.at[i].set(f(x[i], invariants))` in a `fori_loop`: a loop of
//! `T` trips carrying one value `out` of leading extent `T`, whose body writes row `i`
//! of it (`dynamic_update_slice(out, u, i, 0, …)`) and reads `out` nowhere else, where
//! `u` is computed elementwise from rows `i` of invariant operands of leading extent `T`
//! (`dynamic_slice(x, i, 0, …)`), invariant operands of one row, and constants. Every row
//! is written once and no iteration reads another's result, so the loop's result is `f`
//! applied to the whole tensors: rows of `x` become `x`, one-row invariants and constants
//! are broadcast along the leading axis. After loop-invariant code motion, W4's loop
//! (`out[i] = x[i] / ‖x‖`) becomes `out = x / ‖x‖`, and its gradient has no loop.

use crate::error::{Error, Result};
use crate::ir::{Builder, Graph, Op, OpClass, Value};

/// Replaces every loop of the pattern by its whole-tensor form. Returns whether any
/// was replaced.
pub fn run(graph: &mut Graph) -> Result<bool> {
    let found = graph
        .nodes
        .iter()
        .any(|n| matches!(&n.op, Op::Loop { .. }) && map_of(graph, n).is_some());
    if !found {
        return Ok(false);
    }
    *graph = super::rewrite::rebuild_loops(graph, |b, g, node, args| {
        if let Some(m) = map_of(g, node) {
            return Ok(vec![m.emit(b, args)?]);
        }
        let (trips, carried, body) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile("not a loop".into()))?;
        let (c, x) = args.split_at(carried);
        b.loop_of(trips, c, x, g.region(body))
    })?;
    Ok(true)
}

/// A loop of the pattern: its body, the row it writes, and its trip count (the leading
/// extent of its result).
struct RowMap<'g> {
    body: &'g Graph,
    /// The body value written as row `i`.
    row: Value,
    /// Trips, and rows of the result.
    trips: usize,
}

/// The loop `node` as a row map, if it is one.
fn map_of<'g>(g: &'g Graph, node: &crate::ir::Node) -> Option<RowMap<'g>> {
    let Op::Loop {
        trips,
        carried: 1,
        body,
    } = &node.op
    else {
        return None;
    };
    let body = g.region(*body);
    let trips = *trips as usize;
    let out_ty = g.ty(node.args[0]);
    if trips == 0 || out_ty.rank() == 0 || out_ty.shape[0] != trips {
        return None;
    }
    // The body's one output: row i of the carried value replaced.
    let (_, next) = body.outputs.first()?;
    let dus = body.node(*next);
    if dus.op != Op::DynamicUpdateSlice || !is_input(body, dus.args[0], 1) {
        return None;
    }
    if !row_starts(body, &dus.args[2..]) {
        return None;
    }
    let row = dus.args[1];
    let mut row_shape = out_ty.shape.clone();
    row_shape[0] = 1;
    if body.ty(row).shape != row_shape {
        return None;
    }
    // The carried value is read only by the update; the index only as row starts.
    for (j, n) in body.nodes.iter().enumerate() {
        let reads = |k: u32| n.args.iter().any(|a| is_input(body, *a, k));
        if j != next.index() && reads(1) {
            return None;
        }
        let row_read = matches!(n.op, Op::DynamicSlice { .. } | Op::DynamicUpdateSlice);
        if reads(0) && !row_read {
            return None;
        }
    }
    let m = RowMap { body, row, trips };
    m.computable(row).then_some(m)
}

/// Whether `v` is the body's input number `k` (0 the index, 1 the carried value).
fn is_input(body: &Graph, v: Value, k: u32) -> bool {
    matches!(body.node(v).op, Op::Input { index } if index == k)
}

/// Whether `starts` are `i, 0, 0, …`.
fn row_starts(body: &Graph, starts: &[Value]) -> bool {
    starts.first().is_some_and(|s| is_input(body, *s, 0))
        && starts[1..].iter().all(
            |s| matches!(body.node(*s).op, Op::Constant { value, .. } if value.to_f64() == 0.0),
        )
}

impl RowMap<'_> {
    /// Whether `v`'s whole-tensor form exists: the expression reaching it reads rows
    /// `i` of invariants, one-row invariants and constants, through elementwise ops.
    fn computable(&self, v: Value) -> bool {
        let mut stack = vec![v];
        let mut seen = std::collections::HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            let node = self.body.node(x);
            let ok = match node.op.class() {
                OpClass::Input => matches!(node.op, Op::Input { index } if index >= 2),
                OpClass::Generated => matches!(node.op, Op::Constant { .. }),
                OpClass::Elementwise | OpClass::Identity => {
                    stack.extend(&node.args);
                    true
                }
                OpClass::Indexed => self.row_read(x).is_some(),
                OpClass::Reindex
                | OpClass::Reduction
                | OpClass::Contraction
                | OpClass::Scatter
                | OpClass::Loop => false,
            };
            // Everything but a row read is a row, or one row standing for every row.
            let leading_one = self.body.ty(x).rank() >= 1 && self.body.ty(x).shape[0] == 1;
            if !ok || !leading_one {
                return false;
            }
        }
        true
    }

    /// The invariant input read by `v` when `v` is its row `i`, whole.
    fn row_read(&self, v: Value) -> Option<u32> {
        let node = self.body.node(v);
        let Op::DynamicSlice { sizes } = &node.op else {
            return None;
        };
        let src = node.args[0];
        let Op::Input { index } = self.body.node(src).op else {
            return None;
        };
        let shape = &self.body.ty(src).shape;
        let whole_rows = sizes[0] == 1 && sizes[1..] == shape[1..] && shape[0] == self.trips;
        (index >= 2 && whole_rows && row_starts(self.body, &node.args[1..])).then_some(index)
    }

    /// Emits the whole-tensor form into `b`, given the loop's operands `args`; returns
    /// the loop's result.
    fn emit(&self, b: &mut Builder, args: &[Value]) -> Result<Value> {
        // The expression of the row: what it reads, back to row reads and leaves.
        let mut cone = vec![false; self.body.len()];
        let mut stack = vec![self.row];
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut cone[x.index()], true) && self.row_read(x).is_none() {
                stack.extend(&self.body.node(x).args);
            }
        }
        let mut whole: Vec<Option<Value>> = vec![None; self.body.len()];
        for (j, node) in self.body.nodes.iter().enumerate() {
            let v = Value(j as u32);
            if !cone[j] {
                continue;
            }
            let ty = self.body.ty(v);
            let mut shape = ty.shape.clone();
            shape[0] = self.trips;
            let dims: Vec<usize> = (0..shape.len()).collect();
            whole[j] = Some(match &node.op {
                // A one-row invariant stands for every row.
                Op::Input { index } => {
                    let x = args[*index as usize - 1];
                    b.broadcast_in_dim(x, &shape, &dims)?
                }
                Op::Constant { value, .. } => b.constant(*value, &shape)?,
                Op::DynamicSlice { .. } => match self.row_read(v) {
                    Some(index) => args[index as usize - 1],
                    None => return Err(lost(v)),
                },
                op => {
                    let operands = node
                        .args
                        .iter()
                        .map(|a| whole[a.index()].ok_or_else(|| lost(*a)))
                        .collect::<Result<Vec<Value>>>()?;
                    b.push(op.clone(), &operands)?
                }
            });
        }
        whole[self.row.index()].ok_or_else(|| lost(self.row))
    }
}

fn lost(v: Value) -> Error {
    Error::Internal(format!("loop-to-map lost {v} of a loop body"))
}
