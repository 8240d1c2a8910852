//! Fusion: decides which values get a buffer of their own and which are computed inline
//! inside the kernel that consumes them, within the target's binding limit.
//!
//! Every kernel computes one *root* value. A root is a program input or output, a value
//! that needs its own loop structure (`reduce`, `dot`, `scatter_add`), a value consumed
//! by more than one kernel, or an operand of a `dot` that is more than a re-indexing of
//! a buffer (a product reads each operand element many times, so its operands are
//! computed once). Everything else — chains of elementwise ops, broadcasts, reshapes,
//! slices, pads, gathers — is fused into the kernel of its only consumer, including
//! elementwise chains feeding a reduction. Constants and iotas are never stored: every
//! kernel that reads one computes it.
//!
//! Two placements then give a kernel several results (`Placement::Also`): row
//! groups (`fuse_rows`), and a product that also sums the columns of its operand or
//! its whole result (`fuse_products`), which is how a bias gradient rides along with
//! its weight gradient. Kernels then run in an order that respects what each reads
//! (`placement::kernel_order`), which is no longer the order of their roots.
//!
//! In a long elementwise region (the gradient of a chain of hundreds of ops), values
//! are recomputed up to a segment deep and kernels are cut between segments first
//! (`checkpoint`), so the backward recomputes one segment per kernel from a stored
//! checkpoint.
//!
//! Last, reductions of one domain that do not depend on each other become one kernel
//! with several results (`fuse_siblings`).
//!
//! A kernel that would bind more storage buffers than the target allows is split
//! before any kernel is written ([`place_within_limits`]).

use super::fuse_products;
use super::placement::{Placement, binding_counts, readers, reading_kernel, users};
use super::target::Target;
use crate::error::{Error, Result};
use crate::ir::{Graph, Op, OpClass, Value};
use crate::passes::{Optimizations, split_rows};

/// How many elementwise ops deep a value recomputed by every reader may be.
const MAX_RECOMPUTE: usize = 3;

/// Places every value so that no kernel binds more storage buffers than the target
/// allows: a kernel over the limit has the fused value whose expression reads the most
/// buffers (short of all of them) made a kernel of its own, every such kernel at once,
/// and values are placed again until every kernel fits. Only placement repeats; kernels
/// are generated once, afterwards.
pub fn place_within_limits(
    g: &Graph,
    target: &Target,
    enabled: &Optimizations,
) -> Result<Vec<Placement>> {
    let mut split = if enabled.fusion {
        split_rows::per_row_operands(g)
    } else {
        vec![false; g.len()]
    };
    let limit = target.max_storage_buffers_per_shader_stage as usize;
    let mut round = 0;
    loop {
        round += 1;
        let place = place(g, &split, target, enabled);
        let readers = readers(g, &place);
        let counts = binding_counts(g, &place, &readers, target);
        let over: Vec<(Value, usize)> = counts
            .iter()
            .copied()
            .filter(|&(_, count)| count > limit)
            .collect();
        let Some(&(root, needed)) = over.first() else {
            log::debug!("placement within the binding limit: {round} rounds");
            return Ok(place);
        };
        // An elementwise result computed beside a reduction (`fuse_siblings`) leaves
        // the reduction's kernel first: that restores the kernels it had alone, which
        // the cuts below know how to split.
        let mut changed = false;
        for &(root, _) in &over {
            for (i, p) in place.iter().enumerate() {
                if *p == Placement::Also(root) && g.nodes[i].op.class() == OpClass::Elementwise {
                    changed |= !std::mem::replace(&mut split[i], true);
                }
            }
        }
        if changed {
            continue;
        }
        let cuts = splits_within(g, &place, &readers, &counts, limit);
        for v in cuts {
            changed |= !std::mem::replace(&mut split[v.index()], true);
        }
        if !changed {
            return Err(Error::Limits {
                what: format!(
                    "max_storage_buffers_per_shader_stage (the kernel of {root} = {}, which no split makes fit)",
                    g.node(root).op.name()
                ),
                needed: needed as u64,
                available: limit as u64,
            });
        }
    }
}

/// Places every value of a loop-free graph; values marked in `split` become roots
/// too (used to split kernels that would bind too many buffers).
pub fn place(
    g: &Graph,
    split: &[bool],
    target: &Target,
    enabled: &Optimizations,
) -> Vec<Placement> {
    let long = if enabled.checkpoint && enabled.rematerialize {
        super::checkpoint::long_regions(g)
    } else {
        vec![false; g.len()]
    };
    let mut place = place_values(g, split, target, enabled, &long);
    if long.contains(&true) {
        // Long elementwise regions are cut into checkpointed segments, then placed again.
        let cuts = super::checkpoint::cuts(g, &place, &long);
        if !cuts.is_empty() {
            let mut stored = split.to_vec();
            stored.resize(g.len(), false);
            for v in cuts {
                stored[v.index()] = true;
            }
            place = place_values(g, &stored, target, enabled, &long);
        }
    }
    if enabled.fusion {
        super::fuse_rows::group(g, &mut place, target);
        fuse_products::fuse_column_sums(g, &mut place, target);
        fuse_products::fuse_product_sums(g, &mut place, target);
        if enabled.siblings {
            super::fuse_siblings::group(g, &mut place, split, target);
        }
    }
    place
}

/// Places every value in a kernel of one root; values in `long` (long elementwise
/// regions, [`super::checkpoint`]) are recomputed up to a segment deep.
fn place_values(
    g: &Graph,
    split: &[bool],
    target: &Target,
    enabled: &Optimizations,
    long: &[bool],
) -> Vec<Placement> {
    let n = g.len();
    let users = users(g);
    let mut forced = split.to_vec();
    forced.resize(n, false);
    for (_, v) in &g.outputs {
        forced[v.index()] = true;
    }
    for node in &g.nodes {
        if let Op::Dot(_) = node.op {
            for &a in &node.args {
                if !(enabled.fusion && fuse_products::prologue_operand(g, a)) {
                    forced[reindexed_source(g, a).index()] = true;
                }
            }
        }
    }
    let mut place = vec![Placement::Dead; n];
    for i in (0..n).rev() {
        place[i] = match g.nodes[i].op.class() {
            OpClass::Input => Placement::Input,
            OpClass::Generated if !forced[i] => Placement::Everywhere,
            OpClass::Scatter if !row_scatter(g, Value(i as u32)) => Placement::Root,
            OpClass::Reduction | OpClass::Contraction => Placement::Root,
            _ if forced[i] => Placement::Root,
            OpClass::Generated
            | OpClass::Elementwise
            | OpClass::Identity
            | OpClass::Reindex
            | OpClass::Indexed
            | OpClass::Scatter
            | OpClass::Loop => {
                let mut kernels = users[i].iter().filter_map(|&u| match place[u] {
                    Placement::Root => Some(Value(u as u32)),
                    Placement::Fused(r) => Some(r),
                    _ => None,
                });
                match kernels.next() {
                    None => Placement::Dead,
                    Some(first) if kernels.all(|k| k == first) => Placement::Fused(first),
                    Some(_) => Placement::Root,
                }
            }
        };
    }
    if enabled.fusion {
        fuse_products::fuse_epilogues(g, &mut place, &users, split, target);
        fuse_reduction_epilogues(g, &mut place, &users, split);
    }
    if !enabled.rematerialize {
        return place;
    }
    // Cheap values need no kernel of their own even when several kernels read them: a
    // re-indexing of a stored value, or a short chain of elementwise work on stored
    // values (up to `MAX_RECOMPUTE` ops deep, a segment in a long region), is
    // rematerialized by each reader
    // instead of being stored. A product's epilogue is not: it is the product's output.
    let mut depth = vec![0usize; n];
    let mut product_operand = vec![false; n];
    for node in &g.nodes {
        if let Op::Dot(_) = node.op {
            for a in &node.args {
                product_operand[a.index()] = true;
            }
        }
    }
    // Each root's whole kernel expression: the values fused into it, then itself.
    let mut fused_into: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, p) in place.iter().enumerate() {
        if let Placement::Fused(r) = p {
            fused_into[r.index()].push(j);
        }
    }
    for i in 0..n {
        // A product reads its operands from buffers, or computes them as it loads them.
        let stored_operand =
            product_operand[i] && !fuse_products::prologue_operand(g, Value(i as u32));
        if place[i] != Placement::Root || forced[i] || stored_operand {
            continue;
        }
        let mut members = std::mem::take(&mut fused_into[i]);
        members.retain(|&j| j < i);
        members.push(i);
        let mut ok = true;
        for &j in &members {
            let node = &g.nodes[j];
            // Re-indexing is free; each elementwise op is one level of recomputation.
            let own = match node.op.class() {
                OpClass::Reindex | OpClass::Identity => 0,
                OpClass::Elementwise => 1,
                OpClass::Input
                | OpClass::Generated
                | OpClass::Indexed
                | OpClass::Reduction
                | OpClass::Contraction
                | OpClass::Scatter
                | OpClass::Loop => {
                    ok = false;
                    break;
                }
            };
            depth[j] = own
                + node
                    .args
                    .iter()
                    .map(|a| depth[a.index()])
                    .max()
                    .unwrap_or(0);
        }
        let limit = if long[i] {
            super::checkpoint::SEGMENT
        } else {
            MAX_RECOMPUTE
        };
        if ok && depth[i] <= limit {
            for &j in &members {
                place[j] = Placement::Everywhere;
            }
        } else {
            depth[i] = 0;
        }
    }
    place
}

/// Whether `v` is a `scatter_add` of one element per row: a comparison computed
/// inline, rather than a loop in a kernel of its own.
pub fn row_scatter(g: &Graph, v: Value) -> bool {
    let node = g.node(v);
    matches!(&node.op, Op::ScatterAdd { axis, .. } if g.ty(node.args[0]).shape[*axis] == 1)
}

/// A reduction read only by elementwise work of its own shape (the loss's scaling or
/// negation, say) runs that work after its loop, in the same kernel.
fn fuse_reduction_epilogues(
    g: &Graph,
    place: &mut [Placement],
    users: &[Vec<usize>],
    split: &[bool],
) {
    for d in 0..g.len() {
        if place[d] != Placement::Root
            || !matches!(g.nodes[d].op, Op::Reduce { .. })
            || g.outputs.iter().any(|(_, v)| v.index() == d)
            || split.get(d).copied().unwrap_or(false)
        {
            continue;
        }
        let Some(root) = reading_kernel(place, &users[d]) else {
            continue;
        };
        let (rv, dv) = (Value(root as u32), Value(d as u32));
        let lone = !(0..g.len()).any(|i| {
            place[i] == Placement::Fused(rv)
                && matches!(
                    g.nodes[i].op.class(),
                    OpClass::Contraction | OpClass::Reduction | OpClass::Scatter
                )
        });
        let elementwise_root = g.nodes[root].op.class() == OpClass::Elementwise;
        if lone
            && elementwise_root
            && g.ty(rv).shape == g.ty(dv).shape
            && fuse_products::depends_elementwise(g, place, rv, dv)
        {
            for p in place.iter_mut() {
                if *p == Placement::Fused(dv) {
                    *p = Placement::Fused(rv);
                }
            }
            place[d] = Placement::Fused(rv);
        }
    }
}

/// Follows re-indexing ops (broadcast, reshape, transpose, slice, stop_gradient) back
/// from `v` to the value whose elements they read.
fn reindexed_source(g: &Graph, mut v: Value) -> Value {
    loop {
        match g.node(v).op.class() {
            OpClass::Reindex | OpClass::Identity => v = g.node(v).args[0],
            OpClass::Input
            | OpClass::Generated
            | OpClass::Elementwise
            | OpClass::Indexed
            | OpClass::Reduction
            | OpClass::Contraction
            | OpClass::Scatter
            | OpClass::Loop => return v,
        }
    }
}

/// Values to compute in kernels of their own so that every kernel fits the binding
/// limit, found in one walk over the graph. Each value's *reads* are the stored values
/// its expression loads (through values recomputed wherever they are read). Walking in
/// arena order, a value fused into a kernel whose reads exceed that kernel's budget
/// (the limit less the buffers it writes, `counts`) has its fused operand with the
/// most reads cut off, then the next, until it fits: a cut operand becomes a kernel
/// whose result is one read. So each piece of a long fused chain reads about as many
/// buffers as fit, and one round of placement splits a chain of any length.
pub fn splits_within(
    g: &Graph,
    place: &[Placement],
    readers: &[Vec<Value>],
    counts: &[(Value, usize)],
    limit: usize,
) -> Vec<Value> {
    let n = g.len();
    // How many buffers each kernel writes: its bindings less the stored values it reads.
    let mut loaded = vec![0usize; n];
    for rs in readers {
        for r in rs {
            loaded[r.index()] += 1;
        }
    }
    let mut budget = vec![usize::MAX; n];
    for &(root, count) in counts {
        budget[root.index()] = limit.saturating_sub(count - loaded[root.index()]);
    }
    let mut reads: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut cut = vec![false; n];
    let mut cuts = Vec::new();
    for i in 0..n {
        let root = match place[i] {
            Placement::Input | Placement::Root | Placement::Also(_) => {
                reads[i] = vec![i as u32];
                if place[i] != Placement::Root {
                    continue;
                }
                i
            }
            Placement::Fused(r) => r.index(),
            Placement::Everywhere => {
                reads[i] = union(g.nodes[i].args.iter().map(|a| &reads[a.index()]));
                continue;
            }
            Placement::Dead => continue,
        };
        let args = &g.nodes[i].args;
        // The fused operands of this kernel that are not cut yet.
        let mut fused: Vec<usize> = args
            .iter()
            .map(|a| a.index())
            .filter(|&a| place[a] == Placement::Fused(Value(root as u32)) && !cut[a])
            .collect();
        let mut set = union(args.iter().map(|a| &reads[a.index()]));
        while set.len() > budget[root] {
            let Some((k, &a)) = fused
                .iter()
                .enumerate()
                .max_by_key(|&(_, &a)| reads[a].len())
            else {
                break;
            };
            fused.swap_remove(k);
            if reads[a].len() < 2 {
                break;
            }
            cut[a] = true;
            cuts.push(Value(a as u32));
            reads[a] = vec![a as u32];
            set = union(args.iter().map(|x| &reads[x.index()]));
        }
        if place[i] == Placement::Root {
            continue;
        }
        reads[i] = set;
    }
    cuts
}

/// The sorted union of sorted sets.
fn union<'a>(sets: impl Iterator<Item = &'a Vec<u32>>) -> Vec<u32> {
    let mut all: Vec<u32> = sets.flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}
