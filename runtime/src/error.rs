//! Errors of loading and running programs.
//!
//! The runtime reports what only a device can tell: that no adapter exists, that a program
//! needs more of some limit than the adapter offers, or that the device rejected something.
//! Everything else it reports, a bad input or name or a malformed program, is the
//! compiler's [`wgrad_compiler::Error`], carried unchanged in [`Error::Compiler`], so one
//! error type covers every stage from parsing to reading back outputs.

use thiserror::Error;

/// Any error the runtime reports, or a compiler error passed through.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the compiler's kind: a bad input or name, a malformed program, or any
    /// error of a compiler stage. Its message is the compiler error's own.
    #[error(transparent)]
    Compiler(#[from] wgrad_compiler::Error),
    /// No GPU or software adapter is available.
    #[error("no usable adapter: {reason}\nhint: {hint}")]
    NoAdapter {
        /// What was tried.
        reason: String,
        /// What to install or set.
        hint: String,
    },
    /// A program needs more of some device limit than the adapter offers.
    #[error("the program needs {what} = {needed}, but the adapter offers {available}")]
    Limits {
        /// The limit's name.
        what: String,
        /// What the program needs.
        needed: u64,
        /// What the adapter offers.
        available: u64,
    },
    /// The device reported an error while loading or running a program.
    #[error("device error: {0}")]
    Device(String),
}

/// Result with the runtime's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
