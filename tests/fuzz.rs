//! The mutation fuzzer (`wgrad::fuzz`), bounded: 2,000 cases mutated from the example
//! programs must all end in a result or a clear error, and every case it has found
//! breaking the contract stays fixed (`tests/fuzz/*.wg`, each with its JSON inputs
//! beside it when it had any). `cargo run --release --example fuzz` runs longer.

use std::path::Path;
use wgrad::fuzz::{self, FuzzOptions};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn two_thousand_mutated_programs_end_in_results_or_clear_errors() {
    let seeds = fuzz::seeds_from_dir(&root().join("examples/programs")).unwrap();
    assert!(seeds.len() >= 8, "{} seed programs", seeds.len());
    let options = FuzzOptions {
        cases: 2000,
        seed: 20261130,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        ..FuzzOptions::default()
    };
    let report = fuzz::run(&seeds, &options, |_| {});
    eprintln!("{report}");
    for f in &report.findings {
        eprintln!("{f}");
    }
    assert!(report.findings.is_empty(), "{report}");
    assert_eq!(report.cases, 2000);
    // The mutations reach every stage, not just the parser's errors.
    assert!(report.parsed >= 400, "{report}");
    assert!(report.differentiated >= 200, "{report}");
    assert!(report.evaluated >= 100, "{report}");
    assert!(report.compiled >= 200, "{report}");
}

#[test]
fn cases_the_fuzzer_found_stay_fixed() {
    let dir = root().join("tests/fuzz");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wg"))
        .collect();
    paths.sort();
    for path in paths {
        let program = std::fs::read_to_string(&path).unwrap();
        let inputs = std::fs::read_to_string(path.with_extension("json")).ok();
        let budget = FuzzOptions::default().budget;
        if let Err((stage, what)) = fuzz::check_case(&program, inputs.as_deref(), &budget) {
            panic!("{}: {stage}: {what}", path.display());
        }
    }
}
