//! Helpers shared by the integration tests: a seeded generator of test data, and
//! shorthands for building inputs and checking gradients.

#![allow(dead_code)]

pub mod cases;
pub mod gpu;

use std::collections::HashMap;
use wgrad::{Builder, GradcheckOptions, Graph, Tensor, Type, Value};

/// A small deterministic generator (SplitMix64), so failures reproduce from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)` with magnitude at least `gap`: away from kinks at zero.
    pub fn away_from_zero(&mut self, lo: f64, hi: f64, gap: f64) -> f64 {
        loop {
            let x = self.uniform(lo, hi);
            if x.abs() >= gap {
                return x;
            }
        }
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|_| self.uniform(lo, hi)).collect();
        Tensor::new(Type::f32(shape), data).unwrap()
    }
}

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
