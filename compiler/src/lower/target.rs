//! Compilation targets: a plain description of an adapter class, its limits and its
//! features.
//!
//! Compiling needs no device. A [`Target`] is either a fixed preset (so statistics and
//! golden WGSL files are reproducible on any machine) or read off a real adapter by the
//! runtime. Kernel variants and their tuning parameters (the matmul register tile) are
//! chosen per target, and the choice shows in dumps.

/// The broad class of an adapter, which decides kernel variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterClass {
    /// A CPU-backed software rasterizer (Mesa lavapipe, llvmpipe through GL). Workgroup
    /// barriers are very slow here, so kernels avoid them.
    Cpu,
    /// A discrete GPU.
    DiscreteGpu,
    /// An integrated GPU.
    IntegratedGpu,
    /// Anything else (virtual GPUs, unknown).
    Other,
}

impl AdapterClass {
    /// The name used in dumps and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AdapterClass::Cpu => "cpu",
            AdapterClass::DiscreteGpu => "discrete-gpu",
            AdapterClass::IntegratedGpu => "integrated-gpu",
            AdapterClass::Other => "other",
        }
    }
}

/// Optional device features a program may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TargetFeatures {
    /// `f16` arithmetic in shaders.
    pub shader_f16: bool,
    /// Subgroup operations.
    pub subgroups: bool,
    /// Timestamp queries inside compute passes.
    pub timestamps: bool,
}

/// What the compiler may assume about the device it compiles for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// A short name: a preset's name, or the adapter's.
    pub name: String,
    /// The adapter class.
    pub class: AdapterClass,
    /// Storage buffers one kernel may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups along one dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// The largest storage binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// The largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Optional features.
    pub features: TargetFeatures,
    /// Matmul outputs computed per invocation, `[rows, cols]`: the register tile of the
    /// tiled matmul variant, tuned per target.
    pub matmul_tile: [u32; 2],
}

impl Target {
    /// Mesa's software Vulkan driver (lavapipe), as on a headless CI machine.
    pub fn software_vulkan() -> Target {
        Target {
            name: "software-vulkan".into(),
            class: AdapterClass::Cpu,
            max_storage_buffers_per_shader_stage: 32,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 1 << 30,
            features: TargetFeatures {
                shader_f16: true,
                subgroups: true,
                timestamps: true,
            },
            matmul_tile: [16, 16],
        }
    }

    /// A typical discrete GPU under Vulkan: the software preset's limits and features,
    /// with fewer storage buffers per stage and a smaller matmul tile.
    pub fn discrete_gpu() -> Target {
        Target {
            name: "discrete-gpu".into(),
            class: AdapterClass::DiscreteGpu,
            max_storage_buffers_per_shader_stage: 16,
            matmul_tile: [4, 4],
            ..Target::software_vulkan()
        }
    }

    /// WebGPU's default limits: what any conforming adapter offers.
    pub fn portable() -> Target {
        Target {
            name: "portable".into(),
            class: AdapterClass::Other,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 256 << 20,
            features: TargetFeatures::default(),
            matmul_tile: [4, 4],
        }
    }

    /// The names of the presets, for `--target`.
    pub const PRESETS: [&'static str; 3] = ["software-vulkan", "discrete-gpu", "portable"];

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Target> {
        match name {
            "software-vulkan" => Some(Target::software_vulkan()),
            "discrete-gpu" => Some(Target::discrete_gpu()),
            "portable" => Some(Target::portable()),
            _ => None,
        }
    }

    /// The invocations per workgroup of elementwise and reduction kernels.
    pub fn workgroup_size(&self) -> u32 {
        self.max_compute_invocations_per_workgroup.min(256)
    }
}
