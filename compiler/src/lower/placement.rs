//! Placement: which kernel computes each value, and the queries every later step asks
//! of it (the values a kernel computes, the kernels that read a value, the order
//! kernels run in, the buffers a kernel binds). Plain data and functions over it;
//! the decisions that fill it in live in `fuse`, `fuse_products` and `fuse_rows`.

use super::target::Target;
use crate::ir::{Graph, Op, Value};

/// The kernel a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A program input: a buffer the host fills.
    Input,
    /// The root of its own kernel, stored in a buffer.
    Root,
    /// Computed inside the kernel of this root.
    Fused(Value),
    /// Recomputed wherever it is read: constants, iotas, and cheap re-indexings of
    /// stored values.
    Everywhere,
    /// Computed by the kernel of this root, beside it: the other results of a kernel
    /// with several (a row kernel, or a product that also sums its operand's columns).
    /// It has a buffer when another kernel reads it or it is an output.
    Also(Value),
    /// Read by nothing.
    Dead,
}

impl Placement {
    /// Whether the value is in a buffer when other kernels read it.
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            Placement::Input | Placement::Root | Placement::Also(_)
        )
    }
}

/// The kernel that computes `v`, named by its root: `v` itself for a root, the root
/// it is fused into or computed beside; `None` for inputs and for values recomputed
/// wherever they are read.
pub fn kernel_of(place: &[Placement], v: Value) -> Option<Value> {
    match place[v.index()] {
        Placement::Root => Some(v),
        Placement::Also(root) => Some(root),
        Placement::Fused(r) => kernel_of(place, r),
        Placement::Input | Placement::Everywhere | Placement::Dead => None,
    }
}

/// For every kernel root, the values its kernel computes — itself, what is fused into
/// it and what it computes beside it — in arena order; empty for other values.
pub fn kernel_values(place: &[Placement]) -> Vec<Vec<Value>> {
    let mut values: Vec<Vec<Value>> = vec![Vec::new(); place.len()];
    for i in 0..place.len() {
        if let Some(k) = kernel_of(place, Value(i as u32)) {
            values[k.index()].push(Value(i as u32));
        }
    }
    values
}

/// For every value, the values that read it.
pub fn users(g: &Graph) -> Vec<Vec<usize>> {
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for a in &node.args {
            users[a.index()].push(i);
        }
    }
    users
}

/// For every value, the kernels (by root) that read it from its buffer: values
/// recomputed wherever they are read are followed into their operands.
pub fn readers(g: &Graph, place: &[Placement]) -> Vec<Vec<Value>> {
    let n = g.len();
    let mut readers: Vec<Vec<Value>> = vec![Vec::new(); n];
    let mut seen = std::collections::HashSet::new();
    for i in 0..n {
        let Some(k) = kernel_of(place, Value(i as u32)) else {
            continue;
        };
        let mut stack: Vec<Value> = g.nodes[i].args.clone();
        while let Some(a) = stack.pop() {
            match place[a.index()] {
                Placement::Everywhere => {
                    if seen.insert((a, k)) {
                        stack.extend(&g.node(a).args);
                    }
                }
                Placement::Input | Placement::Root | Placement::Also(_) => {
                    if kernel_of(place, a) != Some(k) && !readers[a.index()].contains(&k) {
                        readers[a.index()].push(k);
                    }
                }
                Placement::Fused(_) | Placement::Dead => {}
            }
        }
    }
    readers
}

/// The root of the one kernel all `readers` belong to, if they belong to one.
pub fn reading_kernel(place: &[Placement], readers: &[usize]) -> Option<usize> {
    let mut kernels = readers.iter().map(|&u| match place[u] {
        Placement::Root => Some(u),
        Placement::Fused(r) => Some(r.index()),
        _ => None,
    });
    let root = kernels.next()??;
    kernels.all(|k| k == Some(root)).then_some(root)
}

/// Which values a kernel computes, given its own values ([`kernel_values`]): those
/// and the values it recomputes wherever they are read, in arena order.
pub fn computed_by(g: &Graph, place: &[Placement], own: &[Value]) -> Vec<Value> {
    let mut seen: std::collections::HashSet<Value> = own.iter().copied().collect();
    let mut stack: Vec<Value> = own.to_vec();
    while let Some(v) = stack.pop() {
        for &a in &g.node(v).args {
            if place[a.index()] == Placement::Everywhere && seen.insert(a) {
                stack.push(a);
            }
        }
    }
    let mut all: Vec<Value> = seen.into_iter().collect();
    all.sort_unstable();
    all
}

/// Whether anything a kernel computing `values` computes depends on `v`.
pub fn depends_on(g: &Graph, values: &[Value], v: Value) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<Value> = values.to_vec();
    while let Some(x) = stack.pop() {
        if x == v {
            return true;
        }
        if seen.insert(x) {
            stack.extend(&g.node(x).args);
        }
    }
    false
}

/// The roots of all kernels in dispatch order: every kernel after the kernels whose
/// results it reads, and otherwise in the order of their roots. Shorter than the
/// number of roots when kernels read each other's results in a cycle.
pub fn kernel_order(g: &Graph, place: &[Placement]) -> Vec<Value> {
    let n = g.len();
    let readers = readers(g, place);
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut preds = vec![0usize; n];
    for (v, rs) in readers.iter().enumerate() {
        let Some(k) = kernel_of(place, Value(v as u32)) else {
            continue;
        };
        for r in rs {
            if !succs[k.index()].contains(&r.index()) {
                succs[k.index()].push(r.index());
                preds[r.index()] += 1;
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|&i| place[i] == Placement::Root && preds[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::new();
    while let Some(std::cmp::Reverse(k)) = ready.pop() {
        order.push(Value(k as u32));
        for &s in &succs[k] {
            preds[s] -= 1;
            if preds[s] == 0 {
                ready.push(std::cmp::Reverse(s));
            }
        }
    }
    order
}

/// For every kernel root, in arena order, the most storage buffers its kernels bind:
/// one per stored value it reads, one per result it stores (its root, and what it
/// computes beside it that another kernel or the host reads), and one for the partial
/// results of a two-stage reduction or of a product summing its whole result.
/// `readers` is [`readers`] of this placement.
pub fn binding_counts(
    g: &Graph,
    place: &[Placement],
    readers: &[Vec<Value>],
    target: &Target,
) -> Vec<(Value, usize)> {
    let n = g.len();
    let mut count = vec![0usize; n];
    let mut is_output = vec![false; n];
    for (_, v) in &g.outputs {
        is_output[v.index()] = true;
    }
    for (i, rs) in readers.iter().enumerate() {
        for r in rs {
            count[r.index()] += 1;
        }
        match place[i] {
            Placement::Root => count[i] += 1,
            Placement::Also(root) if is_output[i] || !rs.is_empty() => {
                count[root.index()] += 1;
                if g.nodes[i].args.first() == Some(&root) {
                    count[root.index()] += 1;
                }
            }
            _ => {}
        }
        if let Op::Reduce { axes, .. } = &g.nodes[i].op
            && let Some(k) = kernel_of(place, Value(i as u32))
        {
            let src = &g.ty(g.nodes[i].args[0]).shape;
            let trips: usize = axes.iter().map(|&a| src[a]).product();
            if target.reduction_parts(trips, g.ty(Value(i as u32)).numel()) > 1 {
                count[k.index()] += 1;
            }
        }
    }
    (0..n)
        .filter(|&i| place[i] == Placement::Root)
        .map(|i| (Value(i as u32), count[i]))
        .collect()
}
