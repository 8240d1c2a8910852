//! The wgrad runtime: runs a compiled [`Program`](wgrad_compiler::lower::Program) on a
//! GPU, or on the CPU through a software Vulkan driver, with wgpu.
//!
//! [`Runtime::new`] picks an adapter (honouring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`,
//! preferring a real GPU and falling back to a software one) and opens a device with the
//! limits the adapter offers. [`Runtime::load`] checks a program against those limits,
//! compiles its kernels into pipelines (each at most once per runtime) and allocates its
//! buffers; the resulting [`Executable`] uploads inputs, records every dispatch of a run
//! into one submission, keeps declared state on the device between runs, and reads back
//! only the outputs the user sees. Errors are the runtime's [`Error`]: a missing driver
//! is [`Error::NoAdapter`], a program too large for the device is [`Error::Limits`], and
//! anything the device rejects is [`Error::Device`]; a bad input ([`Input`]) or name
//! ([`Name`]) is the compiler's error, carried in [`Error::Compiler`].
//!
//! This is the only crate of the workspace that depends on wgpu.
//!
//! ```
//! use std::collections::HashMap;
//! use wgrad_compiler::ir::{Graph, Tensor, Type};
//! use wgrad_compiler::lower::*;
//! use wgrad_runtime::testing::runtime_or_skip;
//!
//! // `double = x * 2` over four floats, as the compiler would emit it.
//! let ty = Type::f32(&[4]);
//! let buffer = |role| Buffer { ty: ty.clone(), bytes: 16, role };
//! let program = Program {
//!     graph: Graph::default(),
//!     target: Target::software_vulkan(),
//!     buffers: vec![buffer(BufferRole::Input("x".into())), buffer(BufferRole::Computed)],
//!     kernels: vec![Kernel {
//!         name: "double".into(),
//!         variant: "elementwise".into(),
//!         wgsl: "@group(0) @binding(0) var<storage, read> x: array<f32>;
//!                @group(0) @binding(1) var<storage, read_write> y: array<f32>;
//!                @compute @workgroup_size(64)
//!                fn main(@builtin(global_invocation_id) id: vec3<u32>) {
//!                    if (id.x < 4u) { y[id.x] = x[id.x] * 2.0; }
//!                }"
//!         .into(),
//!         entry_point: "main".into(),
//!         bindings: vec![
//!             KernelBinding { binding: 0, buffer: BufferId(0), writable: false },
//!             KernelBinding { binding: 1, buffer: BufferId(1), writable: true },
//!         ],
//!         workgroup_size: [64, 1, 1],
//!         dispatch: [1, 1, 1],
//!         flops: 4,
//!         bytes_moved: 32,
//!     }],
//!     inputs: vec![IoBinding { name: "x".into(), buffer: BufferId(0), ty: ty.clone() }],
//!     outputs: vec![IoBinding { name: "double".into(), buffer: BufferId(1), ty: ty.clone() }],
//!     schedule: vec![],
//!     state: vec![],
//!     stats: Stats::default(),
//!     quick: None,
//! };
//!
//! // Skipped on a machine without any adapter (but not on CI).
//! let Some(runtime) = runtime_or_skip() else { return Ok(()) };
//! let mut exe = runtime.load(&program)?;
//! let x = Tensor::from_f32(&[4], vec![1.0, 2.0, 3.0, 4.0])?;
//! let outputs = exe.run(&HashMap::from([("x".to_string(), x)]))?;
//! assert_eq!(outputs[0].0, "double");
//! assert_eq!(outputs[0].1.data, vec![2.0, 4.0, 6.0, 8.0]);
//! # Ok::<(), wgrad_runtime::Error>(())
//! ```
//!
//! [`Input`]: wgrad_compiler::Error::Input
//! [`Name`]: wgrad_compiler::Error::Name
#![deny(missing_docs)]

mod adapter;
mod check;
mod convert;
pub mod error;
mod executable;
mod runtime;
mod target;
pub mod testing;
pub mod tuning;

pub use adapter::{AdapterSummary, skip_display_device_selection};
pub use error::{Error, Result};
pub use executable::{Executable, PendingRun, Tier};
pub use runtime::{Runtime, RuntimeOptions, TuningSource};
pub use target::target_from_adapter;
