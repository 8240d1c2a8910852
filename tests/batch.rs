//! Batching (`vmap`) and the derivatives built on it: every op's batching rule against
//! running the program once per example, loops, batched tangents and cotangents,
//! Jacobians, Hessians, directional derivatives of every order and per-example
//! gradients.

mod common;

use common::cases::{CASES, case};
use common::{Rng, inputs, output};
use std::collections::HashMap;
use wgrad::batch::{self, JacobianMode};
use wgrad::{Builder, DType, Graph, Tensor, Type};

/// Example `k` of an input: floats moved a little (staying in the range the case chose),
/// integers unchanged.
fn example(t: &Tensor, k: usize) -> Tensor {
    let mut t = t.clone();
    if t.ty.dtype.is_float() {
        for (i, x) in t.data.iter_mut().enumerate() {
            *x += 0.04 * k as f64 * ((i + 3 * k) as f64).sin();
        }
    }
    t
}

/// Stacks tensors of one type along a new leading axis.
fn stack(ts: &[Tensor]) -> Tensor {
    let mut shape = vec![ts.len()];
    shape.extend(ts[0].shape());
    let data = ts.iter().flat_map(|t| t.data.iter().copied()).collect();
    Tensor::new(Type::new(ts[0].dtype(), &shape), data).unwrap()
}

/// Row `k` of a batched tensor.
fn row(t: &Tensor, k: usize) -> Vec<f64> {
    let n = t.data.len() / t.shape()[0];
    t.data[k * n..(k + 1) * n].to_vec()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x == y || (x - y).abs() <= 1e-9 * (1.0 + y.abs()) || x.is_nan() && y.is_nan(),
            "{what}[{i}]: batched {x} vs one example at a time {y}"
        );
    }
}

/// Checks `vmap(g, batched, size)` against running `g` on each example: every output
/// that depends on a batched input has one row per example, equal to that example's
/// output; the others equal the unbatched output.
fn check_vmap(g: &Graph, ins: &HashMap<String, Tensor>, batched: &[&str], size: usize) {
    let gb = batch::vmap(g, batched, size).unwrap_or_else(|e| panic!("{e}\n{}", wgrad::print(g)));
    let examples: Vec<HashMap<String, Tensor>> = (0..size)
        .map(|k| {
            ins.iter()
                .map(|(n, t)| {
                    let t = if batched.contains(&n.as_str()) {
                        example(t, k)
                    } else {
                        t.clone()
                    };
                    (n.clone(), t)
                })
                .collect()
        })
        .collect();
    let mut stacked = ins.clone();
    for name in batched {
        let rows: Vec<Tensor> = examples.iter().map(|e| e[*name].clone()).collect();
        stacked.insert(name.to_string(), stack(&rows));
    }
    let got = wgrad::eval(&gb, &stacked).unwrap_or_else(|e| panic!("{e}\n{}", wgrad::print(&gb)));
    let each: Vec<Vec<(String, Tensor)>> = examples
        .iter()
        .map(|e| wgrad::eval(g, e).unwrap())
        .collect();
    for (j, (name, t)) in got.iter().enumerate() {
        let single = &each[0][j].1;
        if t.ty == single.ty {
            close(&t.data, &single.data, name);
            continue;
        }
        assert_eq!(t.shape()[0], size, "`{name}` is {}", t.ty);
        for (k, e) in each.iter().enumerate() {
            close(&row(t, k), &e[j].1.data, &format!("{name} row {k}"));
        }
    }
}

#[test]
fn every_op_batches_like_one_example_at_a_time() {
    for which in 0..CASES {
        for seed in 0..3 {
            let c = case(which, 1000 + seed);
            let names: Vec<&str> = c.graph.inputs().iter().map(|(n, _)| n.as_str()).collect();
            // Everything batched, then each input alone (the others shared).
            check_vmap(&c.graph, &c.inputs, &names, 3);
            for name in &names {
                check_vmap(&c.graph, &c.inputs, &[name], 2);
            }
        }
    }
}

#[test]
fn gradients_of_batched_cases_match_batched_gradients() {
    // grad ∘ vmap and vmap ∘ grad agree: Σ over the batch of the per-example losses has
    // the per-example gradients' sum as its gradient.
    for which in 0..CASES {
        let c = case(which, 77);
        let Some(&x) = c.wrt.first() else { continue };
        let d = wgrad::grad(&c.graph, Some("loss"), &[x]).unwrap();
        let per_example = batch::vmap(&d, &[x], 3).unwrap();
        let mut b = Builder::from_graph(batch::vmap(&c.graph, &[x], 3).unwrap());
        let loss = b.graph().output("loss").unwrap();
        let total = b.sum_all(loss).unwrap();
        b.output("total", total).unwrap();
        let summed = wgrad::grad(&b.finish().unwrap(), Some("total"), &[x]).unwrap();
        let xs: Vec<Tensor> = (0..3).map(|k| example(&c.inputs[x], k)).collect();
        let mut ins = c.inputs.clone();
        ins.insert(x.to_string(), stack(&xs));
        let a = wgrad::eval(&per_example, &ins).unwrap();
        let s = wgrad::eval(&summed, &ins).unwrap();
        let gname = format!("grad.{x}");
        let (a, s) = (output(&a, &gname), output(&s, &gname));
        if a.ty == s.ty {
            close(&a.data, &s.data, &gname);
        } else {
            // The gradient does not depend on `x` (a linear case): one for every row.
            for k in 0..3 {
                close(&a.data, &row(s, k), &gname);
            }
        }
    }
}

#[test]
fn a_loop_whose_state_becomes_batched_through_its_body() {
    // h ← tanh(h·w + x) five times, from h = 0: batching x alone makes h batched after
    // the first iteration, which the fixed point finds.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[4])).unwrap();
    let w = b.input("w", Type::f32(&[4, 4])).unwrap();
    let h0 = b.full(0.0, &Type::f32(&[4])).unwrap();
    let out = b
        .loop_(5, &[h0], &[x, w], |b, _i, h, inv| {
            let hw = b.reshape(h[0], &[1, 4])?;
            let p = b.matmul(hw, inv[1])?;
            let p = b.reshape(p, &[4])?;
            let s = b.add(p, inv[0])?;
            Ok(vec![b.tanh(s)?])
        })
        .unwrap();
    let l = b.sum_all(out[0]).unwrap();
    b.output("h", out[0]).unwrap();
    b.output("loss", l).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(5);
    let ins = inputs(vec![
        ("x", rng.tensor(&[4], -1.0, 1.0)),
        ("w", rng.tensor(&[4, 4], -0.5, 0.5)),
    ]);
    check_vmap(&g, &ins, &["x"], 3);
    check_vmap(&g, &ins, &["w"], 2);
    check_vmap(&g, &ins, &["x", "w"], 2);
    // And its gradient, batched over w.
    let d = wgrad::grad(&g, Some("loss"), &["x", "w"]).unwrap();
    check_vmap(&d, &ins, &["w"], 2);
}

#[test]
fn products_batched_on_one_side_keep_the_batch_axis_first() {
    // A product with its own batch axis, batched on the left, on the right, or both.
    let mut b = Builder::new();
    let a = b.input("a", Type::f32(&[2, 3, 4])).unwrap();
    let c = b.input("c", Type::f32(&[2, 4, 5])).unwrap();
    let dims = wgrad::ir::DotDims {
        lhs_batch: vec![0],
        rhs_batch: vec![0],
        lhs_contract: vec![2],
        rhs_contract: vec![1],
    };
    let y = b.dot(a, c, dims).unwrap();
    b.output("y", y).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(9);
    let ins = inputs(vec![
        ("a", rng.tensor(&[2, 3, 4], -1.0, 1.0)),
        ("c", rng.tensor(&[2, 4, 5], -1.0, 1.0)),
    ]);
    for batched in [&["a"][..], &["c"], &["a", "c"]] {
        check_vmap(&g, &ins, batched, 3);
    }
}

#[test]
fn a_window_at_a_start_that_differs_per_example() {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[6])).unwrap();
    let i = b.input("i", Type::i32(&[])).unwrap();
    let u = b.input("u", Type::f32(&[2])).unwrap();
    let w = b.dynamic_slice(x, &[i], &[2]).unwrap();
    let y = b.dynamic_update_slice(x, u, &[i]).unwrap();
    b.output("window", w).unwrap();
    b.output("updated", y).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(3);
    let gb = batch::vmap(&g, &["x", "i"], 3).unwrap();
    let ins = inputs(vec![
        ("x", rng.tensor(&[3, 6], -1.0, 1.0)),
        ("i", Tensor::from_i32(&[3], &[0, 2, 7]).unwrap()),
        ("u", rng.tensor(&[2], -1.0, 1.0)),
    ]);
    let got = wgrad::eval(&gb, &ins).unwrap();
    for (k, start) in [0usize, 2, 4].into_iter().enumerate() {
        let xk = row(&ins["x"], k);
        close(
            &row(output(&got, "window"), k),
            &xk[start..start + 2],
            "window",
        );
        let mut want = xk.clone();
        want[start..start + 2].copy_from_slice(&ins["u"].data);
        close(&row(output(&got, "updated"), k), &want, "updated");
    }
}

/// `f(x) = Σ tanh(x)·sin(x)` over `f32[n]`: W5.
fn w5(n: usize) -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n])).unwrap();
    let t = b.tanh(x).unwrap();
    let s = b.sin(x).unwrap();
    let p = b.mul(t, s).unwrap();
    let f = b.sum_all(p).unwrap();
    b.output("f", f).unwrap();
    b.finish().unwrap()
}

#[test]
fn batched_tangents_and_cotangents_equal_one_direction_at_a_time() {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3])).unwrap();
    let w = b.input("w", Type::f32(&[3, 2])).unwrap();
    let x2 = b.reshape(x, &[1, 3]).unwrap();
    let y = b.matmul(x2, w).unwrap();
    let y = b.tanh(y).unwrap();
    b.output("y", y).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(11);
    let base = inputs(vec![
        ("x", rng.tensor(&[3], -1.0, 1.0)),
        ("w", rng.tensor(&[3, 2], -1.0, 1.0)),
    ]);
    let k = 4;
    let tx: Vec<Tensor> = (0..k).map(|_| rng.tensor(&[3], -1.0, 1.0)).collect();
    let tw: Vec<Tensor> = (0..k).map(|_| rng.tensor(&[3, 2], -1.0, 1.0)).collect();
    let jb = batch::jvp_directions(&g, None, &["x", "w"], k).unwrap();
    let j1 = wgrad::jvp(&g, None, &["x", "w"]).unwrap();
    let mut ins = base.clone();
    ins.insert("tan.x".into(), stack(&tx));
    ins.insert("tan.w".into(), stack(&tw));
    let got = wgrad::eval(&jb, &ins).unwrap();
    assert_eq!(
        output(&got, "y").ty,
        Type::f32(&[1, 2]),
        "the primal keeps its type"
    );
    for i in 0..k {
        let mut one = base.clone();
        one.insert("tan.x".into(), tx[i].clone());
        one.insert("tan.w".into(), tw[i].clone());
        let want = wgrad::eval(&j1, &one).unwrap();
        close(
            &row(output(&got, "tan.y"), i),
            &output(&want, "tan.y").data,
            "tan.y",
        );
    }
    let cts: Vec<Tensor> = (0..k).map(|_| rng.tensor(&[1, 2], -1.0, 1.0)).collect();
    let vb = batch::vjp_directions(&g, None, &["x", "w"], k).unwrap();
    let v1 = wgrad::vjp(&g, None, &["x", "w"]).unwrap();
    let mut ins = base.clone();
    ins.insert("ct.y".into(), stack(&cts));
    let got = wgrad::eval(&vb, &ins).unwrap();
    for (i, ct) in cts.iter().enumerate() {
        let mut one = base.clone();
        one.insert("ct.y".into(), ct.clone());
        let want = wgrad::eval(&v1, &one).unwrap();
        for n in ["grad.x", "grad.w"] {
            close(&row(output(&got, n), i), &output(&want, n).data, n);
        }
    }
}

#[test]
fn jacobians_forward_and_reverse_agree_and_auto_takes_the_cheaper() {
    // y = tanh(x·W) for x: f32[2,3], W: f32[3,5]: ∂y/∂x is [2,5,2,3].
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[2, 3])).unwrap();
    let w = b.input("w", Type::f32(&[3, 5])).unwrap();
    let y = b.matmul(x, w).unwrap();
    let y = b.tanh(y).unwrap();
    b.output("y", y).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(2);
    let ins = inputs(vec![
        ("x", rng.tensor(&[2, 3], -1.0, 1.0)),
        ("w", rng.tensor(&[3, 5], -1.0, 1.0)),
    ]);
    let fwd = batch::jacobian(&g, None, "x", JacobianMode::Forward).unwrap();
    let rev = batch::jacobian(&g, None, "x", JacobianMode::Reverse).unwrap();
    let auto = batch::jacobian(&g, None, "x", JacobianMode::Auto).unwrap();
    // 6 input elements against 10 output elements: forward needs fewer directions.
    assert_eq!((fwd.directions, rev.directions), (6, 10));
    assert_eq!(auto.mode, JacobianMode::Forward);
    let auto_w = batch::jacobian(&g, None, "w", JacobianMode::Auto).unwrap();
    assert_eq!(
        (auto_w.mode, auto_w.directions),
        (JacobianMode::Reverse, 10)
    );
    let a = wgrad::eval(&fwd.graph, &ins).unwrap();
    let r = wgrad::eval(&rev.graph, &ins).unwrap();
    let ja = output(&a, "jac.x");
    assert_eq!(ja.ty, Type::f32(&[2, 5, 2, 3]));
    close(&ja.data, &output(&r, "jac.x").data, "jac.x");
    // Column j is the JVP along the j-th basis vector.
    let j1 = wgrad::jvp(&g, None, &["x"]).unwrap();
    for j in 0..6 {
        let mut e = vec![0.0; 6];
        e[j] = 1.0;
        let mut one = ins.clone();
        one.insert("tan.x".into(), Tensor::new(Type::f32(&[2, 3]), e).unwrap());
        let t = wgrad::eval(&j1, &one).unwrap();
        let col: Vec<f64> = (0..10).map(|i| ja.data[i * 6 + j]).collect();
        close(&col, &output(&t, "tan.y").data, "column");
    }
}

#[test]
fn a_hessian_is_one_program_equal_to_one_hvp_per_direction() {
    let n = 512;
    let g = w5(n);
    let h = batch::hessian(&g, None, "x").unwrap();
    assert_eq!(h.output, "hessian.x");
    let names: Vec<&str> = h.graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["f", "grad.x", "hessian.x"]);
    let mut rng = Rng::new(4);
    let ins = inputs(vec![("x", rng.tensor(&[n], -2.0, 2.0))]);
    let got = wgrad::eval(&h.graph, &ins).unwrap();
    let hx = output(&got, "hessian.x");
    assert_eq!(hx.ty, Type::f32(&[n, n]));
    // Every column against a Hessian-vector product, jvp ∘ grad, along a basis vector.
    let hvp = wgrad::jvp(
        &wgrad::grad(&g, None, &["x"]).unwrap(),
        Some("grad.x"),
        &["x"],
    )
    .unwrap();
    for j in 0..n {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        let mut one = ins.clone();
        one.insert("tan.x".into(), Tensor::new(Type::f32(&[n]), e).unwrap());
        let t = wgrad::eval(&hvp, &one).unwrap();
        let col: Vec<f64> = (0..n).map(|i| hx.data[i * n + j]).collect();
        close(&col, &output(&t, "tan.grad.x").data, "hessian column");
    }
}

#[test]
fn derivatives_of_every_order_along_one_tangent() {
    // d/dt^k f(x + t·v) at t = 0 against nested JVPs, each fed the same tangent.
    let g = w5(16);
    let d = batch::directional(&g, None, "x", 4).unwrap();
    let ins_names: Vec<&str> = d.inputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(ins_names, ["x", "tan.x"]);
    let mut rng = Rng::new(8);
    let x = rng.tensor(&[16], -1.0, 1.0);
    let v = rng.tensor(&[16], -1.0, 1.0);
    let got = wgrad::eval(&d, &inputs(vec![("x", x.clone()), ("tan.x", v.clone())])).unwrap();
    let mut nested = g.clone();
    let mut of = "f".to_string();
    let mut tangents = Vec::new();
    for k in 1..=4 {
        nested = wgrad::jvp(&nested, Some(&of), &["x"]).unwrap();
        of = nested.outputs().last().unwrap().0.clone();
        tangents.push(nested.inputs().last().unwrap().0.clone());
        let mut ins = inputs(vec![("x", x.clone())]);
        for t in &tangents {
            ins.insert(t.clone(), v.clone());
        }
        let want = wgrad::eval(&nested, &ins).unwrap();
        let name = format!("d{k}.f");
        close(&output(&got, &name).data, &output(&want, &of).data, &name);
    }
    // And the 2nd against central differences of the 1st along v.
    let h = 1e-4;
    let shifted = |s: f64| {
        let xs = Tensor::new(
            x.ty.clone(),
            x.data.iter().zip(&v.data).map(|(a, b)| a + s * b).collect(),
        )
        .unwrap();
        let o = wgrad::eval(&d, &inputs(vec![("x", xs), ("tan.x", v.clone())])).unwrap();
        output(&o, "d1.f").data[0]
    };
    let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
    let d2 = output(&got, "d2.f").data[0];
    assert!((fd - d2).abs() < 1e-6 * (1.0 + d2.abs()), "{fd} vs {d2}");
}

/// W1's MLP for one example, `features` wide with two hidden layers of `hidden` and 10
/// classes: `x: f32[features]`, an integer label.
fn mlp_one_example(features: usize, hidden: usize) -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[features])).unwrap();
    let label = b.input("label", Type::i32(&[1])).unwrap();
    let mut h = b.reshape(x, &[1, features]).unwrap();
    let layers = [(features, hidden), (hidden, hidden), (hidden, 10)];
    for (k, (i, o)) in layers.into_iter().enumerate() {
        let w = b.input(&format!("w{}", k + 1), Type::f32(&[i, o])).unwrap();
        let bias = b.input(&format!("b{}", k + 1), Type::f32(&[o])).unwrap();
        h = b.linear(h, w, bias).unwrap();
        if k < 2 {
            h = b.relu(h).unwrap();
        }
    }
    let loss = b.cross_entropy(h, label).unwrap();
    b.output("loss", loss).unwrap();
    b.finish().unwrap()
}

#[test]
fn per_example_gradients_of_w1s_mlp_are_one_program() {
    let g = mlp_one_example(784, 512);
    let wrt = ["w1", "b1", "w2", "b2", "w3", "b3"];
    let d = wgrad::grad(&g, Some("loss"), &wrt).unwrap();
    let batch_size = 64;
    let per = batch::vmap(&d, &["x", "label"], batch_size).unwrap();
    for w in wrt {
        let ty = per.ty(per.output(&format!("grad.{w}")).unwrap());
        assert_eq!(ty.shape[0], batch_size, "grad.{w} is {ty}");
    }
    let mut rng = Rng::new(21);
    let mut ins = inputs(vec![
        ("x", rng.tensor(&[batch_size, 784], 0.0, 1.0)),
        ("w1", rng.tensor(&[784, 512], -0.05, 0.05)),
        ("b1", rng.tensor(&[512], -0.1, 0.1)),
        ("w2", rng.tensor(&[512, 512], -0.05, 0.05)),
        ("b2", rng.tensor(&[512], -0.1, 0.1)),
        ("w3", rng.tensor(&[512, 10], -0.1, 0.1)),
        ("b3", rng.tensor(&[10], -0.1, 0.1)),
    ]);
    let labels: Vec<i32> = (0..batch_size).map(|_| rng.below(10) as i32).collect();
    ins.insert(
        "label".into(),
        Tensor::from_i32(&[batch_size, 1], &labels).unwrap(),
    );
    let got = wgrad::eval(&per, &ins).unwrap();
    // A few rows against the single-example gradient.
    for k in [0, 17, 63] {
        let mut one = ins.clone();
        one.insert(
            "x".into(),
            Tensor::new(Type::f32(&[784]), row(&ins["x"], k)).unwrap(),
        );
        one.insert(
            "label".into(),
            Tensor::from_i32(&[1], &[labels[k]]).unwrap(),
        );
        let want = wgrad::eval(&d, &one).unwrap();
        for w in wrt {
            let n = format!("grad.{w}");
            close(&row(output(&got, &n), k), &output(&want, &n).data, &n);
        }
    }
}

#[test]
fn batching_mistakes_are_errors() {
    let g = w5(4);
    let e = batch::vmap(&g, &["y"], 2).unwrap_err().to_string();
    assert!(e.contains("no input named `y`"), "{e}");
    let e = batch::vmap(&g, &["x", "x"], 2).unwrap_err().to_string();
    assert!(e.contains("named twice"), "{e}");
    let e = batch::vmap(&g, &["x"], 0).unwrap_err().to_string();
    assert!(e.contains("size 0"), "{e}");
    // Data whose batch axis disagrees with the program's.
    let gb = batch::vmap(&g, &["x"], 3).unwrap();
    let bad = inputs(vec![(
        "x",
        Tensor::new(Type::f32(&[2, 4]), vec![0.0; 8]).unwrap(),
    )]);
    let e = wgrad::eval(&gb, &bad).unwrap_err().to_string();
    assert!(e.contains("expected f32[3,4], got f32[2,4]"), "{e}");
    let e = batch::directional(&g, None, "x", 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 1"), "{e}");
    let e = batch::directional(&g, None, "x", batch::MAX_ORDER + 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("above the 12 nested JVPs take"), "{e}");
    let e = batch::jacobian(&g, None, "z", JacobianMode::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no input named `z`"), "{e}");
    let mut b = Builder::new();
    let i = b.input("i", Type::new(DType::I32, &[2])).unwrap();
    let c = b.cast(i, DType::F32).unwrap();
    let s = b.sum_all(c).unwrap();
    b.output("s", s).unwrap();
    let g = b.finish().unwrap();
    let e = batch::hessian(&g, None, "i").unwrap_err().to_string();
    assert!(e.contains("only f32 values have derivatives"), "{e}");
}

fn rt() -> Option<&'static wgrad::Runtime> {
    static RT: std::sync::OnceLock<Option<wgrad::Runtime>> = std::sync::OnceLock::new();
    RT.get_or_init(wgrad::runtime::testing::runtime_or_skip)
        .as_ref()
}

#[test]
fn batched_programs_run_on_the_gpu() {
    let Some(rt) = rt() else { return };
    // The W5 Hessian at N = 512, in one run.
    let h = batch::hessian(&w5(512), None, "x").unwrap();
    let mut rng = Rng::new(4);
    let ins = inputs(vec![("x", rng.tensor(&[512], -2.0, 2.0))]);
    common::gpu::assert_gpu_matches(rt, &h.graph, &ins);
    // Every case batched over all its inputs.
    for which in 0..CASES {
        let c = case(which, 31);
        let names: Vec<&str> = c.graph.inputs().iter().map(|(n, _)| n.as_str()).collect();
        let gb = batch::vmap(&c.graph, &names, 3).unwrap();
        let mut ins = c.inputs.clone();
        for name in &names {
            let rows: Vec<Tensor> = (0..3).map(|k| example(&c.inputs[*name], k)).collect();
            ins.insert(name.to_string(), stack(&rows));
        }
        common::gpu::assert_gpu_matches(rt, &gb, &ins);
    }
}

#[test]
fn per_example_gradients_run_on_the_gpu() {
    let Some(rt) = rt() else { return };
    // W1's MLP at a quarter of its width, 16 examples.
    let g = mlp_one_example(196, 128);
    let d = wgrad::grad(&g, Some("loss"), &["w1", "b1", "w2", "b2", "w3", "b3"]).unwrap();
    let per = batch::vmap(&d, &["x", "label"], 16).unwrap();
    let mut rng = Rng::new(12);
    let labels: Vec<i32> = (0..16).map(|_| rng.below(10) as i32).collect();
    let ins = inputs(vec![
        ("x", rng.tensor(&[16, 196], 0.0, 1.0)),
        ("label", Tensor::from_i32(&[16, 1], &labels).unwrap()),
        ("w1", rng.tensor(&[196, 128], -0.1, 0.1)),
        ("b1", rng.tensor(&[128], -0.1, 0.1)),
        ("w2", rng.tensor(&[128, 128], -0.1, 0.1)),
        ("b2", rng.tensor(&[128], -0.1, 0.1)),
        ("w3", rng.tensor(&[128, 10], -0.1, 0.1)),
        ("b3", rng.tensor(&[10], -0.1, 0.1)),
    ]);
    common::gpu::assert_gpu_matches(rt, &per, &ins);
}
