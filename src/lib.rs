//! wgrad: a gradient compiler for tensor programs.
//!
//! A program is written with the [`Builder`] or parsed from text with [`parse`]. wgrad
//! differentiates it as a program-to-program transform ([`grad`], [`vjp`], [`jvp`]): the
//! derivative is an ordinary [`Graph`] that can be printed, evaluated with the f64
//! reference interpreter ([`eval`]), checked against finite differences
//! ([`gradcheck`]), or differentiated again.
//!
//! ```
//! use std::collections::HashMap;
//! use wgrad::{Builder, Tensor, Type};
//!
//! // loss = Σ sin(x) · x
//! let mut b = Builder::new();
//! let x = b.input("x", Type::f32(&[3]))?;
//! let s = b.sin(x)?;
//! let p = b.mul(s, x)?;
//! let loss = b.sum_all(p)?;
//! b.output("loss", loss)?;
//! let f = b.finish()?;
//!
//! let df = wgrad::grad(&f, None, &["x"])?;
//! println!("{}", wgrad::print(&df));
//! let inputs = HashMap::from([("x".to_string(), Tensor::new(Type::f32(&[3]), vec![0.0, 1.0, 2.0])?)]);
//! let out = wgrad::eval(&df, &inputs)?;
//! let g = &out[1].1.data; // d/dx sin(x)·x = cos(x)·x + sin(x)
//! assert!((g[1] - (1f64.cos() + 1f64.sin())).abs() < 1e-12);
//! # Ok::<(), wgrad::Error>(())
//! ```

pub mod json;

pub use wgrad_compiler::autodiff::{
    GradcheckOptions, GradcheckReport, WorstElement, float_inputs, grad, gradcheck, jvp, vjp,
};
pub use wgrad_compiler::ir::{
    Builder, DType, Graph, Tensor, Type, Value, eval, parse, print, verify,
};
pub use wgrad_compiler::{Error, Result, autodiff, ir, passes};

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
