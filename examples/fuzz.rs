//! Runs the mutation fuzzer (`wgrad::fuzz`) over the example programs for as long as
//! asked, and prints every case that breaks the contract with its program and inputs.
//!
//! ```text
//! cargo run --release --example fuzz -- --cases 100000 --threads 2
//! cargo run --release --example fuzz -- --first 5120 --cases 1   # one case again
//! ```
//!
//! Exits with status 1 when there are findings.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use wgrad::fuzz::{self, FuzzOptions};

/// The mutation fuzzer.
#[derive(Parser)]
struct Args {
    /// Cases to run.
    #[arg(long, default_value_t = 10_000)]
    cases: usize,
    /// The run's seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The first case's number.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds after which a case is reported as too slow.
    #[arg(long, default_value_t = 10)]
    case_seconds: u64,
    /// The directory of seed programs.
    #[arg(long)]
    programs: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let dir = args
        .programs
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/programs"));
    let seeds = match fuzz::seeds_from_dir(&dir) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            eprintln!("error: no *.wg programs in {}", dir.display());
            return std::process::ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return std::process::ExitCode::from(2);
        }
    };
    let options = FuzzOptions {
        cases: args.cases,
        seed: args.seed,
        first: args.first,
        threads: args.threads,
        case_time: Duration::from_secs(args.case_seconds),
        ..FuzzOptions::default()
    };
    // A case's panic is caught and reported as a finding: keep its message off the
    // terminal in the meantime.
    std::panic::set_hook(Box::new(|_| {}));
    let total = args.cases;
    let report = fuzz::run(&seeds, &options, |done| {
        if done % 1000 == 0 {
            eprintln!("{done}/{total} cases");
        }
    });
    for f in &report.findings {
        println!("{f}");
    }
    println!("{report}");
    if report.findings.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
