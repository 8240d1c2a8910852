//! Per-run and per-dispatch overhead, printed rather than asserted (timings depend on the
//! machine). Run with `cargo test -p wgrad-runtime --release --test overhead -- --ignored
//! --nocapture`.

mod common;

use std::time::Instant;

use common::*;
use wgrad_compiler::ir::Type;
use wgrad_compiler::lower::Program;
use wgrad_runtime::testing::runtime_or_skip;

/// `kernels` tiny kernels in a chain, each adding 1 to 64 elements.
fn chain(kernels: usize) -> Program {
    let ty = Type::f32(&[64]);
    let mut p = ProgramBuilder::new();
    let mut x = p.input("x", ty.clone());
    let wgsl = elementwise(64, &[("x", "f32")], "f32", "x[i] + 1.0");
    for k in 0..kernels {
        let y = p.computed(ty.clone());
        p.kernel(&format!("k{k}"), &wgsl, &[x], &[y], 64);
        x = y;
    }
    p.output("y", x);
    p.build()
}

#[test]
#[ignore]
fn overhead() {
    let Some(rt) = runtime_or_skip() else { return };
    let given = inputs(&[("x", f32s(&[64], &[0.0; 64]))]);
    let mut per_run = Vec::new();
    for kernels in [1, 100] {
        let mut exe = rt.load(&chain(kernels)).unwrap();
        let out = exe.run(&given).unwrap();
        assert_eq!(out[0].1.data[0], kernels as f64);
        let runs = 200;
        let start = Instant::now();
        for _ in 0..runs {
            exe.run(&given).unwrap();
        }
        let each = start.elapsed().as_secs_f64() / runs as f64;
        let noun = if kernels == 1 { "kernel: " } else { "kernels:" };
        eprintln!("{kernels:4} {noun} {:8.1} us per run", each * 1e6);
        per_run.push(each);
    }
    eprintln!(
        "per dispatch: {:.1} us; fixed per run (upload, submit, readback): {:.1} us",
        (per_run[1] - per_run[0]) / 99.0 * 1e6,
        per_run[0] * 1e6
    );
    let start = Instant::now();
    let exe = rt.load(&chain(100)).unwrap();
    eprintln!(
        "loading 100 kernels (one cached pipeline): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    for _ in 0..100 {
        exe.read("y").unwrap();
    }
    eprintln!(
        "read: {:.1} us",
        start.elapsed().as_secs_f64() / 100.0 * 1e6
    );
}
