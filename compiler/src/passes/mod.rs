//! Graph-to-graph passes, one file each.
//!
//! Every pass has one entry point, `run(&mut Graph) -> bool`, returning whether it
//! changed the graph, and keeps the verifier's invariants.

pub mod dce;
pub mod unroll;
