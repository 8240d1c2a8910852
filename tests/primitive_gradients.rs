//! Every differentiable primitive, on random shapes (broadcasting included), has a
//! reverse-mode gradient that matches central finite differences, and a forward-mode
//! tangent that agrees with it (`jvp(v) == <grad, v>`).

mod common;

use common::{Rng, assert_gradcheck, inputs, output, weighted_loss};
use proptest::prelude::*;
use std::collections::HashMap;
use wgrad::ir::{BinaryOp, DotDims, ReduceKind, Scalar, UnaryOp};
use wgrad::{Builder, DType, Graph, Tensor, Type, Value};

/// A program around one primitive, its inputs, and the names to differentiate.
struct Case {
    graph: Graph,
    inputs: HashMap<String, Tensor>,
    wrt: Vec<&'static str>,
}

fn random_shape(rng: &mut Rng, max_rank: usize) -> Vec<usize> {
    let rank = rng.below(max_rank + 1);
    (0..rank).map(|_| 1 + rng.below(3)).collect()
}

/// A shape that broadcasts against `shape`: a suffix of it with some extents set to 1.
fn broadcastable(rng: &mut Rng, shape: &[usize]) -> Vec<usize> {
    let keep = rng.below(shape.len() + 1);
    shape[shape.len() - keep..]
        .iter()
        .map(|&d| if rng.below(3) == 0 { 1 } else { d })
        .collect()
}

/// An input with values in a range where the op is smooth.
fn smooth_input(rng: &mut Rng, shape: &[usize], positive: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            if positive {
                rng.uniform(0.5, 2.0)
            } else {
                rng.away_from_zero(-2.0, 2.0, 0.2)
            }
        })
        .collect();
    Tensor::new(Type::f32(shape), data).unwrap()
}

fn unary_case(rng: &mut Rng, op: UnaryOp) -> Case {
    let shape = random_shape(rng, 3);
    let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt);
    let mut ins = inputs(vec![("a", smooth_input(rng, &shape, positive))]);
    let mut b = Builder::new();
    let a = b.input("a", Type::f32(&shape)).unwrap();
    let y = b.push(wgrad::ir::Op::Unary(op), &[a]).unwrap();
    Case {
        graph: weighted_loss(b, y, rng, &mut ins),
        inputs: ins,
        wrt: vec!["a"],
    }
}

fn binary_case(rng: &mut Rng, op: BinaryOp) -> Case {
    let shape = random_shape(rng, 3);
    let other = broadcastable(rng, &shape);
    let (sa, sb) = if rng.below(2) == 0 {
        (shape, other)
    } else {
        (other, shape)
    };
    let positive_base = op == BinaryOp::Pow;
    // Operands stay at least 0.2 from zero, so `div` and `pow` are smooth.
    let ta = smooth_input(rng, &sa, positive_base);
    let tb = smooth_input(rng, &sb, false);
    let mut ins = inputs(vec![("a", ta), ("b", tb)]);
    let mut b = Builder::new();
    let a = b.input("a", Type::f32(&sa)).unwrap();
    let c = b.input("b", Type::f32(&sb)).unwrap();
    let y = b.binary(op, a, c).unwrap();
    Case {
        graph: weighted_loss(b, y, rng, &mut ins),
        inputs: ins,
        wrt: vec!["a", "b"],
    }
}

/// A program `loss = Σ f(a) · weights` for a structural op `f` built by `make`.
fn structural_case(
    rng: &mut Rng,
    shape: Vec<usize>,
    make: impl FnOnce(&mut Builder, Value, &mut Rng) -> Value,
) -> Case {
    let mut ins = inputs(vec![("a", smooth_input(rng, &shape, false))]);
    let mut b = Builder::new();
    let a = b.input("a", Type::f32(&shape)).unwrap();
    let y = make(&mut b, a, rng);
    Case {
        graph: weighted_loss(b, y, rng, &mut ins),
        inputs: ins,
        wrt: vec!["a"],
    }
}

fn nonempty_shape(rng: &mut Rng) -> Vec<usize> {
    let rank = 1 + rng.below(3);
    (0..rank).map(|_| 1 + rng.below(3)).collect()
}

fn case(which: usize, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let rng = &mut rng;
    let n_unary = UnaryOp::ALL.len();
    let n_binary = BinaryOp::ALL.len();
    if which < n_unary {
        return unary_case(rng, UnaryOp::ALL[which]);
    }
    if which < n_unary + n_binary {
        return binary_case(rng, BinaryOp::ALL[which - n_unary]);
    }
    match which - n_unary - n_binary {
        0 => {
            // select, with the condition from a comparison of a third input.
            let shape = random_shape(rng, 3);
            let mut ins = inputs(vec![
                ("a", smooth_input(rng, &shape, false)),
                ("b", smooth_input(rng, &shape, false)),
                ("c", smooth_input(rng, &shape, false)),
            ]);
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&shape)).unwrap();
            let c2 = b.input("b", Type::f32(&shape)).unwrap();
            let c = b.input("c", Type::f32(&shape)).unwrap();
            let zero = b.full_like(0.0, c).unwrap();
            let cond = b.gt(c, zero).unwrap();
            let y = b.select(cond, a, c2).unwrap();
            Case {
                graph: weighted_loss(b, y, rng, &mut ins),
                inputs: ins,
                wrt: vec!["a", "b", "c"],
            }
        }
        1 => {
            let shape = random_shape(rng, 2);
            structural_case(rng, shape, |b, a, rng| {
                // Broadcast into a bigger shape with one new leading axis and a new
                // trailing axis.
                let s = b.shape(a);
                let mut out = vec![1 + rng.below(3)];
                out.extend(&s);
                out.push(2);
                let dims: Vec<usize> = (1..=s.len()).collect();
                b.broadcast_in_dim(a, &out, &dims).unwrap()
            })
        }
        2 => {
            let shape = nonempty_shape(rng);
            structural_case(rng, shape, |b, a, _| {
                let n: usize = b.shape(a).iter().product();
                b.reshape(a, &[n]).unwrap()
            })
        }
        3 => {
            let shape = nonempty_shape(rng);
            structural_case(rng, shape, |b, a, _| {
                let r = b.shape(a).len();
                let perm: Vec<usize> = (0..r).rev().collect();
                b.transpose(a, &perm).unwrap()
            })
        }
        4 => {
            let shape = nonempty_shape(rng);
            structural_case(rng, shape, |b, a, rng| {
                let s = b.shape(a);
                let start: Vec<usize> = s.iter().map(|&d| rng.below(d)).collect();
                let limit: Vec<usize> = s
                    .iter()
                    .zip(&start)
                    .map(|(&d, &st)| st + 1 + rng.below(d - st))
                    .collect();
                b.slice(a, &start, &limit).unwrap()
            })
        }
        5 => {
            let shape = nonempty_shape(rng);
            let axis = rng.below(shape.len());
            let mut other = shape.clone();
            other[axis] = 1 + rng.below(3);
            let mut ins = inputs(vec![
                ("a", smooth_input(rng, &shape, false)),
                ("b", smooth_input(rng, &other, false)),
            ]);
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&shape)).unwrap();
            let c = b.input("b", Type::f32(&other)).unwrap();
            let y = b.concat(&[a, c, a], axis).unwrap();
            Case {
                graph: weighted_loss(b, y, rng, &mut ins),
                inputs: ins,
                wrt: vec!["a", "b"],
            }
        }
        6 => {
            let shape = nonempty_shape(rng);
            structural_case(rng, shape, |b, a, rng| {
                let r = b.shape(a).len();
                let low: Vec<usize> = (0..r).map(|_| rng.below(2)).collect();
                let high: Vec<usize> = (0..r).map(|_| rng.below(2)).collect();
                b.pad(a, &low, &high, Scalar::float(0.5)).unwrap()
            })
        }
        k @ 7..=9 => {
            let kind = ReduceKind::ALL[k - 7];
            let shape = nonempty_shape(rng);
            structural_case(rng, shape, move |b, a, rng| {
                let r = b.shape(a).len();
                let axes: Vec<usize> = (0..r).filter(|_| rng.below(2) == 0).collect();
                b.reduce(kind, a, &axes).unwrap()
            })
        }
        10 => {
            // Batched dot with one batch axis, two contracted axes paired in crossed
            // order, and free axes on both sides: a[k1, bt, m, k2] · b[bt, k2, n, k1].
            let d = |rng: &mut Rng| 1 + rng.below(3);
            let (bt, m, n, k1, k2) = (d(rng), d(rng), d(rng), d(rng), d(rng));
            let (sa, sb) = ([k1, bt, m, k2], [bt, k2, n, k1]);
            let mut ins = inputs(vec![
                ("a", smooth_input(rng, &sa, false)),
                ("b", smooth_input(rng, &sb, false)),
            ]);
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&sa)).unwrap();
            let c = b.input("b", Type::f32(&sb)).unwrap();
            let dims = DotDims {
                lhs_batch: vec![1],
                rhs_batch: vec![0],
                lhs_contract: vec![0, 3],
                rhs_contract: vec![3, 1],
            };
            let y = b.dot(a, c, dims).unwrap();
            Case {
                graph: weighted_loss(b, y, rng, &mut ins),
                inputs: ins,
                wrt: vec!["a", "b"],
            }
        }
        11 | 12 => {
            // gather (take_along_axis) and its transpose scatter_add, with repeated
            // indices so contributions accumulate.
            let gather = which - n_unary - n_binary == 11;
            let shape = nonempty_shape(rng);
            let axis = rng.below(shape.len());
            let size = shape[axis];
            let mut idx_shape = shape.clone();
            idx_shape[axis] = 1 + rng.below(4);
            let (data_shape, out_size) = if gather {
                (shape.clone(), 0)
            } else {
                (idx_shape.clone(), size + 1)
            };
            let n: usize = idx_shape.iter().product();
            let idx = Tensor::new(
                Type::new(DType::I32, &idx_shape),
                (0..n).map(|_| rng.below(size) as f64).collect(),
            )
            .unwrap();
            let mut ins = inputs(vec![
                ("a", smooth_input(rng, &data_shape, false)),
                ("idx", idx),
            ]);
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&data_shape)).unwrap();
            let i = b.input("idx", Type::new(DType::I32, &idx_shape)).unwrap();
            let y = if gather {
                b.gather(a, i, axis).unwrap()
            } else {
                b.scatter_add(a, i, axis, out_size).unwrap()
            };
            Case {
                graph: weighted_loss(b, y, rng, &mut ins),
                inputs: ins,
                wrt: vec!["a"],
            }
        }
        13 => {
            let shape = random_shape(rng, 2);
            structural_case(rng, shape, |b, a, _| {
                // Casts between float types pass the cotangent; through an integer
                // they stop it (the second term is piecewise constant).
                let c = b.cast(a, DType::F32).unwrap();
                let sq = b.mul(c, a).unwrap();
                let i = b.cast(a, DType::I32).unwrap();
                let back = b.cast(i, DType::F32).unwrap();
                b.add(sq, back).unwrap()
            })
        }
        _ => unreachable!(),
    }
}

const CASES: usize = UnaryOp::ALL.len() + BinaryOp::ALL.len() + 14;

/// JVP of the loss along a random tangent equals the gradient's inner product with it.
fn assert_jvp_matches_grad(c: &Case, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let jg = wgrad::jvp(&c.graph, Some("loss"), &c.wrt).unwrap();
    let gg = wgrad::grad(&c.graph, Some("loss"), &c.wrt).unwrap();
    let mut ins = c.inputs.clone();
    let mut expected = 0.0;
    let g_out = wgrad::eval(&gg, &c.inputs).unwrap();
    for w in &c.wrt {
        let t = rng.tensor(&c.inputs[*w].ty.shape, -1.0, 1.0);
        let g = output(&g_out, &format!("grad.{w}"));
        expected += g.data.iter().zip(&t.data).map(|(a, b)| a * b).sum::<f64>();
        ins.insert(format!("tan.{w}"), t);
    }
    let out = wgrad::eval(&jg, &ins).unwrap();
    let got = output(&out, "tan.loss").data[0];
    assert!(
        (got - expected).abs() <= 1e-9 * (1.0 + expected.abs()),
        "jvp {got} vs <grad, v> {expected}\n{}",
        wgrad::print(&c.graph)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_primitive_passes_gradcheck(which in 0..CASES, seed in any::<u64>()) {
        let c = case(which, seed);
        assert_gradcheck(&c.graph, &c.wrt, &c.inputs);
        assert_jvp_matches_grad(&c, seed);
    }
}

#[test]
fn each_case_is_exercised_at_least_once() {
    for which in 0..CASES {
        for seed in 0..3 {
            let c = case(which, seed);
            assert_gradcheck(&c.graph, &c.wrt, &c.inputs);
            assert_jvp_matches_grad(&c, seed);
        }
    }
}

#[test]
fn zero_derivative_ops_contribute_nothing() {
    // stop_gradient, sign, comparisons and integer casts: the gradient is exactly zero
    // and no derivative node reaches it, so it is a materialized zero output.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3])).unwrap();
    let s = b.stop_gradient(x).unwrap();
    let sg = b.sign(x).unwrap();
    let y = b.add(s, sg).unwrap();
    let l = b.sum_all(y).unwrap();
    b.output("loss", l).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let ins = inputs(vec![(
        "x",
        Tensor::new(Type::f32(&[3]), vec![1.0, -2.0, 3.0]).unwrap(),
    )]);
    let out = wgrad::eval(&g, &ins).unwrap();
    assert_eq!(output(&out, "grad.x").data, vec![0.0; 3]);
}

#[test]
fn ties_split_the_cotangent_evenly() {
    // max(x, y) at x == y sends half to each; reduce_max shares among all maxima; and
    // relu'(0) = abs'(0) = 0.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3])).unwrap();
    let y = b.input("y", Type::f32(&[3])).unwrap();
    let m = b.max(x, y).unwrap();
    let r = b.reduce_max(x, &[0]).unwrap();
    let rl = b.relu(y).unwrap();
    let ab = b.abs(y).unwrap();
    let s1 = b.sum_all(m).unwrap();
    let s2 = b.sum_all(rl).unwrap();
    let s3 = b.sum_all(ab).unwrap();
    let t = b.add(s1, r).unwrap();
    let t = b.add(t, s2).unwrap();
    let t = b.add(t, s3).unwrap();
    b.output("loss", t).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x", "y"]).unwrap();
    let ins = inputs(vec![
        (
            "x",
            Tensor::new(Type::f32(&[3]), vec![2.0, 2.0, 0.0]).unwrap(),
        ),
        (
            "y",
            Tensor::new(Type::f32(&[3]), vec![2.0, 1.0, 0.0]).unwrap(),
        ),
    ]);
    let out = wgrad::eval(&g, &ins).unwrap();
    // d/dx: max part [0.5, 1, 0.5], reduce_max over x = [2,2,0] shares 1 as [0.5, 0.5, 0].
    assert_eq!(output(&out, "grad.x").data, vec![1.0, 1.5, 0.5]);
    // d/dy: max part [0.5, 0, 0.5], relu [1, 1, 0], abs [1, 1, 0].
    assert_eq!(output(&out, "grad.y").data, vec![2.5, 2.0, 0.5]);
}
