//! Benchmarks the workloads of `WORKLOADS.md` on the adapter the runtime picks.
//!
//! For every program: compile, load, one first run (together the "first call"), warm-up
//! runs, then timed runs. Each timed run is the wall clock around `Executable::run`, which
//! uploads every input, records all kernels into one compute pass, submits once and reads
//! every output back. Median and minimum are reported, with the compiled program's
//! statistics, and a Markdown table at the end.
//!
//! ```sh
//! cargo run --release --example bench                 # all workloads
//! cargo run --release --example bench -- --quick      # fewer runs
//! cargo run --release --example bench -- --profile    # also per-kernel times of each gradient
//! cargo run --release --example bench -- --check      # also compare with the f64 interpreter
//! cargo run --release --example bench -- --compile    # compile time against program length
//! ```
//!
//! `--compile` needs no adapter: it differentiates and compiles elementwise chains of
//! 100 to 10,000 ops and reports the time of each step against program length.
//!
//! Each program is loaded on a fresh runtime, so its first call compiles every pipeline
//! (nothing comes from another program's pipeline cache). Mesa also keeps compiled
//! shaders on disk: set `MESA_SHADER_CACHE_DISABLE=true` for cold first calls.
//! Afterwards each forward and its gradient are loaded together and run alternately, so
//! the grad / forward ratio is measured under the same machine state.

use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::time::Instant;
use wgrad::passes::Optimizations;
use wgrad::{Builder, DType, Graph, Options, Runtime, RuntimeOptions, Tensor, Tier, Type};

#[derive(Parser)]
#[command(about = "Time the WORKLOADS.md programs on the selected adapter")]
struct Args {
    /// Timed runs per program (after warm-up); fewer when a program is slow, see
    /// `--budget`.
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// Warm-up runs per program (after the first call).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Seconds of timed runs per program at most (at least 3 runs are always timed).
    #[arg(long, default_value_t = 8.0)]
    budget: f64,
    /// 3 timed runs, 1 warm-up.
    #[arg(long)]
    quick: bool,
    /// Also time each kernel of every gradient (and the matmul) with timestamp queries.
    #[arg(long)]
    profile: bool,
    /// Also evaluate every program with the f64 interpreter and report the largest error.
    #[arg(long)]
    check: bool,
    /// Skip the interleaved forward/grad runs that measure the grad / forward ratio.
    #[arg(long)]
    no_paired: bool,
    /// Print every timed run, in order.
    #[arg(long)]
    times: bool,
    /// Only workloads whose label contains this (e.g. `W1`, `matmul`).
    #[arg(long)]
    only: Option<String>,
    /// Seed of the inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Switch an optimization off (repeatable) in differentiation and lowering, to
    /// measure what it buys.
    #[arg(long, value_parser = Optimizations::NAMES)]
    without: Vec<String>,
    /// Only measure compile time against program length (no adapter needed).
    #[arg(long)]
    compile: bool,
    /// Chain lengths for `--compile`.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 3000, 10000])]
    lengths: Vec<usize>,
}

type Inputs = HashMap<String, Tensor>;
type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;
/// Extra work on a loaded program, given the outputs of its first run.
type After<'a> = dyn FnMut(&[(String, Tensor)], &mut wgrad::Executable<'_>) -> BoxResult<()> + 'a;

fn normal(rng: &mut StdRng, shape: &[usize], std: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let d = Normal::new(0.0, std).expect("a positive standard deviation");
    let data = (0..n).map(|_| d.sample(rng)).collect();
    Tensor::new(Type::f32(shape), data).expect("matching sizes")
}

// ---- Workloads ---------------------------------------------------------------------

/// W1: a 784-512-512-10 MLP, mean cross-entropy with integer labels.
fn w1(rng: &mut StdRng) -> wgrad::Result<(Graph, Vec<&'static str>, Inputs)> {
    const B: usize = 256;
    let dims = [784, 512, 512, 10];
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[B, dims[0]]))?;
    let labels = b.input("labels", Type::new(DType::I32, &[B]))?;
    let mut h = x;
    let mut inputs = Inputs::new();
    for layer in 0..3 {
        let (fan_in, fan_out) = (dims[layer], dims[layer + 1]);
        let (wn, bn) = (format!("w{}", layer + 1), format!("b{}", layer + 1));
        let w = b.input(&wn, Type::f32(&[fan_in, fan_out]))?;
        let bias = b.input(&bn, Type::f32(&[fan_out]))?;
        inputs.insert(
            wn,
            normal(rng, &[fan_in, fan_out], (2.0 / fan_in as f64).sqrt()),
        );
        inputs.insert(bn, normal(rng, &[fan_out], 0.1));
        h = b.linear(h, w, bias)?;
        if layer < 2 {
            h = b.relu(h)?;
        }
    }
    let loss = b.cross_entropy(h, labels)?;
    b.output("loss", loss)?;
    inputs.insert("x".into(), normal(rng, &[B, dims[0]], 1.0));
    let label_data = (0..B).map(|i| ((i * 7 + 3) % 10) as f64).collect();
    inputs.insert(
        "labels".into(),
        Tensor::new(Type::new(DType::I32, &[B]), label_data)?,
    );
    Ok((
        b.finish()?,
        vec!["w1", "b1", "w2", "b2", "w3", "b3"],
        inputs,
    ))
}

/// W2: softmax log-loss written literally from primitives, no max subtraction.
fn w2(rng: &mut StdRng) -> wgrad::Result<(Graph, Vec<&'static str>, Inputs)> {
    const B: usize = 1024;
    const D: usize = 256;
    const C: usize = 1000;
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[B, D]))?;
    let w = b.input("w", Type::f32(&[D, C]))?;
    let onehot = b.input("onehot", Type::f32(&[B, C]))?;
    let z = b.matmul(x, w)?;
    let e = b.exp(z)?;
    let s = b.sum(e, &[1])?;
    let sb = b.broadcast_in_dim(s, &[B, C], &[0])?;
    let p = b.div(e, sb)?;
    let l = b.log(p)?;
    let m = b.mul(onehot, l)?;
    let t = b.sum(m, &[0, 1])?;
    let loss = b.neg(t)?;
    b.output("loss", loss)?;

    let mut inputs = Inputs::new();
    inputs.insert("x".into(), normal(rng, &[B, D], 1.0));
    // Logits z ~ N(0, 1): finite even without the max subtraction.
    inputs.insert("w".into(), normal(rng, &[D, C], (1.0 / D as f64).sqrt()));
    let mut oh = vec![0.0; B * C];
    for i in 0..B {
        oh[i * C + (i * 37 + 11) % C] = 1.0;
    }
    inputs.insert("onehot".into(), Tensor::new(Type::f32(&[B, C]), oh)?);
    Ok((b.finish()?, vec!["w"], inputs))
}

/// W3: a weight shared by two products; (a) sums the products, (b) sums the losses.
fn w3(rng: &mut StdRng, merged: bool) -> wgrad::Result<(Graph, Vec<&'static str>, Inputs)> {
    const B: usize = 256;
    const N: usize = 512;
    let mut b = Builder::new();
    let w = b.input("w", Type::f32(&[N, N]))?;
    let x1 = b.input("x1", Type::f32(&[B, N]))?;
    let x2 = b.input("x2", Type::f32(&[B, N]))?;
    let p1 = b.matmul(x1, w)?;
    let p2 = b.matmul(x2, w)?;
    let loss = if merged {
        let s = b.add(p1, p2)?;
        let t = b.tanh(s)?;
        b.sum_all(t)?
    } else {
        let t1 = b.tanh(p1)?;
        let t2 = b.tanh(p2)?;
        let s1 = b.sum_all(t1)?;
        let s2 = b.sum_all(t2)?;
        b.add(s1, s2)?
    };
    b.output("loss", loss)?;
    let mut inputs = Inputs::new();
    inputs.insert("w".into(), normal(rng, &[N, N], (1.0 / N as f64).sqrt()));
    inputs.insert("x1".into(), normal(rng, &[B, N], 1.0));
    inputs.insert("x2".into(), normal(rng, &[B, N], 1.0));
    Ok((b.finish()?, vec!["w"], inputs))
}

/// One 1024×1024×1024 product.
fn matmul(rng: &mut StdRng) -> wgrad::Result<(Graph, Inputs)> {
    const N: usize = 1024;
    let mut b = Builder::new();
    let a = b.input("a", Type::f32(&[N, N]))?;
    let c = b.input("b", Type::f32(&[N, N]))?;
    let p = b.matmul(a, c)?;
    b.output("c", p)?;
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), normal(rng, &[N, N], 1.0));
    inputs.insert("b".into(), normal(rng, &[N, N], 1.0));
    Ok((b.finish()?, inputs))
}

// ---- Measurement -------------------------------------------------------------------

struct Measurement {
    label: String,
    kernels: u64,
    matmul_kernels: u64,
    temp_bytes: u64,
    peak_bytes: u64,
    compile_ms: f64,
    first_call_ms: f64,
    times_ms: Vec<f64>,
    /// Sum of the profiled kernel times of one run, when profiled.
    kernel_sum_ms: Option<f64>,
    flops: Option<f64>,
}

impl Measurement {
    fn median(&self) -> f64 {
        median(self.times_ms.clone())
    }
    fn min(&self) -> f64 {
        self.times_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

struct Settings {
    optimizations: Optimizations,
    repeats: usize,
    warmup: usize,
    budget: f64,
    profile: bool,
    check: bool,
    times: bool,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Compiles, loads and times one program on a fresh runtime. `after` gets the outputs of
/// the first run and the loaded executable (for extra checks).
fn measure(
    label: &str,
    graph: &Graph,
    inputs: &Inputs,
    s: &Settings,
    flops: Option<f64>,
    after: &mut After<'_>,
) -> BoxResult<Measurement> {
    let rt = Runtime::new(&RuntimeOptions {
        timestamps: s.profile,
        ..RuntimeOptions::default()
    })?;
    let options = Options {
        optimizations: s.optimizations,
        ..Options::new(rt.target().clone())
    };

    let start = Instant::now();
    let program = wgrad::compile(graph, &options)?;
    let compile_ms = ms(start);
    let mut exe = rt.load(&program)?;
    let load_ms = ms(start) - compile_ms;
    let first = exe.run(inputs)?;
    let first_call_ms = ms(start);
    // What is timed below is the program's own kernels: with a quick first tier, wait
    // for them.
    let quick = exe.tier() == Tier::Quick;
    exe.wait_final_tier()?;
    let final_tier_ms = ms(start);

    let st = &program.stats;
    println!("\n## {label}");
    println!(
        "  {} kernel{} ({} matmul), temp {:.3} MiB, all buffers {:.3} MiB, {:.1} MFLOP, {:.1} MB moved",
        st.kernels,
        if st.kernels == 1 { "" } else { "s" },
        st.matmul_kernels,
        mib(st.temp_bytes),
        mib(st.peak_bytes),
        st.flops as f64 / 1e6,
        st.bytes_moved as f64 / 1e6
    );
    println!(
        "  first call {first_call_ms:.1} ms (compile {compile_ms:.1}, load {load_ms:.1}, first run {:.1}); {} pipelines",
        first_call_ms - compile_ms - load_ms,
        rt.cached_pipelines()
    );
    if quick {
        println!(
            "  the first call ran the quick tier; the program's own kernels were compiled {final_tier_ms:.0} ms after the start"
        );
    }
    for (name, t) in &first {
        if t.data.len() == 1 {
            println!("  {name} = {}", t.data[0]);
        } else {
            let finite = t.data.iter().all(|v| v.is_finite());
            let norm = t.data.iter().map(|v| v * v).sum::<f64>().sqrt();
            println!(
                "  {name}: {} values, |.|₂ = {norm:.6e}, all finite: {finite}",
                t.data.len()
            );
        }
    }
    after(&first, &mut exe)?;

    if s.check {
        let t = Instant::now();
        let reference = wgrad::eval(graph, inputs)?;
        let mut worst: f64 = 0.0;
        for ((name, gpu), (_, cpu)) in first.iter().zip(&reference) {
            let scale = cpu
                .data
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .max(1e-30);
            let err = gpu
                .data
                .iter()
                .zip(&cpu.data)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            println!(
                "  check {name}: max |gpu − f64| = {err:.3e} ({:.3e} of max |f64|)",
                err / scale
            );
            worst = worst.max(err / scale);
        }
        println!(
            "  interpreter took {:.0} ms; worst relative error {worst:.3e}",
            ms(t)
        );
    }

    for _ in 0..s.warmup {
        exe.run(inputs)?;
    }
    let mut times_ms = Vec::with_capacity(s.repeats);
    let timed = Instant::now();
    for i in 0..s.repeats {
        if i >= 3 && timed.elapsed().as_secs_f64() > s.budget {
            break;
        }
        let t = Instant::now();
        let out = exe.run(inputs)?;
        times_ms.push(ms(t));
        std::hint::black_box(out);
    }

    let mut kernel_sum_ms = None;
    if s.profile && rt.target().features.timestamps {
        let t = Instant::now();
        let (_, timings) = exe.run_profiled(inputs)?;
        let wall = ms(t);
        let total: u64 = timings.iter().map(|(_, ns)| ns).sum();
        kernel_sum_ms = Some(total as f64 / 1e6);
        println!(
            "  profile (one run, {wall:.2} ms wall clock; kernel times sum to {:.2} ms):",
            total as f64 / 1e6
        );
        println!(
            "    {:>8}  {:>5}  {:>8}  {:>7}  {:<28} {:<20} dispatch",
            "ms", "%", "GFLOP/s", "GB/s", "kernel", "variant"
        );
        for ((name, ns), kernel) in timings.iter().zip(&program.kernels) {
            let secs = *ns as f64 / 1e9;
            let rate = |x: u64| {
                if secs > 0.0 {
                    x as f64 / secs / 1e9
                } else {
                    0.0
                }
            };
            println!(
                "    {:>8.3}  {:>5.1}  {:>8.2}  {:>7.2}  {:<28} {:<20} {:?} x wg {:?}",
                *ns as f64 / 1e6,
                100.0 * *ns as f64 / total.max(1) as f64,
                rate(kernel.flops),
                rate(kernel.bytes_moved),
                name,
                kernel.variant,
                kernel.dispatch,
                kernel.workgroup_size
            );
        }
    } else if s.profile {
        println!("  (the adapter cannot write timestamps: no profile)");
    }

    let m = Measurement {
        label: label.to_string(),
        kernels: st.kernels,
        matmul_kernels: st.matmul_kernels,
        temp_bytes: st.temp_bytes,
        peak_bytes: st.peak_bytes,
        compile_ms,
        first_call_ms,
        times_ms,
        kernel_sum_ms,
        flops,
    };
    print!(
        "  {} runs: median {:.3} ms, min {:.3} ms",
        m.times_ms.len(),
        m.median(),
        m.min()
    );
    if let Some(f) = flops {
        print!(
            " → {:.2} GFLOP/s (median), {:.2} (min)",
            f / m.median() / 1e6,
            f / m.min() / 1e6
        );
    }
    println!();
    if s.times {
        let list: Vec<String> = m.times_ms.iter().map(|t| format!("{t:.2}")).collect();
        println!("  every run (ms): {}", list.join(" "));
    }
    Ok(m)
}

/// Loads `forward` and `grad` on one runtime and runs them alternately, so both see the
/// same machine state; returns the median forward and grad times (ms) and the median of
/// the per-pair ratios grad / forward.
fn paired(
    (forward, forward_inputs): (&Graph, &Inputs),
    grad: &Graph,
    inputs: &Inputs,
    s: &Settings,
) -> BoxResult<(f64, f64, f64)> {
    let rt = Runtime::new(&RuntimeOptions::default())?;
    let options = Options {
        optimizations: s.optimizations,
        ..Options::new(rt.target().clone())
    };
    let fp = wgrad::compile(forward, &options)?;
    let gp = wgrad::compile(grad, &options)?;
    alternate(&rt, (&fp, forward_inputs), (&gp, inputs), s)
}

/// Loads two compiled programs on `rt` and runs them alternately; returns the median
/// time (ms) of each and the median of the per-pair ratios second / first.
fn alternate(
    rt: &Runtime,
    (first, first_inputs): (&wgrad::Program, &Inputs),
    (second, inputs): (&wgrad::Program, &Inputs),
    s: &Settings,
) -> BoxResult<(f64, f64, f64)> {
    let mut fe = rt.load(first)?;
    let mut ge = rt.load(second)?;
    fe.wait_final_tier()?;
    ge.wait_final_tier()?;
    for _ in 0..s.warmup.max(1) {
        fe.run(first_inputs)?;
        ge.run(inputs)?;
    }
    let (mut ft, mut gt, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let timed = Instant::now();
    for i in 0..s.repeats {
        if i >= 3 && timed.elapsed().as_secs_f64() > s.budget {
            break;
        }
        let t = Instant::now();
        std::hint::black_box(fe.run(first_inputs)?);
        let f = ms(t);
        let t = Instant::now();
        std::hint::black_box(ge.run(inputs)?);
        let g = ms(t);
        ft.push(f);
        gt.push(g);
        ratios.push(g / f);
    }
    Ok((median(ft), median(gt), median(ratios)))
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    let n = t.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        t[n / 2]
    } else {
        0.5 * (t[n / 2 - 1] + t[n / 2])
    }
}

/// W4, Enzyme's normalize written as a loop: out[i] = x[i] / sqrt(Σ x·x) for i in 0..n
/// (reading `x[i]` and writing `out[i]`), loss = Σ out·c.
fn w4(rng: &mut StdRng, n: usize) -> wgrad::Result<(Graph, Vec<&'static str>, Inputs)> {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n]))?;
    let c = b.input("c", Type::f32(&[n]))?;
    let zero = b.full(0.0, &Type::f32(&[n]))?;
    let out = b.loop_(n as u32, &[zero], &[x], |body, i, out, inv| {
        let sq = body.mul(inv[0], inv[0])?;
        let ss = body.sum_all(sq)?;
        let norm = body.sqrt(ss)?;
        let nb = body.broadcast_in_dim(norm, &[1], &[])?;
        let xi = body.dynamic_slice(inv[0], &[i], &[1])?;
        let q = body.div(xi, nb)?;
        Ok(vec![body.dynamic_update_slice(out[0], q, &[i])?])
    })?;
    let oc = b.mul(out[0], c)?;
    let loss = b.sum_all(oc)?;
    b.output("loss", loss)?;
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), normal(rng, &[n], 1.0));
    inputs.insert("c".into(), normal(rng, &[n], 1.0));
    Ok((b.finish()?, vec!["x"], inputs))
}

/// W7, a recurrent network (`examples/programs/w7.wg`): h_t = tanh(x_t·U + h_{t−1}·W + b)
/// for t = 1..T (x_t read with `dynamic_slice`), then a softmax log-loss of h_T·V + c.
/// The loop runs on the device.
fn w7(rng: &mut StdRng) -> BoxResult<(Graph, Vec<&'static str>, Inputs)> {
    const T: usize = 100;
    const B: usize = 32;
    const D: usize = 64;
    const H: usize = 128;
    let text = include_str!("programs/w7.wg");
    let graph = wgrad::parse(text)?;
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), normal(rng, &[T, B, D], 1.0));
    inputs.insert("u".into(), normal(rng, &[D, H], (1.0 / D as f64).sqrt()));
    inputs.insert("w".into(), normal(rng, &[H, H], (1.0 / H as f64).sqrt()));
    inputs.insert("b".into(), normal(rng, &[H], 0.1));
    inputs.insert("v".into(), normal(rng, &[H, 10], (1.0 / H as f64).sqrt()));
    inputs.insert("c".into(), Tensor::new(Type::f32(&[10]), vec![0.0; 10])?);
    let label_data = (0..B).map(|i| ((i * 7 + 3) % 10) as f64).collect();
    inputs.insert(
        "labels".into(),
        Tensor::new(Type::new(DType::I32, &[B]), label_data)?,
    );
    Ok((graph, vec!["u", "w", "b", "v", "c"], inputs))
}

/// W6, the ADBench GMM objective (d = 10, k = 25, n = 1000), with its inputs.
fn w6(rng: &mut StdRng) -> BoxResult<(Graph, Vec<&'static str>, Inputs)> {
    let graph = wgrad::parse(include_str!("programs/gmm.wg"))?;
    let mut inputs = Inputs::new();
    inputs.insert("alphas".into(), normal(rng, &[25], 1.0));
    inputs.insert("means".into(), normal(rng, &[25, 10], 1.0));
    inputs.insert("icf".into(), normal(rng, &[25, 55], 0.3));
    inputs.insert("x".into(), normal(rng, &[1000, 10], 1.0));
    Ok((graph, vec!["alphas", "means", "icf"], inputs))
}

/// W5 at `n` elements: `f(x) = Σ tanh(x)·sin(x)`; the program of `f` and its
/// directional derivatives of orders 1 to 4 along `tan.x` (five sums, siblings); the
/// 4th derivative alone; and their inputs.
fn w5(rng: &mut StdRng, n: usize) -> BoxResult<(Graph, Graph, Graph, Inputs)> {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n]))?;
    let t = b.tanh(x)?;
    let s = b.sin(x)?;
    let p = b.mul(t, s)?;
    let f = b.sum_all(p)?;
    b.output("f", f)?;
    let forward = b.finish()?;
    let every = wgrad::batch::directional(&forward, None, "x", 4)?;
    let mut fourth = every.clone();
    fourth.retain_outputs(|name| name == "d4.f");
    let mut inputs = Inputs::new();
    inputs.insert("x".into(), normal(rng, &[n], 1.0));
    inputs.insert("tan.x".into(), normal(rng, &[n], 1.0));
    Ok((forward, every, fourth, inputs))
}

/// A chain of `n` elementwise ops over `x: f32[256]`, summed into `loss`: tanh, sin, a
/// product with `x` and a sum with `x` in turn, or with `unary`, tanh, sin, exp and cos.
fn chain(n: usize, unary: bool) -> wgrad::Result<Graph> {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[256]))?;
    let mut v = x;
    for i in 0..n {
        v = match (i % 4, unary) {
            (0, _) => b.tanh(v)?,
            (1, _) => b.sin(v)?,
            (2, false) => b.mul(v, x)?,
            (2, true) => b.exp(v)?,
            (_, false) => b.add(v, x)?,
            (_, true) => b.cos(v)?,
        };
    }
    let loss = b.sum_all(v)?;
    b.output("loss", loss)?;
    Ok(b.finish()?)
}

/// Compile time against program length: for each chain length, the median over
/// `repeats` of differentiating the chain and of compiling its gradient for the
/// software-Vulkan preset, as a Markdown table.
fn compile_times(lengths: &[usize], repeats: usize) -> BoxResult<()> {
    println!(
        "| chain ops | gradient nodes | kernels | grad ms | compile ms | total ms | µs per node |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in lengths {
        let f = chain(n, false)?;
        let (mut grad_ms, mut compile_ms) = (Vec::new(), Vec::new());
        let mut shape = (0, 0);
        for _ in 0..repeats {
            let t = Instant::now();
            let d = wgrad::grad(&f, None, &["x"])?;
            grad_ms.push(ms(t));
            let t = Instant::now();
            let p = wgrad::compile(&d, &Options::default())?;
            compile_ms.push(ms(t));
            shape = (d.len(), p.stats.kernels);
        }
        let (g, c) = (median(grad_ms), median(compile_ms));
        println!(
            "| {n} | {} | {} | {g:.0} | {c:.0} | {:.0} | {:.1} |",
            shape.0,
            shape.1,
            g + c,
            (g + c) * 1000.0 / shape.0 as f64
        );
    }
    Ok(())
}

fn no_extra(_: &[(String, Tensor)], _: &mut wgrad::Executable<'_>) -> BoxResult<()> {
    Ok(())
}

fn main() -> BoxResult<()> {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    let args = Args::parse();
    let optimizations = args
        .without
        .iter()
        .try_fold(Optimizations::ALL, |o, name| o.without(name))
        .ok_or("unknown optimization")?;
    let s = Settings {
        optimizations,
        repeats: if args.quick { 3 } else { args.repeats.max(1) },
        warmup: if args.quick { 1 } else { args.warmup },
        budget: args.budget,
        profile: args.profile,
        check: args.check,
        times: args.times,
    };
    let wanted = |label: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| label.to_lowercase().contains(&o.to_lowercase()))
    };
    let whole = Instant::now();
    if args.compile {
        return compile_times(&args.lengths, if args.quick { 1 } else { 3 });
    }

    let t = Instant::now();
    let rt = Runtime::new(&RuntimeOptions::default())?;
    println!("adapter: {}", rt.adapter());
    println!(
        "target: {} ({})",
        rt.target().name,
        rt.target().class.name()
    );
    println!("opening the device took {:.0} ms", ms(t));
    // Mesa keeps compiled shaders in an on-disk cache, which decides first-call times.
    for var in ["MESA_SHADER_CACHE_DISABLE", "MESA_SHADER_CACHE_DIR"] {
        if let Ok(v) = std::env::var(var) {
            println!("{var}={v}");
        }
    }
    drop(rt);
    println!(
        "settings: {} timed runs (at most {:.0} s each), {} warm-up, seed {}",
        s.repeats, s.budget, s.warmup, args.seed
    );

    let mut results: Vec<Measurement> = Vec::new();
    let mut rng = StdRng::seed_from_u64(args.seed);

    let workloads: Vec<(&str, _)> = vec![
        ("W1 MLP", w1(&mut rng)?),
        ("W2 softmax-logloss", w2(&mut rng)?),
        ("W3a shared W, Σtanh(x1·W + x2·W)", w3(&mut rng, true)?),
        (
            "W3b shared W, Σtanh(x1·W) + Σtanh(x2·W)",
            w3(&mut rng, false)?,
        ),
        ("W4 normalize loop N=1024", w4(&mut rng, 1024)?),
        ("W4 normalize loop N=16384", w4(&mut rng, 16384)?),
    ];
    let mut workloads = workloads;
    workloads.push(("W6 GMM d=10 k=25 n=1000", w6(&mut rng)?));
    workloads.push(("W7 RNN T=100", w7(&mut rng)?));
    for (name, (forward, wrt, inputs)) in &workloads {
        let fwd_label = format!("{name} forward");
        let grad_label = format!("{name} grad");
        if wanted(&fwd_label) {
            let no_profile = Settings {
                profile: false,
                ..s
            };
            results.push(measure(
                &fwd_label,
                forward,
                inputs,
                &no_profile,
                None,
                &mut no_extra,
            )?);
        }
        if wanted(&grad_label) {
            let graph = wgrad::autodiff::grad_with(forward, None, wrt, &s.optimizations)?;
            let mut extra =
                |_: &[(String, Tensor)], exe: &mut wgrad::Executable<'_>| -> BoxResult<()> {
                    if !name.starts_with("W2") {
                        return Ok(());
                    }
                    // The goal asks for a finite loss and gradient with logits of magnitude
                    // ~1e3; the literal formula overflows exp unless rewritten.
                    let mut big = inputs.clone();
                    let w = big.get_mut("w").expect("W2 has input w");
                    for v in &mut w.data {
                        *v *= 1000.0;
                    }
                    let out = exe.run(&big)?;
                    let finite = |n: &str| {
                        out.iter()
                            .find(|(k, _)| k == n)
                            .is_some_and(|(_, t)| t.data.iter().all(|v| v.is_finite()))
                    };
                    println!(
                        "  with W × 1000 (logits ≈ 1e3): loss finite: {}, grad.w finite: {}",
                        finite("loss"),
                        finite("grad.w")
                    );
                    Ok(())
                };
            results.push(measure(&grad_label, &graph, inputs, &s, None, &mut extra)?);
        }
    }

    if wanted("W5") {
        let (forward, every, fourth, inputs) = w5(&mut rng, 1 << 20)?;
        let mut x_only = inputs.clone();
        x_only.remove("tan.x");
        results.push(measure(
            "W5 f, N=2^20",
            &forward,
            &x_only,
            &s,
            None,
            &mut no_extra,
        )?);
        let programs = [
            ("W5 f and d1…d4 along one tangent", &every),
            ("W5 d4 alone", &fourth),
        ];
        for (label, g) in programs {
            results.push(measure(label, g, &inputs, &s, None, &mut no_extra)?);
        }
        if !args.no_paired {
            for (label, g) in programs {
                let (fm, dm, r) = paired((&forward, &x_only), g, &inputs, &s)?;
                println!(
                    "{label}: interleaved with f: f {fm:.2} ms, it {dm:.2} ms (medians), median of paired ratios = {r:.2}"
                );
            }
        }
    }

    if wanted("chain") {
        // Gradients of 1,500-op elementwise chains: checkpointed segments against a
        // value stored every few ops (`--without checkpoint`).
        let mut inputs = Inputs::new();
        inputs.insert("x".into(), normal(&mut rng, &[256], 0.5));
        let chains = [
            ("chain of 1,500 unary ops, gradient", chain(1500, true)?),
            (
                "chain of 1,500 ops reading x, gradient",
                chain(1500, false)?,
            ),
        ];
        for (label, f) in chains {
            let d = wgrad::autodiff::grad_with(&f, None, &["x"], &s.optimizations)?;
            results.push(measure(label, &d, &inputs, &s, None, &mut no_extra)?);
            if args.no_paired || !s.optimizations.checkpoint {
                continue;
            }
            let rt = Runtime::new(&RuntimeOptions::default())?;
            let options = Options {
                optimizations: s.optimizations,
                ..Options::new(rt.target().clone())
            };
            let apart = Options {
                optimizations: s.optimizations.without("checkpoint").expect("a known name"),
                ..options.clone()
            };
            let (with, without) = (wgrad::compile(&d, &options)?, wgrad::compile(&d, &apart)?);
            let (wm, am, r) = alternate(&rt, (&with, &inputs), (&without, &inputs), &s)?;
            println!(
                "{label}: {} kernels against {} without checkpoints, interleaved: {wm:.2} ms against {am:.2} ms (medians), median of paired ratios without / with = {r:.2}",
                with.stats.kernels, without.stats.kernels
            );
        }
    }

    if wanted("matmul 1024³") {
        let (graph, inputs) = matmul(&mut rng)?;
        let n = 1024usize;
        let flops = 2.0 * (n * n * n) as f64;
        let mut spot = |out: &[(String, Tensor)], _: &mut wgrad::Executable<'_>| -> BoxResult<()> {
            // Spot-check entries against an f64 product of the (f32-rounded) inputs.
            let (a, b) = (&inputs["a"].data, &inputs["b"].data);
            let c = &out[0].1.data;
            let mut worst: f64 = 0.0;
            for k in 0..64usize {
                let (i, j) = ((k * 389 + 5) % n, (k * 733 + 17) % n);
                let exact: f64 = (0..n)
                    .map(|p| f64::from(a[i * n + p] as f32) * f64::from(b[p * n + j] as f32))
                    .sum();
                worst = worst.max((c[i * n + j] - exact).abs());
            }
            println!(
                "  spot check of 64 entries: max |gpu − f64| = {worst:.3e} (entries are ~N(0, 1024))"
            );
            Ok(())
        };
        results.push(measure(
            "matmul 1024³",
            &graph,
            &inputs,
            &s,
            Some(flops),
            &mut spot,
        )?);
    }

    println!("\n## Results (wall clock around `Executable::run`: upload, one submit, readback)\n");
    println!(
        "| program | kernels | matmul kernels | temp MiB | all buffers MiB | compile ms | first call ms | runs | median ms | min ms | GFLOP/s (median) |{}",
        if s.profile { " kernel sum ms |" } else { "" }
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if s.profile { "---:|" } else { "" }
    );
    for m in &results {
        let gflops = m
            .flops
            .map(|f| format!("{:.2}", f / m.median() / 1e6))
            .unwrap_or_else(|| "".into());
        let ksum = if s.profile {
            m.kernel_sum_ms
                .map(|k| format!(" {k:.2} |"))
                .unwrap_or_else(|| " |".into())
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.1} | {:.0} | {} | {:.2} | {:.2} | {} |{}",
            m.label,
            m.kernels,
            m.matmul_kernels,
            mib(m.temp_bytes),
            mib(m.peak_bytes),
            m.compile_ms,
            m.first_call_ms,
            m.times_ms.len(),
            m.median(),
            m.min(),
            gflops,
            ksum
        );
    }
    println!();
    for (name, (forward, wrt, inputs)) in &workloads {
        let g = format!("{name} grad");
        let f = format!("{name} forward");
        let find = |l: &str| {
            results
                .iter()
                .find(|m| m.label == l)
                .map(Measurement::median)
        };
        if let (Some(g), Some(f)) = (find(&g), find(&f)) {
            println!(
                "{name}: grad / forward (medians of the runs above) = {:.2}",
                g / f
            );
        }
        if wanted(&g) && wanted(&f) && !args.no_paired {
            let (fm, gm, r) = paired(
                (forward, inputs),
                &wgrad::autodiff::grad_with(forward, None, wrt, &s.optimizations)?,
                inputs,
                &s,
            )?;
            println!(
                "{name}: interleaved forward/grad runs: forward {fm:.2} ms, grad {gm:.2} ms (medians), median of paired grad / forward = {r:.2}"
            );
        }
    }
    println!("\nbench took {:.1} s", whole.elapsed().as_secs_f64());
    Ok(())
}
