//! Softmax-logloss written from primitives, in every spelling users write, is rewritten
//! by `optimize` to the stable form `logsumexp(z) − Σ y·z` (`passes::logloss`).
//!
//! Each spelling is checked three ways: structurally (after optimizing, and in its
//! gradient, every `exp` reads logits with their row maximum subtracted and every `log`
//! reads such a sum of exponentials: no exp→log round trip, no `log` of a softmax);
//! against the f64 interpreter running the *original* program, with logits up to
//! magnitude 500, where even the literal form is computable in f64; and at magnitude
//! 1e3, where the literal form overflows even in f64, against a stable closed form for the
//! loss and its gradient `scale · (softmax(z)·Σy − y)`. One golden file shows the W2
//! program before and after.

mod common;

use approx::relative_eq;
use common::Rng;
use wgrad_compiler::autodiff::grad;
use wgrad_compiler::ir::{
    BinaryOp, Builder, DType, DotDims, Graph, Op, ReduceKind, Tensor, Type, UnaryOp, Value,
    eval_graph, parse, print,
};
use wgrad_compiler::passes::optimize;

const B: usize = 4;
const C: usize = 5;

// ---- The spellings --------------------------------------------------------------------

/// How a spelling takes its targets.
#[derive(Clone, Copy)]
enum Targets {
    /// `y: f32[B,C]`, one-hot rows.
    OneHot,
    /// `y: f32[B,C]`, any non-negative weights (rows need not sum to 1).
    Dense,
    /// `labels: i32[B]`, class indices.
    Labels,
}

struct Spelling {
    name: &'static str,
    targets: Targets,
    /// The loss is `scale · Σ_b (Σ_c y·lse_b − Σ_c y·z)`: 1 for a sum, 1/B for a mean.
    scale: f64,
    /// Already stable as written (a composite): the pass leaves it alone.
    stable: bool,
    /// Builds the loss from the logits `z: f32[B,C]` and the targets.
    build: fn(&mut Builder, Value, Value) -> Value,
}

/// `exp(z) / broadcast(Σ_row exp(z))`, literally.
fn softmax_literal(b: &mut Builder, z: Value) -> Value {
    let e = b.exp(z).unwrap();
    let s = b.sum(e, &[1]).unwrap();
    let s = b.unsqueeze_to(s, &[B, C], 1).unwrap();
    b.div(e, s).unwrap()
}

/// `log(exp(z) / Σ_row exp(z))`, literally.
fn log_softmax_literal(b: &mut Builder, z: Value) -> Value {
    let p = softmax_literal(b, z);
    b.log(p).unwrap()
}

/// `Σ_c y · v` per row: `f32[B]`.
fn row_dot(b: &mut Builder, y: Value, v: Value) -> Value {
    let t = b.mul(y, v).unwrap();
    b.sum(t, &[1]).unwrap()
}

/// `log Σ_row exp(z)`, literally: `f32[B]`.
fn logsumexp_literal(b: &mut Builder, z: Value) -> Value {
    let e = b.exp(z).unwrap();
    let s = b.sum(e, &[1]).unwrap();
    b.log(s).unwrap()
}

/// `z[b, labels_b]`: `f32[B]`.
fn picked(b: &mut Builder, x: Value, labels: Value) -> Value {
    let idx = b.reshape(labels, &[B, 1]).unwrap();
    let g = b.gather(x, idx, 1).unwrap();
    b.reshape(g, &[B]).unwrap()
}

fn spellings() -> Vec<Spelling> {
    let inv_b = 1.0 / B as f64;
    vec![
        Spelling {
            name: "W2 literal: −Σ onehot·log(exp z / Σ exp z)",
            targets: Targets::OneHot,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let lp = log_softmax_literal(b, z);
                let t = b.mul(y, lp).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "mean over rows: −mean_b Σ_c y·log p",
            targets: Targets::Dense,
            scale: inv_b,
            stable: false,
            build: |b, z, y| {
                let lp = log_softmax_literal(b, z);
                let r = row_dot(b, y, lp);
                let m = b.mean_all(r).unwrap();
                b.neg(m).unwrap()
            },
        },
        Spelling {
            name: "negation inside: Σ onehot·(−log p)",
            targets: Targets::OneHot,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let lp = log_softmax_literal(b, z);
                let n = b.neg(lp).unwrap();
                let t = b.mul(y, n).unwrap();
                b.sum_all(t).unwrap()
            },
        },
        Spelling {
            name: "negation as a factor: −1 · Σ y·log p",
            targets: Targets::Dense,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let lp = log_softmax_literal(b, z);
                let t = b.mul(lp, y).unwrap();
                let s = b.sum_all(t).unwrap();
                let k = b.scalar(-1.0).unwrap();
                b.mul(k, s).unwrap()
            },
        },
        Spelling {
            name: "row max subtracted: d = z − max z, −Σ y·log(exp d / Σ exp d)",
            targets: Targets::OneHot,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let m = b.reduce_max(z, &[1]).unwrap();
                let m = b.unsqueeze_to(m, &[B, C], 1).unwrap();
                let d = b.sub(z, m).unwrap();
                let lp = log_softmax_literal(b, d);
                let t = b.mul(y, lp).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "log of the softmax composite: −Σ y·log(softmax z)",
            targets: Targets::OneHot,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let p = b.softmax(z, 1).unwrap();
                let lp = b.log(p).unwrap();
                let t = b.mul(y, lp).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "integer labels through gather: mean_b −log p[b, label_b]",
            targets: Targets::Labels,
            scale: inv_b,
            stable: false,
            build: |b, z, labels| {
                let p = softmax_literal(b, z);
                let p = picked(b, p, labels);
                let lp = b.log(p).unwrap();
                let n = b.neg(lp).unwrap();
                b.mean_all(n).unwrap()
            },
        },
        Spelling {
            name: "integer labels through one_hot: −mean_b (one_hot(labels) · log p)_b",
            targets: Targets::Labels,
            scale: inv_b,
            stable: false,
            build: |b, z, labels| {
                let oh = b.one_hot(labels, C, DType::F32).unwrap();
                let lp = log_softmax_literal(b, z);
                let rows = DotDims {
                    lhs_batch: vec![0],
                    rhs_batch: vec![0],
                    lhs_contract: vec![1],
                    rhs_contract: vec![1],
                };
                let r = b.dot(oh, lp, rows).unwrap();
                let m = b.mean_all(r).unwrap();
                b.neg(m).unwrap()
            },
        },
        Spelling {
            name: "XLA's spelling: −Σ y·log(exp z · (1 / Σ exp z))",
            targets: Targets::OneHot,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let e = b.exp(z).unwrap();
                let s = b.sum(e, &[1]).unwrap();
                let r = b.recip(s).unwrap();
                let r = b.unsqueeze_to(r, &[B, C], 1).unwrap();
                let p = b.mul(e, r).unwrap();
                let lp = b.log(p).unwrap();
                let t = b.mul(y, lp).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "log-softmax from primitives: −Σ y·(z − log Σ exp z)",
            targets: Targets::Dense,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let l = logsumexp_literal(b, z);
                let l = b.unsqueeze_to(l, &[B, C], 1).unwrap();
                let ls = b.sub(z, l).unwrap();
                let t = b.mul(y, ls).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "log of each factor: −Σ y·(log exp z − log Σ exp z)",
            targets: Targets::Dense,
            scale: 1.0,
            stable: false,
            build: |b, z, y| {
                let e = b.exp(z).unwrap();
                let le = b.log(e).unwrap();
                let l = logsumexp_literal(b, z);
                let l = b.unsqueeze_to(l, &[B, C], 1).unwrap();
                let ls = b.sub(le, l).unwrap();
                let t = b.mul(y, ls).unwrap();
                let s = b.sum_all(t).unwrap();
                b.neg(s).unwrap()
            },
        },
        Spelling {
            name: "logsumexp minus the target logit: mean_b (log Σ exp z − z[label])",
            targets: Targets::Labels,
            scale: inv_b,
            stable: false,
            build: |b, z, labels| {
                let l = logsumexp_literal(b, z);
                let zl = picked(b, z, labels);
                let r = b.sub(l, zl).unwrap();
                b.mean_all(r).unwrap()
            },
        },
        Spelling {
            name: "log_softmax composite, dense targets (cross_entropy_dense)",
            targets: Targets::Dense,
            scale: inv_b,
            stable: true,
            build: |b, z, y| b.cross_entropy_dense(z, y).unwrap(),
        },
        Spelling {
            name: "logsumexp composite minus the target logit (cross_entropy)",
            targets: Targets::Labels,
            scale: inv_b,
            stable: true,
            build: |b, z, labels| b.cross_entropy(z, labels).unwrap(),
        },
    ]
}

/// The loss program of a spelling: inputs `z` and `y` (or `labels`), output `loss`.
fn program(s: &Spelling) -> Graph {
    let mut b = Builder::new();
    let z = b.input("z", Type::f32(&[B, C])).unwrap();
    let t = match s.targets {
        Targets::OneHot | Targets::Dense => b.input("y", Type::f32(&[B, C])).unwrap(),
        Targets::Labels => b.input("labels", Type::i32(&[B])).unwrap(),
    };
    let loss = (s.build)(&mut b, z, t);
    b.output("loss", loss).unwrap();
    b.finish().unwrap()
}

// ---- Inputs and the closed form ---------------------------------------------------------

/// One case: logits, the targets as the program takes them, and as dense rows.
struct Case {
    z: Vec<f64>,
    targets: Tensor,
    y: Vec<f64>,
}

impl Case {
    fn new(z: Vec<f64>, kind: Targets, r: &mut Rng) -> Case {
        let labels: Vec<usize> = (0..B).map(|_| r.below(C)).collect();
        let onehot: Vec<f64> = (0..B * C)
            .map(|k| f64::from(labels[k / C] == k % C))
            .collect();
        let (targets, y) = match kind {
            Targets::OneHot => (f32s(&[B, C], onehot.clone()), onehot),
            Targets::Dense => {
                let y: Vec<f64> = (0..B * C).map(|_| (r.unit() + 1.0) / 2.0).collect();
                (f32s(&[B, C], y.clone()), y)
            }
            Targets::Labels => {
                let l: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
                (Tensor::from_i32(&[B], &l).unwrap(), onehot)
            }
        };
        Case { z, targets, y }
    }

    fn inputs(&self) -> Vec<Tensor> {
        vec![f32s(&[B, C], self.z.clone()), self.targets.clone()]
    }
}

fn f32s(shape: &[usize], data: Vec<f64>) -> Tensor {
    Tensor::from_f32(shape, data).unwrap()
}

/// Logits of magnitude up to `scale`, uniformly spread.
fn logits(r: &mut Rng, scale: f64) -> Vec<f64> {
    (0..B * C).map(|_| scale * r.unit()).collect()
}

/// Logits of magnitude up to 500 whose rows spread over at most 200, so that no
/// probability underflows and the literal form is computable in f64: row offsets
/// ±400 and ±250, one row reaching 500 and one -500.
fn logits_500(r: &mut Rng) -> Vec<f64> {
    let offsets = [400.0, -400.0, 250.0, -250.0];
    let mut z: Vec<f64> = (0..B * C)
        .map(|k| offsets[k / C] + 100.0 * r.unit())
        .collect();
    z[0] = 500.0;
    z[C] = -500.0;
    z
}

/// The stable closed form in f64: the loss `scale · Σ_b (Σy·lse − Σ y·z)` and its
/// gradient `scale · (softmax(z)·Σy − y)`.
fn closed_form(z: &[f64], y: &[f64], scale: f64) -> (f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut grad = vec![0.0; B * C];
    for b in 0..B {
        let row = &z[b * C..(b + 1) * C];
        let yr = &y[b * C..(b + 1) * C];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        let ys: f64 = yr.iter().sum();
        loss += ys * lse - yr.iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
        for c in 0..C {
            grad[b * C + c] = scale * ((row[c] - m).exp() / s * ys - yr[c]);
        }
    }
    (scale * loss, grad)
}

/// Whether `a` and `b` agree within `rtol` of the larger magnitude, or within an
/// absolute floor of 1e-12 for entries that cancel to nearly zero. An infinite `a`
/// never agrees.
fn close(a: f64, b: f64, rtol: f64) -> bool {
    a.is_finite() && relative_eq!(a, b, epsilon = 1e-12, max_relative = rtol)
}

fn optimized(g: &Graph) -> (Graph, Vec<&'static str>) {
    let mut o = g.clone();
    let passes = optimize(&mut o).unwrap();
    (o, passes)
}

// ---- Structure ----------------------------------------------------------------------

/// The logits `x` if `d` is `x − broadcast(stop_gradient(max_axes x))` back along the
/// axes kept.
fn max_shifted(g: &Graph, d: Value, axes: &[usize]) -> Option<Value> {
    let n = g.node(d);
    if n.op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let x = n.args[0];
    let mb = g.node(n.args[1]);
    let kept: Vec<usize> = (0..g.ty(x).rank()).filter(|a| !axes.contains(a)).collect();
    if !matches!(&mb.op, Op::Broadcast { dims, .. } if *dims == kept) {
        return None;
    }
    let sg = g.node(mb.args[0]);
    if sg.op != Op::StopGradient {
        return None;
    }
    let m = g.node(sg.args[0]);
    let is_max = matches!(&m.op, Op::Reduce { kind: ReduceKind::Max, axes: a } if a == axes);
    (is_max && m.args[0] == x).then_some(x)
}

/// Panics unless `g` is the stable form throughout: no `exp` feeds a `log`, no `log`
/// reads a `div`, every `log` reads `Σ exp(x − max x)` and every `exp` reads a
/// max-shifted operand of such a sum.
fn assert_stable(g: &Graph, what: &str) {
    let fail = |v: Value, why: &str| panic!("{what}: {v} {why}\n{}", print(g));
    for v in g.values() {
        let n = g.node(v);
        match n.op {
            Op::Unary(UnaryOp::Log) => {
                let s = g.node(n.args[0]);
                match s.op {
                    Op::Unary(UnaryOp::Exp) => fail(v, "is a log of an exp"),
                    Op::Binary(BinaryOp::Div) => fail(v, "is a log of a div"),
                    _ => {}
                }
                let Op::Reduce {
                    kind: ReduceKind::Sum,
                    axes,
                } = &s.op
                else {
                    fail(v, "is a log of something other than a sum");
                    unreachable!()
                };
                let e = g.node(s.args[0]);
                if e.op != Op::Unary(UnaryOp::Exp) || max_shifted(g, e.args[0], axes).is_none() {
                    fail(v, "is not a log of Σ exp(x − max x)");
                }
            }
            Op::Unary(UnaryOp::Exp) => {
                let shifted = g.values().any(|s| {
                    matches!(&g.node(s).op, Op::Reduce { kind: ReduceKind::Sum, axes }
                        if g.node(s).args[0] == v && max_shifted(g, n.args[0], axes).is_some())
                });
                if !shifted {
                    fail(v, "is an exp of logits without their maximum subtracted");
                }
            }
            _ => {}
        }
    }
}

// ---- Tests --------------------------------------------------------------------------

#[test]
fn every_spelling_is_recognized_and_stable_after_optimizing() {
    let all = spellings();
    assert!(all.iter().filter(|s| !s.stable).count() >= 8);
    for s in &all {
        let f = program(s);
        let (opt, passes) = optimized(&f);
        assert_eq!(
            passes.contains(&"logloss"),
            !s.stable,
            "{}: passes {passes:?}\n{}",
            s.name,
            print(&f)
        );
        assert_stable(&opt, s.name);
        let (_, again) = optimized(&opt);
        assert_eq!(again, Vec::<&str>::new(), "{}: not idempotent", s.name);
        let g = grad(&f, None, &["z"]).unwrap();
        assert_stable(&g, s.name);
    }
}

#[test]
fn the_rewrite_matches_the_original_with_logits_up_to_500() {
    let mut r = Rng::new(1);
    for s in &spellings() {
        let f = program(s);
        let (opt, _) = optimized(&f);
        for z in [
            logits(&mut r, 1.0),
            logits(&mut r, 30.0),
            logits_500(&mut r),
        ] {
            let case = Case::new(z, s.targets, &mut r);
            let before = eval_graph(&f, &case.inputs()).unwrap()[0].data[0];
            let after = eval_graph(&opt, &case.inputs()).unwrap()[0].data[0];
            assert!(before.is_finite(), "{}: original gives {before}", s.name);
            assert!(
                close(after, before, 1e-9),
                "{}: {after} after the rewrite, {before} before\n{}",
                s.name,
                print(&opt)
            );
            let (expected, _) = closed_form(&case.z, &case.y, s.scale);
            assert!(
                close(after, expected, 1e-9),
                "{}: {after} vs {expected}",
                s.name
            );
        }
    }
}

#[test]
fn loss_and_gradient_are_finite_with_logits_of_magnitude_1e3() {
    let mut r = Rng::new(2);
    for s in &spellings() {
        let f = program(s);
        let g = grad(&f, None, &["z"]).unwrap();
        for seed_case in 0..3 {
            let case = Case::new(logits(&mut r, 1e3), s.targets, &mut r);
            if !s.stable && seed_case == 0 {
                // The literal form overflows even in f64.
                let before = eval_graph(&f, &case.inputs()).unwrap()[0].data[0];
                assert!(!before.is_finite(), "{}: original gives {before}", s.name);
            }
            let out = eval_graph(&g, &case.inputs()).unwrap();
            let (loss, dz) = (out[0].data[0], &out[1].data);
            let (expected, expected_dz) = closed_form(&case.z, &case.y, s.scale);
            assert!(
                close(loss, expected, 1e-9),
                "{}: loss {loss} vs {expected}",
                s.name
            );
            for (k, (&a, &e)) in dz.iter().zip(&expected_dz).enumerate() {
                assert!(
                    a.is_finite() && close(a, e, 1e-9),
                    "{}: dz[{k}] = {a}, expected {e}\n{}",
                    s.name,
                    print(&g)
                );
            }
        }
    }
}

#[test]
fn the_recognizer_checks_the_axes_and_the_operands() {
    // A sum over rows broadcast back along the wrong axis (a square matrix, so the types
    // agree), exponentials of two different tensors, and a sum of exponentials of
    // logits already shifted by their maximum: none is rewritten.
    let cases = [
        "%0 = input z : f32[3,3]
%1 = exp %0 : f32[3,3]
%2 = reduce_sum %1 axes=[1] : f32[3]
%3 = broadcast %2 dims=[1] : f32[3,3]
%4 = div %1, %3 : f32[3,3]
%5 = log %4 : f32[3,3]
output y = %5
",
        "%0 = input z : f32[3,3]
%1 = input w : f32[3,3]
%2 = exp %0 : f32[3,3]
%3 = exp %1 : f32[3,3]
%4 = reduce_sum %3 axes=[1] : f32[3]
%5 = broadcast %4 dims=[0] : f32[3,3]
%6 = div %2, %5 : f32[3,3]
%7 = log %6 : f32[3,3]
output y = %7
",
        "%0 = input z : f32[3,4]
%1 = reduce_max %0 axes=[1] : f32[3]
%2 = broadcast %1 dims=[0] : f32[3,4]
%3 = sub %0, %2 : f32[3,4]
%4 = exp %3 : f32[3,4]
%5 = reduce_sum %4 axes=[1] : f32[3]
%6 = log %5 : f32[3]
output y = %6
",
    ];
    for text in cases {
        let f = parse(text).unwrap();
        let (opt, passes) = optimized(&f);
        assert!(!passes.contains(&"logloss"), "rewritten:\n{}", print(&opt));
        assert_eq!(print(&opt), text);
    }
}

/// The W2 program at a small size: `z = x·w`, `loss = −Σ onehot · log(exp z / Σ exp z)`.
const W2: &str = "%0 = input x : f32[4,5]
%1 = input w : f32[5,3]
%2 = input onehot : f32[4,3]
%3 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,3]
%4 = exp %3 : f32[4,3]
%5 = reduce_sum %4 axes=[1] : f32[4]
%6 = broadcast %5 dims=[0] : f32[4,3]
%7 = div %4, %6 : f32[4,3]
%8 = log %7 : f32[4,3]
%9 = mul %2, %8 : f32[4,3]
%10 = reduce_sum %9 axes=[0,1] : f32[]
%11 = neg %10 : f32[]
output loss = %11
";

#[test]
fn golden_w2_before_and_after() {
    let f = parse(W2).unwrap();
    let (opt, _) = optimized(&f);
    let printed = format!("before:\n{}\nafter:\n{}", print(&f), print(&opt));
    insta::with_settings!({
        snapshot_path => "../../tests/golden",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("logloss_w2_rewrite", printed);
    });
}

#[test]
fn the_w2_weight_gradient_is_finite_with_logits_of_magnitude_1e3() {
    let f = parse(W2).unwrap();
    let g = grad(&f, None, &["w"]).unwrap();
    assert_stable(&g, "W2");
    let (b, k, c) = (4, 5, 3);
    let mut r = Rng::new(3);
    let x: Vec<f64> = (0..b * k).map(|_| r.unit()).collect();
    // Weights of about 1e3 / k, so the logits reach about 1e3.
    let w: Vec<f64> = (0..k * c).map(|_| 400.0 * r.unit()).collect();
    let labels: Vec<usize> = (0..b).map(|_| r.below(c)).collect();
    let y: Vec<f64> = (0..b * c)
        .map(|i| f64::from(labels[i / c] == i % c))
        .collect();
    let z: Vec<f64> = (0..b * c)
        .map(|i| (0..k).map(|j| x[i / c * k + j] * w[j * c + i % c]).sum())
        .collect();
    assert!(z.iter().any(|v| v.abs() > 500.0), "logits {z:?}");
    let inputs = [
        f32s(&[b, k], x.clone()),
        f32s(&[k, c], w),
        f32s(&[b, c], y.clone()),
    ];
    let out = eval_graph(&g, &inputs).unwrap();
    let (loss, dw) = (out[0].data[0], &out[1].data);
    // The closed form of the 3-class rows, then dw = xᵀ · dz.
    let (mut expected, mut dz) = (0.0, vec![0.0; b * c]);
    for row in 0..b {
        let zr = &z[row * c..(row + 1) * c];
        let m = zr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = zr.iter().map(|&v| (v - m).exp()).sum();
        expected += m + s.ln() - zr[labels[row]];
        for j in 0..c {
            dz[row * c + j] = (zr[j] - m).exp() / s - y[row * c + j];
        }
    }
    assert!(close(loss, expected, 1e-9), "loss {loss} vs {expected}");
    for (i, &a) in dw.iter().enumerate() {
        let e: f64 = (0..b)
            .map(|row| x[row * k + i / c] * dz[row * c + i % c])
            .sum();
        assert!(
            a.is_finite() && close(a, e, 1e-9),
            "dw[{i}] = {a}, expected {e}"
        );
    }
}
