//! Row analysis, and the rewrite that splits a sum over rows and columns into a sum
//! along the rows and a sum of the per-row results, so that the first joins the row
//! kernel computing what it sums.
//!
//! A value *derives from a row reduction at its own row* when it is a reduction along
//! the last axis, or reads such a value through elementwise ops, broadcasts of per-row
//! values along the row and further reductions along the row. Lowering groups kernels
//! by this relation (`lower::fuse_rows`); here it decides which sums to split and
//! which per-row values are worth storing.

use crate::ir::{Graph, Op, OpClass, Value};
use crate::passes::rewrite::{live, rebuild};

/// A reduction of a whole vector is a reduction of one row when the vector has
/// `ONE_ROW_FROM..=ONE_ROW` elements: long enough that its sum would otherwise take a
/// two-stage reduction (two kernels), so that one row kernel making a few passes over
/// it (Enzyme's normalize: the squared norm, the loss and the norm's cotangent, then
/// the gradient) replaces several; short enough for one invocation to pass over it
/// (a row kernel on a CPU adapter does, and llvmpipe ends any shader loop after 65,535
/// iterations). Shorter vectors' sums stay kernels of their own.
pub const ONE_ROW: usize = 32_768;
/// See [`ONE_ROW`]; equal to `lower::SPLIT_REDUCTION`.
pub const ONE_ROW_FROM: usize = 4096;

/// The rows a value is laid out in: the leading axes (the row index) and the length
/// of the last axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows {
    /// The shape of the row index.
    pub prefix: Vec<usize>,
    /// Elements per row.
    pub len: usize,
}

impl Rows {
    /// The rows that reduction `v` runs along, when it reduces exactly the last axis
    /// of an operand of rank 2 or more.
    pub fn of_reduction(g: &Graph, v: Value) -> Option<Rows> {
        let Op::Reduce { axes, .. } = &g.node(v).op else {
            return None;
        };
        let shape = &g.ty(g.node(v).args[0]).shape;
        let whole_vector = shape.len() == 1 && (ONE_ROW_FROM..=ONE_ROW).contains(&shape[0]);
        ((shape.len() >= 2 || whole_vector) && axes[..] == [shape.len() - 1]).then(|| Rows {
            prefix: shape[..shape.len() - 1].to_vec(),
            len: shape[shape.len() - 1],
        })
    }

    /// Whether a value of this shape is per row (`prefix`) or per element
    /// (`prefix + [len]`).
    pub fn holds(&self, shape: &[usize]) -> bool {
        shape == self.prefix || (shape.len() == self.prefix.len() + 1 && self.element(shape))
    }

    /// Whether a value of this shape is per element (`prefix + [len]`).
    pub fn element(&self, shape: &[usize]) -> bool {
        shape.len() == self.prefix.len() + 1
            && shape[..self.prefix.len()] == self.prefix[..]
            && shape[self.prefix.len()] == self.len
    }

    /// The number of rows.
    pub fn count(&self) -> usize {
        self.prefix.iter().product()
    }
}

/// Whether `v` reads the rows of a row reduction at its own row, and which rows.
pub fn row_local_op(g: &Graph, v: Value, rows: &Rows) -> bool {
    let node = g.node(v);
    let shape = &g.ty(v).shape;
    match node.op.class() {
        OpClass::Elementwise | OpClass::Identity => rows.holds(shape),
        OpClass::Reindex => match &node.op {
            Op::Broadcast { dims, .. } => {
                g.ty(node.args[0]).shape == rows.prefix
                    && rows.element(shape)
                    && dims.iter().copied().eq(0..rows.prefix.len())
            }
            _ => false,
        },
        OpClass::Reduction => Rows::of_reduction(g, v).as_ref() == Some(rows),
        OpClass::Input
        | OpClass::Generated
        | OpClass::Indexed
        | OpClass::Contraction
        | OpClass::Scatter
        | OpClass::Loop => false,
    }
}

/// For every value, the rows of the row reduction it derives from at its own row, if
/// any: a row reduction's own rows, or the first operand's rows that the value reads at
/// its own row. One walk in arena order (operands come first), with no recursion.
fn derived_rows(g: &Graph) -> Vec<Option<Rows>> {
    let mut rows: Vec<Option<Rows>> = Vec::with_capacity(g.len());
    for v in g.values() {
        let found = Rows::of_reduction(g, v).or_else(|| {
            g.node(v)
                .args
                .iter()
                .filter_map(|a| rows[a.index()].as_ref())
                .find(|r| row_local_op(g, v, r))
                .cloned()
        });
        rows.push(found);
    }
    rows
}

/// Splits a reduction over the last axis and others, whose operand derives from a
/// row reduction at its own row, into a reduction along the rows (which joins the row
/// kernel) and a reduction of the per-row results: `Σ_{i,j} y·(z − lse)` becomes
/// `Σ_i (Σ_j y·(z − lse))`. Returns whether anything changed.
pub fn run(g: &mut Graph) -> bool {
    let live = live(g);
    let derived = derived_rows(g);
    let split: Vec<bool> = g
        .values()
        .map(|v| {
            let Op::Reduce { axes, .. } = &g.node(v).op else {
                return false;
            };
            let x = g.node(v).args[0];
            let rank = g.ty(x).rank();
            live[v.index()]
                && rank >= 2
                && axes.len() > 1
                && axes.contains(&(rank - 1))
                && derived[x.index()]
                    .as_ref()
                    .is_some_and(|rows| rows.element(&g.ty(x).shape))
        })
        .collect();
    if !split.contains(&true) {
        return false;
    }
    let rebuilt = rebuild(g, |b, map, v| {
        if !split[v.index()] {
            return None;
        }
        let Op::Reduce { kind, axes } = &g.node(v).op else {
            return None;
        };
        let x = map[g.node(v).args[0].index()];
        let last = g.ty(g.node(v).args[0]).rank() - 1;
        let rest: Vec<usize> = axes.iter().copied().filter(|&a| a != last).collect();
        Some(
            b.reduce(*kind, x, &[last])
                .and_then(|per_row| b.reduce(*kind, per_row, &rest)),
        )
    });
    match rebuilt {
        Some(new) => {
            *g = new;
            true
        }
        None => false,
    }
}

/// Values that should be stored by a row kernel rather than fused into the kernel
/// that reads them: per-row values derived from a row reduction that a reduction
/// across rows reads (each row's loss, summed into the loss).
pub fn per_row_operands(g: &Graph) -> Vec<bool> {
    let derived = derived_rows(g);
    let mut forced = vec![false; g.len()];
    for v in g.values() {
        if let Op::Reduce { .. } = g.node(v).op {
            let x = g.node(v).args[0];
            if Rows::of_reduction(g, v).is_none()
                && !matches!(g.node(x).op, Op::Reduce { .. })
                && derived[x.index()]
                    .as_ref()
                    .is_some_and(|rows| rows.prefix == g.ty(x).shape)
            {
                forced[x.index()] = true;
            }
        }
    }
    forced
}
