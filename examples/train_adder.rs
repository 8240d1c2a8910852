//! Trains a small recurrent network to add two binary numbers digit by digit, on the GPU.
//!
//! Each example is a pair of 7-bit numbers read least significant bit first: at step
//! `t` the network sees bit `t` of both and must output bit `t` of their sum, which
//! depends on the carry from earlier steps — something only the recurrent state can
//! hold. The recurrence `h_t = tanh(x_t·U + h_{t−1}·W + b)` is a `loop` that reads step
//! `t` of the batch with `dynamic_slice`; wgrad differentiates the loop as a loop (a
//! reverse loop over the stacked hidden states), appends an SGD-with-momentum update,
//! and keeps parameters and momenta on the device between steps. Held-out accuracy is
//! the fraction of fresh sums with every bit right.
//!
//! Run with `cargo run --release --example train_adder`. The data is generated.

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::time::Instant;
use wgrad::ir::Scalar;
use wgrad::{Builder, Graph, Options, Runtime, RuntimeOptions, Tensor, Type, Value};

#[path = "common/momentum.rs"]
mod momentum;

#[derive(Parser)]
#[command(about = "Train a recurrent network to add binary numbers, on the GPU")]
struct Args {
    /// Training steps.
    #[arg(long, default_value_t = 600)]
    steps: usize,
    /// Sums per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 16)]
    hidden: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Seed for the data and the initialization.
    #[arg(long, default_value_t = 3)]
    seed: u64,
}

/// Bits per number read, and steps of the loop: the sum of two 7-bit numbers has 8.
const BITS: usize = 8;
const PARAMS: [&str; 5] = ["u", "w", "b", "v", "c"];

/// The parameters' shapes for `h` hidden units.
fn shapes(h: usize) -> [(&'static str, Vec<usize>); 5] {
    [
        ("u", vec![2, h]),
        ("w", vec![h, h]),
        ("b", vec![h]),
        ("v", vec![h, 1]),
        ("c", vec![1]),
    ]
}

/// The network over a batch of `n` sums: inputs `x: f32[BITS, n, 2]` (the two numbers'
/// bits) and `y: f32[BITS, n, 1]` (the sum's), returns the builder, the parameters,
/// and the loop's final `(loss sum, correct flags)`: the summed binary cross-entropy
/// of every bit, and per sum 1 if every bit was predicted right.
fn network(n: usize, h: usize) -> wgrad::Result<(Builder, Vec<Value>, Vec<Value>)> {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[BITS, n, 2]))?;
    let y = b.input("y", Type::f32(&[BITS, n, 1]))?;
    let mut params = Vec::new();
    for (name, shape) in shapes(h) {
        params.push(b.input(name, Type::f32(&shape))?);
    }
    let h0 = b.full(0.0, &Type::f32(&[n, h]))?;
    let loss0 = b.scalar(0.0)?;
    let ok0 = b.full(1.0, &Type::f32(&[n, 1]))?;
    let mut invariants = vec![x, y];
    invariants.extend(&params);
    let finals = b.loop_(
        BITS as u32,
        &[h0, loss0, ok0],
        &invariants,
        |body, t, state, inv| {
            let zero = body.constant(Scalar::Int(0), &[])?;
            let xt = body.dynamic_slice(inv[0], &[t, zero, zero], &[1, n, 2])?;
            let xt = body.reshape(xt, &[n, 2])?;
            let yt = body.dynamic_slice(inv[1], &[t, zero, zero], &[1, n, 1])?;
            let yt = body.reshape(yt, &[n, 1])?;
            let (u, w, bias, v, c) = (inv[2], inv[3], inv[4], inv[5], inv[6]);
            let xu = body.matmul(xt, u)?;
            let hw = body.matmul(state[0], w)?;
            let s = body.add(xu, hw)?;
            let pre = body.add(s, bias)?;
            let h_next = body.tanh(pre)?;
            let z = body.linear(h_next, v, c)?;
            // Binary cross-entropy with logits: softplus(z) − y·z.
            let sp = body.softplus(z)?;
            let yz = body.mul(yt, z)?;
            let l = body.sub(sp, yz)?;
            let l = body.sum_all(l)?;
            let loss = body.add(state[1], l)?;
            // A bit is right when z > 0 exactly where y is 1.
            let zero_f = body.full_like(0.0, z)?;
            let guess = body.gt(z, zero_f)?;
            let guess = body.cast(guess, wgrad::DType::F32)?;
            let right = body.eq(guess, yt)?;
            let right = body.cast(right, wgrad::DType::F32)?;
            let ok = body.mul(state[2], right)?;
            Ok(vec![h_next, loss, ok])
        },
    )?;
    Ok((b, params, finals[1..].to_vec()))
}

/// One training step: the mean loss, its gradient, and the momentum update, with every
/// `new.<p>` output replacing input `<p>` on the device.
fn training_step(args: &Args) -> wgrad::Result<Graph> {
    let n = args.batch;
    let (mut b, _, finals) = network(n, args.hidden)?;
    let scale = b.scalar(1.0 / (n * BITS) as f64)?;
    let loss = b.mul(finals[0], scale)?;
    b.output("loss", loss)?;
    let f = b.finish()?;
    let with_grad = wgrad::grad(&f, Some("loss"), &PARAMS)?;
    momentum::with_momentum_update(&with_grad, &PARAMS, args.lr, args.momentum)
}

/// The number of sums of a batch of `n` with every bit right.
fn correct_count(n: usize, h: usize) -> wgrad::Result<Graph> {
    let (mut b, _, finals) = network(n, h)?;
    let count = b.sum_all(finals[1])?;
    b.output("correct", count)?;
    Ok(b.finish()?)
}

/// `n` random sums of two numbers below 2^(BITS − 1), as `x: f32[BITS, n, 2]` and
/// `y: f32[BITS, n, 1]`, least significant bit first.
fn sums(rng: &mut StdRng, n: usize) -> wgrad::Result<(Tensor, Tensor)> {
    let mut x = vec![0.0; BITS * n * 2];
    let mut y = vec![0.0; BITS * n];
    for k in 0..n {
        let a: u32 = rng.random_range(0..1 << (BITS - 1));
        let c: u32 = rng.random_range(0..1 << (BITS - 1));
        let s = a + c;
        for t in 0..BITS {
            x[(t * n + k) * 2] = f64::from((a >> t) & 1);
            x[(t * n + k) * 2 + 1] = f64::from((c >> t) & 1);
            y[t * n + k] = f64::from((s >> t) & 1);
        }
    }
    Ok((
        Tensor::new(Type::f32(&[BITS, n, 2]), x)?,
        Tensor::new(Type::f32(&[BITS, n, 1]), y)?,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let rt = Runtime::new(&RuntimeOptions::default())?;
    println!("adapter: {}", rt.adapter());
    let held_out = 512;
    let started = Instant::now();
    let step = wgrad::compile(&training_step(&args)?, &Options::new(rt.target().clone()))?;
    let eval = wgrad::compile(
        &correct_count(held_out, args.hidden)?,
        &Options::new(rt.target().clone()),
    )?;
    println!(
        "compiling {} + {} kernels (the loop unrolled over {BITS} bits, forward and reverse)…",
        step.stats.kernels, eval.stats.kernels
    );
    let mut exe = rt.load(&step)?;
    let mut eval_exe = rt.load(&eval)?;
    println!(
        "compiled and loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for (name, shape) in shapes(args.hidden) {
        let n: usize = shape.iter().product();
        let data: Vec<f64> = if shape.len() == 2 {
            let normal = Normal::new(0.0, (1.0 / shape[0] as f64).sqrt())?;
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        } else {
            vec![0.0; n]
        };
        exe.set(name, &Tensor::new(Type::f32(&shape), data)?)?;
        exe.set(&format!("m.{name}"), &Tensor::zeros(&Type::f32(&shape)))?;
    }
    let (test_x, test_y) = sums(&mut StdRng::seed_from_u64(args.seed ^ 0xADD), held_out)?;
    let mut accuracy = 0.0;
    let mut loss_sum = 0.0;
    let timer = Instant::now();
    for s in 1..=args.steps {
        let (x, y) = sums(&mut rng, args.batch)?;
        let out = exe.run(&HashMap::from([("x".to_string(), x), ("y".to_string(), y)]))?;
        loss_sum += out[0].1.data[0];
        if s % 100 == 0 || s == args.steps {
            let mut inputs = HashMap::from([
                ("x".to_string(), test_x.clone()),
                ("y".to_string(), test_y.clone()),
            ]);
            for p in PARAMS {
                inputs.insert(p.to_string(), exe.read(p)?);
            }
            let correct = eval_exe.run(&inputs)?[0].1.data[0];
            accuracy = correct / held_out as f64;
            println!(
                "step {s:4}: loss {:.4}, held-out sums all bits right {:.1}%",
                loss_sum / 100.0,
                100.0 * accuracy
            );
            loss_sum = 0.0;
        }
    }
    println!(
        "final held-out accuracy: {:.1}% of {held_out} sums ({} steps in {:.1} s)",
        100.0 * accuracy,
        args.steps,
        timer.elapsed().as_secs_f64()
    );
    Ok(())
}
