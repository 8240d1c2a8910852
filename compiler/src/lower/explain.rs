//! Why each forward value is kept, recomputed or dropped by the backward pass.
//!
//! After kernels are placed, every primal value falls in one of three classes with
//! respect to the adjoint-side kernels: **kept** — stored by the forward pass and read
//! from its buffer by a backward kernel (a residual); **computed alongside** — computed
//! once by a kernel that also computes the backward values reading it, in registers;
//! **recomputed** — evaluated again inside a backward kernel from values that are
//! stored anyway (cheap elementwise work); **dropped** — no backward kernel needs it.

use super::placement::{Placement, kernel_of};
use super::program::Kernel;
use crate::ir::{Graph, Op, Side, Type, Value};
use std::fmt;

/// What the backward pass does with one forward value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stored and read back by these backward kernels.
    Kept(Vec<String>),
    /// Evaluated again inside these backward kernels.
    Recomputed(Vec<String>),
    /// Computed once, in the same kernel as the backward values that read it (a row
    /// kernel holding a row's maximum and sum in registers), and never stored.
    Alongside(Vec<String>),
    /// Not needed by the backward pass.
    Dropped,
}

/// One forward value and its [`Decision`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residency {
    /// The value in the compiled IR.
    pub value: Value,
    /// How printed IR names it (`%h`, or `%12` without a name).
    pub label: String,
    /// Its op's mnemonic.
    pub op: String,
    /// Its type.
    pub ty: Type,
    /// What happens to it.
    pub decision: Decision,
}

impl fmt::Display for Residency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.ty.numel() * self.ty.dtype.size_bytes();
        write!(f, "{} {} {}: ", self.label, self.op, self.ty)?;
        match &self.decision {
            Decision::Kept(k) => write!(
                f,
                "kept, {bytes} bytes: a derivative rule reads it, in {}",
                k.join(", ")
            ),
            Decision::Alongside(k) => write!(
                f,
                "computed in the same kernel as the backward values that read it, {}: never stored",
                k.join(", ")
            ),
            Decision::Recomputed(k) => write!(
                f,
                "recomputed inside {}: cheaper than storing it",
                k.join(", ")
            ),
            Decision::Dropped => f.write_str("dropped: the backward pass does not need it"),
        }
    }
}

/// Classifies every primal value that is not an input or a constant. `kernels` pairs
/// each kernel with the root it computes.
pub fn explain(
    g: &Graph,
    place: &[Placement],
    own: &[Vec<Value>],
    kernels: &[(Value, &Kernel)],
) -> Vec<Residency> {
    let n = g.len();
    let mut read_by: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut computed_in: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut alongside: Vec<Vec<String>> = vec![Vec::new(); n];
    for &(root, kernel) in kernels {
        // The values this kernel computes, and whether it is a backward kernel.
        let ours = &own[root.index()];
        if !ours.iter().any(|v| g.node(*v).side.is_derivative()) {
            continue;
        }
        // Walk the backward values' expressions: stored operands are read, the rest
        // computed, here or beside them.
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<Value> = ours
            .iter()
            .filter(|v| g.node(**v).side.is_derivative())
            .flat_map(|v| g.node(*v).args.iter().copied())
            .collect();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            if kernel_of(place, v) == Some(root) {
                push_once(&mut alongside[v.index()], &kernel.name);
                stack.extend(&g.node(v).args);
                continue;
            }
            match place[v.index()] {
                Placement::Input | Placement::Root | Placement::Also(_) => {
                    push_once(&mut read_by[v.index()], &kernel.name)
                }
                Placement::Fused(_) | Placement::Everywhere => {
                    push_once(&mut computed_in[v.index()], &kernel.name);
                    stack.extend(&g.node(v).args);
                }
                Placement::Dead => {}
            }
        }
    }
    let labels = crate::ir::labels(g);
    (0..n)
        .filter(|&i| {
            let node = &g.nodes[i];
            node.side == Side::Primal
                && !matches!(
                    node.op,
                    Op::Input { .. } | Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. }
                )
                && place[i] != Placement::Dead
        })
        .map(|i| Residency {
            value: Value(i as u32),
            label: format!("%{}", labels[i]),
            op: g.nodes[i].op.name().to_string(),
            ty: g.ty(Value(i as u32)).clone(),
            decision: if !read_by[i].is_empty() {
                Decision::Kept(read_by[i].clone())
            } else if !alongside[i].is_empty() {
                Decision::Alongside(alongside[i].clone())
            } else if !computed_in[i].is_empty() {
                Decision::Recomputed(computed_in[i].clone())
            } else {
                Decision::Dropped
            },
        })
        .collect()
}

fn push_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}
