//! The WORKLOADS.md programs written in Burn (wgpu backend, with fusion and autotune),
//! timed the way `examples/bench.rs` times wgrad: a first call (everything up to the
//! first result read back: Burn's autotune and shader compilation included), two
//! warm-up runs, then up to 30 runs (fewer if 8 s pass), each the wall clock from the
//! inputs on the device to the loss and every gradient read back. Reported: median and
//! minimum.
//!
//! Run beside wgrad's bench on the same adapter: `cargo run --release` in this directory
//! (`WGPU_BACKEND=vulkan` and lavapipe installed, as for wgrad).

use burn::tensor::activation::{log_softmax, relu, tanh};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::time::Instant;

fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let device = Device::wgpu(Default::default()).autodiff();
    let run = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    if run("W1") {
        w1(&device);
    }
    if run("W2") {
        w2(&device);
    }
    if run("W3a") {
        w3a(&device);
    }
    if run("matmul") {
        matmul(&device);
    }
}

/// Times `f` as the bench does and prints one line.
fn time(label: &str, flops: Option<f64>, mut f: impl FnMut()) {
    let start = Instant::now();
    f();
    let first = start.elapsed().as_secs_f64() * 1e3;
    f();
    f();
    let mut runs = Vec::new();
    let begun = Instant::now();
    while runs.len() < 30 && (runs.len() < 3 || begun.elapsed().as_secs_f64() < 8.0) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    runs.sort_by(f64::total_cmp);
    let median = runs[runs.len() / 2];
    let gflops = flops.map_or(String::new(), |f| {
        format!(", {:.1} GFLOP/s", f / median / 1e6)
    });
    println!(
        "{label}: first call {first:.0} ms; {} runs: median {median:.2} ms, min {:.2} ms{gflops}",
        runs.len(),
        runs[0]
    );
}

/// Reads a tensor back to the host, every byte: `into_data` alone returns before the
/// bytes are (the matmul below then "took" 0.05 ms).
fn read<const D: usize>(t: Tensor<D>) -> f32 {
    let v: Vec<f32> = t.into_data().try_to_vec().expect("f32 data");
    std::hint::black_box(v.iter().sum())
}

fn normal(shape: [usize; 2], std: f64, device: &Device) -> Tensor<2> {
    Tensor::random(shape, Distribution::Normal(0.0, std), device)
}

/// W1: a three-layer MLP's loss and its gradient with respect to every weight and bias.
fn w1(device: &Device) {
    let x = normal([256, 784], 1.0, device);
    let labels: Vec<i64> = (0..256).map(|i| (i * 7 % 10) as i64).collect();
    let labels: Tensor<2, Int> =
        Tensor::<1, Int>::from_data(TensorData::new(labels, [256]), device).reshape([256, 1]);
    let w1 = normal([784, 512], (2.0f64 / 784.0).sqrt(), device).require_grad();
    let w2 = normal([512, 512], (2.0f64 / 512.0).sqrt(), device).require_grad();
    let w3 = normal([512, 10], (2.0f64 / 512.0).sqrt(), device).require_grad();
    let b1: Tensor<1> =
        Tensor::random([512], Distribution::Normal(0.0, 0.1), device).require_grad();
    let b2: Tensor<1> =
        Tensor::random([512], Distribution::Normal(0.0, 0.1), device).require_grad();
    let b3: Tensor<1> = Tensor::random([10], Distribution::Normal(0.0, 0.1), device).require_grad();
    time("W1 MLP grad", None, || {
        let h1 = relu(x.clone().matmul(w1.clone()) + b1.clone().unsqueeze::<2>());
        let h2 = relu(h1.matmul(w2.clone()) + b2.clone().unsqueeze::<2>());
        let z = h2.matmul(w3.clone()) + b3.clone().unsqueeze::<2>();
        let picked = log_softmax(z, 1).gather(1, labels.clone());
        let loss = picked.mean().neg();
        let grads = loss.backward();
        read(loss);
        for g in [&w1, &w2, &w3] {
            read(g.grad(&grads).expect("a gradient"));
        }
        for g in [&b1, &b2, &b3] {
            read(g.grad(&grads).expect("a gradient"));
        }
    });
}

/// W2: the softmax log-loss written from primitives, `−Σ onehot · log(exp(z) / Σ_row exp(z))`.
fn w2(device: &Device) {
    let x = normal([1024, 256], 1.0 / 16.0, device);
    let w = normal([256, 1000], 1.0, device).require_grad();
    let hot: Vec<f32> = (0..1024 * 1000)
        .map(|i| {
            if i % 1000 == (i / 1000) * 7 % 1000 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let onehot: Tensor<2> = Tensor::from_data(TensorData::new(hot, [1024, 1000]), device);
    time("W2 softmax-logloss grad", None, || {
        let e = x.clone().matmul(w.clone()).exp();
        let s = e.clone().sum_dim(1);
        let loss = (onehot.clone() * (e / s).log()).sum().neg();
        let grads = loss.backward();
        read(loss);
        read(w.grad(&grads).expect("a gradient"));
    });
}

/// W3a: `Σ tanh(x1·W + x2·W)` and its gradient with respect to W.
fn w3a(device: &Device) {
    let x1 = normal([256, 512], 1.0 / 16.0, device);
    let x2 = normal([256, 512], 1.0 / 16.0, device);
    let w = normal([512, 512], 1.0 / 16.0, device).require_grad();
    time("W3a shared W grad", None, || {
        let loss = tanh(x1.clone().matmul(w.clone()) + x2.clone().matmul(w.clone())).sum();
        let grads = loss.backward();
        read(loss);
        read(w.grad(&grads).expect("a gradient"));
    });
}

/// A 1024³ product. Each run multiplies another of four pairs of operands, so that no
/// result can be reused.
fn matmul(device: &Device) {
    let pairs: Vec<(Tensor<2>, Tensor<2>)> = (0..4)
        .map(|_| {
            (
                normal([1024, 1024], 1.0, device),
                normal([1024, 1024], 1.0, device),
            )
        })
        .collect();
    let mut i = 0;
    time("matmul 1024³", Some(2.0 * 1024f64.powi(3)), || {
        let (a, b) = &pairs[i % pairs.len()];
        i += 1;
        read(a.clone().matmul(b.clone()));
    });
}
