//! Every differentiable primitive, on random shapes (broadcasting included), has a
//! reverse-mode gradient that matches central finite differences, and a forward-mode
//! tangent that agrees with it (`jvp(v) == <grad, v>`).

mod common;

use common::cases::{CASES, Case, case};
use common::{Rng, assert_gradcheck, inputs, output};
use proptest::prelude::*;
use wgrad::{Builder, Tensor, Type};

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
