//! Fits a Gaussian mixture (d = 10, k = 25 components, n = 1000 points) to data drawn
//! from five well-separated clusters, by gradient descent on the GPU.
//!
//! The objective is ADBench's GMM (`examples/programs/gmm.wg`, workload W6): the
//! mixture's log-likelihood with each component's precision factor `Q_k` built from a
//! log-diagonal and strictly lower entries, plus ADBench's Wishart term. That term adds
//! the penalty ½‖Q‖²_F with a plus sign to a log-likelihood, so the example descends on
//! `−err + ‖Q‖²_F`: the negative log-likelihood plus the penalty (and a constant). The
//! step — objective, gradient and a momentum update — is one program; the parameters
//! stay on the device and only the objective is read back.
//!
//! Run with `cargo run --release --example gmm`.

use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::time::Instant;
use wgrad::{Builder, Graph, Options, Runtime, RuntimeOptions, Tensor, Type};

#[path = "common/momentum.rs"]
mod momentum;

#[derive(Parser)]
#[command(about = "Fit a Gaussian mixture by gradient descent on the GPU")]
struct Args {
    /// Gradient steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 6e-4)]
    lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Seed of the data and the initialization.
    #[arg(long, default_value_t = 3)]
    seed: u64,
}

const D: usize = 10;
const K: usize = 25;
const N: usize = 1000;
const PARAMS: [&str; 3] = ["alphas", "means", "icf"];

/// `gmm.wg` with the output `loss = −err + ‖Q‖²_F` instead of `err`.
fn objective() -> Result<Graph, Box<dyn std::error::Error>> {
    let gmm = wgrad::parse(include_str!("programs/gmm.wg"))?;
    let mut b = Builder::from_graph(gmm.clone());
    let err = gmm.output("err")?;
    let icf = gmm.input("icf")?;
    // ‖Q‖²_F = Σ exp(log-diagonal)² + Σ lower², from icf.
    let logdiag = b.slice(icf, &[0, 0], &[K, D])?;
    let lower = b.slice(icf, &[0, D], &[K, D * (D + 1) / 2])?;
    let diag = b.exp(logdiag)?;
    let d2 = b.mul(diag, diag)?;
    let l2 = b.mul(lower, lower)?;
    let fd = b.sum_all(d2)?;
    let fl = b.sum_all(l2)?;
    let frob = b.add(fd, fl)?;
    let neg = b.neg(err)?;
    let loss = b.add(neg, frob)?;
    b.output("loss", loss)?;
    let mut g = b.finish()?;
    g.retain_outputs(|name| name == "loss");
    Ok(g)
}

/// `N` points from five clusters with centers ~N(0, 4²) and unit spread.
fn data(rng: &mut StdRng) -> Result<Tensor, Box<dyn std::error::Error>> {
    let wide = Normal::new(0.0, 4.0)?;
    let unit = Normal::new(0.0, 1.0)?;
    let centers: Vec<[f64; D]> = (0..5)
        .map(|_| std::array::from_fn(|_| wide.sample(rng)))
        .collect();
    let mut x = Vec::with_capacity(N * D);
    for i in 0..N {
        let c = &centers[i % centers.len()];
        x.extend(c.iter().map(|m| m + unit.sample(rng)));
    }
    Ok(Tensor::new(Type::f32(&[N, D]), x)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);

    let t = Instant::now();
    let forward = objective()?;
    let with_grad = wgrad::grad(&forward, Some("loss"), &PARAMS)?;
    let step = momentum::with_momentum_update(&with_grad, &PARAMS, args.lr, args.momentum)?;
    let rt = Runtime::new(&RuntimeOptions::default())?;
    let program = wgrad::compile(&step, &Options::new(rt.target().clone()))?;
    let mut exe = rt.load(&program)?;
    println!("adapter: {}", rt.adapter());
    println!(
        "training step: {} kernels ({} products), compiled and loaded in {:.0} ms",
        program.stats.kernels,
        program.stats.matmul_kernels,
        t.elapsed().as_secs_f64() * 1e3
    );

    // Parameters: equal weights, means at random data points, identity precisions.
    let x = data(&mut rng)?;
    let pick: Vec<usize> = (0..K).map(|k| (k * 37 + 11) % N).collect();
    let means: Vec<f64> = pick
        .iter()
        .flat_map(|&i| x.data[i * D..(i + 1) * D].to_vec())
        .collect();
    let init: [(&str, Tensor); 3] = [
        ("alphas", Tensor::zeros(&Type::f32(&[K]))),
        ("means", Tensor::new(Type::f32(&[K, D]), means)?),
        ("icf", Tensor::zeros(&Type::f32(&[K, D * (D + 1) / 2]))),
    ];
    for (name, t) in &init {
        exe.set(name, t)?;
        exe.set(&format!("m.{name}"), &Tensor::zeros(&t.ty))?;
    }
    let inputs: HashMap<String, Tensor> = HashMap::from([("x".to_string(), x)]);

    let t = Instant::now();
    let mut first = None;
    let mut last = f64::NAN;
    for s in 0..args.steps {
        let out = exe.run(&inputs)?;
        let loss = out[0].1.data[0];
        first.get_or_insert(loss);
        last = loss;
        if s % 25 == 0 || s + 1 == args.steps {
            println!("step {s:4}: objective {loss:.2}");
        }
        if !loss.is_finite() {
            return Err(format!("the objective diverged at step {s}; try a smaller --lr").into());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} steps in {:.2} s ({:.2} ms per step); objective {:.2} → {:.2}",
        args.steps,
        secs,
        secs * 1e3 / args.steps as f64,
        first.unwrap_or(f64::NAN),
        last
    );
    Ok(())
}
