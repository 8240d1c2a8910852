//! Small programs around each primitive, on random shapes (broadcasting included) and
//! inputs in ranges where the primitive is smooth: shared by the gradient tests and the
//! GPU tests.

use super::{Rng, inputs, weighted_loss};
use std::collections::HashMap;
use wgrad::ir::{BinaryOp, DotDims, ReduceKind, Scalar, UnaryOp};
use wgrad::{Builder, DType, Graph, Tensor, Type, Value};

/// A program around one primitive, its inputs, and the names to differentiate.
pub struct Case {
    pub graph: Graph,
    pub inputs: HashMap<String, Tensor>,
    pub wrt: Vec<&'static str>,
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
    let positive = matches!(
        op,
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Lgamma | UnaryOp::Digamma
    );
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

/// Case number `which` (below [`CASES`]) with data from `seed`.
pub fn case(which: usize, seed: u64) -> Case {
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
        14 | 15 => {
            // dynamic_slice and dynamic_update_slice at run-time starts, some out of
            // range (clamped).
            let update = which - n_unary - n_binary == 15;
            let shape = nonempty_shape(rng);
            let window: Vec<usize> = shape.iter().map(|&d| 1 + rng.below(d)).collect();
            let starts: Vec<Tensor> = shape
                .iter()
                .map(|&d| {
                    let s = rng.below(d + 2) as f64 - 1.0;
                    Tensor::new(Type::new(DType::I32, &[]), vec![s]).unwrap()
                })
                .collect();
            let mut pairs = vec![("a", smooth_input(rng, &shape, false))];
            if update {
                pairs.push(("u", smooth_input(rng, &window, false)));
            }
            let names = ["s0", "s1", "s2"];
            for (k, t) in starts.into_iter().enumerate() {
                pairs.push((names[k], t));
            }
            let mut ins = inputs(pairs);
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&shape)).unwrap();
            let u = update.then(|| b.input("u", Type::f32(&window)).unwrap());
            let starts: Vec<Value> = (0..shape.len())
                .map(|k| b.input(names[k], Type::new(DType::I32, &[])).unwrap())
                .collect();
            let y = match u {
                Some(u) => b.dynamic_update_slice(a, u, &starts).unwrap(),
                None => b.dynamic_slice(a, &starts, &window).unwrap(),
            };
            Case {
                graph: weighted_loss(b, y, rng, &mut ins),
                inputs: ins,
                wrt: if update { vec!["a", "u"] } else { vec!["a"] },
            }
        }
        _ => unreachable!(),
    }
}

/// How many cases there are.
pub const CASES: usize = UnaryOp::ALL.len() + BinaryOp::ALL.len() + 16;
