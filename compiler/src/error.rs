//! Errors of every compiler stage.
//!
//! Each stage has its own error type carrying what a person needs to find the mistake:
//! [`TypeError`] names the op and the operand types, [`ParseError`] carries a line and
//! column and what was expected, [`VerifyError`] points at the offending value. [`enum@Error`]
//! gathers them for callers who do not care which stage failed. User mistakes are always
//! errors, never panics. What only a device can report (no adapter, a device error, a limit
//! of the adapter a program is loaded on) is the runtime's error, not the compiler's.

use thiserror::Error;

/// Shape or dtype inference rejected an op: names the op and the operand types.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("`{op}`: {message}")]
pub struct TypeError {
    /// The op's mnemonic.
    pub op: String,
    /// What is wrong, with the shapes involved.
    pub message: String,
}

impl TypeError {
    /// A type error for op `op`.
    pub fn new(op: &str, message: impl Into<String>) -> TypeError {
        TypeError {
            op: op.to_string(),
            message: message.into(),
        }
    }
}

/// The text format could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// A graph broke an IR invariant. For graphs built by the builder or the parser this is a
/// compiler bug; the message shows the IR around the bad value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid IR at %{value}: {message}")]
pub struct VerifyError {
    /// Index of the offending value (in its region).
    pub value: u32,
    /// What is wrong, followed by the surrounding IR.
    pub message: String,
}

/// Any error the compiler reports.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Shape or dtype inference failed.
    #[error("type error in {0}")]
    Type(#[from] TypeError),
    /// The program text is malformed.
    #[error("parse error at {0}")]
    Parse(#[from] ParseError),
    /// The graph is not well-formed.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// A name is malformed, unknown or declared twice.
    #[error("{0}")]
    Name(String),
    /// An input value is missing or has the wrong shape or dtype.
    #[error("input `{name}`: {message}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong (expected versus given).
        message: String,
    },
    /// A file of tensors could not be read or written, or holds something wgrad cannot
    /// take (an unsupported dtype, a value out of range).
    #[error("{path}: {message}")]
    File {
        /// The file's path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A program could not be differentiated as asked.
    #[error("cannot differentiate: {0}")]
    Diff(String),
    /// Evaluation failed for a reason other than bad inputs.
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// Lowering to kernels failed: an unsupported construct or a tensor too large for
    /// the target.
    #[error("compile error: {0}")]
    Compile(String),
    /// An invariant wgrad keeps was broken: a bug in wgrad, not in the program. The
    /// command line exits with status 3 for it.
    #[error("internal error (this is a bug in wgrad): {0}")]
    Internal(String),
    /// A program needs more of some limit than its compile target offers (the target
    /// describes an adapter, hence the message's wording).
    #[error("the program needs {what} = {needed}, but the adapter offers {available}")]
    Limits {
        /// The limit's name.
        what: String,
        /// What the program needs.
        needed: u64,
        /// What the target offers.
        available: u64,
    },
}

/// Result with the compiler's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
