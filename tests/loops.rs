//! Structured loops: a program with a `loop` prints, parses back, verifies and runs on
//! the interpreter, and differentiates to any order — reverse mode through a reverse
//! loop over stacked states, forward mode through a loop carrying tangents — checked
//! against finite differences, the vectorized form, and lavapipe.

mod common;

use common::gpu::{assert_gpu_matches, assert_gpu_matches_with};
use common::{Rng, assert_gradcheck, inputs, output};
use wgrad::runtime::testing::runtime_or_skip;
use wgrad::{Builder, Type};

fn normalize_loop() -> wgrad::Graph {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/programs/normalize_loop.wg"
    );
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_loop_program_round_trips_verifies_and_runs() {
    let g = normalize_loop();
    wgrad::verify(&g).unwrap();
    let printed = wgrad::print(&g);
    assert!(
        printed.contains("loop") && printed.contains("trips=8 carried=1 {"),
        "{printed}"
    );
    let again = wgrad::parse(&printed).unwrap();
    assert_eq!(wgrad::print(&again), printed);
    assert_eq!(again, g);

    let mut rng = Rng::new(1);
    let x = rng.tensor(&[8], -1.0, 1.0);
    let c = rng.tensor(&[8], -1.0, 1.0);
    let out = wgrad::eval(&g, &inputs(vec![("x", x.clone()), ("c", c.clone())])).unwrap();
    let norm = x.data.iter().map(|v| v * v).sum::<f64>().sqrt();
    let want: f64 = x.data.iter().zip(&c.data).map(|(a, b)| a / norm * b).sum();
    let got = output(&out, "loss").data[0];
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn a_loop_off_the_differentiated_path_does_not_matter() {
    // y = Σ x² + (a loop over z that x does not reach): the gradient wrt x ignores it.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3])).unwrap();
    let z = b.input("z", Type::f32(&[3])).unwrap();
    let r = b
        .loop_(4, &[z], &[], |body, _i, carried, _| {
            let two = body.full_like(2.0, carried[0])?;
            Ok(vec![body.mul(carried[0], two)?])
        })
        .unwrap();
    let sq = b.mul(x, x).unwrap();
    let s = b.sum_all(sq).unwrap();
    let zr = b.sum_all(r[0]).unwrap();
    let total = b.add(s, zr).unwrap();
    b.output("y", total).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let t = |v: Vec<f64>| wgrad::Tensor::new(Type::f32(&[3]), v).unwrap();
    let out = wgrad::eval(
        &g,
        &inputs(vec![
            ("x", t(vec![1.0, 2.0, 3.0])),
            ("z", t(vec![1.0, 1.0, 1.0])),
        ]),
    )
    .unwrap();
    assert_eq!(output(&out, "grad.x").data, vec![2.0, 4.0, 6.0]);
    assert_eq!(output(&out, "y").data, vec![14.0 + 48.0]);
}

#[test]
fn a_gradient_that_avoids_the_loop_is_allowed() {
    // d loss / d c = out, which the loop computes but nothing differentiates through.
    let g = wgrad::grad(&normalize_loop(), None, &["c"]).unwrap();
    assert!(g.output("grad.c").is_ok());
}

/// An RNN over `t` steps: h ← tanh(h·W + x[i]), `x: f32[t, 1, h]` read one step at a
/// time with `dynamic_slice`; loss = Σ h_T · v. The body reads its state non-linearly,
/// so the reverse loop needs the states stacked.
fn rnn(t: usize, h: usize) -> wgrad::Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[t, 1, h])).unwrap();
    let w = b.input("w", Type::f32(&[h, h])).unwrap();
    let h0 = b.input("h0", Type::f32(&[1, h])).unwrap();
    let v = b.input("v", Type::f32(&[1, h])).unwrap();
    let hs = b
        .loop_(t as u32, &[h0], &[x, w], |body, i, c, inv| {
            let zero = body.constant(wgrad::ir::Scalar::Int(0), &[])?;
            let xi = body.dynamic_slice(inv[0], &[i, zero, zero], &[1, 1, h])?;
            let xi = body.reshape(xi, &[1, h])?;
            let hw = body.matmul(c[0], inv[1])?;
            let pre = body.add(hw, xi)?;
            Ok(vec![body.tanh(pre)?])
        })
        .unwrap();
    let hv = b.mul(hs[0], v).unwrap();
    let loss = b.sum_all(hv).unwrap();
    b.output("loss", loss).unwrap();
    b.finish().unwrap()
}

fn rnn_inputs(t: usize, h: usize, seed: u64) -> std::collections::HashMap<String, wgrad::Tensor> {
    let mut rng = Rng::new(seed);
    inputs(vec![
        ("x", rng.tensor(&[t, 1, h], -1.0, 1.0)),
        ("w", rng.tensor(&[h, h], -0.8, 0.8)),
        ("h0", rng.tensor(&[1, h], -1.0, 1.0)),
        ("v", rng.tensor(&[1, h], -1.0, 1.0)),
    ])
}

#[test]
fn the_gradient_through_a_loop_matches_finite_differences() {
    let ins = inputs(vec![
        ("x", Rng::new(2).tensor(&[8], -1.0, 1.0)),
        ("c", Rng::new(3).tensor(&[8], -1.0, 1.0)),
    ]);
    assert_gradcheck(&normalize_loop(), &["x", "c"], &ins);
    assert_gradcheck(&rnn(5, 3), &["x", "w", "h0", "v"], &rnn_inputs(5, 3, 4));
}

#[test]
fn the_loop_gradient_equals_the_vectorized_gradient() {
    // W4: out = x / ‖x‖ written as a loop, against the same written with whole tensors.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[8])).unwrap();
    let c = b.input("c", Type::f32(&[8])).unwrap();
    let sq = b.mul(x, x).unwrap();
    let ss = b.sum_all(sq).unwrap();
    let norm = b.sqrt(ss).unwrap();
    let out = b.div(x, norm).unwrap();
    let oc = b.mul(out, c).unwrap();
    let loss = b.sum_all(oc).unwrap();
    b.output("loss", loss).unwrap();
    let vectorized = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let mapped = wgrad::grad(&normalize_loop(), None, &["x"]).unwrap();
    let keep_loops = wgrad::passes::Optimizations::ALL
        .without("loop_to_map")
        .unwrap();
    let looped = wgrad::autodiff::grad_with(&normalize_loop(), None, &["x"], &keep_loops).unwrap();
    let mut rng = Rng::new(7);
    let ins = inputs(vec![
        ("x", rng.tensor(&[8], -1.0, 1.0)),
        ("c", rng.tensor(&[8], -1.0, 1.0)),
    ]);
    let a = wgrad::eval(&vectorized, &ins).unwrap();
    for g in [&mapped, &looped] {
        let l = wgrad::eval(g, &ins).unwrap();
        let (want, got) = (output(&a, "grad.x"), output(&l, "grad.x"));
        for (p, q) in want.data.iter().zip(&got.data) {
            assert!((p - q).abs() <= 1e-12, "{p} vs {q}");
        }
    }
    // With loop-to-map the gradient has no loop at all. Without it, the norm was still
    // hoisted before differentiating, and the reverse loop reads no state non-linearly:
    // the forward loop and the reverse loop, with no stacking loop.
    assert_eq!(wgrad::print(&mapped).matches("= loop ").count(), 0);
    let printed = wgrad::print(&looped);
    assert_eq!(printed.matches("= loop ").count(), 2, "{printed}");
}

#[test]
fn forward_mode_through_a_loop_agrees_with_reverse_mode() {
    let g = rnn(4, 3);
    let ins = rnn_inputs(4, 3, 9);
    let grads = wgrad::eval(&wgrad::grad(&g, None, &["w", "x"]).unwrap(), &ins).unwrap();
    let jg = wgrad::jvp(&g, None, &["w", "x"]).unwrap();
    let mut rng = Rng::new(10);
    let mut with_tangents = ins.clone();
    let mut expected = 0.0;
    for w in ["w", "x"] {
        let t = rng.tensor(&ins[w].ty.shape, -1.0, 1.0);
        let gw = output(&grads, &format!("grad.{w}"));
        expected += gw.data.iter().zip(&t.data).map(|(a, b)| a * b).sum::<f64>();
        with_tangents.insert(format!("tan.{w}"), t);
    }
    let got = output(&wgrad::eval(&jg, &with_tangents).unwrap(), "tan.loss").data[0];
    assert!(
        (got - expected).abs() <= 1e-10 * (1.0 + expected.abs()),
        "{got} vs {expected}"
    );
}

#[test]
fn second_derivatives_through_a_loop_match_finite_differences() {
    // The gradient program contains a forward and a reverse loop; differentiating it
    // again (reverse over reverse, and forward over reverse) goes through both.
    let g = rnn(3, 2);
    let d = wgrad::grad(&g, None, &["w"]).unwrap();
    let ins = rnn_inputs(3, 2, 11);
    // Σ grad.w as a scalar, differentiated again with respect to w and h0.
    let mut b = wgrad::Builder::from_graph(d.clone());
    let gw = d.output("grad.w").unwrap();
    let s = b.sum_all(gw).unwrap();
    b.output("s", s).unwrap();
    let dd = b.finish().unwrap();
    let report = wgrad::gradcheck(
        &dd,
        Some("s"),
        &["w", "h0"],
        &ins,
        wgrad::GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed, "{report}");
    assert!(report.checked > 0);
    // Forward over reverse: the Hessian-vector product H·t of Σ grad.w equals the
    // gradient of Σ grad.w in the direction t.
    let hvp = wgrad::jvp(&dd, Some("s"), &["w"]).unwrap();
    let second = wgrad::grad(&dd, Some("s"), &["w"]).unwrap();
    let t = Rng::new(14).tensor(&[2, 2], -1.0, 1.0);
    let mut with_t = ins.clone();
    with_t.insert("tan.w".into(), t.clone());
    let along = output(&wgrad::eval(&hvp, &with_t).unwrap(), "tan.s").data[0];
    let g2 = wgrad::eval(&second, &ins).unwrap();
    let want: f64 = output(&g2, "grad.grad.w")
        .data
        .iter()
        .zip(&t.data)
        .map(|(a, b)| a * b)
        .sum();
    assert!(
        (along - want).abs() <= 1e-9 * (1.0 + want.abs()),
        "{along} vs {want}"
    );
}

#[test]
fn a_loop_of_no_trips_passes_its_cotangent_through() {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[2])).unwrap();
    let r = b
        .loop_(0, &[x], &[], |body, _, c, _| Ok(vec![body.tanh(c[0])?]))
        .unwrap();
    let s = b.sum_all(r[0]).unwrap();
    b.output("s", s).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let ins = inputs(vec![(
        "x",
        wgrad::Tensor::new(Type::f32(&[2]), vec![0.3, -0.2]).unwrap(),
    )]);
    assert_eq!(
        output(&wgrad::eval(&g, &ins).unwrap(), "grad.x").data,
        vec![1.0, 1.0]
    );
}

#[test]
fn loop_gradients_match_the_interpreter_on_the_device() {
    let Some(rt) = runtime_or_skip() else { return };
    let g = wgrad::grad(&rnn(6, 4), None, &["x", "w", "h0"]).unwrap();
    assert_gpu_matches(&rt, &g, &rnn_inputs(6, 4, 12));
    let g = wgrad::grad(&normalize_loop(), None, &["x"]).unwrap();
    let mut rng = Rng::new(13);
    let ins = inputs(vec![
        ("x", rng.tensor(&[8], -1.0, 1.0)),
        ("c", rng.tensor(&[8], -1.0, 1.0)),
    ]);
    assert_gpu_matches(&rt, &g, &ins);
}

#[test]
fn an_unrolled_rnn_gradient_keeps_only_the_hidden_states() {
    // Unrolled, the reverse loop's reads of the stacked states simplify to the states
    // themselves, so the backward pass keeps at most T·B·H floats: the hidden states
    // (tanh's derivative reads its own output, the next step's state).
    let (t, h) = (6, 4);
    let g = wgrad::grad(&rnn(t, h), None, &["x", "w", "h0"]).unwrap();
    let p = wgrad::compile(&g, &wgrad::Options::default()).unwrap();
    assert!(
        p.stats.residual_bytes <= (t * h * 4) as u64,
        "{} residual bytes",
        p.stats.residual_bytes
    );
}

/// W4 at any `n`, the loop form: `out[i] = x[i] / ‖x‖` for i in 0..n, the norm
/// recomputed every iteration; loss = Σ out · c.
fn w4_loop(n: usize) -> wgrad::Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n])).unwrap();
    let c = b.input("c", Type::f32(&[n])).unwrap();
    let out0 = b.full(0.0, &Type::f32(&[n])).unwrap();
    let out = b
        .loop_(n as u32, &[out0], &[x], |body, i, carried, inv| {
            let sq = body.mul(inv[0], inv[0])?;
            let ss = body.sum_all(sq)?;
            let norm = body.sqrt(ss)?;
            let norm = body.reshape(norm, &[1])?;
            let xi = body.dynamic_slice(inv[0], &[i], &[1])?;
            let q = body.div(xi, norm)?;
            Ok(vec![body.dynamic_update_slice(carried[0], q, &[i])?])
        })
        .unwrap();
    let oc = b.mul(out[0], c).unwrap();
    let loss = b.sum_all(oc).unwrap();
    b.output("loss", loss).unwrap();
    b.finish().unwrap()
}

/// Every loop on the device: none unrolled.
fn on_device(target: wgrad::Target, loop_to_map: bool) -> wgrad::Options {
    let mut optimizations = wgrad::passes::Optimizations::ALL;
    if !loop_to_map {
        optimizations = optimizations.without("loop_to_map").unwrap();
    }
    wgrad::Options {
        optimizations,
        unroll_limit: 0,
        ..wgrad::Options::new(target)
    }
}

/// Whether the compiled program dispatches a loop on the device.
fn has_device_loop(g: &wgrad::Graph, options: &wgrad::Options) -> bool {
    let p = wgrad::compile(g, options).unwrap();
    p.schedule
        .iter()
        .any(|s| matches!(s, wgrad::lower::Step::Loop { .. }))
}

#[test]
fn loops_on_the_device_match_the_interpreter() {
    let Some(rt) = runtime_or_skip() else { return };
    let options = on_device(rt.target().clone(), false);
    // Odd and even trip counts: the double-buffered state ends in either buffer.
    for t in [5, 6] {
        let ins = rnn_inputs(t, 4, 30 + t as u64);
        let forward = rnn(t, 4);
        assert!(has_device_loop(&forward, &options));
        assert_gpu_matches_with(&rt, &options, &forward, &ins);
        let g = wgrad::grad(&forward, None, &["x", "w", "h0", "v"]).unwrap();
        assert!(has_device_loop(&g, &options));
        assert_gpu_matches_with(&rt, &options, &g, &ins);
    }
    // W4 without loop-to-map: the output and the invariant's gradient are updated in
    // place, one window per iteration.
    let keep_loops = wgrad::passes::Optimizations::ALL
        .without("loop_to_map")
        .unwrap();
    let n = 40;
    let g = wgrad::autodiff::grad_with(&w4_loop(n), None, &["x", "c"], &keep_loops).unwrap();
    assert!(has_device_loop(&g, &options));
    let mut rng = Rng::new(41);
    let ins = inputs(vec![
        ("x", rng.tensor(&[n], -1.0, 1.0)),
        ("c", rng.tensor(&[n], -1.0, 1.0)),
    ]);
    assert_gpu_matches_with(&rt, &options, &g, &ins);
}

#[test]
fn carried_values_that_swap_or_pass_through_stay_correct_on_the_device() {
    let Some(rt) = runtime_or_skip() else { return };
    let options = on_device(rt.target().clone(), true);
    // (a, b, k) ← (b, a + b, k): the next `a` is a carried input as it is, `k` never
    // changes; 0, 1 and 7 trips.
    for trips in [0, 1, 7] {
        let mut b = Builder::new();
        let a = b.input("a", Type::f32(&[3])).unwrap();
        let c = b.input("b", Type::f32(&[3])).unwrap();
        let k = b.input("k", Type::f32(&[3])).unwrap();
        let r = b
            .loop_(trips, &[a, c, k], &[], |body, _, s, _| {
                let sum = body.add(s[0], s[1])?;
                Ok(vec![s[1], sum, s[2]])
            })
            .unwrap();
        for (name, v) in ["a", "b", "k"].iter().zip(&r) {
            b.output(&format!("out_{name}"), *v).unwrap();
        }
        let g = b.finish().unwrap();
        let mut rng = Rng::new(50 + trips as u64);
        let ins = inputs(vec![
            ("a", rng.tensor(&[3], -1.0, 1.0)),
            ("b", rng.tensor(&[3], -1.0, 1.0)),
            ("k", rng.tensor(&[3], -1.0, 1.0)),
        ]);
        assert_gpu_matches_with(&rt, &options, &g, &ins);
    }
}

#[test]
fn nested_loops_run_on_the_device_and_differentiate() {
    let Some(rt) = runtime_or_skip() else { return };
    let options = on_device(rt.target().clone(), true);
    // s ← inner(s) three times, inner: s ← tanh(s · w + x) four times.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[4])).unwrap();
    let w = b.input("w", Type::f32(&[4])).unwrap();
    let s0 = b.input("s0", Type::f32(&[4])).unwrap();
    let s = b
        .loop_(3, &[s0], &[x, w], |outer, _, s, inv| {
            outer.loop_(4, &[s[0]], inv, |inner, _, s, inv| {
                let sw = inner.mul(s[0], inv[1])?;
                let pre = inner.add(sw, inv[0])?;
                Ok(vec![inner.tanh(pre)?])
            })
        })
        .unwrap();
    let loss = b.sum_all(s[0]).unwrap();
    b.output("loss", loss).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(60);
    let ins = inputs(vec![
        ("x", rng.tensor(&[4], -1.0, 1.0)),
        ("w", rng.tensor(&[4], -1.0, 1.0)),
        ("s0", rng.tensor(&[4], -1.0, 1.0)),
    ]);
    assert_gpu_matches_with(&rt, &options, &g, &ins);
    let dg = wgrad::grad(&g, None, &["x", "w", "s0"]).unwrap();
    assert!(has_device_loop(&dg, &options));
    assert_gpu_matches_with(&rt, &options, &dg, &ins);
}

#[test]
fn a_device_loop_compiles_once_whatever_its_trip_count() {
    // 100,000 iterations compile to the kernels of one iteration, and W4's gradient
    // without loop-to-map does O(N) work: twice the length, twice the invocations (an
    // O(N²) loop, copying or recomputing whole vectors per iteration, would run four
    // times as many).
    let keep_loops = wgrad::passes::Optimizations::ALL
        .without("loop_to_map")
        .unwrap();
    let options = on_device(wgrad::Target::software_vulkan(), false);
    let compiled = |n: usize| {
        let g = wgrad::autodiff::grad_with(&w4_loop(n), None, &["x"], &keep_loops).unwrap();
        wgrad::compile(&g, &options).unwrap()
    };
    let big = compiled(100_000);
    assert!(big.kernels.len() < 40, "{} kernels", big.kernels.len());
    assert!(
        big.stats.kernels > 100_000,
        "{} dispatches",
        big.stats.kernels
    );
    let (a, b) = (compiled(1024), compiled(2048));
    assert_eq!(a.kernels.len(), b.kernels.len());
    let ratio = invocations(&b) as f64 / invocations(&a) as f64;
    assert!(
        ratio < 2.1,
        "invocations grew {ratio}× for twice the length"
    );
}

/// Shader invocations per run: every dispatch's grid times its workgroup.
fn invocations(p: &wgrad::Program) -> u64 {
    let mut total = 0;
    for step in p.steps() {
        step.count(&mut |k, n| {
            let kernel = &p.kernels[k];
            let each: u32 = kernel.dispatch.iter().product::<u32>()
                * kernel.workgroup_size.iter().product::<u32>();
            total += u64::from(each) * n;
        });
    }
    total
}

fn w7() -> wgrad::Graph {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/programs/w7.wg");
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn w7_runs_its_loop_on_the_device_once_per_direction() {
    // W7's gradient: one forward loop that also stacks the hidden states (the loop of
    // the loss merged into it), one reverse loop; the kernels of one iteration each,
    // whatever T is. Its residuals: the T hidden states (T·B·H·4 bytes: the 99 entering
    // steps 1..99, stacked, and the final one), exactly; the loss head's logits are
    // computed inline by the row kernel of the softmax and its gradient from the final
    // state and V (which the backward reads anyway), the reverse loop reads W itself,
    // not the concatenated [U; W], what only the loss head reads is computed after the
    // loop, and the labels' re-indexing is computed where it is read rather than kept
    // in a buffer.
    let g = wgrad::grad(&w7(), None, &["u", "w", "b", "v", "c"]).unwrap();
    let p = wgrad::compile(&g, &wgrad::Options::default()).unwrap();
    let loops = p
        .schedule
        .iter()
        .filter(|s| matches!(s, wgrad::lower::Step::Loop { .. }))
        .count();
    assert_eq!(loops, 2);
    assert!(p.kernels.len() < 60, "{} kernels", p.kernels.len());
    let hidden = 100 * 32 * 128 * 4;
    assert_eq!(p.stats.residual_bytes, hidden);
}

#[test]
fn w7_gradient_on_the_device_matches_the_interpreter() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut rng = Rng::new(70);
    let mut ins = inputs(vec![
        ("x", rng.tensor(&[100, 32, 64], -1.0, 1.0)),
        ("u", rng.tensor(&[64, 128], -0.12, 0.12)),
        ("w", rng.tensor(&[128, 128], -0.09, 0.09)),
        ("b", rng.tensor(&[128], -0.1, 0.1)),
        ("v", rng.tensor(&[128, 10], -0.09, 0.09)),
        ("c", rng.tensor(&[10], -0.1, 0.1)),
    ]);
    let labels = (0..32).map(|i| ((i * 7 + 3) % 10) as f64).collect();
    ins.insert(
        "labels".into(),
        wgrad::Tensor::new(wgrad::Type::new(wgrad::ir::DType::I32, &[32]), labels).unwrap(),
    );
    let g = wgrad::grad(&w7(), None, &["u", "w", "b", "v", "c"]).unwrap();
    assert_gpu_matches(&rt, &g, &ins);
}

/// W7's inputs as the workload draws them: weights of scale 1/√fan-in.
fn w7_inputs(seed: u64) -> std::collections::HashMap<String, wgrad::Tensor> {
    let mut rng = Rng::new(seed);
    let (d, h) = (64.0f64, 128.0f64);
    let mut ins = inputs(vec![
        ("x", rng.tensor(&[100, 32, 64], -1.0, 1.0)),
        ("u", rng.tensor(&[64, 128], -1.7 / d.sqrt(), 1.7 / d.sqrt())),
        (
            "w",
            rng.tensor(&[128, 128], -1.7 / h.sqrt(), 1.7 / h.sqrt()),
        ),
        ("b", rng.tensor(&[128], -0.1, 0.1)),
        ("v", rng.tensor(&[128, 10], -1.7 / h.sqrt(), 1.7 / h.sqrt())),
        ("c", rng.tensor(&[10], -0.1, 0.1)),
    ]);
    let labels = (0..32).map(|i| ((i * 7 + 3) % 10) as f64).collect();
    ins.insert(
        "labels".into(),
        wgrad::Tensor::new(wgrad::Type::new(wgrad::ir::DType::I32, &[32]), labels).unwrap(),
    );
    ins
}

#[test]
fn w7_hessian_vector_products_match_differences_of_the_gradient() {
    // Forward over reverse through both of the gradient's loops: H·t for a direction t
    // in W, against (∇(W + εt) − ∇(W − εt)) / 2ε, on the f64 interpreter.
    let g = w7();
    let grad = wgrad::grad(&g, None, &["w"]).unwrap();
    let hvp = wgrad::jvp(&grad, Some("grad.w"), &["w"]).unwrap();
    let ins = w7_inputs(80);
    let t = Rng::new(81).tensor(&[128, 128], -1.0, 1.0);
    let mut with_t = ins.clone();
    with_t.insert("tan.w".into(), t.clone());
    let ht = output(&wgrad::eval(&hvp, &with_t).unwrap(), "tan.grad.w").clone();
    // The difference's truncation error is O(ε²); rounding is O(1e-16 / ε).
    let eps = 1e-5;
    let shifted = |sign: f64| {
        let mut moved = ins.clone();
        let w = moved.get_mut("w").unwrap();
        for (x, d) in w.data.iter_mut().zip(&t.data) {
            *x += sign * eps * d;
        }
        output(&wgrad::eval(&grad, &moved).unwrap(), "grad.w").clone()
    };
    let (plus, minus) = (shifted(1.0), shifted(-1.0));
    let scale = ht.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 0.0);
    for (k, ((p, m), h)) in plus.data.iter().zip(&minus.data).zip(&ht.data).enumerate() {
        let fd = (p - m) / (2.0 * eps);
        assert!(
            (fd - h).abs() <= 1e-6 * scale,
            "element {k}: H·t {h} vs central difference {fd} (scale {scale})"
        );
    }
}

#[test]
fn explain_says_what_is_hoisted_and_how_each_loop_runs() {
    // The norm of W4 is hoisted before differentiating; with loop-to-map off the
    // gradient's loops run on the device, the output updated in place.
    let lines = wgrad::passes::licm::explain(&normalize_loop());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("reduce_sum f32[]") && lines[0].contains("sqrt f32[]"));
    let keep_loops = wgrad::passes::Optimizations::ALL
        .without("loop_to_map")
        .unwrap();
    let g = wgrad::autodiff::grad_with(&w4_loop(64), None, &["x"], &keep_loops).unwrap();
    let (_, report) =
        wgrad::lower::compile(&g, &on_device(wgrad::Target::software_vulkan(), false)).unwrap();
    let text = report.loops.join("\n");
    assert!(
        text.contains("of 64 iterations runs on the device"),
        "{text}"
    );
    assert!(
        text.contains("updated in place, a f32[1] window per iteration"),
        "{text}"
    );
    // W7: the forward loop stacks the hidden states for the reverse loop.
    let g = wgrad::grad(&w7(), None, &["u", "w", "b", "v", "c"]).unwrap();
    let (_, report) = wgrad::lower::compile(&g, &wgrad::Options::default()).unwrap();
    let text = report.loops.join("\n");
    assert!(
        text.contains("f32[99,32,128]: starts filled with a constant, updated in place, a f32[1,32,128] window per iteration (a stack: one row per iteration); its final value is read by loop1"),
        "{text}"
    );
}
