//! A loaded program: its device buffers, bind groups and pipelines, and how a run goes.
//!
//! Loading allocates one storage buffer per program buffer and one bind group per kernel.
//! A run uploads the inputs it is given, records every kernel dispatch into one compute
//! pass of one command encoder, copies the outputs the caller sees into one staging
//! buffer, copies each state output onto the input it replaces (so parameters and
//! optimizer moments never leave the device), submits once, and maps the staging buffer
//! once. Outputs are copied out before state is replaced, so an output that shares a
//! buffer with a state input still shows this run's value; a state output whose buffer is
//! itself replaced by another pair goes through a scratch buffer, so swaps work too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use wgrad_compiler::Error as CompilerError;
use wgrad_compiler::ir::Tensor;
use wgrad_compiler::lower::{IoBinding, Program, Step};

use crate::check::check_program;
use crate::convert::{from_bytes, to_bytes};
use crate::runtime::{CachedPipeline, Gpu, Runtime, TimestampMode, lock};

/// A kernel ready to dispatch.
struct LoadedKernel {
    name: String,
    pipeline: Arc<CachedPipeline>,
    bind_group: wgpu::BindGroup,
    dispatch: [u32; 3],
}

impl LoadedKernel {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.pipeline.dispatched.store(true, Ordering::Relaxed);
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.dispatch;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// A state output copied onto the input it replaces after each run.
struct StateCopy {
    from: usize,
    to: usize,
    bytes: u64,
    /// Holds the output while other copies run, when its buffer is itself replaced.
    scratch: Option<wgpu::Buffer>,
}

/// Where the outputs a run returns land in the staging buffer.
struct Readback {
    staging: Option<wgpu::Buffer>,
    size: u64,
    /// `(buffer, offset in staging, bytes)`: each buffer is copied once.
    copies: Vec<(usize, u64, u64)>,
    /// `(output, offset in staging)` for each returned output, in declared order.
    results: Vec<(usize, u64)>,
}

/// Timestamp queries for [`Executable::run_profiled`].
struct Profiler {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    count: u32,
}

/// A program loaded on one device: its buffers, pipelines and bind groups.
pub(crate) struct Loaded {
    gpu: Arc<Gpu>,
    buffers: Vec<wgpu::Buffer>,
    kernels: Vec<LoadedKernel>,
    /// What a run dispatches: every kernel once, or loops on the device.
    steps: Vec<Step>,
    inputs: Vec<IoBinding>,
    outputs: Vec<IoBinding>,
    /// Per input: whether a state output replaces it after each run.
    is_state: Vec<bool>,
    /// Per input: whether it holds a value (uploaded, or replaced by a state output).
    uploaded: Vec<bool>,
    state_copies: Vec<StateCopy>,
    readback: Readback,
    profiler: Option<Profiler>,
    /// Staging buffers of finished submissions, for the next ones to reuse.
    spare_staging: Arc<Mutex<Vec<wgpu::Buffer>>>,
}

/// A submitted run ([`Executable::submit`]): a future that completes with its outputs,
/// in declared order, once the device has finished the run and they are read back.
/// Dropping it abandons the outputs; the run itself still happens.
#[must_use = "a submitted run's outputs are read back only when it is awaited"]
pub struct PendingRun<'r> {
    staging: Option<wgpu::Buffer>,
    size: u64,
    /// `(name, type, offset in staging)` of each output returned.
    results: Vec<(String, wgrad_compiler::ir::Type, u64)>,
    done: futures::channel::oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    spare: Arc<Mutex<Vec<wgpu::Buffer>>>,
    device: wgpu::Device,
    /// The submission no thread waits on yet.
    submission: Option<wgpu::SubmissionIndex>,
    /// Whether the future has completed.
    finished: bool,
    _runtime: std::marker::PhantomData<&'r Runtime>,
}

impl PendingRun<'_> {
    /// Blocks this thread until the device has finished the run.
    fn wait(&mut self) -> Result<()> {
        if let Some(submission) = self.submission.take() {
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(submission),
                    timeout: None,
                })
                .map_err(|e| Error::Device(format!("waiting for the device: {e}")))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PendingRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRun")
            .field("outputs", &self.results.len())
            .finish_non_exhaustive()
    }
}

impl std::future::Future for PendingRun<'_> {
    type Output = Result<Vec<(String, Tensor)>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if self.finished {
            return Poll::Ready(Err(Error::Device(
                "a finished run was polled again".to_string(),
            )));
        }
        let mapped = match std::pin::Pin::new(&mut self.done).poll(cx) {
            Poll::Pending => {
                // Map callbacks run inside `Device::poll`: a thread waits on the
                // submission, so that this future is woken rather than spun.
                if let Some(submission) = self.submission.take() {
                    let device = self.device.clone();
                    let started = std::thread::Builder::new()
                        .name("wgrad readback".into())
                        .spawn(move || {
                            let _ = device.poll(wgpu::PollType::Wait {
                                submission_index: Some(submission),
                                timeout: None,
                            });
                        });
                    if let Err(e) = started {
                        self.finished = true;
                        return Poll::Ready(Err(Error::Device(format!(
                            "cannot start a readback thread: {e}"
                        ))));
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(Ok(Ok(()))) => Ok(()),
            Poll::Ready(Ok(Err(e))) => Err(Error::Device(format!(
                "reading the outputs back failed: {e}"
            ))),
            Poll::Ready(Err(_)) => Err(Error::Device(
                "the device dropped the readback (was it lost?)".to_string(),
            )),
        };
        self.finished = true;
        // A run whose outputs are all state reads nothing back: it is done when the
        // device has finished it.
        let Some(staging) = self.staging.take() else {
            return Poll::Ready(mapped.map(|()| Vec::new()));
        };
        let out = mapped.and_then(|()| {
            let view = staging
                .slice(0..self.size)
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("reading a mapped buffer failed: {e}")))?;
            let data: &[u8] = &view;
            Ok(self
                .results
                .iter()
                .map(|(name, ty, offset)| {
                    let start = usize::try_from(*offset)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    (name.clone(), from_bytes(ty, &data[start..]))
                })
                .collect())
        });
        if out.is_ok() {
            staging.unmap();
            lock(&self.spare).push(staging);
        }
        Poll::Ready(out)
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: &[IoBinding]| list.iter().map(|io| io.name.clone()).collect();
        let inputs: Vec<String> = names(&self.inputs);
        let outputs: Vec<String> = names(&self.outputs);
        f.debug_struct("Loaded")
            .field("kernels", &self.kernels.len())
            .field("buffers", &self.buffers.len())
            .field("inputs", &inputs)
            .field("outputs", &outputs)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    pub(crate) fn new(gpu: &Arc<Gpu>, program: &Program) -> Result<Loaded> {
        check_program(program, gpu.limits())?;
        let device = gpu.device();
        let scopes = gpu.error_scopes();

        let buffers: Vec<wgpu::Buffer> = program
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let label = match &b.role {
                    wgrad_compiler::lower::BufferRole::Input(name) => name.clone(),
                    wgrad_compiler::lower::BufferRole::Computed => format!("buffer{i}"),
                    wgrad_compiler::lower::BufferRole::Constant(_) => format!("constant{i}"),
                };
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&label),
                    size: b.bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        // Dense literals are uploaded once, here; no kernel writes them.
        for (b, buffer) in program.buffers.iter().zip(&buffers) {
            if let wgrad_compiler::lower::BufferRole::Constant(data) = &b.role {
                gpu.queue()
                    .write_buffer(buffer, 0, bytemuck::cast_slice(data));
            }
        }

        let mut kernels = Vec::with_capacity(program.kernels.len());
        for kernel in &program.kernels {
            let pipeline = gpu.pipeline(kernel)?;
            let entries: Vec<wgpu::BindGroupEntry<'_>> = kernel
                .bindings
                .iter()
                .map(|b| wgpu::BindGroupEntry {
                    binding: b.binding,
                    resource: buffers[b.buffer.0 as usize].as_entire_binding(),
                })
                .collect();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&kernel.name),
                layout: &pipeline.layout,
                entries: &entries,
            });
            kernels.push(LoadedKernel {
                name: kernel.name.clone(),
                pipeline,
                bind_group,
                dispatch: kernel.dispatch,
            });
        }

        let input_buffer = |name: &str| {
            program
                .inputs
                .iter()
                .find(|io| io.name == name)
                .map(|io| io.buffer.0 as usize)
        };
        let output_of = |name: &str| program.outputs.iter().find(|io| io.name == name);
        let replaced: HashSet<usize> = program
            .state
            .iter()
            .filter_map(|pair| input_buffer(&pair.input))
            .collect();
        let mut state_copies = Vec::new();
        for pair in &program.state {
            // `check_program` made sure both ends exist.
            let (Some(to), Some(output)) = (input_buffer(&pair.input), output_of(&pair.output))
            else {
                continue;
            };
            let from = output.buffer.0 as usize;
            let bytes = output.ty.bytes() as u64;
            if from == to || bytes == 0 {
                continue;
            }
            let scratch = replaced.contains(&from).then(|| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{} (scratch)", pair.output)),
                    size: bytes,
                    usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            state_copies.push(StateCopy {
                from,
                to,
                bytes,
                scratch,
            });
        }

        let state_outputs: HashSet<&str> =
            program.state.iter().map(|p| p.output.as_str()).collect();
        let mut offsets: HashMap<usize, u64> = HashMap::new();
        let mut copies = Vec::new();
        let mut results = Vec::new();
        let mut size = 0;
        for (i, output) in program.outputs.iter().enumerate() {
            if state_outputs.contains(output.name.as_str()) {
                continue;
            }
            let buffer = output.buffer.0 as usize;
            let offset = *offsets.entry(buffer).or_insert_with(|| {
                let offset = size;
                let bytes = program.buffers[buffer].bytes;
                copies.push((buffer, offset, bytes));
                size += bytes;
                offset
            });
            results.push((i, offset));
        }
        let staging = (size > 0).then(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgrad readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });

        scopes.finish("loading the program")?;
        let is_state = program
            .inputs
            .iter()
            .map(|io| program.state.iter().any(|p| p.input == io.name))
            .collect();
        Ok(Loaded {
            gpu: Arc::clone(gpu),
            buffers,
            kernels,
            steps: program.steps(),
            inputs: program.inputs.clone(),
            outputs: program.outputs.clone(),
            is_state,
            uploaded: vec![false; program.inputs.len()],
            state_copies,
            readback: Readback {
                staging,
                size,
                copies,
                results,
            },
            profiler: None,
            spare_staging: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub(crate) fn submit<'r>(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<PendingRun<'r>> {
        let given = self.validate(inputs)?;
        let gpu = Arc::clone(&self.gpu);
        let device = gpu.device();
        let scopes = gpu.error_scopes();
        let mut encoder = self.begin(&given);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgrad run"),
                timestamp_writes: None,
            });
            for step in &self.steps {
                self.record(step, &mut pass);
            }
        }
        let staging = (self.readback.size > 0).then(|| {
            lock(&self.spare_staging).pop().unwrap_or_else(|| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgrad readback"),
                    size: self.readback.size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
        });
        self.encode_copies(&mut encoder, staging.as_ref());
        let submission = gpu.queue().submit([encoder.finish()]);
        let (sender, done) = futures::channel::oneshot::channel();
        match &staging {
            Some(staging) => {
                staging.map_async(wgpu::MapMode::Read, 0..self.readback.size, move |result| {
                    let _ = sender.send(result);
                });
            }
            None => gpu.queue().on_submitted_work_done(move || {
                let _ = sender.send(Ok(()));
            }),
        }
        scopes.finish("running the program")?;
        for (index, _) in given {
            self.uploaded[index] = true;
        }
        for (i, is_state) in self.is_state.iter().enumerate() {
            // A state input holds a value from now on, even if this run did not set it.
            if *is_state {
                self.uploaded[i] = true;
            }
        }
        let results = self
            .readback
            .results
            .iter()
            .map(|&(output, offset)| {
                let io = &self.outputs[output];
                (io.name.clone(), io.ty.clone(), offset)
            })
            .collect();
        Ok(PendingRun {
            staging,
            size: self.readback.size,
            results,
            done,
            spare: Arc::clone(&self.spare_staging),
            device: device.clone(),
            submission: Some(submission),
            finished: false,
            _runtime: std::marker::PhantomData,
        })
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn run_profiled(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<(Vec<(String, Tensor)>, Vec<(String, u64)>)> {
        self.execute(inputs, true)
    }

    pub(crate) fn set(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        let index = self.input_index(name)?;
        self.set_index(index, tensor)
    }

    /// Uploads input `index`.
    fn set_index(&mut self, index: usize, tensor: &Tensor) -> Result<()> {
        check_input(&self.inputs[index], tensor)?;
        let scopes = self.gpu.error_scopes();
        self.upload(index, tensor);
        scopes.finish(&format!("uploading `{}`", self.inputs[index].name))?;
        self.uploaded[index] = true;
        Ok(())
    }

    /// Dispatches one workgroup of every kernel not yet dispatched on this device, one
    /// submission at a time, so that a driver that compiles kernels at their first
    /// dispatch compiles them now; stops early when `cancel` is set. What the kernels
    /// write is overwritten by the first run (and by the inputs copied over).
    fn dispatch_each_once(&self, cancel: &AtomicBool) -> Result<()> {
        let scopes = self.gpu.error_scopes();
        for kernel in &self.kernels {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            if kernel.pipeline.dispatched.load(Ordering::Relaxed) || kernel.dispatch.contains(&0) {
                continue;
            }
            let device = self.gpu.device();
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgrad compile"),
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&kernel.name),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&kernel.pipeline.pipeline);
                pass.set_bind_group(0, &kernel.bind_group, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            let submission = self.gpu.queue().submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(submission),
                    timeout: None,
                })
                .map_err(|e| Error::Device(format!("waiting for the device: {e}")))?;
            kernel.pipeline.dispatched.store(true, Ordering::Relaxed);
        }
        scopes.finish("compiling the final tier")
    }

    pub(crate) fn read(&self, name: &str) -> Result<Tensor> {
        let io = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .find(|io| io.name == name)
            .ok_or_else(|| {
                Error::from(CompilerError::Name(format!(
                    "`{name}` is neither an input nor an output of this program ({})",
                    self.names()
                )))
            })?;
        let bytes = io.ty.bytes() as u64;
        if bytes == 0 {
            return Ok(from_bytes(&io.ty, &[]));
        }
        let device = self.gpu.device();
        let scopes = self.gpu.error_scopes();
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgrad read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgrad read"),
        });
        encoder.copy_buffer_to_buffer(&self.buffers[io.buffer.0 as usize], 0, &staging, 0, bytes);
        let submission = self.gpu.queue().submit([encoder.finish()]);
        let mapped = map_read(device, &[(&staging, bytes)], submission);
        scopes.finish(&format!("reading `{name}`"))?;
        let data = mapped?;
        Ok(from_bytes(&io.ty, &data[0]))
    }

    #[allow(clippy::type_complexity)]
    fn execute(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        profile: bool,
    ) -> Result<(Vec<(String, Tensor)>, Vec<(String, u64)>)> {
        let given = self.validate(inputs)?;
        let timing = match self.gpu.timestamps() {
            Some(mode) if profile && !self.steps.is_empty() => {
                if self.profiler.is_none() {
                    self.profiler = Some(self.new_profiler()?);
                }
                Some(mode)
            }
            _ => None,
        };

        let gpu = Arc::clone(&self.gpu);
        let device = gpu.device();
        let scopes = gpu.error_scopes();
        let mut encoder = self.begin(&given);
        let profiler = self.profiler.as_ref().filter(|_| timing.is_some());
        match (timing, profiler) {
            (Some(TimestampMode::PerPass), Some(p)) => {
                for (i, step) in self.steps.iter().enumerate() {
                    let label = self.step_name(step);
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&label),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &p.query_set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    self.record(step, &mut pass);
                }
            }
            _ => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("wgrad run"),
                    timestamp_writes: None,
                });
                for (i, step) in self.steps.iter().enumerate() {
                    if let Some(p) = profiler {
                        pass.write_timestamp(&p.query_set, 2 * i as u32);
                    }
                    self.record(step, &mut pass);
                    if let Some(p) = profiler {
                        pass.write_timestamp(&p.query_set, 2 * i as u32 + 1);
                    }
                }
            }
        }
        if let Some(p) = profiler {
            encoder.resolve_query_set(&p.query_set, 0..p.count, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.staging, 0, u64::from(p.count) * 8);
        }
        self.encode_copies(&mut encoder, self.readback.staging.as_ref());
        let submission = gpu.queue().submit([encoder.finish()]);

        let mut to_map = Vec::new();
        if let Some(staging) = &self.readback.staging {
            to_map.push((staging, self.readback.size));
        }
        if let Some(p) = profiler {
            to_map.push((&p.staging, u64::from(p.count) * 8));
        }
        let mapped = map_read(device, &to_map, submission);
        scopes.finish("running the program")?;
        let mut mapped = mapped?.into_iter();

        for (index, _) in given {
            self.uploaded[index] = true;
        }
        for (i, is_state) in self.is_state.iter().enumerate() {
            // A state input holds a value from now on, even if this run did not set it.
            if *is_state {
                self.uploaded[i] = true;
            }
        }

        let mut outputs = Vec::with_capacity(self.readback.results.len());
        if self.readback.staging.is_some() {
            let data = mapped.next().unwrap_or_default();
            for &(output, offset) in &self.readback.results {
                let io = &self.outputs[output];
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                outputs.push((io.name.clone(), from_bytes(&io.ty, &data[start..])));
            }
        }
        let mut timings = Vec::new();
        if profiler.is_some() {
            let ticks: Vec<u64> = mapped
                .next()
                .unwrap_or_default()
                .chunks_exact(8)
                .map(bytemuck::pod_read_unaligned::<u64>)
                .collect();
            let period = f64::from(gpu.queue().get_timestamp_period());
            for (i, step) in self.steps.iter().enumerate() {
                let (start, end) = match (ticks.get(2 * i), ticks.get(2 * i + 1)) {
                    (Some(&s), Some(&e)) => (s, e),
                    _ => (0, 0),
                };
                let ns = (end.saturating_sub(start) as f64 * period).round() as u64;
                timings.push((self.step_name(step), ns));
            }
        }
        Ok((outputs, timings))
    }

    /// Uploads a run's inputs and starts its commands (inside the caller's error
    /// scopes).
    fn begin(&self, given: &[(usize, &Tensor)]) -> wgpu::CommandEncoder {
        for &(index, tensor) in given {
            self.upload(index, tensor);
        }
        self.gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgrad run"),
            })
    }

    /// Records the copies that end a run: outputs into `staging`, then state outputs
    /// over their inputs (outputs are copied out first: they may share a buffer).
    fn encode_copies(&self, encoder: &mut wgpu::CommandEncoder, staging: Option<&wgpu::Buffer>) {
        if let Some(staging) = staging {
            for &(buffer, offset, bytes) in &self.readback.copies {
                encoder.copy_buffer_to_buffer(&self.buffers[buffer], 0, staging, offset, bytes);
            }
        }
        for copy in &self.state_copies {
            if let Some(scratch) = &copy.scratch {
                encoder.copy_buffer_to_buffer(&self.buffers[copy.from], 0, scratch, 0, copy.bytes);
            }
        }
        for copy in &self.state_copies {
            let source = copy.scratch.as_ref().unwrap_or(&self.buffers[copy.from]);
            encoder.copy_buffer_to_buffer(source, 0, &self.buffers[copy.to], 0, copy.bytes);
        }
    }

    /// Checks the given inputs against the program's and returns them by input index.
    fn validate<'t>(&self, given: &'t HashMap<String, Tensor>) -> Result<Vec<(usize, &'t Tensor)>> {
        let mut unknown: Vec<&String> = given
            .keys()
            .filter(|name| !self.inputs.iter().any(|io| &io.name == *name))
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            return Err(Error::from(CompilerError::Name(format!(
                "`{name}` is not an input of this program (inputs: {})",
                list(&self.inputs)
            ))));
        }
        let mut out = Vec::with_capacity(given.len());
        for (index, io) in self.inputs.iter().enumerate() {
            match given.get(&io.name) {
                Some(tensor) => {
                    check_input(io, tensor)?;
                    out.push((index, tensor));
                }
                None if self.is_state[index] && self.uploaded[index] => {}
                None if self.is_state[index] => {
                    return Err(Error::from(CompilerError::Input {
                        name: io.name.clone(),
                        message: "missing (a state input must be given to the first run or \
                                  uploaded with `set`)"
                            .to_string(),
                    }));
                }
                None => {
                    return Err(Error::from(CompilerError::Input {
                        name: io.name.clone(),
                        message: "missing".to_string(),
                    }));
                }
            }
        }
        Ok(out)
    }

    fn input_index(&self, name: &str) -> Result<usize> {
        self.inputs
            .iter()
            .position(|io| io.name == name)
            .ok_or_else(|| {
                Error::from(CompilerError::Name(format!(
                    "`{name}` is not an input of this program (inputs: {})",
                    list(&self.inputs)
                )))
            })
    }

    fn upload(&self, index: usize, tensor: &Tensor) {
        let bytes = to_bytes(tensor);
        if !bytes.is_empty() {
            let buffer = &self.buffers[self.inputs[index].buffer.0 as usize];
            self.gpu.queue().write_buffer(buffer, 0, &bytes);
        }
    }

    /// Records one step of the schedule: a dispatch, or every iteration of a loop.
    fn record(&self, step: &Step, pass: &mut wgpu::ComputePass<'_>) {
        match step {
            Step::Kernel(k) => self.kernels[*k].record(pass),
            Step::Loop { trips, even, odd } => {
                for i in 0..*trips {
                    for s in if i % 2 == 0 { even } else { odd } {
                        self.record(s, pass);
                    }
                }
            }
        }
    }

    /// A step's name in timings: its kernel's, or for a loop the prefix its kernels'
    /// names share and its trip count.
    fn step_name(&self, step: &Step) -> String {
        match step {
            Step::Kernel(k) => self.kernels[*k].name.clone(),
            Step::Loop { trips, even, .. } => {
                let mut first = even.first();
                while let Some(Step::Loop { even, .. }) = first {
                    first = even.first();
                }
                let prefix = match first {
                    Some(Step::Kernel(k)) => {
                        let name = &self.kernels[*k].name;
                        name.split('.').next().unwrap_or(name).to_string()
                    }
                    _ => "loop".to_string(),
                };
                format!("{prefix} ({trips} iterations)")
            }
        }
    }

    fn new_profiler(&self) -> Result<Profiler> {
        let needed = 2 * self.steps.len() as u64;
        let available = u64::from(wgpu::QUERY_SET_MAX_QUERIES);
        if needed > available {
            return Err(Error::Limits {
                what: "timestamp queries per query set".to_string(),
                needed,
                available,
            });
        }
        let count = needed as u32;
        let device = self.gpu.device();
        let scopes = self.gpu.error_scopes();
        let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgrad timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = u64::from(count) * 8;
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgrad timestamps (resolve)"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgrad timestamps (readback)"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        scopes.finish("creating timestamp queries")?;
        Ok(Profiler {
            query_set,
            resolve,
            staging,
            count,
        })
    }

    fn names(&self) -> String {
        format!(
            "inputs: {}; outputs: {}",
            list(&self.inputs),
            list(&self.outputs)
        )
    }
}

/// A program loaded on a [`Runtime`]'s device, ready to run any number of times.
///
/// Made by [`Runtime::load`]. Buffers (and so state such as trained parameters) live as
/// long as the executable.
///
/// A program with a quick tier ([`Program::quick`]) may be loaded in two tiers
/// ([`RuntimeOptions::tiers`](crate::RuntimeOptions::tiers)): runs go to the quick
/// tier until the program's own kernels, compiled on another thread from the second
/// run on, are ready, and then to them. State (every input that holds a value) moves
/// along. The two tiers compute every element of a product in the same order, so they
/// give the same numbers, except that a sum over a whole product (a loss computed
/// beside it) adds its per-invocation parts in groups that depend on the tile.
/// [`Executable::tier`] says which tier runs, and [`Executable::wait_final_tier`] waits
/// for the switch.
pub struct Executable<'r> {
    now: Loaded,
    tier: Tier,
    next: Option<NextTier>,
    _runtime: std::marker::PhantomData<&'r Runtime>,
}

/// Which of a program's tiers an [`Executable`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The quick tier, while the program's own kernels compile.
    Quick,
    /// The program's own kernels.
    Final,
}

/// The final tier, being loaded and compiled on another thread.
struct NextTier {
    /// Tells the thread to start: at once (`None`), or once the quick tier's first
    /// submission has finished on its device, so that the two do not compete.
    start: Option<mpsc::Sender<Option<(wgpu::Device, wgpu::SubmissionIndex)>>>,
    /// The loaded and compiled final tier.
    done: mpsc::Receiver<Result<Loaded>>,
    /// Set when the executable is dropped: the thread stops between kernels.
    cancel: Arc<AtomicBool>,
    /// The thread, joined when the executable is dropped, so that none is left inside
    /// the driver when the process exits.
    thread: Option<std::thread::JoinHandle<()>>,
    /// Runs submitted so far: the thread starts at the second (a program run once needs
    /// no final tier).
    runs: u32,
    loaded_at: Instant,
}

impl Drop for Executable<'_> {
    fn drop(&mut self) {
        if let Some(mut next) = self.next.take() {
            next.cancel.store(true, Ordering::Relaxed);
            next.start = None;
            if let Some(thread) = next.thread.take() {
                // The thread stops before its next kernel; a kernel being compiled is
                // finished first.
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Executable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: &[IoBinding]| list.iter().map(|io| io.name.clone()).collect();
        let inputs: Vec<String> = names(&self.now.inputs);
        let outputs: Vec<String> = names(&self.now.outputs);
        f.debug_struct("Executable")
            .field("tier", &self.tier)
            .field("kernels", &self.now.kernels.len())
            .field("buffers", &self.now.buffers.len())
            .field("inputs", &inputs)
            .field("outputs", &outputs)
            .finish_non_exhaustive()
    }
}

impl<'r> Executable<'r> {
    /// `program` loaded in one tier on the runtime's device.
    pub(crate) fn new(runtime: &'r Runtime, program: &Program) -> Result<Executable<'r>> {
        Ok(Executable::single(Loaded::new(runtime.gpu(), program)?))
    }

    /// A program loaded in one tier.
    pub(crate) fn single(now: Loaded) -> Executable<'r> {
        Executable {
            now,
            tier: Tier::Final,
            next: None,
            _runtime: std::marker::PhantomData,
        }
    }

    /// `now`, the loaded quick tier, and a thread that loads `program` on the
    /// runtime's device and dispatches each of its kernels once, so that the driver
    /// compiles them.
    pub(crate) fn with_quick_tier(
        runtime: &'r Runtime,
        now: Loaded,
        quick: &Program,
        program: &Program,
    ) -> Result<Executable<'r>> {
        let (start, started) = mpsc::channel::<Option<(wgpu::Device, wgpu::SubmissionIndex)>>();
        let (finished, done) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let gpu = Arc::clone(runtime.gpu());
        let own = Program {
            quick: None,
            ..program.clone()
        };
        let stop = Arc::clone(&cancel);
        let spawned = std::thread::Builder::new()
            .name("wgrad final tier".into())
            .spawn(move || {
                match started.recv() {
                    Ok(Some((device, submission))) => {
                        let _ = device.poll(wgpu::PollType::Wait {
                            submission_index: Some(submission),
                            timeout: None,
                        });
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let loaded = Loaded::new(&gpu, &own).and_then(|l| {
                    l.dispatch_each_once(&stop)?;
                    Ok(l)
                });
                let _ = finished.send(loaded);
            });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                log::warn!("wgrad: loading in one tier: cannot start a thread ({e})");
                return Executable::new(runtime, program);
            }
        };
        let quick_tiles = quick.tiles().next().unwrap_or_default();
        log::info!(
            "wgrad: {} kernels run with {}×{} product tiles until the program's own {} kernels are compiled",
            quick.kernels.len(),
            quick_tiles[0],
            quick_tiles[1],
            program.kernels.len()
        );
        Ok(Executable {
            now,
            tier: Tier::Quick,
            next: Some(NextTier {
                start: Some(start),
                done,
                cancel,
                thread: Some(thread),
                runs: 0,
                loaded_at: Instant::now(),
            }),
            _runtime: std::marker::PhantomData,
        })
    }

    /// Which tier runs now.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Waits until the program's own kernels are loaded and compiled and switches to
    /// them (at once when they already run). A bench calls this before timing.
    ///
    /// Fails with [`Error::Device`] when loading them failed; the quick tier then keeps
    /// running.
    pub fn wait_final_tier(&mut self) -> Result<()> {
        self.switch(true)
    }

    /// Runs the program once and returns its outputs in declared order, except the state
    /// outputs, which replace their inputs on the device instead of being read back.
    ///
    /// Every input must be given, except a state input that already holds a value from
    /// an earlier run or from [`Executable::set`]. Fails with a [`Name`](CompilerError::Name)
    /// error for a name that is not an input, with an [`Input`](CompilerError::Input) error
    /// for a missing input or one of the wrong type (`expected f32[2,3], got f32[3]`), and
    /// with [`Error::Device`] when the device reports an error. Nothing is uploaded unless every input is valid.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use wgrad_compiler::ir::{Tensor, Type, parse};
    /// use wgrad_compiler::lower::{Options, compile};
    /// # let Some(rt) = wgrad_runtime::testing::runtime_or_skip() else { return Ok(()) };
    /// let f = parse("%x = input x : f32[3]\n%y = add %x, %x : f32[3]\noutput y = %y\n")?;
    /// let (program, _) = compile(&f, &Options::new(rt.target().clone()))?;
    /// let mut exe = rt.load(&program)?;
    /// let x = Tensor::new(Type::f32(&[3]), vec![1.0, 2.5, -4.0])?;
    /// let out = exe.run(&HashMap::from([("x".to_string(), x)]))?;
    /// assert_eq!(out[0].1.data, vec![2.0, 5.0, -8.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&mut self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        let mut pending = self.submit(inputs)?;
        // Waiting here, on this thread, finds the future ready at its first poll: no
        // thread is started to wake it.
        pending.wait()?;
        pollster::block_on(pending)
    }

    /// Runs the program like [`Executable::run`], as a future that completes when the
    /// outputs are read back: the thread is free meanwhile, for an async service or an
    /// event loop that must not block.
    pub async fn run_async(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>> {
        self.submit(inputs)?.await
    }

    /// Checks and uploads the inputs, records the run and submits it to the device, and
    /// returns at once: the [`PendingRun`] is a future of the outputs. Runs submitted
    /// one after another execute in that order, each reading back into a staging buffer
    /// of its own, so a run may be submitted before earlier ones are read back
    /// (pipelining); state outputs replace their inputs in submission order.
    ///
    /// Fails as [`Executable::run`] does for invalid inputs (nothing is submitted then).
    pub fn submit(&mut self, inputs: &HashMap<String, Tensor>) -> Result<PendingRun<'r>> {
        self.switch(false)?;
        let pending = self.now.submit(inputs)?;
        // The final tier starts compiling once this run is done on the quick one.
        let after = pending
            .submission
            .clone()
            .map(|s| (self.now.gpu.device().clone(), s));
        self.count_run(after);
        Ok(pending)
    }

    /// Runs the program like [`Executable::run`] and also times each kernel with
    /// timestamp queries, returning `(kernel name, nanoseconds)` in dispatch order.
    ///
    /// The timings are empty when the runtime was created without
    /// [`RuntimeOptions::timestamps`](crate::RuntimeOptions::timestamps) or the adapter
    /// cannot write timestamps (see `Runtime::target().features.timestamps`). When the
    /// adapter can write timestamps only at pass boundaries, each kernel gets a compute
    /// pass of its own for this run.
    #[allow(clippy::type_complexity)]
    pub fn run_profiled(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<(Vec<(String, Tensor)>, Vec<(String, u64)>)> {
        self.switch(false)?;
        let out = self.now.run_profiled(inputs);
        self.count_run(None);
        out
    }

    /// Counts a run on the quick tier; the second starts the final tier's thread, at
    /// once or after submission `after` on the quick tier's device.
    fn count_run(&mut self, after: Option<(wgpu::Device, wgpu::SubmissionIndex)>) {
        if let Some(next) = &mut self.next {
            next.runs += 1;
            if next.runs >= 2
                && let Some(start) = next.start.take()
            {
                let _ = start.send(after);
            }
        }
    }

    /// Uploads one input, e.g. the initial value of a parameter.
    ///
    /// Fails with a [`Name`](CompilerError::Name) error when `name` is not an input and with
    /// an [`Input`](CompilerError::Input) error when the tensor has the wrong type.
    pub fn set(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        self.now.set(name, tensor)
    }

    /// Reads back the current contents of an input or output buffer, e.g. a parameter
    /// after training.
    ///
    /// Fails with a [`Name`](CompilerError::Name) error when `name` is neither an input nor
    /// an output.
    pub fn read(&self, name: &str) -> Result<Tensor> {
        self.now.read(name)
    }

    /// Switches to the final tier when it is ready (waiting for it when `wait`),
    /// copying every input that holds a value over to it.
    fn switch(&mut self, wait: bool) -> Result<()> {
        let Some(next) = &mut self.next else {
            return Ok(());
        };
        let received = if wait {
            if let Some(start) = next.start.take() {
                let _ = start.send(None);
            }
            next.done.recv().map_err(|_| ())
        } else {
            match next.done.try_recv() {
                Ok(loaded) => Ok(loaded),
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => Err(()),
            }
        };
        let loaded_at = next.loaded_at;
        if let Some(thread) = next.thread.take() {
            // It has sent its result: it is returning.
            let _ = thread.join();
        }
        self.next = None;
        let loaded = received
            .map_err(|()| Error::Device("the thread loading the final tier stopped".to_string()))
            .and_then(|loaded| loaded)
            .and_then(|mut loaded| {
                for (i, io) in self.now.inputs.iter().enumerate() {
                    if self.now.uploaded[i] {
                        let index = loaded.input_index(&io.name)?;
                        loaded.set_index(index, &self.now.read(&io.name)?)?;
                    }
                }
                Ok(loaded)
            });
        match loaded {
            Ok(loaded) => {
                log::info!(
                    "wgrad: switched to the program's own {} kernels, {:.1} s after loading",
                    loaded.kernels.len(),
                    loaded_at.elapsed().as_secs_f64()
                );
                self.now = loaded;
                self.tier = Tier::Final;
                Ok(())
            }
            Err(e) => {
                log::warn!("wgrad: staying on the quick tier: loading the final one failed: {e}");
                if wait { Err(e) } else { Ok(()) }
            }
        }
    }
}

/// Checks one input value against its declaration.
fn check_input(io: &IoBinding, tensor: &Tensor) -> Result<()> {
    if tensor.ty != io.ty {
        return Err(Error::from(CompilerError::Input {
            name: io.name.clone(),
            message: format!("expected {}, got {}", io.ty, tensor.ty),
        }));
    }
    if tensor.data.len() != io.ty.numel() {
        return Err(Error::from(CompilerError::Input {
            name: io.name.clone(),
            message: format!(
                "expected {} elements for {}, got {}",
                io.ty.numel(),
                io.ty,
                tensor.data.len()
            ),
        }));
    }
    Ok(())
}

/// The names in a list of bindings, comma-separated.
fn list(ios: &[IoBinding]) -> String {
    if ios.is_empty() {
        return "none".to_string();
    }
    ios.iter()
        .map(|io| format!("`{}`", io.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps each `(buffer, size)` for reading once `submission` has completed, and returns a
/// copy of their first `size` bytes.
fn map_read(
    device: &wgpu::Device,
    buffers: &[(&wgpu::Buffer, u64)],
    submission: wgpu::SubmissionIndex,
) -> Result<Vec<Vec<u8>>> {
    if buffers.is_empty() {
        return Ok(Vec::new());
    }
    let (sender, receiver) = mpsc::channel();
    for (i, &(buffer, size)) in buffers.iter().enumerate() {
        let sender = sender.clone();
        buffer.map_async(wgpu::MapMode::Read, 0..size, move |result| {
            // The receiver outlives every callback unless the device is lost.
            let _ = sender.send((i, result));
        });
    }
    drop(sender);
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| Error::Device(format!("waiting for the device: {e}")))?;

    // Per buffer: `Some(true)` mapped, `Some(false)` failed, `None` still pending.
    // When several threads share the device, another thread's poll may be the one that
    // runs our callbacks, a moment after our own poll returned: wait for them, polling
    // again, rather than assuming they already ran.
    let mut mapped: Vec<Option<bool>> = vec![None; buffers.len()];
    let mut failed = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mapped.contains(&None) {
        match receiver.recv_timeout(std::time::Duration::from_millis(1)) {
            Ok((i, result)) => {
                if let Err(e) = &result {
                    failed.get_or_insert(format!("mapping readback buffer {i} failed: {e}"));
                }
                mapped[i] = Some(result.is_ok());
            }
            Err(mpsc::RecvTimeoutError::Timeout) if std::time::Instant::now() < deadline => {
                device
                    .poll(wgpu::PollType::Poll)
                    .map_err(|e| Error::Device(format!("waiting for the device: {e}")))?;
            }
            Err(_) => {
                failed.get_or_insert("a readback buffer was not mapped".to_string());
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(buffers.len());
    for (&(buffer, size), state) in buffers.iter().zip(&mapped) {
        if *state == Some(true) && failed.is_none() {
            match buffer.slice(0..size).get_mapped_range() {
                Ok(view) => out.push(view.to_vec()),
                Err(e) => {
                    failed.get_or_insert(format!("reading a mapped buffer failed: {e}"));
                }
            }
        }
        // Unmapping a mapped buffer releases it; unmapping a pending one aborts the
        // mapping; a buffer whose mapping failed is not mapped and must not be unmapped.
        if *state != Some(false) {
            buffer.unmap();
        }
    }
    match failed {
        Some(message) => Err(Error::Device(message)),
        None => Ok(out),
    }
}
