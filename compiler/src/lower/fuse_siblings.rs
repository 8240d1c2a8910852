//! Sibling fusion: reductions over the same domain that do not depend on each other
//! become one kernel with several results, like XLA's multi-output fusion.
//!
//! A function and its derivatives of every order (W5 with `f`, `d1 … d4` as outputs)
//! are five sums over the same elements, from the same inputs, sharing most of their
//! elementwise work. As separate kernels each shared value is stored by one kernel and
//! read by the others, and every sum is a pair of kernels. As siblings, one first stage
//! computes every shared value once per element in registers and folds each sum into
//! its own accumulator, and one final stage folds every sum's partial results: two
//! kernels, and no temporaries but the partial sums.
//!
//! Reductions are siblings when they reduce the same axes of operands of one shape and
//! dtype (or all fold a short operand into one value, in one stage: one loop over the
//! longest, each folding while the loop is within its own), none depends on another (through any chain of values: the kernels must still
//! run in some order), and none has elementwise work fused after it or is already part
//! of a row or product kernel. The group's last reduction in arena order is the root;
//! the others are computed beside it ([`Placement::Also`]). Values whose every reader
//! is now in the group's kernel are then fused into it instead of stored.

use super::placement::{Placement, kernel_of, readers};
use super::target::Target;
use crate::ir::{Graph, Op, OpClass, Value};

/// The most values a sibling kernel computes per element, values it recomputes aside.
/// A backward pass computed in registers keeps every forward value it reads live until
/// its derivative is formed, and lavapipe's compile time grows with the square of that:
/// measured on the gradient of a chain of elementwise ops beside its sum, 0.19 s for
/// 100 ops (about 330 values), 0.44 s for 200, 1.4 s for 400 and 17 s for 1,500. Past
/// this many values, the rest of the work stays where it was placed before (a chain
/// long enough is placed as checkpointed segments, `checkpoint`).
pub const MAX_KERNEL_VALUES: usize = 512;

/// Groups sibling reductions in `place` (a placement after the other fusion
/// decisions), leaving values in `split` alone.
pub fn group(g: &Graph, place: &mut [Placement], split: &[bool], target: &Target) {
    let n = g.len();
    let is_output = |i: usize| g.outputs.iter().any(|(_, v)| v.index() == i);
    let heads_of_others: Vec<bool> = {
        let mut h = vec![false; n];
        for p in place.iter() {
            if let Placement::Also(r) = p {
                h[r.index()] = true;
            }
        }
        h
    };
    let candidate = |i: usize, place: &[Placement]| {
        place[i] == Placement::Root
            && matches!(g.nodes[i].op, Op::Reduce { .. })
            && !split.get(i).copied().unwrap_or(false)
            && !heads_of_others[i]
    };
    // Each result and its partial sums take a binding in the final stage: a group
    // leaves half the target's bindings for what its first stage reads.
    let most = (target.max_storage_buffers_per_shader_stage as usize / 4).max(1);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let impure = impure_roots(g, place);
    let mut deps = Ancestors::new(g);
    for i in (0..n).rev() {
        if !candidate(i, place) {
            continue;
        }
        let joined = groups.iter_mut().find(|members| {
            members.len() < most
                && (same_domain(g, members[0], i)
                    || members.iter().all(|&m| small_total(g, m, target))
                        && small_total(g, i, target))
                && !members.iter().any(|&m| deps.reaches(m, i))
        });
        match joined {
            Some(members) => members.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut grouped = false;
    for members in groups.iter_mut() {
        // Elementwise results over the reduction's domain that share stored work with
        // it join its loop, each element stored where the loop visits it.
        let head = members[0];
        let domain = g.ty(g.nodes[head].args[0]).shape.clone();
        // Elementwise results join only a loop over one domain.
        let one_domain = members.iter().all(|&m| same_domain(g, head, m));
        let room = if one_domain {
            most.saturating_sub(members.len())
        } else {
            0
        };
        let beside = elementwise_beside(
            g,
            place,
            (&heads_of_others, &impure, split),
            members,
            &domain,
            room,
            &mut deps,
        );
        members.extend(beside);
        if members.len() < 2 {
            continue;
        }
        for &m in &members[1..] {
            place[m] = Placement::Also(Value(head as u32));
        }
        grouped = true;
    }
    if !grouped {
        return;
    }
    // Values stored only because several of the group's members read them are now
    // read by one kernel: computed there, in registers. Fusing one value can leave its
    // operands read by that kernel alone, so this repeats until nothing changes.
    let mut size = vec![0usize; n];
    for i in 0..n {
        if let Some(k) = kernel_of(place, Value(i as u32)) {
            size[k.index()] += 1;
        }
    }
    loop {
        let readers = readers(g, place);
        let mut changed = false;
        for i in (0..n).rev() {
            if place[i] != Placement::Root
                || is_output(i)
                || heads_of_others[i]
                || split.get(i).copied().unwrap_or(false)
                || !matches!(
                    g.nodes[i].op.class(),
                    OpClass::Elementwise | OpClass::Reindex | OpClass::Identity | OpClass::Indexed
                )
            {
                continue;
            }
            if let [k] = readers[i][..]
                && k.index() != i
                && !impure[i]
                && size[k.index()] < MAX_KERNEL_VALUES
                && place.contains(&Placement::Also(k))
            {
                place[i] = Placement::Fused(k);
                size[k.index()] += 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Elementwise roots of shape `domain` (at most `room`) that may be computed in the
/// loop of the reductions `members`: they read no member and no member reads them,
/// their kernels compute nothing but elementwise work, and they read a stored value a
/// member also reads (otherwise joining saves nothing). `skip` holds, per value,
/// whether it heads another kernel's group, whether its kernel is impure
/// ([`impure_roots`]), and whether it was split off to fit the binding limit.
fn elementwise_beside(
    g: &Graph,
    place: &[Placement],
    (heads_of_others, impure, split): (&[bool], &[bool], &[bool]),
    members: &[usize],
    domain: &[usize],
    room: usize,
    deps: &mut Ancestors<'_>,
) -> Vec<usize> {
    let n = g.len();
    let readers = readers(g, place);
    let member_kernels: Vec<Value> = members.iter().map(|&m| Value(m as u32)).collect();
    // The kernels that read a stored value some member also reads.
    let mut shares = vec![false; n];
    for (v, rs) in readers.iter().enumerate() {
        if place[v] != Placement::Input && rs.iter().any(|k| member_kernels.contains(k)) {
            for k in rs {
                shares[k.index()] = true;
            }
        }
    }
    let mut out = Vec::new();
    for e in (0..n).rev() {
        if out.len() >= room {
            break;
        }
        if place[e] != Placement::Root
            || !shares[e]
            || impure[e]
            || heads_of_others[e]
            || split.get(e).copied().unwrap_or(false)
            || g.nodes[e].op.class() != OpClass::Elementwise
            || g.ty(Value(e as u32)).shape != domain
            || members
                .iter()
                .any(|&m| deps.reaches(m, e) || deps.reaches(e, m))
            || out
                .iter()
                .any(|&o| deps.reaches(o, e) || deps.reaches(e, o))
        {
            continue;
        }
        out.push(e);
    }
    out
}

/// For every root, whether its kernel computes more than elementwise work and
/// re-indexing: a product, reduction, scatter or loop fused into it.
fn impure_roots(g: &Graph, place: &[Placement]) -> Vec<bool> {
    let mut impure = vec![false; g.len()];
    for (v, p) in place.iter().enumerate() {
        if let Placement::Fused(r) = p
            && !matches!(
                g.nodes[v].op.class(),
                OpClass::Elementwise
                    | OpClass::Reindex
                    | OpClass::Identity
                    | OpClass::Indexed
                    | OpClass::Generated
            )
        {
            impure[r.index()] = true;
        }
    }
    impure
}

/// Whether reduction `v` folds all of a short operand into one value, in one stage:
/// such reductions join one kernel whatever their operands' shapes (a prior's norms,
/// a logsumexp's maximum), one loop running over the longest, each folding while the
/// loop is within its own operand.
pub fn small_total(g: &Graph, v: usize, target: &Target) -> bool {
    let node = &g.nodes[v];
    let operand = g.ty(node.args[0]);
    matches!(node.op, Op::Reduce { .. })
        && g.ty(Value(v as u32)).numel() == 1
        && target.reduction_parts(operand.numel(), 1) == 1
}

/// Whether reductions `a` and `b` fold the same axes of operands of one type.
fn same_domain(g: &Graph, a: usize, b: usize) -> bool {
    let (na, nb) = (&g.nodes[a], &g.nodes[b]);
    let (Op::Reduce { axes: xa, .. }, Op::Reduce { axes: xb, .. }) = (&na.op, &nb.op) else {
        return false;
    };
    xa == xb && g.ty(na.args[0]) == g.ty(nb.args[0])
}

/// Reachability queries over a graph's values, each answered by a walk from the later
/// value that stops at values before the earlier one (arena order is topological).
struct Ancestors<'g> {
    g: &'g Graph,
    seen: Vec<u32>,
    stamp: u32,
}

impl<'g> Ancestors<'g> {
    fn new(g: &'g Graph) -> Ancestors<'g> {
        Ancestors {
            g,
            seen: vec![0; g.len()],
            stamp: 0,
        }
    }

    /// Whether value `from` reads value `to` through any chain of operands.
    fn reaches(&mut self, from: usize, to: usize) -> bool {
        if from < to {
            return false;
        }
        self.stamp += 1;
        let mut stack = vec![from];
        while let Some(v) = stack.pop() {
            if v == to {
                return true;
            }
            for a in &self.g.nodes[v].args {
                let a = a.index();
                if a >= to && self.seen[a] != self.stamp {
                    self.seen[a] = self.stamp;
                    stack.push(a);
                }
            }
        }
        false
    }
}
