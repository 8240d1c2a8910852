//! Runs the MLP's gradient on the GPU through the async API: several runs, each with
//! its own inputs, are submitted before any is read back (`Executable::submit`), then
//! awaited together; one more is awaited on its own (`Executable::run_async`). Inputs
//! come from NumPy's archive of the example's inputs.
//!
//! Run with `cargo run --release --example async_runs`.

use std::collections::HashMap;
use wgrad::{Runtime, RuntimeOptions, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    let root = env!("CARGO_MANIFEST_DIR");
    let f = wgrad::parse(&std::fs::read_to_string(format!(
        "{root}/examples/programs/mlp.wg"
    ))?)?;
    let df = wgrad::grad(&f, None, &["w1", "b1", "w2", "b2"])?;
    let inputs = wgrad::io::read_inputs(format!("{root}/tests/data/numpy/mlp_inputs.npz"))?;

    let rt = Runtime::new(&RuntimeOptions::default())?;
    let program = wgrad::compile(&df, &wgrad::Options::new(rt.target().clone()))?;
    // Loading is a future too: the pipelines are created on another thread.
    let mut exe = futures::executor::block_on(rt.load_async(&program))?;
    println!("{} kernels on {}", program.kernels.len(), rt.adapter());

    // Four batches: the inputs with the first layer's weights scaled by 1, ½, ¼, ⅛.
    let batches: Vec<HashMap<String, Tensor>> = (0..4)
        .map(|k| {
            let mut batch = inputs.clone();
            let w1 = &inputs["w1"];
            let scale = 0.5f64.powi(k);
            let scaled = w1.data.iter().map(|x| x * scale).collect();
            batch.insert(
                "w1".into(),
                Tensor::new(w1.ty.clone(), scaled).expect("same type"),
            );
            batch
        })
        .collect();
    let pending = batches
        .iter()
        .map(|batch| exe.submit(batch))
        .collect::<Result<Vec<_>, _>>()?;
    let results = futures::executor::block_on(futures::future::join_all(pending));
    for (k, outputs) in results.into_iter().enumerate() {
        let outputs = outputs?;
        let loss = outputs
            .iter()
            .find(|(n, _)| n == "loss")
            .map(|(_, t)| t.data[0]);
        println!("batch {k}: loss {:.6}", loss.unwrap_or(f64::NAN));
    }
    let outputs = futures::executor::block_on(exe.run_async(&inputs))?;
    let norm: f64 = outputs
        .iter()
        .find(|(n, _)| n == "grad.w1")
        .map(|(_, t)| t.data.iter().map(|x| x * x).sum::<f64>().sqrt())
        .unwrap_or(f64::NAN);
    println!("awaited alone: |grad.w1| = {norm:.6}");
    Ok(())
}
