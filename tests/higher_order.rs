//! Derivatives of any order: the transforms return ordinary programs, so they compose.
//! Second to fourth derivatives of scalar functions match closed forms whichever way
//! they are composed (grad∘grad, jvp∘jvp, jvp over grad), and the Hessian-vector product
//! computed forward-over-reverse equals reverse-over-reverse and finite differences.

mod common;

use common::{Rng, inputs, output};
use std::collections::HashMap;
use wgrad::{Builder, Graph, Tensor, Type};

/// `y = f(x)` for scalar `x`, built by `body`.
fn scalar_fn(body: impl Fn(&mut Builder, wgrad::Value) -> wgrad::Value) -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[])).unwrap();
    let y = body(&mut b, x);
    b.output("y", y).unwrap();
    b.finish().unwrap()
}

/// The n-th derivative by repeated `grad`; returns the program and the output's name.
fn nth_by_grad(f: &Graph, n: usize) -> (Graph, String) {
    let mut g = f.clone();
    let mut of = "y".to_string();
    for _ in 0..n {
        g = wgrad::grad(&g, Some(&of), &["x"]).unwrap();
        of = g.outputs().last().unwrap().0.clone();
    }
    (g, of)
}

/// The n-th derivative by repeated `jvp`, each tangent fed with 1.
fn nth_by_jvp(f: &Graph, n: usize) -> (Graph, String) {
    let mut g = f.clone();
    let mut of = "y".to_string();
    for _ in 0..n {
        g = wgrad::jvp(&g, Some(&of), &["x"]).unwrap();
        of = g.outputs().last().unwrap().0.clone();
    }
    (g, of)
}

/// `n - 1` grads then one jvp: forward over reverse.
fn nth_mixed(f: &Graph, n: usize) -> (Graph, String) {
    let (g, of) = nth_by_grad(f, n - 1);
    let g = wgrad::jvp(&g, Some(&of), &["x"]).unwrap();
    let of = g.outputs().last().unwrap().0.clone();
    (g, of)
}

/// Evaluates at `x` with every other (tangent) input set to 1.
fn eval_at(g: &Graph, of: &str, x: f64) -> f64 {
    let ins: HashMap<String, Tensor> = g
        .inputs()
        .iter()
        .map(|(n, _)| {
            let v = if n == "x" { x } else { 1.0 };
            (n.clone(), Tensor::new(Type::f32(&[]), vec![v]).unwrap())
        })
        .collect();
    output(&wgrad::eval(g, &ins).unwrap(), of).data[0]
}

fn check_orders(f: &Graph, closed: &[fn(f64) -> f64]) {
    for x in [-1.3, -0.4, 0.0, 0.7, 1.9] {
        for (k, d) in closed.iter().enumerate() {
            let n = k + 1;
            let want = d(x);
            for (how, (g, of)) in [
                ("grad", nth_by_grad(f, n)),
                ("jvp", nth_by_jvp(f, n)),
                ("mixed", nth_mixed(f, n)),
            ] {
                let got = eval_at(&g, &of, x);
                assert!(
                    (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "order {n} by {how} at x = {x}: got {got}, closed form {want}"
                );
            }
        }
    }
}

#[test]
fn fourth_derivative_of_sin_is_sin() {
    let f = scalar_fn(|b, x| b.sin(x).unwrap());
    check_orders(&f, &[f64::cos, |x| -x.sin(), |x| -x.cos(), f64::sin]);
}

#[test]
fn derivatives_of_tanh_up_to_fourth_order() {
    let f = scalar_fn(|b, x| b.tanh(x).unwrap());
    let s = |x: f64| 1.0 - x.tanh().powi(2);
    check_orders(
        &f,
        &[
            s,
            |x| -2.0 * x.tanh() * (1.0 - x.tanh().powi(2)),
            |x| {
                let t = x.tanh();
                -2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t)
            },
            |x| {
                let t = x.tanh();
                8.0 * t * (1.0 - t * t) * (2.0 - 3.0 * t * t)
            },
        ],
    );
}

#[test]
fn derivatives_of_exp_times_sin_up_to_fourth_order() {
    let f = scalar_fn(|b, x| {
        let e = b.exp(x).unwrap();
        let s = b.sin(x).unwrap();
        b.mul(e, s).unwrap()
    });
    check_orders(
        &f,
        &[
            |x| x.exp() * (x.sin() + x.cos()),
            |x| 2.0 * x.exp() * x.cos(),
            |x| 2.0 * x.exp() * (x.cos() - x.sin()),
            |x| -4.0 * x.exp() * x.sin(),
        ],
    );
}

#[test]
fn fourth_directional_derivative_of_w5() {
    // f(x) = Σ tanh(x)·sin(x); d⁴/dt⁴ f(x + t·v) at t = 0 is Σ g⁗(xᵢ)·vᵢ⁴ with g = tanh·sin,
    // and by Leibniz g⁗ = Σₖ C(4,k)·tanh⁽ᵏ⁾·sin⁽⁴⁻ᵏ⁾.
    let n = 7;
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n])).unwrap();
    let t = b.tanh(x).unwrap();
    let s = b.sin(x).unwrap();
    let p = b.mul(t, s).unwrap();
    let y = b.sum_all(p).unwrap();
    b.output("f", y).unwrap();
    let mut g = b.finish().unwrap();
    let mut of = "f".to_string();
    for _ in 0..4 {
        g = wgrad::jvp(&g, Some(&of), &["x"]).unwrap();
        of = g.outputs().last().unwrap().0.clone();
    }
    assert_eq!(of, "tan.tan.tan.tan.f");
    let mut rng = Rng::new(5);
    let xs = rng.tensor(&[n], -2.0, 2.0);
    let vs = rng.tensor(&[n], -1.0, 1.0);
    let ins: HashMap<String, Tensor> = g
        .inputs()
        .iter()
        .map(|(name, _)| {
            (
                name.clone(),
                if name == "x" { xs.clone() } else { vs.clone() },
            )
        })
        .collect();
    let got = output(&wgrad::eval(&g, &ins).unwrap(), &of).data[0];
    let tanh_d = |x: f64| {
        let t = x.tanh();
        let s = 1.0 - t * t;
        [
            t,
            s,
            -2.0 * t * s,
            -2.0 * s * (1.0 - 3.0 * t * t),
            8.0 * t * s * (2.0 - 3.0 * t * t),
        ]
    };
    let sin_d = |x: f64| [x.sin(), x.cos(), -x.sin(), -x.cos(), x.sin()];
    let binom = [1.0, 4.0, 6.0, 4.0, 1.0];
    let want: f64 = xs
        .data
        .iter()
        .zip(&vs.data)
        .map(|(&x, &v)| {
            let (td, sd) = (tanh_d(x), sin_d(x));
            (0..5).map(|k| binom[k] * td[k] * sd[4 - k]).sum::<f64>() * v.powi(4)
        })
        .sum();
    assert!(
        (got - want).abs() <= 1e-10 * (1.0 + want.abs()),
        "got {got}, want {want}"
    );
}

/// A nonlinear scalar function of a matrix: Σ tanh(x·W)² + logsumexp over W's entries.
fn hvp_program() -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3, 4])).unwrap();
    let w = b.input("w", Type::f32(&[4, 2])).unwrap();
    let h = b.matmul(x, w).unwrap();
    let t = b.tanh(h).unwrap();
    let sq = b.mul(t, t).unwrap();
    let s = b.sum_all(sq).unwrap();
    let flat = b.reshape(w, &[8]).unwrap();
    let l = b.logsumexp(flat, 0).unwrap();
    let y = b.add(s, l).unwrap();
    b.output("loss", y).unwrap();
    b.finish().unwrap()
}

#[test]
fn hvp_forward_over_reverse_equals_reverse_over_reverse() {
    let f = hvp_program();
    let g = wgrad::grad(&f, None, &["w"]).unwrap();
    let fwd = wgrad::jvp(&g, Some("grad.w"), &["w"]).unwrap();
    let rev = wgrad::vjp(&g, Some("grad.w"), &["w"]).unwrap();
    let mut rng = Rng::new(11);
    let x = rng.tensor(&[3, 4], -1.0, 1.0);
    let w = rng.tensor(&[4, 2], -1.0, 1.0);
    let v = rng.tensor(&[4, 2], -1.0, 1.0);
    let hv_fwd = output(
        &wgrad::eval(
            &fwd,
            &inputs(vec![
                ("x", x.clone()),
                ("w", w.clone()),
                ("tan.w", v.clone()),
            ]),
        )
        .unwrap(),
        "tan.grad.w",
    )
    .clone();
    let hv_rev = output(
        &wgrad::eval(
            &rev,
            &inputs(vec![
                ("x", x.clone()),
                ("w", w.clone()),
                ("ct.grad.w", v.clone()),
            ]),
        )
        .unwrap(),
        "grad.grad.w",
    )
    .clone();
    // Finite differences of the gradient along v.
    let h = 1e-5;
    let grad_at = |s: f64| {
        let moved: Vec<f64> = w.data.iter().zip(&v.data).map(|(a, b)| a + s * b).collect();
        let ins = inputs(vec![
            ("x", x.clone()),
            ("w", Tensor::new(Type::f32(&[4, 2]), moved).unwrap()),
        ]);
        output(&wgrad::eval(&g, &ins).unwrap(), "grad.w")
            .data
            .clone()
    };
    let (gp, gm) = (grad_at(h), grad_at(-h));
    for i in 0..8 {
        let fd = (gp[i] - gm[i]) / (2.0 * h);
        assert!(
            (hv_fwd.data[i] - hv_rev.data[i]).abs() <= 1e-12 * (1.0 + hv_rev.data[i].abs()),
            "element {i}: forward {} vs reverse {}",
            hv_fwd.data[i],
            hv_rev.data[i]
        );
        assert!(
            (hv_fwd.data[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
            "element {i}: {} vs finite difference {fd}",
            hv_fwd.data[i]
        );
    }
}
