//! Slices of a product become products of slices.
//!
//! A slice of `dot(a, b)` that restricts only free axes (not batch axes) reads the
//! product of the restricted operands: `slice(dot(a, b)) == dot(slice(a), slice(b))`,
//! each element the same sum in the same order, so the rewrite is exact. It fires when
//! every reader of the product is such a slice: each becomes a smaller product, and
//! the part of the product nobody reads is never computed. Reverse mode through a
//! product of concatenated operands (`factor`'s `concat(x, h)·concat(U; W)`) reads one
//! slice of the cotangent `dz·concat(U; W)ᵀ`; as `dz·Wᵀ` it needs only `W`.

use super::rewrite::rebuild;
use crate::ir::{DotDims, Graph, Op, Value};

/// Rewrites every slice of a product whose readers are all slices. Returns whether any
/// did.
pub fn run(graph: &mut Graph) -> bool {
    let mut changed = false;
    for body in &mut graph.regions {
        changed |= run(body);
    }
    let live = super::rewrite::live(graph);
    // Per product: how many live readers it has, and how many are slices.
    let mut readers = vec![(0usize, 0usize); graph.len()];
    for v in graph.values().filter(|v| live[v.index()]) {
        let slice = matches!(graph.node(v).op, Op::Slice { .. });
        for a in &graph.node(v).args {
            readers[a.index()].0 += 1;
            readers[a.index()].1 += usize::from(slice);
        }
    }
    for (_, v) in graph.outputs() {
        readers[v.index()].0 += 1;
    }
    let plans: Vec<Option<[Option<Window>; 2]>> = graph
        .values()
        .map(|v| {
            let node = graph.node(v);
            let Op::Slice { start, limit } = &node.op else {
                return None;
            };
            let d = node.args[0];
            let (all, slices) = readers[d.index()];
            if !live[v.index()] || all != slices {
                return None;
            }
            let Op::Dot(dims) = &graph.node(d).op else {
                return None;
            };
            let [a, b] = [graph.node(d).args[0], graph.node(d).args[1]];
            operand_windows(graph, dims, a, b, start, limit)
        })
        .collect();
    if plans.iter().all(Option::is_none) {
        return changed;
    }
    let rebuilt = rebuild(graph, |bld, map, v| {
        let windows = plans[v.index()].as_ref()?;
        let d = graph.node(v).args[0];
        let Op::Dot(dims) = &graph.node(d).op else {
            return None;
        };
        let operands = [graph.node(d).args[0], graph.node(d).args[1]];
        let mut args = Vec::with_capacity(2);
        for (x, w) in operands.iter().zip(windows) {
            let x = map[x.index()];
            args.push(match w {
                Some(w) => match bld.push(
                    Op::Slice {
                        start: w.start.clone(),
                        limit: w.limit.clone(),
                    },
                    &[x],
                ) {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                },
                None => x,
            });
        }
        Some(bld.push(Op::Dot(dims.clone()), &args))
    });
    match rebuilt {
        Some(g) => {
            *graph = g;
            true
        }
        None => changed,
    }
}

/// The part of one operand a slice of the product reads.
#[derive(Clone, Debug)]
struct Window {
    start: Vec<usize>,
    limit: Vec<usize>,
}

/// The windows of `a` and `b` (none: the whole operand) that a slice `start..limit` of
/// `dot(a, b)` reads, when it restricts free axes only.
fn operand_windows(
    g: &Graph,
    dims: &DotDims,
    a: Value,
    b: Value,
    start: &[usize],
    limit: &[usize],
) -> Option<[Option<Window>; 2]> {
    let (ta, tb) = (g.ty(a), g.ty(b));
    let batch = dims.lhs_batch.len();
    let result: Vec<usize> = dims
        .lhs_batch
        .iter()
        .map(|&x| ta.shape[x])
        .chain(
            DotDims::free_axes(ta.rank(), &dims.lhs_batch, &dims.lhs_contract)
                .iter()
                .map(|&x| ta.shape[x]),
        )
        .chain(
            DotDims::free_axes(tb.rank(), &dims.rhs_batch, &dims.rhs_contract)
                .iter()
                .map(|&x| tb.shape[x]),
        )
        .collect();
    if start.len() != result.len() {
        return None;
    }
    let full = |k: usize| start[k] == 0 && limit[k] == result[k];
    if !(0..batch).all(full) {
        return None;
    }
    let free_a = DotDims::free_axes(ta.rank(), &dims.lhs_batch, &dims.lhs_contract);
    let free_b = DotDims::free_axes(tb.rank(), &dims.rhs_batch, &dims.rhs_contract);
    let window = |shape: &[usize], free: &[usize], first: usize| -> Option<Window> {
        let mut w = Window {
            start: vec![0; shape.len()],
            limit: shape.to_vec(),
        };
        let mut restricted = false;
        for (j, &axis) in free.iter().enumerate() {
            let k = first + j;
            if !full(k) {
                restricted = true;
                w.start[axis] = start[k];
                w.limit[axis] = limit[k];
            }
        }
        restricted.then_some(w)
    };
    let wa = window(&ta.shape, &free_a, batch);
    let wb = window(&tb.shape, &free_b, batch + free_a.len());
    if wa.is_none() && wb.is_none() {
        return None;
    }
    Some([wa, wb])
}
