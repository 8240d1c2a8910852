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
//! - `lgamma` and `digamma`: the series' documented accuracy, `abs = rel = 4e-6`.
//! - Sums of n terms (`reduce_sum`, `dot`, `scatter_add`) accumulate in f32 in order:
//!   each partial sum rounds, so the error is at most n·2⁻²⁴·Σ|terms|; with terms of
//!   magnitude ≤ 4 that is `abs = n·4·6e-8`, `rel = 1e-6`.
//!
//! Where the program's own arithmetic amplifies rounding (a subtraction that cancels,
//! like `1 - y·y` for a saturated `tanh` in a derivative), no constant factor covers it.
//! Each output element's tolerance therefore also takes twice [`rounding_spread`]: how
//! far the interpreter's value moves when every float result is perturbed by its op's
//! relative tolerance from the table. Where nothing cancels, that adds little; where
//! something does, it measures how much.

use approx::abs_diff_eq;
use std::collections::HashMap;
use wgrad::ir::Node;
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
    for node in g.nodes() {
        if let Some((trips, _, body)) = node.op.as_loop() {
            let (a, r) = op_tolerance(g.region(body));
            abs = abs.max(a * f64::from(trips));
            rel = rel.max(r * f64::from(trips));
        }
        let (a, r) = node_tolerance(g, node);
        abs = abs.max(a);
        rel = rel.max(r);
    }
    (abs, rel)
}

/// The tolerance of one node of `g` from the table above: `(0, 0)` for what the GPU
/// computes exactly, for loops and for non-float values.
fn node_tolerance(g: &Graph, node: &Node) -> (f64, f64) {
    let float = match &node.ty {
        wgrad::ir::NodeType::Tensor(t) => t.dtype.is_float(),
        wgrad::ir::NodeType::Tuple(_) => false,
    };
    if !float {
        return (0.0, 0.0);
    }
    let sum_of = |n: usize| (n as f64 * 2.4e-7, 1e-6);
    match &node.op {
        Op::Unary(u) => match u {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign => (0.0, 0.0),
            UnaryOp::Sin | UnaryOp::Cos => (5e-4, 2e-6),
            // The documented accuracy of the series: 4e-6·(1 + |y|).
            UnaryOp::Lgamma | UnaryOp::Digamma => (4e-6, 4e-6),
            _ => (1e-6, 2e-6),
        },
        Op::Binary(b) => match b {
            BinaryOp::Max | BinaryOp::Min => (0.0, 0.0),
            BinaryOp::Pow => (1e-6, 2e-6),
            _ => (1e-7, 5e-7),
        },
        Op::Cast { .. } => (0.0, 6e-8),
        Op::Reduce { axes, .. } => {
            let shape = &g.ty(node.args[0]).shape;
            sum_of(axes.iter().map(|&a| shape[a]).product())
        }
        Op::Dot(d) => {
            let shape = &g.ty(node.args[0]).shape;
            sum_of(d.lhs_contract.iter().map(|&a| shape[a]).product())
        }
        Op::ScatterAdd { axis, .. } => sum_of(g.ty(node.args[0]).shape[*axis]),
        _ => (0.0, 0.0),
    }
}

/// How far each output of `g` moves when every float result is perturbed by its op's
/// relative tolerance (each element up or down at random): a first-order estimate of
/// the error that rounding carries to each output through the program's own
/// arithmetic, which no program-wide constant captures where a subtraction cancels
/// (`1 - y·y` for a saturated `tanh`, which no f32 implementation computes to more than
/// a few digits). The largest deviation over [`ROUNDING_DRAWS`] draws.
pub fn rounding_spread(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    want: &[(String, Tensor)],
) -> Vec<Vec<f64>> {
    let mut spread: Vec<Vec<f64>> = want.iter().map(|(_, t)| vec![0.0; t.data.len()]).collect();
    for draw in 0..ROUNDING_DRAWS {
        let state = std::cell::Cell::new(0x9e37_79b9_7f4a_7c15u64 ^ draw);
        let rounding = |g: &Graph, node: &Node, data: &mut [f64]| {
            let (_, rel) = node_tolerance(g, node);
            if rel == 0.0 {
                return;
            }
            for x in data.iter_mut() {
                // splitmix64: one random sign per element.
                let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(z);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                let sign = if (z ^ (z >> 31)) & 1 == 0 { 1.0 } else { -1.0 };
                *x += sign * rel * x.abs();
            }
        };
        let Ok(got) = wgrad::ir::eval_rounded(g, inputs, &rounding) else {
            continue;
        };
        for ((s, (_, a)), (_, b)) in spread.iter_mut().zip(&got).zip(want) {
            for ((s, x), y) in s.iter_mut().zip(&a.data).zip(&b.data) {
                if x.is_finite() && y.is_finite() {
                    *s = s.max((x - y).abs());
                }
            }
        }
    }
    spread
}

/// Draws of [`rounding_spread`].
const ROUNDING_DRAWS: u64 = 2;

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
    let spread = rounding_spread(g, &inputs, &want);
    for (((name, a), (_, b)), spread) in got.iter().zip(&want).zip(&spread) {
        assert_eq!(a.ty, b.ty, "output `{name}`");
        for (k, ((&x, &y), &s)) in a.data.iter().zip(&b.data).zip(spread).enumerate() {
            let abs = abs + 2.0 * s;
            assert!(
                x == y || x.is_nan() && y.is_nan() || within(x, y, (abs, rel)),
                "output `{name}`[{k}]: gpu {x} vs interpreter {y} (tolerance {abs:e} + {rel:e}·|y|, of which rounding through this program {:e})\n{}",
                2.0 * s,
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
