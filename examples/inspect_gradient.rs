//! Differentiates the MLP classifier of `examples/programs/mlp.wg`, prints the derivative
//! program, evaluates it on the f64 reference interpreter, and checks the gradient
//! against finite differences. Then takes a Hessian-vector product, forward over
//! reverse, of the same loss.
//!
//! Run with `cargo run --example inspect_gradient`.

use std::collections::HashMap;
use wgrad::{GradcheckOptions, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/programs");
    let f = wgrad::parse(&std::fs::read_to_string(format!("{dir}/mlp.wg"))?)?;
    let inputs =
        wgrad::json::parse_tensors(&std::fs::read_to_string(format!("{dir}/mlp.inputs.json"))?)?;
    let params = ["w1", "b1", "w2", "b2"];

    let df = wgrad::grad(&f, None, &params)?;
    println!(
        "# The derivative program ({} nodes from {}):",
        df.len(),
        f.len()
    );
    println!("{}", wgrad::print(&df));

    for (name, t) in wgrad::eval(&df, &inputs)? {
        let norm = t.data.iter().map(|x| x * x).sum::<f64>().sqrt();
        println!("{name:>8}: {} with norm {norm:.6}", t.ty);
    }

    let report = wgrad::gradcheck(&f, None, &params, &inputs, GradcheckOptions::default())?;
    println!("\n{report}");

    // Hessian-vector product: jvp of the gradient along a direction v for w2.
    let hvp = wgrad::jvp(&df, Some("grad.w2"), &["w2"])?;
    // A direction the loss is sensitive to: adding the same amount to every logit of a
    // row (v = ones would) leaves a softmax unchanged, and H·v would be rounding noise.
    let v = Tensor::new(
        inputs["w2"].ty.clone(),
        (0..24).map(|i| ((i + 1) as f64).sin()).collect(),
    )?;
    let mut with_v: HashMap<String, Tensor> = inputs.clone();
    with_v.insert("tan.w2".into(), v);
    let out = wgrad::eval(&hvp, &with_v)?;
    let hv = &out
        .iter()
        .find(|(n, _)| n == "tan.grad.w2")
        .ok_or("no HVP output")?
        .1;
    println!("H·v for w2 (v[i] = sin(i + 1)): {:?}", &hv.data[..6]);
    if !report.passed {
        return Err("gradcheck failed".into());
    }
    Ok(())
}
