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
//! dtype, none depends on another (through any chain of values: the kernels must still
//! run in some order), and none has elementwise work fused after it or is already part
//! of a row or product kernel. The group's last reduction in arena order is the root;
//! the others are computed beside it ([`Placement::Also`]). Values whose every reader
//! is now in the group's kernel are then fused into it instead of stored.

use super::placement::{Placement, kernel_of, users};
use super::target::Target;
use crate::ir::{Graph, Op, OpClass, Value};

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
    let mut deps = Ancestors::new(g);
    for i in (0..n).rev() {
        if !candidate(i, place) {
            continue;
        }
        let joined = groups.iter_mut().find(|members| {
            members.len() < most
                && same_domain(g, members[0], i)
                && !members.iter().any(|&m| deps.reaches(m, i))
        });
        match joined {
            Some(members) => members.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut grouped = false;
    for members in groups.iter().filter(|m| m.len() > 1) {
        let head = Value(members[0] as u32);
        for &m in &members[1..] {
            place[m] = Placement::Also(head);
        }
        grouped = true;
    }
    if !grouped {
        return;
    }
    // Values stored only because several of the group's reductions read them are now
    // read by one kernel: computed there, in registers.
    let users = users(g);
    for i in (0..n).rev() {
        if place[i] != Placement::Root
            || is_output(i)
            || heads_of_others[i]
            || split.get(i).copied().unwrap_or(false)
        {
            continue;
        }
        if !matches!(
            g.nodes[i].op.class(),
            OpClass::Elementwise | OpClass::Reindex | OpClass::Identity | OpClass::Indexed
        ) {
            continue;
        }
        let mut kernels = users[i].iter().map(|&u| kernel_of(place, Value(u as u32)));
        let Some(Some(first)) = kernels.next() else {
            continue;
        };
        let one = kernels.all(|k| k == Some(first));
        let in_group = place.contains(&Placement::Also(first));
        if one && in_group && first.index() != i {
            place[i] = Placement::Fused(first);
        }
    }
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
