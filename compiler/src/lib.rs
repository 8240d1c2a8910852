//! The wgrad compiler: a tensor IR, its text format and f64 reference interpreter, and
//! automatic differentiation as an IR-to-IR transform.
//!
//! A program is a [`Graph`](ir::Graph) built with the [`Builder`](ir::Builder) or parsed
//! from text with [`ir::parse`]. [`autodiff::grad`], [`autodiff::vjp`] and
//! [`autodiff::jvp`] return new graphs in the same IR, so they compose to any order and
//! their results can be printed, evaluated with [`ir::eval`], or differentiated again.
//! This crate does no I/O and touches no device.
//!
//! ```
//! use wgrad_compiler::autodiff::grad;
//! use wgrad_compiler::ir::{Builder, Type, print};
//! use wgrad_compiler::lower::{Options, compile};
//!
//! // loss = Σ tanh(x)·w, differentiated and lowered to WGSL kernels.
//! let mut b = Builder::new();
//! let x = b.input("x", Type::f32(&[8]))?;
//! let w = b.input("w", Type::f32(&[8]))?;
//! let t = b.tanh(x)?;
//! let p = b.mul(t, w)?;
//! let loss = b.sum_all(p)?;
//! b.output("loss", loss)?;
//! let f = b.finish()?;
//! let df = grad(&f, None, &["x", "w"])?;
//! assert!(print(&df).contains("output grad.x"));
//! let (program, _report) = compile(&df, &Options::default())?;
//! assert!(program.kernels.iter().all(|k| !k.wgsl.is_empty()));
//! # Ok::<(), wgrad_compiler::Error>(())
//! ```
#![deny(missing_docs)]

pub mod autodiff;
pub mod batch;
pub mod error;
pub mod ir;
pub mod lower;
pub mod passes;

pub use error::{Error, Result};
