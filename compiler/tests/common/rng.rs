//! The seeded random number generator of the tests.
//!
//! Every test that needs random data draws it from [`Rng`], which is rand's `StdRng`
//! seeded with `seed_from_u64`, so a failing case reproduces from its seed. The compiler's
//! tests and the facade's share this one file.

use rand::rngs::StdRng;
use rand::{Rng as _, RngCore, SeedableRng};
use wgrad_compiler::ir::{Tensor, Type};

/// A generator seeded from a `u64`, with the draws the tests use.
pub struct Rng(StdRng);

impl Rng {
    /// Returns a generator whose draws depend only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(StdRng::seed_from_u64(seed))
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Returns a number in `0..n`, or 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }

    /// Returns true `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Returns one of `xs`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// Returns a number uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0.random_range(lo..hi)
    }

    /// Returns a number uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.uniform(-1.0, 1.0)
    }

    /// Returns a number uniform in `[lo, hi)` of magnitude at least `gap`, away from kinks
    /// at zero.
    pub fn away_from_zero(&mut self, lo: f64, hi: f64, gap: f64) -> f64 {
        loop {
            let x = self.uniform(lo, hi);
            if x.abs() >= gap {
                return x;
            }
        }
    }

    /// Returns an `f32` tensor of the given shape with elements uniform in `[lo, hi)`.
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|_| self.uniform(lo, hi)).collect();
        Tensor::new(Type::f32(shape), data).unwrap()
    }
}
