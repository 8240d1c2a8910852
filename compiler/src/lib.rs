//! The wgrad compiler: a tensor IR, its text format and f64 reference interpreter, and
//! automatic differentiation as an IR-to-IR transform.
//!
//! A program is a [`Graph`](ir::Graph) built with the [`Builder`](ir::Builder) or parsed
//! from text with [`ir::parse`]. [`autodiff::grad`], [`autodiff::vjp`] and
//! [`autodiff::jvp`] return new graphs in the same IR, so they compose to any order and
//! their results can be printed, evaluated with [`ir::eval`], or differentiated again.
//! This crate does no I/O and touches no device.

pub mod autodiff;
pub mod error;
pub mod ir;
pub mod lower;
pub mod passes;

pub use error::{Error, Result};
