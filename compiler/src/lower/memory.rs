//! The memory plan: which buffer holds each stored value, liveness-based reuse of
//! temporary buffers, and the statistics that depend on when buffers are live.
//!
//! [`assign`] first gives every stored value a buffer of its own ("virtual" buffers),
//! except that a row kernel's result may take the buffer of an operand it is the last
//! to read (it overwrites each element after reading it). Walking the kernels in
//! dispatch order, a temporary buffer is live from the kernel that first writes it to
//! the last kernel that reads it; after that kernel its memory may hold a later
//! temporary of at most its size (best fit). Inputs are never shared: the host writes
//! them. An output's memory is idle until the kernel that first writes it, so a
//! temporary whose whole life ends before then may use it; the host reads outputs
//! only after the run. Apart from a row kernel overwriting its operand, a kernel never
//! reads and writes one physical buffer, because a buffer is released only after its
//! last reader has run and is taken only by a value first written by a later kernel.

use super::fuse_rows::read_at_own_element;
use super::placement::{Placement, readers};
use super::plan::{KernelKind, Plan, RowPlan};
use super::program::{Buffer, BufferId, BufferRole, IoBinding, Kernel, Stats};
use super::target::Target;
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, NodeType, Op, Scalar, Side, Type, Value, human_bytes};
use std::collections::HashMap;

/// One buffer per input, per kernel root, and per value computed beside a root that
/// another kernel reads or the host reads back. A row kernel's per-element result
/// takes the buffer of an operand it is the last to read, when it reads that operand
/// only at the element it writes.
pub fn assign(
    g: &Graph,
    place: &[Placement],
    plan: &Plan,
    target: &Target,
) -> Result<(Vec<Buffer>, Vec<Option<BufferId>>)> {
    let readers = readers(g, place);
    let rows: HashMap<Value, &RowPlan> = plan
        .kernels
        .iter()
        .filter_map(|k| match &k.kind {
            KernelKind::Row(r) => Some((k.root, r)),
            _ => None,
        })
        .collect();
    let is_output = |i: usize| g.outputs.iter().any(|(_, v)| v.index() == i);
    let mut buffers = Vec::new();
    let mut buffer_of = vec![None; g.len()];
    let mut taken = vec![false; g.len()];
    for (i, p) in place.iter().enumerate() {
        let role = match p {
            Placement::Input if matches!(g.nodes[i].op, Op::Literal { .. }) => {
                let Op::Literal { dtype, values, .. } = &g.nodes[i].op else {
                    continue;
                };
                BufferRole::Constant(values.iter().map(|v| bits(*dtype, *v)).collect())
            }
            Placement::Input => {
                let name = g
                    .inputs
                    .iter()
                    .find(|(_, v)| v.index() == i)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                BufferRole::Input(name)
            }
            Placement::Root => BufferRole::Computed,
            Placement::Also(_) if is_output(i) || !readers[i].is_empty() => BufferRole::Computed,
            _ => continue,
        };
        let ty = match &g.nodes[i].ty {
            NodeType::Tensor(t) => t.clone(),
            NodeType::Tuple(_) => {
                return Err(Error::Compile(format!("%{i}: a loop survived unrolling")));
            }
        };
        if let Some(u) = overwritable(g, place, &rows, &readers, &taken, Value(i as u32)) {
            taken[u.index()] = true;
            buffer_of[i] = buffer_of[u.index()];
            continue;
        }
        if ty.bytes() > target.max_storage_buffer_binding_size as u128 {
            return Err(Error::Compile(format!(
                "%{i} : {ty} is {}; the target binds at most {} per buffer (max_storage_buffer_binding_size)",
                human_bytes(ty.bytes()),
                human_bytes(target.max_storage_buffer_binding_size as u128),
            )));
        }
        let bytes = ty.bytes() as u64;
        buffer_of[i] = Some(BufferId(buffers.len() as u32));
        buffers.push(Buffer {
            ty,
            bytes: bytes.max(4),
            role,
        });
    }
    Ok((buffers, buffer_of))
}

/// The operand whose buffer the row-kernel result `v` may overwrite: a temporary of
/// `v`'s type that only `v`'s kernel reads, and reads only at the element being
/// written (every value of the kernel that depends on it is computed at its own row).
fn overwritable(
    g: &Graph,
    place: &[Placement],
    row_kernels: &HashMap<Value, &RowPlan>,
    readers: &[Vec<Value>],
    taken: &[bool],
    v: Value,
) -> Option<Value> {
    let head = match place[v.index()] {
        Placement::Also(h) => h,
        Placement::Root => v,
        _ => return None,
    };
    let row = row_kernels.get(&head)?;
    if g.outputs.iter().any(|(_, o)| *o == v) {
        return None;
    }
    let (inside, rows) = (&row.computed, &row.rows);
    if g.ty(v).shape.len() != rows.prefix.len() + 1 {
        return None;
    }
    let mut operands: Vec<Value> = inside
        .iter()
        .flat_map(|x| g.node(*x).args.iter().copied())
        .collect();
    operands.sort_unstable();
    operands.dedup();
    operands.into_iter().find(|&u| {
        place[u.index()] == Placement::Root
            && !taken[u.index()]
            && readers[u.index()] == [head]
            && g.ty(u) == g.ty(v)
            && !g.outputs.iter().any(|(_, o)| *o == u)
            && read_at_own_element(g, inside, u, rows)
    })
}

/// For every buffer, whether it holds a primal value.
pub fn holds_primal(g: &Graph, buffer_of: &[Option<BufferId>], buffers: usize) -> Vec<bool> {
    let mut primal = vec![false; buffers];
    for (i, b) in buffer_of.iter().enumerate() {
        if let Some(b) = b {
            primal[b.0 as usize] |= g.nodes[i].side == Side::Primal;
        }
    }
    primal
}

/// Each kernel's first and last use of each buffer.
struct Liveness {
    first: Vec<Option<usize>>,
    last: Vec<Option<usize>>,
}

fn liveness(buffers: usize, kernels: &[Kernel]) -> Liveness {
    let mut first = vec![None; buffers];
    let mut last = vec![None; buffers];
    for (k, kernel) in kernels.iter().enumerate() {
        for b in &kernel.bindings {
            let i = b.buffer.0 as usize;
            first[i].get_or_insert(k);
            last[i] = Some(k);
        }
    }
    Liveness { first, last }
}

/// Shares the memory of temporaries whose lifetimes do not overlap. Rewrites the
/// buffer handles of kernels, inputs and outputs, and returns the physical buffers.
pub fn plan(
    virtual_buffers: Vec<Buffer>,
    kernels: &mut [Kernel],
    inputs: &mut [IoBinding],
    outputs: &mut [IoBinding],
) -> Vec<Buffer> {
    let n = virtual_buffers.len();
    let is_output =
        |i: usize, outputs: &[IoBinding]| outputs.iter().any(|o| o.buffer.0 as usize == i);
    let pinned: Vec<bool> = (0..n)
        .map(|i| virtual_buffers[i].role != BufferRole::Computed || is_output(i, outputs))
        .collect();
    let live = liveness(n, kernels);
    let mut physical: Vec<Buffer> = Vec::new();
    let mut map = vec![BufferId(u32::MAX); n];
    let mut free: Vec<usize> = Vec::new();
    // Before which kernel a free buffer must be vacated: outputs lend their memory
    // until they are first written.
    let mut until: Vec<Option<usize>> = Vec::new();
    // Inputs and outputs, and buffers no kernel touches, keep buffers of their own.
    for i in 0..n {
        if pinned[i] || live.first[i].is_none() {
            map[i] = BufferId(physical.len() as u32);
            if is_output(i, outputs) && virtual_buffers[i].role == BufferRole::Computed {
                until.push(live.first[i]);
                if live.first[i].is_some() {
                    free.push(physical.len());
                }
            } else {
                until.push(None);
            }
            physical.push(virtual_buffers[i].clone());
        }
    }
    // The temporaries each kernel first writes, and those it reads for the last time.
    let mut starts: Vec<Vec<usize>> = vec![Vec::new(); kernels.len()];
    let mut ends: Vec<Vec<usize>> = vec![Vec::new(); kernels.len()];
    for i in (0..n).filter(|&i| !pinned[i]) {
        if let (Some(f), Some(l)) = (live.first[i], live.last[i]) {
            starts[f].push(i);
            ends[l].push(i);
        }
    }
    for k in 0..kernels.len() {
        // Temporaries first written by this kernel take free memory, or new memory.
        for &i in &starts[k] {
            let need = virtual_buffers[i].bytes;
            let done = live.last[i].unwrap_or(k);
            let best = free
                .iter()
                .enumerate()
                .filter(|&(_, &p)| physical[p].bytes >= need && until[p].is_none_or(|u| done < u))
                .min_by_key(|&(_, &p)| physical[p].bytes);
            map[i] = match best {
                Some((slot, &p)) => {
                    free.swap_remove(slot);
                    BufferId(p as u32)
                }
                None => {
                    physical.push(virtual_buffers[i].clone());
                    until.push(None);
                    BufferId(physical.len() as u32 - 1)
                }
            };
        }
        // Temporaries this kernel reads for the last time free their memory.
        for &i in &ends[k] {
            free.push(map[i].0 as usize);
        }
    }
    for kernel in kernels.iter_mut() {
        for b in &mut kernel.bindings {
            b.buffer = map[b.buffer.0 as usize];
        }
    }
    for io in inputs.iter_mut().chain(outputs.iter_mut()) {
        io.buffer = map[io.buffer.0 as usize];
    }
    // A shared buffer describes itself by its size.
    for p in physical.iter_mut() {
        if p.role == BufferRole::Computed && p.ty.numel().max(1) * 4 != p.bytes as usize {
            p.ty = Type::new(p.ty.dtype, &[p.bytes as usize / 4]);
        }
    }
    physical
}

/// Bytes of buffers holding a primal value (written by the forward pass) that an
/// adjoint-side kernel reads, inputs excepted, computed on the virtual buffers before
/// any sharing. A kernel is adjoint-side when anything it computes is.
pub fn residual_bytes(
    buffers: &[Buffer],
    kernels: &[Kernel],
    sides: &[Side],
    holds_primal: &[bool],
) -> u64 {
    let mut read_adjoint = vec![false; buffers.len()];
    let mut written = vec![false; buffers.len()];
    for (kernel, side) in kernels.iter().zip(sides) {
        for b in &kernel.bindings {
            let i = b.buffer.0 as usize;
            // A buffer bound for writing is read too when it already holds a value (a
            // row kernel overwriting its operand).
            if *side == Side::Adjoint && (!b.writable || written[i]) {
                read_adjoint[i] = true;
            }
        }
        for b in &kernel.bindings {
            written[b.buffer.0 as usize] |= b.writable;
        }
    }
    (0..buffers.len())
        .filter(|&i| holds_primal[i] && read_adjoint[i] && buffers[i].role == BufferRole::Computed)
        .map(|i| buffers[i].bytes)
        .sum()
}

/// Statistics of the planned program: peak bytes are the largest total of live
/// buffers at any kernel (inputs live throughout, outputs from their first write on).
pub fn statistics(
    buffers: &[Buffer],
    kernels: &[Kernel],
    outputs: &[IoBinding],
    residual_bytes: u64,
) -> Stats {
    let live = liveness(buffers.len(), kernels);
    let is_output = |i: usize| outputs.iter().any(|o| o.buffer.0 as usize == i);
    let (mut peak, mut temp_peak) = (0u64, 0u64);
    // Each buffer's bytes join the totals at the kernel its life starts and leave them
    // after the kernel it ends.
    let steps = kernels.len().max(1);
    let mut total_delta = vec![0i64; steps + 1];
    let mut temp_delta = vec![0i64; steps + 1];
    for (i, b) in buffers.iter().enumerate() {
        let life = match (&b.role, is_output(i)) {
            (BufferRole::Input(_) | BufferRole::Constant(_), _) => Some((0, steps - 1)),
            (_, true) => live.first[i].map(|f| (f, steps - 1)),
            _ => live.first[i].zip(live.last[i]),
        };
        let Some((from, to)) = life else { continue };
        let bytes = b.bytes as i64;
        total_delta[from] += bytes;
        total_delta[to + 1] -= bytes;
        if b.role == BufferRole::Computed && !is_output(i) {
            temp_delta[from] += bytes;
            temp_delta[to + 1] -= bytes;
        }
    }
    let (mut total, mut temp) = (0i64, 0i64);
    for k in 0..steps {
        total += total_delta[k];
        temp += temp_delta[k];
        peak = peak.max(total as u64);
        temp_peak = temp_peak.max(temp as u64);
    }
    Stats {
        kernels: kernels.len() as u64,
        matmul_kernels: kernels
            .iter()
            .filter(|k| k.variant.starts_with("matmul"))
            .count() as u64,
        flops: kernels.iter().map(|k| k.flops).sum(),
        bytes_moved: kernels.iter().map(|k| k.bytes_moved).sum(),
        peak_bytes: peak,
        temp_bytes: temp_peak,
        residual_bytes,
        allocated_bytes: buffers.iter().map(|b| b.bytes).sum(),
    }
}

/// The 32 bits a buffer holds for literal element `v` of `dtype`.
fn bits(dtype: DType, v: Scalar) -> u32 {
    let x = v.to_f64();
    match dtype {
        DType::F32 => (x as f32).to_bits(),
        DType::I32 => x as i32 as u32,
        DType::U32 => x as u32,
        DType::Bool => u32::from(x != 0.0),
    }
}
