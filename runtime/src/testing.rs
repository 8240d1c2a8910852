//! Helpers for tests, in this crate and in others, that need a device.
//!
//! A test that runs kernels calls [`runtime_or_skip`]: on a machine without any adapter
//! it is skipped with a note on standard error, but on CI (`CI=true`) the missing adapter
//! fails the test, so a broken CI image can never pass by skipping everything. The
//! adapter in use is printed once per test binary, so CI logs show what ran the kernels.

use std::sync::Once;

use crate::error::Error;

use crate::runtime::{Runtime, RuntimeOptions};

static ANNOUNCE: Once = Once::new();

/// A runtime that loads every program in one tier and reads no tuning file (the
/// default options, with [`RuntimeOptions::tiers`] off and
/// [`TuningSource::Off`](crate::TuningSource::Off)), or `None` (after printing `skipping: no adapter`)
/// when this machine has no adapter. A test that checks a program's results checks its
/// own kernels from the first run on, not a quick tier's, and the preset's tiles
/// whatever tuning file the machine has.
///
/// # Panics
///
/// When no adapter is found and the environment variable `CI` is `true` (or `1`), and
/// whenever the runtime fails for another reason: these are failures, never skips.
pub fn runtime_or_skip() -> Option<Runtime> {
    runtime_with_options_or_skip(&RuntimeOptions {
        tiers: false,
        tuning: crate::runtime::TuningSource::Off,
        ..RuntimeOptions::default()
    })
}

/// Like [`runtime_or_skip`], with the given options.
///
/// # Panics
///
/// As [`runtime_or_skip`].
pub fn runtime_with_options_or_skip(options: &RuntimeOptions) -> Option<Runtime> {
    match Runtime::new(options) {
        Ok(runtime) => {
            ANNOUNCE.call_once(|| eprintln!("wgrad-runtime: running on {}", runtime.adapter()));
            Some(runtime)
        }
        Err(error @ Error::NoAdapter { .. }) => {
            if on_ci() {
                panic!("CI=true but no adapter is available: {error}");
            }
            eprintln!("skipping: no adapter ({error})");
            None
        }
        Err(error) => panic!("could not start the runtime: {error}"),
    }
}

/// Whether the `CI` environment variable says this is a CI run.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}
