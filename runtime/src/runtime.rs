//! The runtime: one adapter, one device, and the pipelines compiled for it.
//!
//! [`Runtime::new`] selects an adapter, then requests a device whose limits are raised to
//! what the adapter offers where compiled programs need it (storage buffers per kernel,
//! workgroup size, buffer sizes); wgpu's defaults (8 storage buffers, 256 invocations) are
//! lower than what most adapters, lavapipe included, can do. Optional features are enabled
//! only when the adapter has them: `f16` and subgroups (the compiler may use them when the
//! target says so) and, when [`RuntimeOptions::timestamps`] asks for it, timestamp queries.
//!
//! Compute pipelines are cached by a hash of their WGSL code (comments aside), entry point and binding
//! layout, so loading a program twice, or two programs sharing kernels, compiles nothing
//! new. Every device call that can fail validation runs inside error scopes, and what they
//! catch is returned as [`Error::Device`]; an error that escapes a scope is logged rather
//! than panicking, as wgpu's default handler would.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::{Error, Result};
use wgrad_compiler::lower::{Kernel, Program, Target};

use crate::adapter::{self, AdapterSummary};
use crate::check::check_program;
use crate::executable::{Executable, Loaded};
use crate::target::target_from_adapter;

/// How a [`Runtime`] is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Enables timestamp queries, when the adapter supports them, so that
    /// [`Executable::run_profiled`] can time each kernel.
    pub timestamps: bool,
    /// Loads a program that has a quick tier ([`Program::quick`]) in two tiers, on an
    /// adapter whose target has a [`quick_tile`](Target::quick_tile): the quick tier
    /// runs at once, on a second device of the same adapter; from the second run on,
    /// the program's own kernels are created and compiled on another thread, and the
    /// first run after they are ready switches to them (see [`Executable::tier`]). A
    /// program run once never compiles its own kernels. On by default; off, every
    /// kernel is compiled during the first run.
    pub tiers: bool,
    /// Which tuning file to read (`wgrad tune` writes it).
    pub tuning: TuningSource,
}

/// Where a [`Runtime`] takes its product tiles from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TuningSource {
    /// The file `WGRAD_TUNING_FILE` names, or else the adapter's in the user's cache
    /// directory ([`default_tuning_file`](crate::tuning::default_tuning_file)).
    #[default]
    Default,
    /// This file.
    File(std::path::PathBuf),
    /// None: the preset's tiles (tests that check generated kernels use this, so that
    /// a tuning file on the machine does not change them).
    Off,
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions {
            timestamps: false,
            tiers: true,
            tuning: TuningSource::Default,
        }
    }
}

/// How kernels are timed, when they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimestampMode {
    /// Timestamps written between dispatches of one compute pass.
    InsidePasses,
    /// One compute pass per kernel, with timestamps at its beginning and end.
    PerPass,
}

/// A compiled compute pipeline and the layout of its bind group 0.
#[derive(Debug)]
pub(crate) struct CachedPipeline {
    /// What the pipeline was compiled from, compared on a cache hit to rule out a hash
    /// collision.
    source: PipelineSource,
    /// The pipeline.
    pub(crate) pipeline: wgpu::ComputePipeline,
    /// The layout of bind group 0, matching the kernel's bindings.
    pub(crate) layout: wgpu::BindGroupLayout,
    /// Whether the pipeline has been dispatched on its device: drivers that compile a
    /// kernel at its first dispatch (lavapipe) have compiled it, or will have before
    /// any later dispatch.
    pub(crate) dispatched: AtomicBool,
}

/// The parts of a kernel that decide its pipeline.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PipelineSource {
    wgsl: String,
    entry_point: String,
    /// `(binding, writable)` for every binding, in order.
    bindings: Vec<(u32, bool)>,
}

impl PipelineSource {
    /// The code of `kernel` without its comments: kernels that differ only in what
    /// their comments say (the values they compute, the sizes of their buffers) share
    /// one pipeline. An unrolled loop's iterations, or the layers of a deep network,
    /// compile once.
    fn of(kernel: &Kernel) -> PipelineSource {
        PipelineSource {
            wgsl: without_comments(&kernel.wgsl),
            entry_point: kernel.entry_point.clone(),
            bindings: kernel
                .bindings
                .iter()
                .map(|b| (b.binding, b.writable))
                .collect(),
        }
    }

    fn hash64(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

/// WGSL text with every line comment removed (generated WGSL has no string literals, so
/// `//` always starts a comment) and trailing spaces trimmed.
fn without_comments(wgsl: &str) -> String {
    let mut out = String::with_capacity(wgsl.len());
    for line in wgsl.lines() {
        let code = line
            .split_once("//")
            .map_or(line, |(code, _)| code)
            .trim_end();
        if !code.is_empty() {
            out.push_str(code);
            out.push('\n');
        }
    }
    out
}

/// One open device, its queue, and the pipelines compiled for it.
pub(crate) struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    timestamps: Option<TimestampMode>,
    pipelines: Mutex<HashMap<u64, Arc<CachedPipeline>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

/// An open device on the selected adapter, ready to load programs.
///
/// A runtime may be shared between threads; each [`Executable`] borrows it. A second
/// device on the same adapter is opened when a program is first loaded in two tiers
/// ([`RuntimeOptions::tiers`]): its quick tier runs there.
pub struct Runtime {
    main: Arc<Gpu>,
    /// The device quick tiers run on, opened on first use (or why it could not be).
    side: OnceLock<std::result::Result<Arc<Gpu>, String>>,
    adapter: wgpu::Adapter,
    descriptor: wgpu::DeviceDescriptor<'static>,
    summary: AdapterSummary,
    target: Target,
    options: RuntimeOptions,
    /// The tuning file consulted, and what became of it.
    tuning: (Option<std::path::PathBuf>, String),
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("adapter", &self.summary)
            .field("target", &self.target)
            .field("cached_pipelines", &self.cached_pipelines())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Selects an adapter and opens a device on it.
    ///
    /// Fails with [`Error::NoAdapter`] when no adapter exists (the hint names the driver
    /// to install) or when `WGPU_ADAPTER_NAME` matches none, and with [`Error::Device`]
    /// when the adapter refuses to open a device.
    pub fn new(options: &RuntimeOptions) -> Result<Runtime> {
        let instance = adapter::instance_from_env();
        let adapter = adapter::select_adapter(&instance)?;
        let summary = AdapterSummary::from_info(&adapter.get_info());
        log::info!(
            "wgrad: using adapter `{}` (backend {}, device type {})",
            summary.name,
            summary.backend,
            summary.device_type
        );

        let offered = adapter.limits();
        let required_limits = required_limits(&offered);
        let available = adapter.features();
        let mut required_features = wgpu::Features::empty();
        for feature in [wgpu::Features::SHADER_F16, wgpu::Features::SUBGROUP] {
            if available.contains(feature) {
                required_features |= feature;
            }
        }
        let mut timestamps = None;
        if options.timestamps && available.contains(wgpu::Features::TIMESTAMP_QUERY) {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
            if available.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
                required_features |= wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
                timestamps = Some(TimestampMode::InsidePasses);
            } else {
                timestamps = Some(TimestampMode::PerPass);
            }
        } else if options.timestamps {
            log::warn!(
                "wgrad: timestamps were requested but `{}` does not support timestamp queries",
                summary.name
            );
        }

        let descriptor = wgpu::DeviceDescriptor {
            label: Some("wgrad"),
            required_features,
            required_limits,
            ..Default::default()
        };
        let main = Gpu::open(&adapter, &descriptor, &summary, timestamps)?;
        let limits = main.limits.clone();
        let mut target = target_from_adapter(&adapter);
        target.max_storage_buffers_per_shader_stage = limits.max_storage_buffers_per_shader_stage;
        target.max_compute_invocations_per_workgroup = limits.max_compute_invocations_per_workgroup;
        target.max_compute_workgroups_per_dimension = limits.max_compute_workgroups_per_dimension;
        target.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size;
        target.max_buffer_size = limits.max_buffer_size;
        target.features.timestamps = timestamps.is_some();
        let (path, tuning, status) = crate::tuning::resolve(&options.tuning, &summary);
        log::info!("wgrad: {status}");
        target.tuning = tuning;

        Ok(Runtime {
            main: Arc::new(main),
            side: OnceLock::new(),
            adapter,
            descriptor,
            summary,
            target,
            options: options.clone(),
            tuning: (path, status),
        })
    }

    /// The tuning file this runtime consulted (whether or not it exists).
    pub fn tuning_file(&self) -> Option<&std::path::Path> {
        self.tuning.0.as_deref()
    }

    /// What became of the tuning file: how many product tiles it gave, or why it was
    /// absent or ignored.
    pub fn tuning_status(&self) -> &str {
        &self.tuning.1
    }

    /// The target this runtime's device satisfies: compile programs for it.
    ///
    /// Its limits are the device's; `features.timestamps` says whether
    /// [`Executable::run_profiled`] can time kernels on this runtime.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Prepares a program to run: checks it against the device limits, compiles (or takes
    /// from the cache) a pipeline per kernel, and allocates its buffers.
    ///
    /// Fails with [`Error::Limits`] naming the first limit the program exceeds (e.g.
    /// `max_storage_buffers_per_shader_stage`), with a compiler
    /// [`Error::Compile`](wgrad_compiler::Error::Compile) when the program
    /// is malformed (a binding names a buffer that does not exist, ...), and with
    /// [`Error::Device`] when the device rejects a shader or pipeline.
    ///
    /// ```
    /// use wgrad_compiler::ir::parse;
    /// use wgrad_compiler::lower::{Options, compile};
    /// # let Some(rt) = wgrad_runtime::testing::runtime_or_skip() else { return Ok(()) };
    /// // With a runtime `rt` (`Runtime::new(&RuntimeOptions::default())?`):
    /// let f = parse("%x = input x : f32[4]\n%y = exp %x : f32[4]\noutput y = %y\n")?;
    /// let (program, _) = compile(&f, &Options::new(rt.target().clone()))?;
    /// let exe = rt.load(&program)?;
    /// # drop(exe);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self, program: &Program) -> Result<Executable<'_>> {
        check_program(program, &self.main.limits)?;
        match self.quick_tier(program) {
            Some((side, quick)) => {
                let now = Loaded::new(&side, quick)?;
                Executable::with_quick_tier(self, now, quick, program)
            }
            None => Executable::new(self, program),
        }
    }

    /// Loads a program like [`Runtime::load`], as a future: the pipelines are created
    /// on another thread, so an async service or event loop is not blocked meanwhile.
    ///
    /// ```
    /// use wgrad_compiler::ir::parse;
    /// use wgrad_compiler::lower::{Options, compile};
    /// # let Some(rt) = wgrad_runtime::testing::runtime_or_skip() else { return Ok(()) };
    /// let f = parse("%x = input x : f32[4]\n%y = exp %x : f32[4]\noutput y = %y\n")?;
    /// let (program, _) = compile(&f, &Options::new(rt.target().clone()))?;
    /// let exe = pollster::block_on(rt.load_async(&program))?;
    /// # drop(exe);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn load_async(&self, program: &Program) -> Result<Executable<'_>> {
        check_program(program, &self.main.limits)?;
        let quick = self.quick_tier(program);
        let (gpu, first) = match &quick {
            Some((side, quick)) => (Arc::clone(side), (*quick).clone()),
            None => (Arc::clone(&self.main), program.clone()),
        };
        let (sender, receiver) = futures::channel::oneshot::channel();
        std::thread::Builder::new()
            .name("wgrad load".into())
            .spawn(move || {
                let _ = sender.send(Loaded::new(&gpu, &first));
            })
            .map_err(|e| Error::Device(format!("cannot start a thread to load on: {e}")))?;
        let loaded = receiver
            .await
            .map_err(|_| Error::Device("the loading thread stopped".to_string()))??;
        match quick {
            Some((_, quick)) => Executable::with_quick_tier(self, loaded, quick, program),
            None => Ok(Executable::single(loaded)),
        }
    }

    /// The number of distinct pipelines compiled so far on the runtime's device (not
    /// counting quick tiers).
    pub fn cached_pipelines(&self) -> usize {
        lock(&self.main.pipelines).len()
    }

    /// The runtime's device.
    pub(crate) fn gpu(&self) -> &Arc<Gpu> {
        &self.main
    }

    /// The device and program of `program`'s quick tier when it loads in two tiers:
    /// tiers are on, the adapter compiles kernels at their first dispatch, the program
    /// has a quick tier and some of its own kernels are not compiled yet. Without a
    /// second device it loads in one tier, with a warning.
    fn quick_tier<'p>(&self, program: &'p Program) -> Option<(Arc<Gpu>, &'p Program)> {
        let quick = program.quick.as_deref()?;
        if !self.options.tiers
            || self.target.quick_tile.is_none()
            || self.main.all_dispatched(program)
        {
            return None;
        }
        match self.side() {
            Ok(side) => Some((side, quick)),
            Err(e) => {
                log::warn!(
                    "wgrad: loading `{}` in one tier: no second device ({e})",
                    program.kernels.first().map_or("", |k| k.name.as_str())
                );
                None
            }
        }
    }

    /// The second device, for quick tiers, opened now if it is not yet.
    fn side(&self) -> std::result::Result<Arc<Gpu>, String> {
        self.side
            .get_or_init(|| {
                let clock = std::time::Instant::now();
                let opened = Gpu::open(
                    &self.adapter,
                    &self.descriptor,
                    &self.summary,
                    self.main.timestamps,
                )
                .map(Arc::new)
                .map_err(|e| e.to_string());
                log::debug!("wgrad: second device opened in {:?}", clock.elapsed());
                opened
            })
            .clone()
    }
}

impl Gpu {
    /// Opens a device on `adapter` as `descriptor` says.
    fn open(
        adapter: &wgpu::Adapter,
        descriptor: &wgpu::DeviceDescriptor<'_>,
        summary: &AdapterSummary,
        timestamps: Option<TimestampMode>,
    ) -> Result<Gpu> {
        let (device, queue) = pollster::block_on(adapter.request_device(descriptor))
            .map_err(|e| Error::Device(format!("could not open a device on {summary}: {e}")))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            log::error!("wgrad: uncaptured device error: {error}");
            lock(&sink).push(error.to_string());
        }));
        Ok(Gpu {
            limits: device.limits(),
            device,
            queue,
            timestamps,
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
        })
    }

    pub(crate) fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub(crate) fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub(crate) fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub(crate) fn timestamps(&self) -> Option<TimestampMode> {
        self.timestamps
    }

    /// Whether every kernel of `program` has a pipeline on this device that has been
    /// dispatched (so nothing is left for the driver to compile).
    fn all_dispatched(&self, program: &Program) -> bool {
        let cache = lock(&self.pipelines);
        program.kernels.iter().all(|kernel| {
            let source = PipelineSource::of(kernel);
            cache
                .get(&source.hash64())
                .is_some_and(|hit| hit.source == source && hit.dispatched.load(Ordering::Relaxed))
        })
    }

    /// Opens error scopes that catch every error of the device calls made until
    /// [`ErrorScopes::finish`].
    pub(crate) fn error_scopes(&self) -> ErrorScopes<'_> {
        let guards = [
            wgpu::ErrorFilter::Validation,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Internal,
        ]
        .into_iter()
        .map(|filter| self.device.push_error_scope(filter))
        .collect();
        ErrorScopes { gpu: self, guards }
    }

    /// The pipeline for `kernel`, compiled now unless an identical one is cached.
    pub(crate) fn pipeline(&self, kernel: &Kernel) -> Result<Arc<CachedPipeline>> {
        let source = PipelineSource::of(kernel);
        let key = source.hash64();
        if let Some(hit) = lock(&self.pipelines).get(&key) {
            if hit.source == source {
                return Ok(Arc::clone(hit));
            }
            // A 64-bit hash collision: compile without caching rather than run the wrong
            // shader.
            log::warn!(
                "wgrad: pipeline cache collision for kernel `{}`",
                kernel.name
            );
            return self.compile(kernel, source).map(Arc::new);
        }
        // Compiled without holding the lock, so that threads loading other programs are
        // not held up; if two threads compile the same kernel at once, the first to
        // finish is kept.
        let compiled = Arc::new(self.compile(kernel, source)?);
        let mut cache = lock(&self.pipelines);
        Ok(Arc::clone(cache.entry(key).or_insert(compiled)))
    }

    fn compile(&self, kernel: &Kernel, source: PipelineSource) -> Result<CachedPipeline> {
        let scopes = self.error_scopes();
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: !b.writable,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let label = kernel.name.as_str();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(kernel.wgsl.as_str().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kernel.entry_point.as_str()),
                compilation_options: Default::default(),
                cache: None,
            });
        scopes.finish(&format!("compiling kernel `{}`", kernel.name))?;
        log::debug!("wgrad: compiled kernel `{}`", kernel.name);
        Ok(CachedPipeline {
            source,
            pipeline,
            layout,
            dispatched: AtomicBool::new(false),
        })
    }
}

/// Error scopes pushed by [`Gpu::error_scopes`].
pub(crate) struct ErrorScopes<'r> {
    gpu: &'r Gpu,
    guards: Vec<wgpu::ErrorScopeGuard>,
}

impl ErrorScopes<'_> {
    /// Pops the scopes and returns the first error they caught, or one reported outside
    /// any scope meanwhile, as [`Error::Device`] prefixed by `what`.
    pub(crate) fn finish(mut self, what: &str) -> Result<()> {
        let mut first = None;
        // Scopes pop in reverse order of their pushing.
        while let Some(guard) = self.guards.pop() {
            if let Some(error) = pollster::block_on(guard.pop()) {
                first.get_or_insert(error.to_string().trim_end().to_string());
            }
        }
        let escaped = std::mem::take(&mut *lock(&self.gpu.uncaptured));
        match first.or_else(|| escaped.into_iter().next()) {
            Some(message) => Err(Error::Device(format!("{what}: {message}"))),
            None => Ok(()),
        }
    }
}

impl Drop for ErrorScopes<'_> {
    fn drop(&mut self) {
        // Dropping a guard pops its scope; they must go in reverse order.
        while let Some(guard) = self.guards.pop() {
            drop(guard);
        }
    }
}

/// The limits to request: wgpu's defaults (lowered where the adapter offers less), raised
/// to everything the adapter offers for the limits compiled programs depend on.
fn required_limits(offered: &wgpu::Limits) -> wgpu::Limits {
    let mut limits = wgpu::Limits::default().or_worse_values_from(offered);
    limits.max_storage_buffers_per_shader_stage = offered.max_storage_buffers_per_shader_stage;
    // Storage buffers also count against this combined limit (28 by default).
    limits.max_buffers_and_acceleration_structures_per_shader_stage =
        offered.max_buffers_and_acceleration_structures_per_shader_stage;
    limits.max_compute_invocations_per_workgroup = offered.max_compute_invocations_per_workgroup;
    limits.max_compute_workgroup_size_x = offered.max_compute_workgroup_size_x;
    limits.max_compute_workgroup_size_y = offered.max_compute_workgroup_size_y;
    limits.max_compute_workgroup_size_z = offered.max_compute_workgroup_size_z;
    limits.max_compute_workgroups_per_dimension = offered.max_compute_workgroups_per_dimension;
    limits.max_storage_buffer_binding_size = offered.max_storage_buffer_binding_size;
    limits.max_buffer_size = offered.max_buffer_size;
    limits
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (the
/// cache and the error list stay consistent at every point a panic could occur).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
