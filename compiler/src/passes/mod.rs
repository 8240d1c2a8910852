//! Graph-to-graph passes, one file each, and the pipeline that runs them.
//!
//! Every pass has one entry point, `run(&mut Graph) -> bool`, returning whether it
//! changed the graph, and keeps the verifier's invariants (`unroll`, which can fail,
//! returns `Result<bool>`). The rewriting passes leave replaced nodes in the arena, dead,
//! for `dce`; they share the machinery in `rewrite`.
//!
//! [`optimize`] is the pipeline. It runs before differentiation (so the derivative is
//! taken of the simplified program), again on the derivative program, and in lowering.
//! It keeps a program's inputs and outputs (names, order and types) exactly.

pub mod cse;
pub mod dce;
pub mod factor;
pub mod fold;
pub mod licm;
pub mod logloss;
pub mod loop_carries;
pub mod loop_merge;
pub mod loop_to_map;
pub(crate) mod rewrite;
pub mod simplify;
pub mod slice_product;
pub mod split_long;
pub mod split_rows;
pub mod unroll;

use crate::error::Result;
use crate::ir::{Graph, verify};

/// The most rounds of fold, simplify and cse before the pipeline stops looking for more.
pub const MAX_ROUNDS: usize = 16;

/// Which optimizations run, in differentiation and in lowering; all by default. Each
/// can be switched off to measure what it buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Optimizations {
    /// Constant folding, algebraic simplification and CSE.
    pub simplify: bool,
    /// The stable rewrite of a softmax log-loss written from primitives.
    pub logloss: bool,
    /// Linearity factoring of a weight shared by several products.
    pub factor: bool,
    /// Loop-invariant work hoisted out of loop bodies, before differentiation.
    pub licm: bool,
    /// Loops of independent iterations (row `i` written from rows `i`) replaced by
    /// their whole-tensor form.
    pub loop_to_map: bool,
    /// Elementwise work fused into the products and reductions that produce or consume
    /// it (matmul prologues and epilogues, reduction epilogues).
    pub fusion: bool,
    /// Reductions of one domain that do not depend on each other computed by one
    /// kernel with several results, their shared elementwise work once per element.
    pub siblings: bool,
    /// Cheap elementwise values recomputed by each reader instead of stored.
    pub rematerialize: bool,
    /// Long elementwise chains placed as checkpointed segments: a stored value every
    /// segment, each backward kernel recomputing one segment.
    pub checkpoint: bool,
    /// Temporaries sharing buffers when their lifetimes do not overlap.
    pub reuse_buffers: bool,
}

impl Default for Optimizations {
    fn default() -> Optimizations {
        Optimizations::ALL
    }
}

impl Optimizations {
    /// Every optimization on.
    pub const ALL: Optimizations = Optimizations {
        simplify: true,
        logloss: true,
        factor: true,
        licm: true,
        loop_to_map: true,
        fusion: true,
        siblings: true,
        rematerialize: true,
        checkpoint: true,
        reuse_buffers: true,
    };

    /// The name of each optimization, as `without` takes it.
    pub const NAMES: [&'static str; 10] = [
        "simplify",
        "logloss",
        "factor",
        "licm",
        "loop_to_map",
        "fusion",
        "siblings",
        "rematerialize",
        "checkpoint",
        "reuse_buffers",
    ];

    /// These optimizations but the one named `name`, or `None` for an unknown name.
    pub fn without(self, name: &str) -> Option<Optimizations> {
        let mut o = self;
        match name {
            "simplify" => o.simplify = false,
            "logloss" => o.logloss = false,
            "factor" => o.factor = false,
            "licm" => o.licm = false,
            "loop_to_map" => o.loop_to_map = false,
            "fusion" => o.fusion = false,
            "siblings" => o.siblings = false,
            "rematerialize" => o.rematerialize = false,
            "checkpoint" => o.checkpoint = false,
            "reuse_buffers" => o.reuse_buffers = false,
            _ => return None,
        }
        Some(o)
    }
}

/// Optimizes `graph` and returns the names of the passes that changed it, in order (a
/// pass that changed it in several rounds appears once per round).
pub fn optimize(graph: &mut Graph) -> Result<Vec<&'static str>> {
    let mut changed = Vec::new();
    optimize_with(graph, &Optimizations::default(), |pass, _| {
        changed.push(pass);
        Ok(())
    })?;
    Ok(changed)
}

/// [`optimize`], calling `after(pass, graph)` after every pass that changed the graph
/// (lowering records a dump there).
///
/// Fold, simplify and cse feed each other (a folded constant enables a rule, a rule makes
/// two nodes equal), so they repeat until a round changes nothing; dce then removes what
/// they replaced. `logloss` runs in the same rounds, after cse has merged equal
/// exponentials, so a log-loss written from primitives is made stable before `grad`
/// differentiates it. `licm` hoists loop-invariant work out of loop bodies in the same
/// rounds, so a loop is differentiated after its invariant work left it. In debug builds
/// the verifier runs after every pass that changed something.
pub fn optimize_with(
    graph: &mut Graph,
    enabled: &Optimizations,
    mut after: impl FnMut(&'static str, &Graph) -> Result<()>,
) -> Result<()> {
    let mut step = |pass: &'static str, changed: bool, graph: &Graph| -> Result<bool> {
        if changed {
            if cfg!(debug_assertions) {
                verify(graph)?;
            }
            after(pass, graph)?;
        }
        Ok(changed)
    };
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        if enabled.simplify {
            changed |= step("fold", fold::run(graph), graph)?;
            changed |= step("simplify", simplify::run(graph), graph)?;
            changed |= step("cse", cse::run(graph), graph)?;
            changed |= step("slice_product", slice_product::run(graph), graph)?;
        }
        if enabled.logloss {
            changed |= step("logloss", logloss::run(graph), graph)?;
        }
        if enabled.factor {
            changed |= step("factor", factor::run(graph), graph)?;
        }
        if enabled.licm {
            changed |= step("licm", licm::run(graph)?, graph)?;
        }
        if enabled.loop_to_map {
            changed |= step("loop_to_map", loop_to_map::run(graph)?, graph)?;
        }
        changed |= step("loop_carries", loop_carries::run(graph)?, graph)?;
        changed |= step("loop_merge", loop_merge::run(graph)?, graph)?;
        if !changed {
            break;
        }
    }
    step("dce", dce::run(graph), graph)?;
    Ok(())
}
