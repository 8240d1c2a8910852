//! Fusion decisions about rows: kernels that reduce along the last axis of the same
//! rows, and the elementwise work between those reductions, merge into one *row
//! kernel* (`emit::row`) that makes a few passes over each row and stores only what
//! other kernels read.
//!
//! A softmax with its loss and gradient is the case this is for: the row maximum, the
//! sum of exponentials, the sum of the targets, each row's loss and `softmax · Σy − y`
//! are five kernels when each reduction is a kernel of its own, and their per-row
//! results are buffers. As one row kernel they are three passes over each row (by one
//! invocation on CPU adapters, by a workgroup on GPUs), the per-row results live in
//! registers, and the gradient may overwrite the logits it was computed from.
//!
//! Kernels join a group when one reads another's result *at its own row*: through
//! elementwise ops, broadcasts of per-row values along the row, and reductions along
//! the row. A merge that would make a kernel outside the group both read from the
//! group and feed it is refused (the kernels must still run in some order).

use super::placement::{Placement, computed_by, kernel_of, kernel_values, readers};
use super::target::Target;
use crate::ir::{Graph, Op, OpClass, Value};
use crate::passes::split_rows::{Rows, row_local_op};

/// Reductions at least this long over fewer rows than this are not grouped: they
/// run in two stages, which needs their own kernels (`target::SPLIT_REDUCTION`) —
/// except a single row of at most [`ONE_ROW`] elements, which one row kernel passes
/// over a few times faster than a pair of kernels per reduction (Enzyme's normalize,
/// W4: the squared norm, the loss and the norm's cotangent, three passes over one row).
const LONG_ROW: usize = 4096;
const FEW_ROWS: usize = 256;
/// The longest single row grouped: `split_rows::ONE_ROW`.
const ONE_ROW: usize = crate::passes::split_rows::ONE_ROW;

/// The longest contraction a row kernel computes inline, per element.
pub const INLINE_K: usize = 128;
/// The longest row of an inline product (its columns).
pub const INLINE_N: usize = 64;

/// The rows of product `v` when a row kernel may compute it inline, each element as a
/// loop over K: `[M, K] · [K, N]` with K ≤ [`INLINE_K`] and N ≤ [`INLINE_N`], in
/// `f32`. A loss head's logits (W7: `[32, 128] · [128, 10]`) are computed this way by
/// the row kernel of their softmax and its gradient, which then keeps nothing of the
/// forward product for the backward: it recomputes the logits from the hidden state
/// and the weights it reads anyway. Rows of `N` elements, one per row of `M`.
pub fn inline_product(g: &Graph, v: Value) -> Option<Rows> {
    let node = g.node(v);
    let Op::Dot(d) = &node.op else { return None };
    let (lt, rt, ty) = (g.ty(node.args[0]), g.ty(node.args[1]), g.ty(v));
    let simple = d.lhs_batch.is_empty()
        && d.rhs_batch.is_empty()
        && lt.rank() == 2
        && rt.rank() == 2
        && d.lhs_contract[..] == [1]
        && d.rhs_contract[..] == [0]
        && ty.dtype == crate::ir::DType::F32;
    (simple && lt.shape[1] <= INLINE_K && rt.shape[1] <= INLINE_N && ty.numel() > 0).then(|| Rows {
        prefix: vec![ty.shape[0]],
        len: ty.shape[1],
    })
}

/// The rows a kernel may compute in a row kernel: those of its reductions (all along
/// the last axis of the same rows) and of its inline product, or `None` when it has
/// none, or another contraction or a loop.
fn kernel_rows(g: &Graph, values: &[Value]) -> Option<Option<Rows>> {
    let mut rows: Option<Rows> = None;
    for &v in values {
        match g.node(v).op.class() {
            OpClass::Reduction => {
                let r = Rows::of_reduction(g, v)?;
                let one_row = r.count() == 1 && r.len <= ONE_ROW;
                if r.len >= LONG_ROW && r.count() < FEW_ROWS && !one_row {
                    return None;
                }
                match &rows {
                    Some(known) if *known != r => return None,
                    _ => rows = Some(r),
                }
            }
            OpClass::Contraction => {
                let r = inline_product(g, v)?;
                match &rows {
                    Some(known) if *known != r => return None,
                    _ => rows = Some(r),
                }
            }
            OpClass::Loop => return None,
            OpClass::Scatter => match &g.node(v).op {
                Op::ScatterAdd { axis, .. } if g.ty(g.node(v).args[0]).shape[*axis] != 1 => {
                    return None;
                }
                _ => {}
            },
            OpClass::Input
            | OpClass::Generated
            | OpClass::Elementwise
            | OpClass::Identity
            | OpClass::Reindex
            | OpClass::Indexed => {}
        }
    }
    Some(rows)
}

/// Whether kernel `values` reads the `members`' results and its own reductions only at
/// its own row of `rows`.
fn reads_locally(g: &Graph, values: &[Value], members: &[bool], rows: &Rows) -> bool {
    let mut depends = std::collections::HashSet::new();
    for &v in values {
        let node = g.node(v);
        let reads = node.args.iter().any(|a| {
            members[a.index()]
                || depends.contains(a)
                || (values.binary_search(a).is_ok() && matches!(g.node(*a).op, Op::Reduce { .. }))
        });
        if reads || matches!(node.op, Op::Reduce { .. }) {
            if !row_local_op(g, v, rows) {
                return false;
            }
            depends.insert(v);
        }
    }
    values
        .iter()
        .max()
        .is_some_and(|root| rows.holds(&g.ty(*root).shape))
}

/// Merges kernels into row groups: every group of two or more kernels becomes one
/// kernel, rooted at its last member, the others computed beside it
/// (`Placement::Also`).
pub fn group(g: &Graph, place: &mut [Placement], target: &Target) {
    let n = g.len();
    let roots: Vec<Value> = (0..n)
        .filter(|&i| place[i] == Placement::Root)
        .map(|i| Value(i as u32))
        .collect();
    let readers = readers(g, place);
    let values: Vec<Vec<Value>> = kernel_values(place)
        .iter()
        .map(|own| computed_by(g, place, own))
        .collect();
    // The kernels each kernel reads from.
    let mut reads: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, rs) in readers.iter().enumerate() {
        if let Some(k) = kernel_of(place, Value(v as u32)) {
            for r in rs {
                if !reads[r.index()].contains(&k.index()) {
                    reads[r.index()].push(k.index());
                }
            }
        }
    }
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (r, ks) in reads.iter().enumerate() {
        for &k in ks {
            succs[k].push(r);
        }
    }
    // Each kernel's group (by index into `groups`), and each group's rows and members.
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut groups: Vec<(Rows, Vec<usize>)> = Vec::new();
    for &k in &roots {
        let k = k.index();
        let Some(own) = kernel_rows(g, &values[k]) else {
            continue;
        };
        let mut joined: Vec<usize> = reads[k].iter().filter_map(|&p| group_of[p]).collect();
        joined.sort_unstable();
        joined.dedup();
        let mut merged: Option<(Rows, Vec<usize>)> = None;
        for gi in joined {
            let (rows, members) = &groups[gi];
            if own.as_ref().is_some_and(|r| r != rows) {
                continue;
            }
            if merged.as_ref().is_some_and(|(r, _)| r != rows) {
                continue;
            }
            let mut tentative = merged.clone().unwrap_or((rows.clone(), Vec::new()));
            tentative.1.extend(members);
            tentative.1.push(k);
            if legal(g, &values, &tentative, &group_of, &groups, &succs, target) {
                tentative.1.pop();
                merged = Some(tentative);
            }
        }
        let (rows, mut members) = match (merged, own) {
            (Some(m), _) => m,
            (None, Some(rows)) => (rows, Vec::new()),
            (None, None) => continue,
        };
        // A merged group was checked with `k` in it.
        members.push(k);
        let id = groups.len();
        for &m in &members {
            if let Some(old) = group_of[m] {
                groups[old].1.clear();
            }
            group_of[m] = Some(id);
        }
        groups.push((rows, members));
    }
    for (_, members) in groups {
        let Some(&head) = members.iter().max() else {
            continue;
        };
        // A row kernel passes over rows for its reductions: products alone (with the
        // elementwise work between them) stay kernels of their own.
        let reduces = members.iter().any(|&m| {
            values[m]
                .iter()
                .any(|v| g.node(*v).op.class() == OpClass::Reduction)
        });
        if members.len() < 2 || !reduces {
            continue;
        }
        for m in members {
            if m != head {
                place[m] = Placement::Also(Value(head as u32));
            }
        }
    }
}

/// Whether the kernels `members` may become one row kernel along `rows`: each reads
/// the others at its own row, no kernel outside both reads from the group and feeds
/// it, and the kernel binds no more buffers than the target allows.
fn legal(
    g: &Graph,
    values: &[Vec<Value>],
    (rows, members): &(Rows, Vec<usize>),
    group_of: &[Option<usize>],
    groups: &[(Rows, Vec<usize>)],
    succs: &[Vec<usize>],
    target: &Target,
) -> bool {
    let n = g.len();
    let mut is_member = vec![false; n];
    for &m in members {
        is_member[m] = true;
    }
    if !members
        .iter()
        .all(|&m| reads_locally(g, &values[m], &is_member, rows))
    {
        return false;
    }
    // An inline product reads its operands from buffers (or re-indexes them): none is
    // computed by another member, which would nest one product's loop in another's.
    let computed_by_other = |m: usize, a: &Value| {
        members
            .iter()
            .any(|&o| o != m && values[o].binary_search(a).is_ok())
    };
    for &m in members {
        for &v in &values[m] {
            if matches!(g.node(v).op, Op::Dot(_))
                && g.node(v).args.iter().any(|a| computed_by_other(m, a))
            {
                return false;
            }
        }
    }
    // Buffers bound: everything loaded from outside, plus one per member at most.
    let mut loaded = std::collections::HashSet::new();
    for &m in members {
        for &v in &values[m] {
            for a in &g.node(v).args {
                if values[m].binary_search(a).is_err() && !is_member[a.index()] {
                    loaded.insert(*a);
                }
            }
        }
    }
    let loaded = loaded
        .iter()
        .filter(|a| {
            !matches!(
                g.node(**a).op,
                Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. }
            )
        })
        .count();
    if loaded + members.len() > target.max_storage_buffers_per_shader_stage as usize {
        return false;
    }
    // No path leaves the group and comes back. Kernels already grouped elsewhere move
    // together, so their group's members are visited as one.
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = members
        .iter()
        .flat_map(|&m| succs[m].iter().copied())
        .filter(|&s| !is_member[s])
        .collect();
    while let Some(k) = stack.pop() {
        if is_member[k] {
            return false;
        }
        if std::mem::replace(&mut seen[k], true) {
            continue;
        }
        let together: Vec<usize> = match group_of[k] {
            Some(gi) if !groups[gi].1.is_empty() => groups[gi].1.clone(),
            _ => vec![k],
        };
        for t in together {
            seen[t] = true;
            if is_member[t] {
                return false;
            }
            stack.extend(&succs[t]);
        }
    }
    true
}

/// Whether a row kernel computing `inside` reads `u` only at the element it is
/// computing: every value it computes from `u` is computed at its own row.
pub fn read_at_own_element(g: &Graph, inside: &[Value], u: Value, rows: &Rows) -> bool {
    let mut depends = std::collections::HashSet::new();
    for &v in inside {
        if g.node(v)
            .args
            .iter()
            .any(|a| *a == u || depends.contains(a))
        {
            if !row_local_op(g, v, rows) {
                return false;
            }
            depends.insert(v);
        }
    }
    true
}
