//! The compiled program: plain data that the runtime executes.
//!
//! A [`Program`] lists its buffers, its kernels in dispatch order (each with WGSL text,
//! bindings, workgroup size and dispatch grid), where inputs are uploaded and outputs
//! read back, which outputs replace which inputs on the device after a run (state), and
//! statistics computed from the kernels themselves.

use super::target::Target;
use crate::ir::{Graph, Type};

/// Index of a buffer in [`Program::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub u32);

/// Why a buffer exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferRole {
    /// Holds the program input of this name; uploaded by the host.
    Input(String),
    /// Holds an intermediate or output value computed by a kernel.
    Computed,
    /// Holds a dense literal of the program, uploaded when the program is loaded: each
    /// element's 32 bits (an `f32`'s bits, an integer's two's complement, 0 or 1).
    Constant(Vec<u32>),
}

/// One device buffer. Every element takes 4 bytes (`bool` is stored as `u32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// The tensor type stored.
    pub ty: Type,
    /// Size in bytes (at least 4: empty tensors still get a binding).
    pub bytes: u64,
    /// Why it exists.
    pub role: BufferRole,
}

/// A buffer bound to a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelBinding {
    /// The `@binding` index in group 0.
    pub binding: u32,
    /// The buffer bound.
    pub buffer: BufferId,
    /// Whether the kernel writes it (`read_write`); otherwise it is `read`.
    pub writable: bool,
}

/// One compute dispatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// A readable name, unique in the program (also the dump file's name).
    pub name: String,
    /// Which emitter produced it: `elementwise`, `matmul_naive` (a contraction with a
    /// loop per element), `scatter`, `reduce`, `reduce_partial` and `reduce_final` (the
    /// stages of a long reduction), `row`, or `matmul_tiled<rows>x<cols>` (the tiled
    /// product with its register tile), with `_shared` when a subgroup shares A's
    /// loads.
    pub variant: String,
    /// The complete WGSL module, validated by naga at compile time.
    pub wgsl: String,
    /// The entry point.
    pub entry_point: String,
    /// Bindings in group 0, in binding order.
    pub bindings: Vec<KernelBinding>,
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// Workgroups dispatched along x, y, z.
    pub dispatch: [u32; 3],
    /// Floating-point (and integer) operations it performs.
    pub flops: u64,
    /// Bytes it reads from and writes to buffers.
    pub bytes_moved: u64,
}

impl Kernel {
    /// The register tile `[rows, cols]` of a tiled product kernel (its variant
    /// `matmul_tiled<rows>x<cols>`, perhaps `_shared`); `None` for other kernels.
    pub fn tile(&self) -> Option<[u32; 2]> {
        let tiled = self.variant.strip_prefix("matmul_tiled")?;
        let (rows, cols) = tiled.trim_end_matches("_shared").split_once('x')?;
        Some([rows.parse().ok()?, cols.parse().ok()?])
    }
}

/// One entry of a program's dispatch schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Dispatch kernel `k` of [`Program::kernels`].
    Kernel(usize),
    /// A loop that runs on the device: `trips` iterations, the even ones (0, 2, …)
    /// dispatching `even` and the odd ones `odd`. The two lists name the same kernels
    /// except that `odd` binds each double-buffered carried value's two buffers the
    /// other way round, so no iteration copies a carried value.
    Loop {
        /// The number of iterations.
        trips: u32,
        /// The steps of an even iteration.
        even: Vec<Step>,
        /// The steps of an odd iteration.
        odd: Vec<Step>,
    },
}

impl Step {
    /// How many dispatches the step makes, and each kernel's share: calls `each(k, n)`
    /// for every kernel `k` it dispatches `n` times.
    pub fn count(&self, each: &mut impl FnMut(usize, u64)) {
        self.count_times(1, each);
    }

    fn count_times(&self, times: u64, each: &mut impl FnMut(usize, u64)) {
        match self {
            Step::Kernel(k) => each(*k, times),
            Step::Loop { trips, even, odd } => {
                let trips = u64::from(*trips);
                for s in even {
                    s.count_times(times * trips.div_ceil(2), each);
                }
                for s in odd {
                    s.count_times(times * (trips / 2), each);
                }
            }
        }
    }
}

/// A named tensor and the buffer holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoBinding {
    /// The program's name for it.
    pub name: String,
    /// The buffer.
    pub buffer: BufferId,
    /// Its type.
    pub ty: Type,
}

/// An output that replaces an input on the device after every run: output
/// `new.<name>` and input `<name>`, of equal type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePair {
    /// The input replaced.
    pub input: String,
    /// The output that replaces it.
    pub output: String,
}

/// Statistics computed from the compiled kernels and buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Compute dispatches per run (a loop on the device counts each iteration's).
    pub kernels: u64,
    /// Dispatches that contract (dot).
    pub matmul_kernels: u64,
    /// Operations performed by all kernels.
    pub flops: u64,
    /// Bytes read plus written by all kernels.
    pub bytes_moved: u64,
    /// The largest total of live buffers at any kernel.
    pub peak_bytes: u64,
    /// The same for buffers that are neither program inputs nor outputs.
    pub temp_bytes: u64,
    /// Bytes of values written by primal-side kernels and read by adjoint-side kernels
    /// (what a backward pass keeps from the forward pass), inputs excepted.
    pub residual_bytes: u64,
    /// Bytes of all buffers allocated (temporaries share buffers when their lifetimes
    /// do not overlap, so this can be less than the sum of every value's size).
    pub allocated_bytes: u64,
}

/// A compiled program for one [`Target`].
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The IR that was lowered (after every pass).
    pub graph: Graph,
    /// The target compiled for.
    pub target: Target,
    /// Every buffer.
    pub buffers: Vec<Buffer>,
    /// Kernels in dispatch order, unless [`Program::schedule`] says otherwise.
    pub kernels: Vec<Kernel>,
    /// The dispatch order when the program has loops that run on the device; empty
    /// means every kernel once, in order.
    pub schedule: Vec<Step>,
    /// Where each input is uploaded, in declared order.
    pub inputs: Vec<IoBinding>,
    /// Where each output is read back, in declared order.
    pub outputs: Vec<IoBinding>,
    /// Outputs that replace inputs after each run.
    pub state: Vec<StatePair>,
    /// Statistics.
    pub stats: Stats,
    /// The same program compiled with the target's quick tile
    /// ([`Target::quick_tile`](super::Target::quick_tile)), when its products use a
    /// larger one: a first tier whose kernels the driver compiles in a fraction of the
    /// time, which the runtime runs until this program's own kernels are compiled.
    /// Both tiers compute every element in the same order.
    pub quick: Option<Box<Program>>,
}

impl Program {
    /// The buffer behind a handle.
    pub fn buffer(&self, id: BufferId) -> &Buffer {
        &self.buffers[id.0 as usize]
    }

    /// The most storage buffers any kernel binds.
    pub fn max_bindings(&self) -> u32 {
        self.kernels
            .iter()
            .map(|k| k.bindings.len() as u32)
            .max()
            .unwrap_or(0)
    }

    /// The largest workgroup any kernel uses, in invocations.
    pub fn max_workgroup_invocations(&self) -> u32 {
        self.kernels
            .iter()
            .map(|k| k.workgroup_size.iter().product::<u32>())
            .max()
            .unwrap_or(1)
    }

    /// The dispatch schedule: [`Program::schedule`], or every kernel once, in order.
    pub fn steps(&self) -> Vec<Step> {
        if self.schedule.is_empty() {
            (0..self.kernels.len()).map(Step::Kernel).collect()
        } else {
            self.schedule.clone()
        }
    }

    /// The register tiles of the program's tiled products, by kernel.
    pub fn tiles(&self) -> impl Iterator<Item = [u32; 2]> + '_ {
        self.kernels.iter().filter_map(Kernel::tile)
    }

    /// The largest buffer, in bytes.
    pub fn max_buffer_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.bytes).max().unwrap_or(0)
    }
}
