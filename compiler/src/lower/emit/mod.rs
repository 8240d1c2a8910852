//! Emission: WGSL for every kernel of a [`Plan`], each validated by naga.
//!
//! One emitter per kind of kernel, each consuming its plan entry and returning
//! `Result`: `elementwise` (one element per invocation, also the contractions and
//! scatters the specialized kernels do not take), `reduce`, `matmul` and `row`, all
//! written with the expression emitter in `expr`. Nothing here decides what a kernel
//! computes or how it is shaped; an error here is a compiler bug or a limit the
//! planner could not see.

pub mod elementwise;
pub mod expr;
pub mod matmul;
pub mod reduce;
pub mod row;

use super::placement::Placement;
use super::plan::{KernelKind, Plan};
use super::program::{Buffer, BufferId, Kernel};
use super::target::Target;
use super::validate::validate_wgsl;
use crate::error::{Error, Result};
use crate::ir::{Graph, Value};

/// What every emitter reads: the graph, where each value is computed, the buffer of
/// each stored value, and the target.
pub struct Context<'a> {
    /// The graph being lowered.
    pub g: &'a Graph,
    /// Where each value is computed.
    pub place: &'a [Placement],
    /// The buffer of each stored value.
    pub buffer_of: &'a [Option<BufferId>],
    /// The target.
    pub target: &'a Target,
    /// How each value is printed ([`labels`](crate::ir::labels)): kernel comments name
    /// values as the IR dumps do.
    pub labels: &'a [String],
}

impl Context<'_> {
    /// `%label` of `v`, as printed IR shows it.
    pub fn label(&self, v: Value) -> String {
        match self.labels.get(v.index()) {
            Some(l) => format!("%{l}"),
            None => v.to_string(),
        }
    }

    /// The buffer holding `v`; an error (a compiler bug) when it has none.
    pub fn buffer(&self, v: Value) -> Result<BufferId> {
        self.buffer_of[v.index()].ok_or_else(|| Error::Internal(format!("{v} has no buffer")))
    }
}

/// Every kernel of `plan`, in dispatch order, each with the root of its plan entry.
/// Scratch buffers (partial results) are appended to `buffers`.
pub fn kernels(
    cx: &Context<'_>,
    plan: &Plan,
    buffers: &mut Vec<Buffer>,
) -> Result<Vec<(Value, Kernel)>> {
    let mut kernels = Vec::new();
    for k in &plan.kernels {
        let index = kernels.len();
        let emitted = match &k.kind {
            KernelKind::Elementwise
            | KernelKind::Contraction { .. }
            | KernelKind::Scatter { .. } => vec![elementwise::emit(cx, k, index)?],
            KernelKind::Reduce { .. } => reduce::emit(cx, k, index, buffers)?,
            KernelKind::Matmul(m) => matmul::emit(cx, k, m, index, buffers)?,
            KernelKind::Row(r) => vec![row::emit(cx, k, r, index)?],
        };
        for kernel in emitted {
            validate_wgsl(&kernel.name, &kernel.wgsl, cx.target)?;
            kernels.push((k.root, kernel));
        }
    }
    Ok(kernels)
}
