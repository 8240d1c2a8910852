//! Helpers shared by the integration tests: the seeded generator of test data (the
//! compiler tests' own), and shorthands for building inputs and checking gradients.

#![allow(dead_code)]

pub mod cases;
pub mod gpu;
#[path = "../../compiler/tests/common/rng.rs"]
mod rng;

pub use rng::Rng;

use std::collections::HashMap;
use wgrad::{Builder, GradcheckOptions, Graph, Tensor, Type, Value};

/// Named inputs from pairs.
pub fn inputs(pairs: Vec<(&str, Tensor)>) -> HashMap<String, Tensor> {
    pairs.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

/// Finishes `b` with output `loss = Σ y · w`, where `w` is a fixed random weighting
/// input, so the cotangent reaching `y` is not uniform.
pub fn weighted_loss(
    mut b: Builder,
    y: Value,
    rng: &mut Rng,
    inputs: &mut HashMap<String, Tensor>,
) -> Graph {
    let shape = b.shape(y);
    let w = b.input("weights", Type::f32(&shape)).unwrap();
    let p = b.mul(y, w).unwrap();
    let l = b.sum_all(p).unwrap();
    b.output("loss", l).unwrap();
    inputs.insert("weights".into(), rng.tensor(&shape, -1.0, 1.0));
    b.finish().unwrap()
}

/// Asserts that gradcheck passes for `wrt` with the default tolerances.
pub fn assert_gradcheck(g: &Graph, wrt: &[&str], inputs: &HashMap<String, Tensor>) {
    let report =
        wgrad::gradcheck(g, Some("loss"), wrt, inputs, GradcheckOptions::default()).unwrap();
    assert!(report.passed, "{report}\nprogram:\n{}", wgrad::print(g));
}

/// The named output of an evaluation.
pub fn output<'a>(out: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &out.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .1
}
