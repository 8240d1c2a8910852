//! W6, the ADBench GMM objective (`examples/programs/gmm.wg`): the program against an
//! independent f64 implementation of ADBench's formula, its gradient against central
//! differences and on the device, and its kernel and byte budget.

mod common;

use common::{Rng, inputs, output};
use std::collections::HashMap;
use wgrad::{Graph, Options, Target, Tensor};

const D: usize = 10;
const K: usize = 25;
const N: usize = 1000;

fn gmm() -> Graph {
    let path = format!("{}/examples/programs/gmm.wg", env!("CARGO_MANIFEST_DIR"));
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn data(seed: u64) -> HashMap<String, Tensor> {
    let mut rng = Rng::new(seed);
    common::gpu::as_f32(&inputs(vec![
        ("alphas", rng.tensor(&[K], -1.0, 1.0)),
        ("means", rng.tensor(&[K, D], -1.0, 1.0)),
        ("icf", rng.tensor(&[K, D * (D + 1) / 2], -0.5, 0.5)),
        ("x", rng.tensor(&[N, D], -2.0, 2.0)),
    ]))
}

fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// ADBench's `gmm_objective` (src/cpp/shared/gmm.h) with gamma = 1, m = 0, written
/// directly in f64 loops: the reference the program is held to.
fn reference(ins: &HashMap<String, Tensor>) -> f64 {
    let (alphas, means, icf, x) = (
        &ins["alphas"].data,
        &ins["means"].data,
        &ins["icf"].data,
        &ins["x"].data,
    );
    let t = D * (D + 1) / 2;
    let mut slse = 0.0;
    for n in 0..N {
        let mut main = vec![0.0; K];
        for (k, m) in main.iter_mut().enumerate() {
            let q = &icf[k * t..(k + 1) * t];
            let xc: Vec<f64> = (0..D).map(|j| x[n * D + j] - means[k * D + j]).collect();
            // Q·xc with Q's strictly lower entries stored column by column after the
            // log-diagonal.
            let mut qx: Vec<f64> = (0..D).map(|i| q[i].exp() * xc[i]).collect();
            let mut at = D;
            for (j, xj) in xc.iter().enumerate() {
                for qi in qx.iter_mut().skip(j + 1) {
                    *qi += q[at] * xj;
                    at += 1;
                }
            }
            let sumq: f64 = q[..D].iter().sum();
            *m = alphas[k] + sumq - 0.5 * qx.iter().map(|v| v * v).sum::<f64>();
        }
        slse += logsumexp(&main);
    }
    let constant = -(N as f64) * D as f64 * 0.5 * (2.0 * std::f64::consts::PI).ln();
    let mut frob = 0.0;
    for k in 0..K {
        let q = &icf[k * t..(k + 1) * t];
        frob += q[..D].iter().map(|v| (2.0 * v).exp()).sum::<f64>();
        frob += q[D..].iter().map(|v| v * v).sum::<f64>();
    }
    let nw = (D + 1) as f64;
    let lgd: f64 = 0.25 * (D * (D - 1)) as f64 * std::f64::consts::PI.ln()
        + (1..=D)
            .map(|j| lgamma_reference(0.5 * nw + 0.5 * (1.0 - j as f64)))
            .sum::<f64>();
    let c = nw * D as f64 * (0.0 - 0.5 * 2f64.ln()) - lgd;
    constant + slse - N as f64 * logsumexp(alphas) + 0.5 * frob - K as f64 * c
}

/// `ln Γ(x)` for the half-integers and integers the prior needs, from Γ(1) = 1,
/// Γ(½) = √π and Γ(x + 1) = x·Γ(x): exact, and independent of the interpreter's.
fn lgamma_reference(x: f64) -> f64 {
    let (mut y, mut acc) = if (x - x.floor() - 0.5).abs() < 1e-12 {
        (0.5, 0.5 * std::f64::consts::PI.ln())
    } else {
        (1.0, 0.0)
    };
    while y < x - 1e-9 {
        acc += y.ln();
        y += 1.0;
    }
    acc
}

#[test]
fn the_program_is_adbenchs_objective() {
    let g = gmm();
    for seed in [1, 2] {
        let ins = data(seed);
        let got = output(&wgrad::eval(&g, &ins).unwrap(), "err").data[0];
        let want = reference(&ins);
        assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} vs {want}");
    }
}

#[test]
fn its_gradient_matches_central_differences() {
    let g = gmm();
    let ins = data(3);
    // The objective is about 1.7e4: central differences with the default step (1e-6)
    // lose ε·|f|/h ≈ 4e-6 to rounding, as much as the tolerance. A step of 1e-4
    // balances that (4e-8) against the truncation error, h² times the third
    // derivative, instead.
    let options = wgrad::GradcheckOptions {
        eps: 1e-4,
        ..wgrad::GradcheckOptions::default()
    };
    let report =
        wgrad::gradcheck(&g, Some("err"), &["alphas", "means", "icf"], &ins, options).unwrap();
    assert!(report.passed, "{report}");
}

#[test]
fn its_gradient_fits_the_kernel_and_byte_budget() {
    let d = wgrad::grad(&gmm(), None, &["alphas", "means", "icf"]).unwrap();
    let p = wgrad::compile(&d, &Options::new(Target::software_vulkan())).unwrap();
    // XLA: 34 kernels and 5.93 MiB of temporaries; the target is 20 kernels.
    assert!(p.stats.kernels <= 20, "{} kernels", p.stats.kernels);
    assert!(
        p.stats.temp_bytes as f64 <= 5.93 * 1024.0 * 1024.0,
        "{} temporary bytes",
        p.stats.temp_bytes
    );
}

#[test]
fn its_gradient_runs_on_the_device() {
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let d = wgrad::grad(&gmm(), None, &["alphas", "means", "icf"]).unwrap();
    common::gpu::assert_gpu_matches(&rt, &d, &data(4));
}
