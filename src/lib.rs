//! wgrad: a gradient compiler for tensor programs.
//!
//! A program is written with the [`Builder`] or parsed from text with [`parse`]. wgrad
//! differentiates it as a program-to-program transform ([`grad`], [`vjp`], [`jvp`]): the
//! derivative is an ordinary [`Graph`] that can be printed, evaluated with the f64
//! reference interpreter ([`eval`]), checked against finite differences
//! ([`gradcheck`]), or differentiated again.
//!
//! Every fallible function of the compiler returns the compiler's error
//! ([`compiler::Error`]) and every function of the runtime the runtime's
//! ([`runtime::Error`]); [`enum@Error`], the runtime's, gathers both, so `?` turns either
//! into one error type. A compiler error keeps its variant inside [`Error::Compiler`].
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
#![deny(missing_docs)]

#[cfg(feature = "ndarray")]
pub mod arrays;
pub mod dump;
pub mod fuzz;
pub mod io;
pub mod json;
pub mod tune;

pub use wgrad_compiler as compiler;
pub use wgrad_compiler::autodiff::{
    GradcheckOptions, GradcheckReport, WorstElement, float_inputs, grad, gradcheck, jvp, vjp,
};
pub use wgrad_compiler::ir::{
    Builder, DType, Graph, Tensor, Type, Value, eval, parse, print, verify,
};
pub use wgrad_compiler::lower::{Options, Program, Target};
pub use wgrad_compiler::{autodiff, batch, ir, lower, passes};
pub use wgrad_runtime as runtime;
pub use wgrad_runtime::{Error, Executable, PendingRun, Result, Runtime, RuntimeOptions, Tier};

/// Compiles a program for `options.target` (no device needed). When the environment
/// variable `WGRAD_DUMP` names a directory, each program compiled gets a subdirectory
/// of its own there, numbered in order (`program-001`, `program-002`, …), holding the
/// IR after every lowering pass that changed it, every kernel's WGSL, the buffer plan
/// and `stats.json`.
///
/// ```
/// let f = wgrad::parse("%x = input x : f32[256]\n%y = tanh %x : f32[256]\n%s = reduce_sum %y axes=[0] : f32[]\noutput s = %s\n")?;
/// let df = wgrad::grad(&f, None, &["x"])?;
/// let program = wgrad::compile(&df, &wgrad::Options::default())?;
/// println!("{} kernels, {} bytes moved", program.stats.kernels, program.stats.bytes_moved);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compile(graph: &Graph, options: &Options) -> Result<Program> {
    static DUMPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let (program, report) = lower::compile(graph, options)?;
    if let Some(dir) = std::env::var_os("WGRAD_DUMP") {
        let n = DUMPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let dir = std::path::Path::new(&dir).join(format!("program-{n:03}"));
        dump::write(&dir, &program, &report)
            .map_err(|e| compiler::Error::Compile(format!("cannot write the dump: {e}")))?;
    }
    Ok(program)
}

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
