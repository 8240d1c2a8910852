//! Lowering: IR → kernel groups → WGSL, for a [`Target`].
//!
//! Compilation needs no device. [`compile`] unrolls loops, optimizes the program
//! ([`passes::optimize`]), splits sums over rows and columns that a row kernel can
//! take per row (`rows`), places every value in a fusion group (`group`; row groups
//! from `rows`), generates one kernel per group root in an order that respects what
//! each reads (`kernel`, `matmul`, `row`, written by `wgsl`), validates every kernel's
//! WGSL with naga, and plans buffers (`memory`: one per input and output, temporaries
//! sharing memory when their lifetimes do not overlap, and using outputs' memory
//! before the outputs are written). The result is a [`Program`] of plain data: kernels
//! with their WGSL text, bindings, dispatch grids, the buffer plan, and statistics.

mod explain;
mod group;
mod kernel;
mod matmul;
mod memory;
mod program;
mod row;
mod rows;
mod target;
mod validate;
mod wgsl;

pub use explain::{Decision, Residency};
pub use group::Placement;
pub use program::{
    Buffer, BufferId, BufferRole, IoBinding, Kernel, KernelBinding, Program, StatePair, Stats,
};
pub use target::{AdapterClass, Target, TargetFeatures};
pub use validate::validate_wgsl;

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeType, Side, Value, print, verify};
use crate::passes::{self, Optimizations};

/// What to compile for, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The target; the software-Vulkan preset by default.
    pub target: Target,
    /// The optimizations that run; all by default.
    pub optimizations: Optimizations,
}

impl Options {
    /// Every optimization, for `target`.
    pub fn new(target: Target) -> Options {
        Options {
            target,
            optimizations: Optimizations::default(),
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new(Target::software_vulkan())
    }
}

/// The IR after one step of the pipeline, for dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassDump {
    /// The pass's name.
    pub pass: String,
    /// The printed IR after it.
    pub ir: String,
}

/// What compiling found out beside the program itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The IR after every pass that changed it.
    pub passes: Vec<PassDump>,
    /// For every forward value: kept, recomputed or dropped by the backward pass.
    pub residency: Vec<Residency>,
}

/// Compiles `graph` for `options.target`. Also returns the IR after every pass and
/// what the backward pass keeps of the forward one.
pub fn compile(graph: &Graph, options: &Options) -> Result<(Program, Report)> {
    verify(graph)?;
    let target = &options.target;
    let mut g = graph.clone();
    let mut dumps = vec![PassDump {
        pass: "input".into(),
        ir: print(&g),
    }];
    let mut step = |name: &str, g: &Graph, changed: bool| -> Result<()> {
        if changed {
            if cfg!(debug_assertions) {
                verify(g)?;
            }
            dumps.push(PassDump {
                pass: name.into(),
                ir: print(g),
            });
        }
        Ok(())
    };
    let clock = std::time::Instant::now();
    let changed = passes::unroll::run(&mut g)?;
    step("unroll", &g, changed)?;
    passes::optimize_with(&mut g, &options.optimizations, |pass, g| {
        step(pass, g, true)
    })?;
    let fusion = options.optimizations.fusion;
    if fusion {
        let changed = rows::split_reductions(&mut g);
        step("split_rows", &g, changed)?;
    }

    // Place values in kernels; a kernel that would bind more buffers than the target
    // allows gets part of its expression split into a kernel of its own. Per-row
    // results that a reduction across rows reads are stored by their row kernel.
    log::debug!("passes: {} nodes in {:?}", g.len(), clock.elapsed());
    let clock = std::time::Instant::now();
    let place = place_within_limits(&g, target, &options.optimizations)?;
    log::debug!("placement: {:?}", clock.elapsed());
    let clock = std::time::Instant::now();
    let own = group::kernel_values(&place);
    let (mut buffers, buffer_of) = plan_buffers(&g, &place, &own, target)?;
    let generated = generate_kernels(&g, &place, &own, &buffer_of, &mut buffers, target)?;
    log::debug!(
        "{} kernels generated and validated in {:?}",
        generated.len(),
        clock.elapsed()
    );
    let clock = std::time::Instant::now();
    let sides = generated
        .iter()
        .map(|(root, _)| kernel_side(&g, &own[root.index()]))
        .collect::<Vec<_>>();
    let pairs: Vec<(Value, &Kernel)> = generated.iter().map(|(r, k)| (*r, k)).collect();
    let residency = explain::explain(&g, &place, &own, &pairs);
    let kernels = generated.into_iter().map(|(_, k)| k).collect::<Vec<_>>();

    let io = |list: &[(String, crate::ir::Value)]| -> Result<Vec<IoBinding>> {
        list.iter()
            .map(|(name, v)| {
                let buffer = buffer_of[v.index()]
                    .ok_or_else(|| Error::Compile(format!("`{name}` ({v}) has no buffer")))?;
                Ok(IoBinding {
                    name: name.clone(),
                    buffer,
                    ty: g.ty(*v).clone(),
                })
            })
            .collect()
    };
    let mut inputs = io(&g.inputs)?;
    let mut outputs = io(&g.outputs)?;
    let primal = holds_primal(&g, &buffer_of, buffers.len());
    let residual = memory::residual_bytes(&buffers, &kernels, &sides, &primal);
    let mut kernels = kernels;
    let buffers = if options.optimizations.reuse_buffers {
        memory::plan(buffers, &mut kernels, &mut inputs, &mut outputs)
    } else {
        buffers
    };
    let state = outputs
        .iter()
        .filter_map(|o| {
            let input = o.name.strip_prefix("new.")?;
            let i = inputs.iter().find(|i| i.name == input)?;
            (i.ty == o.ty).then(|| StatePair {
                input: input.to_string(),
                output: o.name.clone(),
            })
        })
        .collect();
    let stats = memory::statistics(&buffers, &kernels, &outputs, residual);
    log::debug!("buffers and statistics: {:?}", clock.elapsed());
    Ok((
        Program {
            graph: g,
            target: target.clone(),
            buffers,
            kernels,
            inputs,
            outputs,
            state,
            stats,
        },
        Report {
            passes: dumps,
            residency,
        },
    ))
}

/// The side of a kernel, from the values it computes: adjoint when any of them is.
fn kernel_side(g: &Graph, own: &[Value]) -> Side {
    if own.iter().any(|v| g.node(*v).side == Side::Adjoint) {
        Side::Adjoint
    } else {
        Side::Primal
    }
}

/// Whether the kernel of `root`, computing `own`, is a row kernel: it computes values
/// beside its root and no product.
fn is_row_kernel(g: &Graph, place: &[Placement], root: Value, own: &[Value]) -> bool {
    own.iter()
        .any(|v| place[v.index()] == Placement::Also(root))
        && !own
            .iter()
            .any(|v| matches!(g.node(*v).op, crate::ir::Op::Dot(_)))
}

/// For every buffer, whether it holds a primal value.
fn holds_primal(g: &Graph, buffer_of: &[Option<BufferId>], buffers: usize) -> Vec<bool> {
    let mut primal = vec![false; buffers];
    for (i, b) in buffer_of.iter().enumerate() {
        if let Some(b) = b {
            primal[b.0 as usize] |= g.nodes[i].side == Side::Primal;
        }
    }
    primal
}

/// One buffer per input, per kernel root, and per value computed beside a root that
/// another kernel reads or the host reads back. A row kernel's per-element result
/// takes the buffer of an operand it is the last to read, when it reads that operand
/// only at the element it writes.
fn plan_buffers(
    g: &Graph,
    place: &[Placement],
    own: &[Vec<Value>],
    target: &Target,
) -> Result<(Vec<Buffer>, Vec<Option<BufferId>>)> {
    let readers = group::readers(g, place);
    let is_output = |i: usize| g.outputs.iter().any(|(_, v)| v.index() == i);
    let mut buffers = Vec::new();
    let mut buffer_of = vec![None; g.len()];
    let mut taken = vec![false; g.len()];
    for (i, p) in place.iter().enumerate() {
        let role = match p {
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
        if let Some(u) = overwritable(g, place, own, &readers, &taken, Value(i as u32)) {
            taken[u.index()] = true;
            buffer_of[i] = buffer_of[u.index()];
            continue;
        }
        let bytes = (ty.numel() * ty.dtype.size_bytes()) as u64;
        if bytes > target.max_storage_buffer_binding_size {
            return Err(Error::Compile(format!(
                "%{i} ({ty}) takes {bytes} bytes, more than the target's max_storage_buffer_binding_size of {} bytes",
                target.max_storage_buffer_binding_size
            )));
        }
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
    own: &[Vec<Value>],
    readers: &[Vec<Value>],
    taken: &[bool],
    v: Value,
) -> Option<Value> {
    let head = match place[v.index()] {
        Placement::Also(h) => h,
        Placement::Root => v,
        _ => return None,
    };
    let own = &own[head.index()];
    if !is_row_kernel(g, place, head, own) || g.outputs.iter().any(|(_, o)| *o == v) {
        return None;
    }
    let inside = rows::computed_by(g, place, own);
    let rows = rows::rows_of_kernel(g, &inside)?;
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
            && rows::read_at_own_element(g, &inside, u, &rows)
    })
}

/// Places every value so that no kernel binds more storage buffers than the target
/// allows: a kernel over the limit has the fused value whose expression reads the most
/// buffers (short of all of them) made a kernel of its own, every such kernel at once,
/// and values are placed again until every kernel fits. Only placement repeats; kernels
/// are generated once, afterwards.
fn place_within_limits(
    g: &Graph,
    target: &Target,
    enabled: &Optimizations,
) -> Result<Vec<Placement>> {
    let mut split = if enabled.fusion {
        rows::per_row_operands(g)
    } else {
        vec![false; g.len()]
    };
    let limit = target.max_storage_buffers_per_shader_stage as usize;
    let mut round = 0;
    loop {
        round += 1;
        let place = group::place(g, &split, target, enabled);
        let counts = group::binding_counts(g, &place);
        let over: Vec<(Value, usize)> = counts
            .iter()
            .copied()
            .filter(|&(_, count)| count > limit)
            .collect();
        let Some(&(root, needed)) = over.first() else {
            log::debug!("placement within the binding limit: {round} rounds");
            return Ok(place);
        };
        let cuts = group::splits_within(g, &place, &counts, limit);
        let mut changed = false;
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

/// One kernel per root (with its root), in dispatch order.
fn generate_kernels(
    g: &Graph,
    place: &[Placement],
    own: &[Vec<Value>],
    buffer_of: &[Option<BufferId>],
    buffers: &mut Vec<Buffer>,
    target: &Target,
) -> Result<Vec<(Value, Kernel)>> {
    let mut kernels = Vec::new();
    let order = group::kernel_order(g, place);
    if order.len() != place.iter().filter(|p| **p == Placement::Root).count() {
        return Err(Error::Compile(
            "the kernels read each other's results in a cycle".into(),
        ));
    }
    for root in order {
        let values = &own[root.index()];
        let several = values
            .iter()
            .any(|v| place[v.index()] == Placement::Also(root));
        let generated = if is_row_kernel(g, place, root, values) {
            row::generate(g, place, buffer_of, root, values, kernels.len(), target)?
                .into_iter()
                .collect()
        } else {
            match matmul::generate(
                g,
                place,
                buffer_of,
                buffers,
                root,
                values,
                kernels.len(),
                target,
            ) {
                Some(generated) => generated,
                None if several => {
                    return Err(Error::Compile(format!(
                        "{root}: the product computing a sum beside it is not tiled"
                    )));
                }
                None => kernel::generate(
                    g,
                    place,
                    buffer_of,
                    buffers,
                    root,
                    values,
                    kernels.len(),
                    target,
                )?,
            }
        };
        for k in generated {
            validate_wgsl(&k.name, &k.wgsl, target)?;
            kernels.push((root, k));
        }
    }
    Ok(kernels)
}
