//! Fusion: decides which values get a buffer of their own and which are computed inline
//! inside the kernel that consumes them.
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
//! groups (`rows`), and a product that also sums the columns of its operand
//! ([`fuse_column_sums`]), which is how a bias gradient rides along with its weight
//! gradient. Kernels then run in an order that respects what each reads
//! ([`kernel_order`]), which is no longer the order of their roots.

use super::target::Target;
use crate::ir::{DType, Graph, Op, Value};
use crate::passes::Optimizations;

/// How many elementwise ops deep a value recomputed by every reader may be.
const MAX_RECOMPUTE: usize = 3;

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

/// Places every value of a loop-free graph; values marked in `split` become roots
/// too (used to split kernels that would bind too many buffers).
pub fn place(
    g: &Graph,
    split: &[bool],
    target: &Target,
    enabled: &Optimizations,
) -> Vec<Placement> {
    let mut place = place_values(g, split, target, enabled);
    if enabled.fusion {
        super::rows::group(g, &mut place, target);
        fuse_column_sums(g, &mut place, target);
        fuse_product_sums(g, &mut place, target);
    }
    place
}

/// Places every value in a kernel of one root.
fn place_values(
    g: &Graph,
    split: &[bool],
    target: &Target,
    enabled: &Optimizations,
) -> Vec<Placement> {
    let n = g.len();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in g.nodes.iter().enumerate() {
        for a in &node.args {
            users[a.index()].push(i);
        }
    }
    let mut forced = split.to_vec();
    forced.resize(n, false);
    for (_, v) in &g.outputs {
        forced[v.index()] = true;
    }
    for node in &g.nodes {
        if let Op::Dot(_) = node.op {
            for &a in &node.args {
                if !(enabled.fusion && prologue_operand(g, a)) {
                    forced[reindexed_source(g, a).index()] = true;
                }
            }
        }
    }
    let mut place = vec![Placement::Dead; n];
    for i in (0..n).rev() {
        let op = &g.nodes[i].op;
        place[i] = match op {
            Op::Input { .. } => Placement::Input,
            Op::Constant { .. } | Op::Iota { .. } if !forced[i] => Placement::Everywhere,
            Op::ScatterAdd { axis, .. } if g.ty(g.nodes[i].args[0]).shape[*axis] != 1 => {
                Placement::Root
            }
            Op::Reduce { .. } | Op::Dot(_) => Placement::Root,
            _ if forced[i] => Placement::Root,
            _ => {
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
        fuse_epilogues(g, &mut place, &users, split, target);
        fuse_reduction_epilogues(g, &mut place, &users, split);
    }
    if !enabled.rematerialize {
        return place;
    }
    // Cheap values need no kernel of their own even when several kernels read them: a
    // re-indexing of a stored value, or a short chain of elementwise work on stored
    // values (up to `MAX_RECOMPUTE` ops deep), is rematerialized by each reader
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
        let stored_operand = product_operand[i] && !prologue_operand(g, Value(i as u32));
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
            let own = match node.op {
                Op::Broadcast { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Slice { .. }
                | Op::StopGradient => 0,
                Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. } => 1,
                _ => {
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
        if ok && depth[i] <= MAX_RECOMPUTE {
            for &j in &members {
                place[j] = Placement::Everywhere;
            }
        } else {
            depth[i] = 0;
        }
    }
    place
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
    counts: &[(Value, usize)],
    limit: usize,
) -> Vec<Value> {
    let n = g.len();
    let readers = readers(g, place);
    // How many buffers each kernel writes: its bindings less the stored values it reads.
    let mut loaded = vec![0usize; n];
    for rs in &readers {
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

/// A product read only by elementwise work of its own shape runs that work as the
/// tiled matmul kernel's epilogue: the product itself is then not stored. This fuses a
/// layer's bias and activation (and, in a backward pass, the activation's mask) into
/// the product that feeds them.
fn fuse_epilogues(
    g: &Graph,
    place: &mut [Placement],
    users: &[Vec<usize>],
    split: &[bool],
    target: &Target,
) {
    for d in 0..g.len() {
        if place[d] != Placement::Root
            || !matches!(g.nodes[d].op, Op::Dot(_))
            || forced_output(g, d)
            || split.get(d).copied().unwrap_or(false)
        {
            continue;
        }
        // Every reader of the product must sit in one kernel, rooted at `root`.
        let Some(root) = reading_kernel(place, &users[d]) else {
            continue;
        };
        let shape = &g.ty(Value(d as u32)).shape;
        let stored = |v: Value| {
            matches!(place[v.index()], Placement::Input | Placement::Root) || prologue_operand(g, v)
        };
        let fits = shape.len() == 2
            && g.ty(Value(root as u32)).shape == *shape
            && g.ty(Value(root as u32)).dtype == DType::F32
            && depends_elementwise(g, place, Value(root as u32), Value(d as u32))
            && !(0..g.len()).any(|i| {
                place[i] == Placement::Fused(Value(root as u32))
                    && matches!(g.nodes[i].op, Op::Dot(_))
            })
            && super::matmul::tileable(g, Value(d as u32), target, stored).is_some();
        if fits {
            for p in place.iter_mut() {
                if *p == Placement::Fused(Value(d as u32)) {
                    *p = Placement::Fused(Value(root as u32));
                }
            }
            place[d] = Placement::Fused(Value(root as u32));
        }
    }
}

/// The root of the one kernel all `readers` belong to, if they belong to one.
fn reading_kernel(place: &[Placement], readers: &[usize]) -> Option<usize> {
    let mut kernels = readers.iter().map(|&u| match place[u] {
        Placement::Root => Some(u),
        Placement::Fused(r) => Some(r.index()),
        _ => None,
    });
    let root = kernels.next()??;
    kernels.all(|k| k == Some(root)).then_some(root)
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
            || forced_output(g, d)
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
                    g.nodes[i].op,
                    Op::Dot(_) | Op::Reduce { .. } | Op::ScatterAdd { .. }
                )
        });
        let elementwise_root = matches!(
            g.nodes[root].op,
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. }
        );
        if lone
            && elementwise_root
            && g.ty(rv).shape == g.ty(dv).shape
            && depends_elementwise(g, place, rv, dv)
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

/// Whether every value of `root`'s kernel that depends on `dot` (and `root` itself) is
/// elementwise, so each reads the product at its own coordinates.
fn depends_elementwise(g: &Graph, place: &[Placement], root: Value, dot: Value) -> bool {
    let mut depends = vec![false; root.index() + 1];
    depends[dot.index()] = true;
    for i in dot.index() + 1..=root.index() {
        let in_kernel = i == root.index() || place[i] == Placement::Fused(root);
        if !in_kernel {
            continue;
        }
        if g.nodes[i]
            .args
            .iter()
            .any(|a| a.index() <= root.index() && depends[a.index()])
        {
            depends[i] = true;
            let elementwise = matches!(
                g.nodes[i].op,
                Op::Unary(_)
                    | Op::Binary(_)
                    | Op::Compare(_)
                    | Op::Select
                    | Op::Cast { .. }
                    | Op::StopGradient
            );
            if !elementwise || g.ty(Value(i as u32)).shape != g.ty(dot).shape {
                return false;
            }
        }
    }
    depends[root.index()]
}

/// Whether a product may compute its operand `v` as it loads it (a prologue), instead
/// of reading it from a buffer: one elementwise op on program inputs and constants,
/// such as the `x1 + x2` of a weight shared by two inputs.
pub fn prologue_operand(g: &Graph, v: Value) -> bool {
    let node = g.node(v);
    matches!(
        node.op,
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast { .. }
    ) && g.ty(v).dtype == DType::F32
        && node
            .args
            .iter()
            .all(|a| matches!(g.node(*a).op, Op::Input { .. } | Op::Constant { .. }))
}

fn forced_output(g: &Graph, i: usize) -> bool {
    g.outputs.iter().any(|(_, v)| v.index() == i)
}

/// Follows re-indexing ops (broadcast, reshape, transpose, slice, stop_gradient) back
/// from `v` to the value whose elements they read.
fn reindexed_source(g: &Graph, mut v: Value) -> Value {
    loop {
        match g.node(v).op {
            Op::Broadcast { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::StopGradient => v = g.node(v).args[0],
            _ => return v,
        }
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

/// For every kernel root, in arena order, the most storage buffers its kernels bind:
/// one per stored value it reads, one per result it stores (its root, and what it
/// computes beside it that another kernel or the host reads), and one for the partial
/// results of a two-stage reduction or of a product summing its whole result.
pub fn binding_counts(g: &Graph, place: &[Placement]) -> Vec<(Value, usize)> {
    let n = g.len();
    let readers = readers(g, place);
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
            if trips >= super::kernel::SPLIT_REDUCTION && g.ty(Value(i as u32)).numel() < 256 {
                count[k.index()] += 1;
            }
        }
    }
    (0..n)
        .filter(|&i| place[i] == Placement::Root)
        .map(|i| (Value(i as u32), count[i]))
        .collect()
}

/// The roots of all kernels in dispatch order: every kernel after the kernels whose
/// results it reads, and otherwise in the order of their roots.
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

/// A sum of a product's operand over the axis the product contracts — `reduce_sum(B,
/// axes=[k])`, as in the bias gradient `Σ_rows dy` beside the weight gradient `xᵀ·dy`,
/// or the same of `A`, as beside `dyᵀ·x` for a weight stored `[out, in]` — is computed
/// by the tiled product kernel from the operand values it loads anyway (the
/// invocations of the first tile row, or column, store it): one kernel instead of two,
/// and the operand read once.
pub fn fuse_column_sums(g: &Graph, place: &mut [Placement], target: &Target) {
    let n = g.len();
    let own = kernel_values(place);
    let mut taken = vec![false; n];
    // The products reading each value as an operand, and which.
    let mut products_of: std::collections::HashMap<Value, Vec<(usize, usize)>> = Default::default();
    for (d, node) in g.nodes.iter().enumerate() {
        if let Op::Dot(_) = node.op {
            for (k, &a) in node.args.iter().enumerate() {
                products_of.entry(a).or_default().push((d, k));
            }
        }
    }
    for s in 0..n {
        let Some((b, axes)) = matrix_sum(g, place, s) else {
            continue;
        };
        if axes.len() != 1 || !matches!(place[b.index()], Placement::Input | Placement::Root) {
            continue;
        }
        // The product's kernel must compute nothing that depends on the sum.
        let candidates = products_of.get(&b).map(Vec::as_slice).unwrap_or(&[]);
        let product = candidates.iter().copied().find(|&(d, operand)| {
            let Op::Dot(dims) = &g.nodes[d].op else {
                return false;
            };
            let contract = if operand == 0 {
                &dims.lhs_contract
            } else {
                &dims.rhs_contract
            };
            let root = match place[d] {
                Placement::Root => d,
                Placement::Fused(r) if place[r.index()] == Placement::Root => r.index(),
                _ => return false,
            };
            contract == axes
                && g.nodes[d].args[0] != g.nodes[d].args[1]
                && dims.lhs_batch.is_empty()
                && !taken[root]
                && tiled(g, place, Value(d as u32), target)
                && !depends_on(g, &own[root], Value(s as u32))
        });
        if let Some((d, _)) = product {
            let root = match place[d] {
                Placement::Fused(r) => r.index(),
                _ => d,
            };
            taken[root] = true;
            place[s] = Placement::Also(Value(root as u32));
        }
    }
}

/// The sum of all of a product kernel's result — a loss `Σ tanh(x·W)` — is computed
/// by that kernel: each invocation adds up the elements it stores, and a one-invocation
/// kernel adds the invocations' sums in order. That replaces the two stages of a long
/// reduction, which would read the whole result back; a short one stays a single
/// reduction kernel.
pub fn fuse_product_sums(g: &Graph, place: &mut [Placement], target: &Target) {
    let own = kernel_values(place);
    let mut taken = vec![false; g.len()];
    for s in 0..g.len() {
        let Some((o, axes)) = matrix_sum(g, place, s) else {
            continue;
        };
        if place[o.index()] != Placement::Root
            || axes[..] != [0, 1]
            || g.ty(o).numel() < super::kernel::SPLIT_REDUCTION
            || taken[o.index()]
        {
            continue;
        }
        // `o` must be a product kernel's root, computing nothing beside it yet.
        let values = &own[o.index()];
        let dot = values.iter().find(|v| matches!(g.node(**v).op, Op::Dot(_)));
        let alone = !values
            .iter()
            .any(|v| matches!(place[v.index()], Placement::Also(_)));
        let fits = dot.is_some_and(|&d| {
            let Op::Dot(dims) = &g.node(d).op else {
                return false;
            };
            dims.lhs_batch.is_empty()
                && g.ty(d).shape == g.ty(o).shape
                && tiled(g, place, d, target)
        });
        if alone && fits {
            taken[o.index()] = true;
            place[s] = Placement::Also(o);
        }
    }
}

/// The operand and axes of `s` when it is a kernel root summing an `f32` matrix.
fn matrix_sum<'g>(g: &'g Graph, place: &[Placement], s: usize) -> Option<(Value, &'g [usize])> {
    let node = &g.nodes[s];
    let Op::Reduce {
        kind: crate::ir::ReduceKind::Sum,
        axes,
    } = &node.op
    else {
        return None;
    };
    let x = node.args[0];
    (place[s] == Placement::Root && g.ty(x).rank() == 2 && g.ty(x).dtype == DType::F32)
        .then_some((x, axes.as_slice()))
}

/// Whether the tiled kernel computes product `d`, its operands stored or computed as
/// they are loaded.
fn tiled(g: &Graph, place: &[Placement], d: Value, target: &Target) -> bool {
    super::matmul::tileable(g, d, target, |v| {
        matches!(place[v.index()], Placement::Input | Placement::Root) || prologue_operand(g, v)
    })
    .is_some()
}

/// Whether anything a kernel computing `values` computes depends on `v`.
fn depends_on(g: &Graph, values: &[Value], v: Value) -> bool {
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
