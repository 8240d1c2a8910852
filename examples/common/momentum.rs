//! The SGD-with-momentum training step the examples compile: a gradient program
//! extended with the update, so that parameters and momenta stay on the device.

use wgrad::{Builder, Graph};

/// `with_grad` (a program with outputs `loss` and `grad.<p>` for every `p` of
/// `params`) extended with inputs `m.<p>` (the momenta) and outputs `new.<p>` and
/// `new.m.<p>`: m ← μ·m + g, p ← p − lr·m. Only `loss` and the `new.` outputs are kept:
/// the gradients live on inside the update, and each `new.<p>` replaces input `<p>` on
/// the device after every run.
pub fn with_momentum_update(
    with_grad: &Graph,
    params: &[&str],
    lr: f64,
    momentum: f64,
) -> wgrad::Result<Graph> {
    let mut b = Builder::from_graph(with_grad.clone());
    for p in params {
        let w = with_grad.input(p)?;
        let g = with_grad.output(&format!("grad.{p}"))?;
        let m = b.input(&format!("m.{p}"), with_grad.ty(w).clone())?;
        let mu = b.full_like(momentum, m)?;
        let m_scaled = b.mul(m, mu)?;
        let m_new = b.add(m_scaled, g)?;
        let rate = b.full_like(lr, m_new)?;
        let step = b.mul(m_new, rate)?;
        let w_new = b.sub(w, step)?;
        b.output(&format!("new.{p}"), w_new)?;
        b.output(&format!("new.m.{p}"), m_new)?;
    }
    let mut g = b.finish()?;
    g.retain_outputs(|name| name == "loss" || name.starts_with("new."));
    wgrad::passes::dce::run(&mut g);
    Ok(g)
}
