//! Helpers shared by the compiler's test files.

#![allow(dead_code)]

mod rng;

pub use rng::Rng;
use wgrad_compiler::ir::{Graph, parse};

/// `s` without the indentation its second and later lines share, and with a final
/// newline, so that program text can be indented in the source.
pub fn text(s: &str) -> String {
    let indent = s
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { l } else { &l[indent.min(l.len())..] })
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

pub fn example(name: &str) -> Graph {
    let path = format!("{}/../examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&source).unwrap_or_else(|e| panic!("{path}:{e}"))
}
