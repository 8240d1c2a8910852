//! Gradient checking against central finite differences, in f64 on the interpreter.
//!
//! [`gradcheck`] differentiates a program with [`grad`](super::grad), evaluates the
//! derivative program, and compares every gradient element with
//! `(f(x + h) - f(x - h)) / 2h` computed by re-evaluating the original program. It
//! reports the worst element, so a failure says where to look.

use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor, eval};
use std::collections::HashMap;
use std::fmt;

/// Step and tolerances of [`gradcheck`]. An element passes when
/// `|analytic - numeric| <= atol + rtol * |numeric|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// The finite-difference step `h`.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    /// `h = 1e-6`, `atol = 1e-6`, `rtol = 1e-5`: in f64, central differences are
    /// accurate to about `h² · f'''` plus `ε / h ≈ 1e-10` of rounding.
    fn default() -> GradcheckOptions {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
        }
    }
}

/// The gradient element that is furthest outside the tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct WorstElement {
    /// The input it belongs to.
    pub input: String,
    /// Its multi-index in the input.
    pub index: Vec<usize>,
    /// The gradient computed by the derivative program.
    pub analytic: f64,
    /// The central finite difference.
    pub numeric: f64,
    /// `|analytic - numeric|`.
    pub abs_err: f64,
    /// `|analytic - numeric| / (atol + rtol * |numeric|)`: above 1 fails.
    pub ratio: f64,
}

/// What [`gradcheck`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Whether every element is within tolerance.
    pub passed: bool,
    /// How many gradient elements were compared.
    pub checked: usize,
    /// The worst element (none when no element was compared).
    pub worst: Option<WorstElement>,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        write!(f, "gradcheck {verdict} over {} elements", self.checked)?;
        if let Some(w) = &self.worst {
            write!(
                f,
                "; worst: `{}`{:?} analytic {} vs numeric {} (abs err {:.3e}, {:.3} of tolerance)",
                w.input, w.index, w.analytic, w.numeric, w.abs_err, w.ratio
            )?;
        }
        Ok(())
    }
}

/// Compares the gradient of the scalar output `of` (default: the only output) with
/// respect to `wrt` against central finite differences at `inputs`.
pub fn gradcheck(
    graph: &Graph,
    of: Option<&str>,
    wrt: &[&str],
    inputs: &HashMap<String, Tensor>,
    options: GradcheckOptions,
) -> Result<GradcheckReport> {
    let (of_name, _) = super::resolve_output(graph, of)?;
    let dgraph = super::grad(graph, Some(&of_name), wrt)?;
    let analytic = eval(&dgraph, inputs)?;
    let mut report = GradcheckReport {
        passed: true,
        checked: 0,
        worst: None,
    };
    let grad_names: Vec<&String> = dgraph.outputs[graph.outputs.len()..]
        .iter()
        .map(|(n, _)| n)
        .collect();
    for (w, gname) in wrt.iter().zip(grad_names) {
        let g = lookup(&analytic, gname)?;
        let x = inputs.get(*w).ok_or_else(|| Error::Input {
            name: w.to_string(),
            message: "missing".into(),
        })?;
        for i in 0..x.data.len() {
            let numeric = {
                let f_at = |delta: f64| -> Result<f64> {
                    let mut moved = inputs.clone();
                    if let Some(t) = moved.get_mut(*w) {
                        t.data[i] += delta;
                    }
                    let out = eval(graph, &moved)?;
                    Ok(lookup(&out, &of_name)?.data[0])
                };
                (f_at(options.eps)? - f_at(-options.eps)?) / (2.0 * options.eps)
            };
            let a = g.data[i];
            let abs_err = (a - numeric).abs();
            let ratio = abs_err / (options.atol + options.rtol * numeric.abs());
            let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
            report.checked += 1;
            if ratio > 1.0 {
                report.passed = false;
            }
            if report.worst.as_ref().is_none_or(|wst| ratio > wst.ratio) {
                report.worst = Some(WorstElement {
                    input: w.to_string(),
                    index: unravel(i, &x.ty.shape),
                    analytic: a,
                    numeric,
                    abs_err,
                    ratio,
                });
            }
        }
    }
    Ok(report)
}

fn lookup<'a>(outs: &'a [(String, Tensor)], name: &str) -> Result<&'a Tensor> {
    outs.iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::Name(format!("no output named `{name}`")))
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}
