//! Trains a 64-128-10 MLP classifier on the UCI handwritten digits, entirely on the GPU.
//!
//! The whole training step — forward pass, gradient, and the SGD-with-momentum update —
//! is one compiled program: wgrad differentiates the loss, appends the update, and
//! declares each `new.<w>` output as the next value of input `<w>`, so parameters and
//! momenta stay on the device between steps and only the loss is read back.
//!
//! Run with `cargo run --release --example train_digits`. Data: the UCI "Optical
//! Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak, 1998), CC BY 4.0;
//! see `examples/data/README.md`.

use clap::Parser;
use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::io::Read;
use std::time::Instant;
use wgrad::{Builder, DType, Graph, Options, Runtime, RuntimeOptions, Tensor, Tier, Type};

#[path = "common/momentum.rs"]
mod momentum;

#[derive(Parser)]
#[command(about = "Train an MLP on the UCI digits on the GPU")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Seed for the split, the initialization and the shuffling.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where to write the plot of the training loss and held-out accuracy per epoch.
    #[arg(long, default_value = "train_digits.png")]
    plot: std::path::PathBuf,
}

const FEATURES: usize = 64;
const CLASSES: usize = 10;
const PARAMS: [&str; 4] = ["w1", "b1", "w2", "b2"];

/// Images scaled to [0, 1] and their labels.
struct Digits {
    x: Vec<[f64; FEATURES]>,
    y: Vec<usize>,
}

fn load_digits() -> Result<Digits, Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    let mut d = Digits {
        x: Vec::new(),
        y: Vec::new(),
    };
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let fields: Vec<f64> = line
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("digits.csv line {}: {e}", n + 1))?;
        if fields.len() != FEATURES + 1 {
            return Err(format!("digits.csv line {}: {} fields", n + 1, fields.len()).into());
        }
        let mut row = [0.0; FEATURES];
        for (r, f) in row.iter_mut().zip(&fields) {
            *r = f / 16.0;
        }
        d.x.push(row);
        d.y.push(fields[FEATURES] as usize);
    }
    Ok(d)
}

/// `z = relu(x·w1 + b1)·w2 + b2` for `x[n, 64]`; returns the builder's logits.
fn logits(b: &mut Builder, n: usize, hidden: usize) -> wgrad::Result<(wgrad::Value, wgrad::Value)> {
    let x = b.input("x", Type::f32(&[n, FEATURES]))?;
    let labels = b.input("labels", Type::new(DType::I32, &[n]))?;
    let w1 = b.input("w1", Type::f32(&[FEATURES, hidden]))?;
    let b1 = b.input("b1", Type::f32(&[hidden]))?;
    let w2 = b.input("w2", Type::f32(&[hidden, CLASSES]))?;
    let b2 = b.input("b2", Type::f32(&[CLASSES]))?;
    let h = b.linear(x, w1, b1)?;
    let h = b.relu(h)?;
    Ok((b.linear(h, w2, b2)?, labels))
}

/// One training step: loss, gradient, and the momentum update, with outputs `loss` and
/// `new.<p>` / `new.m.<p>` for every parameter `p` and its momentum `m.<p>`.
fn training_step(args: &Args) -> wgrad::Result<Graph> {
    let mut b = Builder::new();
    let (z, labels) = logits(&mut b, args.batch, args.hidden)?;
    let loss = b.cross_entropy(z, labels)?;
    b.output("loss", loss)?;
    let forward = b.finish()?;
    let with_grad = wgrad::grad(&forward, None, &PARAMS)?;

    momentum::with_momentum_update(&with_grad, &PARAMS, args.lr, args.momentum)
}

/// The number of correctly classified rows of `x[n, 64]` (ties count as correct).
fn correct_count(n: usize, hidden: usize) -> wgrad::Result<Graph> {
    let mut b = Builder::new();
    let (z, labels) = logits(&mut b, n, hidden)?;
    let idx = b.reshape(labels, &[n, 1])?;
    let picked = b.gather(z, idx, 1)?;
    let best = b.reduce_max(z, &[1])?;
    let best = b.reshape(best, &[n, 1])?;
    let hit = b.ge(picked, best)?;
    let hit = b.cast(hit, DType::F32)?;
    let count = b.sum_all(hit)?;
    b.output("correct", count)?;
    Ok(b.finish()?)
}

fn batch_tensors(d: &Digits, rows: &[usize]) -> wgrad::Result<(Tensor, Tensor)> {
    let x: Vec<f64> = rows.iter().flat_map(|&r| d.x[r]).collect();
    let y: Vec<f64> = rows.iter().map(|&r| d.y[r] as f64).collect();
    Ok((
        Tensor::new(Type::f32(&[rows.len(), FEATURES]), x)?,
        Tensor::new(Type::new(DType::I32, &[rows.len()]), y)?,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    let args = Args::parse();
    let data = load_digits()?;
    let mut rng = StdRng::seed_from_u64(args.seed);

    // A fixed held-out split: 20% of the rows.
    let mut order: Vec<usize> = (0..data.y.len()).collect();
    order.shuffle(&mut rng);
    let n_test = data.y.len() / 5;
    let (test, train) = order.split_at(n_test);
    let mut train = train.to_vec();
    println!(
        "digits: {} training rows, {} held out",
        train.len(),
        test.len()
    );

    let rt = Runtime::new(&RuntimeOptions::default())?;
    println!("adapter: {}", rt.adapter());
    let started = Instant::now();
    let step = wgrad::compile(&training_step(&args)?, &Options::new(rt.target().clone()))?;
    let eval = wgrad::compile(
        &correct_count(test.len(), args.hidden)?,
        &Options::new(rt.target().clone()),
    )?;
    let mut exe = rt.load(&step)?;
    let mut eval_exe = rt.load(&eval)?;
    println!(
        "training step: {} kernels ({} matmuls), {} state buffers on the device; compiled and loaded in {:.0} ms",
        step.stats.kernels,
        step.stats.matmul_kernels,
        step.state.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    // He initialization for weights, zeros for biases and momenta.
    let shapes = [
        ("w1", vec![FEATURES, args.hidden]),
        ("b1", vec![args.hidden]),
        ("w2", vec![args.hidden, CLASSES]),
        ("b2", vec![CLASSES]),
    ];
    for (name, shape) in &shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f64> = if shape.len() == 2 {
            let normal = Normal::new(0.0, (2.0 / shape[0] as f64).sqrt())?;
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        } else {
            vec![0.0; n]
        };
        exe.set(name, &Tensor::new(Type::f32(shape), data)?)?;
        exe.set(&format!("m.{name}"), &Tensor::zeros(&Type::f32(shape)))?;
    }

    let (test_x, test_y) = batch_tensors(&data, test)?;
    let mut steps = 0usize;
    // The first step also compiles the kernels' shaders on some drivers (lavapipe
    // compiles each at its first dispatch): timed apart, and announced.
    let mut first_step = 0.0;
    // The step from which the program's own kernels ran (after the quick tier's).
    let mut final_from: Option<usize> = None;
    let mut step_time = 0.0;
    let mut accuracy = 0.0;
    let batches_per_epoch = train.len() / args.batch;
    let bar = ProgressBar::new((args.epochs * batches_per_epoch) as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps, {elapsed} {msg}")?,
    );
    bar.set_message(match exe.tier() {
        // The quick tier's kernels compile in a fraction of the time; the program's own
        // compile on another thread from the second step on.
        Tier::Quick => format!(
            "(the first step compiles a quick tier of {} kernels…)",
            step.quick.as_ref().map_or(0, |q| q.kernels.len())
        ),
        Tier::Final => format!("(the first step compiles {} kernels…)", step.kernels.len()),
    });
    // Per epoch: (mean training loss, held-out accuracy).
    let mut history: Vec<(f64, f64)> = Vec::new();
    for epoch in 1..=args.epochs {
        train.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for rows in train.chunks_exact(args.batch) {
            let (x, y) = batch_tensors(&data, rows)?;
            let inputs = HashMap::from([("x".to_string(), x), ("labels".to_string(), y)]);
            let t = Instant::now();
            let out = exe.run(&inputs)?;
            if exe.tier() == Tier::Final && final_from.is_none() {
                final_from = Some(steps + 1);
            }
            if steps == 0 {
                first_step = t.elapsed().as_secs_f64();
                bar.set_message("");
            } else {
                step_time += t.elapsed().as_secs_f64();
            }
            loss_sum += out[0].1.data[0];
            batches += 1;
            steps += 1;
            bar.inc(1);
        }
        let mut inputs = HashMap::from([
            ("x".to_string(), test_x.clone()),
            ("labels".to_string(), test_y.clone()),
        ]);
        for p in PARAMS {
            inputs.insert(p.to_string(), exe.read(p)?);
        }
        let correct = eval_exe.run(&inputs)?[0].1.data[0];
        accuracy = correct / test.len() as f64;
        let loss = loss_sum / batches as f64;
        history.push((loss, accuracy));
        let line = format!(
            "epoch {epoch:3}: loss {loss:.4}, held-out accuracy {:.2}%",
            100.0 * accuracy
        );
        // A hidden bar (output not a terminal, as in CI logs) prints nothing itself.
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    }
    bar.finish_and_clear();
    plot(&args.plot, &history)?;
    println!(
        "plot of loss and accuracy per epoch: {}",
        args.plot.display()
    );
    println!(
        "final held-out accuracy: {:.2}% ({} steps, {:.3} ms per step after the first, which took {:.0} ms)",
        100.0 * accuracy,
        steps,
        1e3 * step_time / steps.saturating_sub(1).max(1) as f64,
        1e3 * first_step
    );
    match final_from {
        Some(1) | None => {}
        Some(step) => println!(
            "the quick tier ran steps 1 to {}; the program's own kernels from step {step} on",
            step - 1
        ),
    }
    Ok(())
}

/// Draws the training loss and the held-out accuracy per epoch, side by side, as a PNG.
fn plot(path: &std::path::Path, history: &[(f64, f64)]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    // The font is the example's own: no system font or library is needed.
    const FONT: &[u8] = include_bytes!("data/fonts/DejaVuSansMono.ttf");
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| "the bundled font does not load")?;
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let epochs = history.len().max(1) as f64;
    let series = [
        (
            left,
            "training loss",
            history.iter().map(|h| h.0).collect::<Vec<_>>(),
            RED,
        ),
        (
            right,
            "held-out accuracy",
            history.iter().map(|h| h.1).collect(),
            BLUE,
        ),
    ];
    for (area, title, values, color) in series {
        let top = values.iter().copied().fold(0.0f64, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1.0..epochs.max(2.0), 0.0..top.max(1e-9))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(LineSeries::new(
            values.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)),
            color.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}
