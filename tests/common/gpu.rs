//! Running programs on the GPU and comparing them with the f64 interpreter.
//!
//! # Tolerances
//! One table, per op class. A program's tolerance is the loosest class among its ops,
//! with the sum classes scaled by the longest reduction, then multiplied by
//! [`PROPAGATION`] for error carried through chains of ops (derivative programs are
//! several ops deep). Inputs are rounded to f32 first, so both sides see the same values.
//! - Exact (re-indexing, select, comparisons, casts between integers and from floats,
//!   integer arithmetic, `max`/`min`, `neg`, `abs`, `sign`): the GPU moves or compares
//!   the same bits: 0.
//! - A cast from an integer to f32 rounds to 24 bits, where the f64 reference is exact:
//!   `rel = 2⁻²⁴ ≈ 6e-8`.
//! - Rounded (`add`, `sub`, `mul` are correctly rounded in f32; `div` is within 2.5 ULP
//!   in Vulkan): 4 ULP relative, `rel = 4·2⁻²³ ≈ 5e-7`, plus `abs = 1e-7` near zero.
//! - Transcendental on the stated ranges — `exp` on |x| ≤ 3 (Vulkan: 3 + 2|x| ULP),
//!   `log` on [0.5, 2] (absolute error 2⁻²¹ there), `sqrt` and `rsqrt` (2 ULP), `recip`
//!   and `tanh` (inherited from division and `exp`), `pow` on x ∈ [0.5, 2] (inherited
//!   from `exp2(y·log2 x)`): `abs = 1e-6`, `rel = 2e-6` (about 16 ULP).
//! - `sin` and `cos` on [-π, π]: Vulkan allows 2⁻¹¹ absolute error: `abs = 5e-4`.
//! - Sums of n terms (`reduce_sum`, `dot`, `scatter_add`) accumulate in f32 in order:
//!   each partial sum rounds, so the error is at most n·2⁻²⁴·Σ|terms|; with terms of
//!   magnitude ≤ 4 that is `abs = n·4·6e-8`, `rel = 1e-6`.

use approx::abs_diff_eq;
use std::collections::HashMap;
use wgrad::ir::{BinaryOp, Op, UnaryOp};
use wgrad::runtime::Runtime;
use wgrad::{Graph, Options, Tensor};

/// How much error a chain of ops may accumulate relative to one op.
pub const PROPAGATION: f64 = 4.0;

/// `(abs, rel)`: `|gpu - reference| <= abs + rel·|reference|`.
pub fn tolerance(g: &Graph) -> (f64, f64) {
    let (abs, rel) = op_tolerance(g);
    (abs * PROPAGATION, rel * PROPAGATION)
}

/// The widest tolerance of any op of `g`, before propagation; a loop's body counts
/// once per iteration.
fn op_tolerance(g: &Graph) -> (f64, f64) {
    let mut abs: f64 = 0.0;
    let mut rel: f64 = 0.0;
    let mut widen = |a: f64, r: f64| {
        abs = abs.max(a);
        rel = rel.max(r);
    };
    for node in g.nodes() {
        if let Some((trips, _, body)) = node.op.as_loop() {
            let (a, r) = op_tolerance(g.region(body));
            widen(a * f64::from(trips), r * f64::from(trips));
        }
        let float = match &node.ty {
            wgrad::ir::NodeType::Tensor(t) => t.dtype.is_float(),
            wgrad::ir::NodeType::Tuple(_) => false,
        };
        if !float {
            continue;
        }
        match &node.op {
            Op::Unary(u) => match u {
                UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign => {}
                UnaryOp::Sin | UnaryOp::Cos => widen(5e-4, 2e-6),
                _ => widen(1e-6, 2e-6),
            },
            Op::Binary(b) => match b {
                BinaryOp::Max | BinaryOp::Min => {}
                BinaryOp::Pow => widen(1e-6, 2e-6),
                _ => widen(1e-7, 5e-7),
            },
            Op::Cast { .. } => widen(0.0, 6e-8),
            Op::Reduce { axes, .. } => {
                let shape = &g.ty(node.args[0]).shape;
                let n: usize = axes.iter().map(|&a| shape[a]).product();
                widen(n as f64 * 2.4e-7, 1e-6);
            }
            Op::Dot(d) => {
                let shape = &g.ty(node.args[0]).shape;
                let n: usize = d.lhs_contract.iter().map(|&a| shape[a]).product();
                widen(n as f64 * 2.4e-7, 1e-6);
            }
            Op::ScatterAdd { axis, .. } => {
                let n = g.ty(node.args[0]).shape[*axis];
                widen(n as f64 * 2.4e-7, 1e-6);
            }
            _ => {}
        }
    }
    (abs, rel)
}

/// The inputs rounded to f32, as the GPU sees them.
pub fn as_f32(inputs: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    inputs
        .iter()
        .map(|(n, t)| {
            let mut t = t.clone();
            if t.ty.dtype.is_float() {
                for x in &mut t.data {
                    *x = *x as f32 as f64;
                }
            }
            (n.clone(), t)
        })
        .collect()
}

/// Runs `g` on the GPU and on the interpreter and asserts every output agrees within
/// the program's tolerance. Returns the GPU outputs.
pub fn assert_gpu_matches(
    rt: &Runtime,
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
) -> Vec<(String, Tensor)> {
    assert_gpu_matches_for(rt, rt.target(), g, inputs)
}

/// [`assert_gpu_matches`], with `g` compiled for `target` rather than for the adapter
/// (a preset's kernel variants, run on whatever adapter there is).
pub fn assert_gpu_matches_for(
    rt: &Runtime,
    target: &wgrad::Target,
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
) -> Vec<(String, Tensor)> {
    assert_gpu_matches_with(rt, &Options::new(target.clone()), g, inputs)
}

/// [`assert_gpu_matches`], with `g` compiled with `options`.
pub fn assert_gpu_matches_with(
    rt: &Runtime,
    options: &Options,
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
) -> Vec<(String, Tensor)> {
    let inputs = as_f32(inputs);
    let program = wgrad::compile(g, options).or_panic(g);
    let mut exe = rt.load(&program).unwrap();
    let got = exe.run(&inputs).unwrap();
    let want = wgrad::eval(g, &inputs).unwrap();
    let (abs, rel) = tolerance(g);
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        assert_eq!(a.ty, b.ty, "output `{name}`");
        for (k, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
            assert!(
                x == y || x.is_nan() && y.is_nan() || within(x, y, (abs, rel)),
                "output `{name}`[{k}]: gpu {x} vs interpreter {y} (tolerance {abs:e} + {rel:e}·|y|)\n{}",
                wgrad::print(g)
            );
        }
    }
    got
}

/// Whether the GPU's `x` is within `abs + rel·|y|` of the interpreter's `y`, where
/// `(abs, rel)` is a [`tolerance`]; NaN and infinities never are.
pub fn within(x: f64, y: f64, (abs, rel): (f64, f64)) -> bool {
    abs_diff_eq!(x, y, epsilon = abs + rel * y.abs())
}

trait OrPanic<T> {
    fn or_panic(self, g: &Graph) -> T;
}

impl<T> OrPanic<T> for wgrad::Result<T> {
    fn or_panic(self, g: &Graph) -> T {
        self.unwrap_or_else(|e| panic!("{e}\n{}", wgrad::print(g)))
    }
}
