//! Checkpointed segments: the gradient of a long elementwise chain in a few kernels.
//!
//! The backward pass of an elementwise program reads the forward values in reverse
//! order. Sibling fusion computes the forward values, the derivative and the loss in one
//! kernel per element, every forward value in registers until its derivative is formed,
//! up to [`MAX_KERNEL_VALUES`](super::fuse_siblings::MAX_KERNEL_VALUES) values. Past that,
//! the default placement stores a forward value every few ops and gives each its own
//! kernel: the gradient of a 1,500-op chain was 388 kernels.
//!
//! In a *long region* — elementwise values of one shape that read each other, more than
//! [`LONG`] ops deep — values are placed the way checkpointing reverse mode stores
//! them:
//! - a value read by several kernels is recomputed by each reader up to [`SEGMENT`] ops
//!   deep (elsewhere three), so the forward stores one *checkpoint* every [`SEGMENT`]
//!   ops, each computed by a kernel from the one before;
//! - a kernel that, walking its work in program order, has recomputed one forward
//!   segment and is about to recompute another, or would compute more than
//!   [`SEGMENT_VALUES`] values, ends there or a little before, where the fewest of its
//!   values are read by the rest of its work ([`cuts`]): those are stored, and the
//!   rest becomes a kernel of its own.
//!
//! Each backward kernel then recomputes one forward segment from its checkpoint and
//! carries the cotangent through it, with one segment's values live: a chain of `n` ops
//! becomes about `2n / SEGMENT` kernels, storing one checkpoint and one cotangent per
//! segment. The last segment's backward kernel shares the loss's loop (sibling fusion),
//! since both recompute that segment.

use super::placement::{Placement, users};
use crate::ir::{Graph, OpClass, Value};

/// How many elementwise ops deep a value of a long region is recomputed by its readers:
/// the checkpoint spacing. lavapipe compiles an elementwise kernel in about 1.5–2.6 ms
/// per transcendental op (100 to 800 ops in one kernel, measured cold), so a backward
/// kernel of one segment (256 forward ops recomputed and their derivatives, about 800
/// values) compiles in under a second.
pub const SEGMENT: usize = 256;

/// How deep a region must be to be long: the gradient of a chain of [`SEGMENT`] ops,
/// forward and backward, is about twice as deep. Shorter gradients fit in one sibling
/// kernel, which compiles faster than their segments.
pub const LONG: usize = 2 * SEGMENT;

/// The most values a kernel of a long region computes, recomputed values included.
pub const SEGMENT_VALUES: usize = 4 * SEGMENT;

/// How many positions back from where a piece must end [`cuts`] looks for the point
/// where the fewest values cross (each crossing value is stored, in a kernel of its
/// own).
const CUT_WINDOW: usize = 64;

/// For every value, whether it belongs to a long region: the elementwise values of one
/// shape connected through each other's operands, the deepest more than [`LONG`]
/// elementwise ops from anything else.
pub fn long_regions(g: &Graph) -> Vec<bool> {
    let n = g.len();
    let elementwise = |i: usize| g.nodes[i].op.class() == OpClass::Elementwise;
    let mut parent: Vec<usize> = (0..n).collect();
    let mut depth = vec![0usize; n];
    for i in (0..n).filter(|&i| elementwise(i)) {
        let shape = &g.ty(Value(i as u32)).shape;
        let mut deepest = 0;
        for a in &g.nodes[i].args {
            let a = a.index();
            if elementwise(a) && g.ty(Value(a as u32)).shape == *shape {
                deepest = deepest.max(depth[a]);
                let (x, y) = (find(&mut parent, a), find(&mut parent, i));
                parent[x] = y;
            }
        }
        depth[i] = deepest + 1;
    }
    let mut region_depth = vec![0usize; n];
    for i in (0..n).filter(|&i| elementwise(i)) {
        let r = find(&mut parent, i);
        region_depth[r] = region_depth[r].max(depth[i]);
    }
    (0..n)
        .map(|i| elementwise(i) && region_depth[find(&mut parent, i)] > LONG)
        .collect()
}

/// The representative of `i`'s set, halving paths on the way.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// The values to store so that no kernel with work in a long region recomputes more
/// than one forward segment, or more than [`SEGMENT_VALUES`] values once it recomputes
/// one. Each kernel's work is walked in program order, counting each value it computes
/// and the recomputed values (placed everywhere) it needs that its current piece has
/// not computed yet. Once a piece has pulled in a recomputed segment (at least half a
/// [`SEGMENT`] of new values), it ends before a value that would pull in another or
/// exceed the budget, at the nearby point where the fewest of its values are read by
/// later work; those values are then stored. A kernel that recomputes nothing, such as
/// a long forward chain, is left whole: it holds one value live at a time.
pub fn cuts(g: &Graph, place: &[Placement], long: &[bool]) -> Vec<Value> {
    let n = g.len();
    let users = users(g);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in place.iter().enumerate() {
        match p {
            Placement::Fused(r) => members[r.index()].push(i),
            Placement::Root => members[i].push(i),
            Placement::Input | Placement::Also(_) | Placement::Everywhere | Placement::Dead => {}
        }
    }
    let mut out = Vec::new();
    let mut have = vec![false; n];
    for (root, ms) in members.iter().enumerate() {
        if !ms.iter().any(|&m| long[m]) {
            continue;
        }
        let in_kernel = |u: usize| u == root || place[u] == Placement::Fused(Value(root as u32));
        // The values of `ms[from..to]` that the work from `ms[to]` on reads.
        let frontier = |from: usize, to: usize| -> Vec<usize> {
            ms[from..to]
                .iter()
                .copied()
                .filter(|&p| users[p].iter().any(|&u| u >= ms[to] && in_kernel(u)))
                .collect()
        };
        let (mut start, mut pos) = (0, 0);
        let mut cost = 0;
        let mut pulled = false;
        let mut computed: Vec<usize> = Vec::new();
        while pos < ms.len() {
            let j = ms[pos];
            let new = recomputed(g, place, j, &have);
            let big = new.len() >= SEGMENT / 2;
            if pos > start && pulled && (big || cost + new.len() + 1 > SEGMENT_VALUES) {
                // End the piece where the fewest values cross: among the last few
                // positions, the latest with the smallest frontier.
                let end = (pos.saturating_sub(CUT_WINDOW)..=pos)
                    .filter(|&q| q > start)
                    .map(|q| (frontier(start, q), q))
                    .min_by_key(|(f, q)| (f.len(), usize::MAX - q))
                    .map_or(pos, |(f, q)| {
                        out.extend(f.into_iter().map(|p| Value(p as u32)));
                        q
                    });
                for c in computed.drain(..) {
                    have[c] = false;
                }
                (start, pos, cost, pulled) = (end, end, 0, false);
                continue;
            }
            cost += new.len() + 1;
            pulled |= big;
            for v in new.into_iter().chain([j]) {
                have[v] = true;
                computed.push(v);
            }
            pos += 1;
        }
        for c in computed.drain(..) {
            have[c] = false;
        }
    }
    out
}

/// The values placed everywhere that computing `j` needs and `have` does not hold yet.
fn recomputed(g: &Graph, place: &[Placement], j: usize, have: &[bool]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<usize> = g.nodes[j].args.iter().map(|a| a.index()).collect();
    while let Some(v) = stack.pop() {
        if place[v] != Placement::Everywhere || have[v] || !seen.insert(v) {
            continue;
        }
        out.push(v);
        stack.extend(g.nodes[v].args.iter().map(|a| a.index()));
    }
    out
}
