//! Reading a compilation [`Target`] off a real adapter.
//!
//! The compiler chooses kernel variants per target without touching a device; this module
//! is the bridge that describes an actual adapter in the compiler's terms: its class, the
//! limits kernels must respect, its optional features, and the matmul tile of the preset
//! for that class.

use wgrad_compiler::lower::{AdapterClass, Target, TargetFeatures};

/// Describes `adapter` as a compilation target.
///
/// The class follows the device type (a virtual or unknown device is
/// [`AdapterClass::Other`]); the limits are what the adapter offers, which is also what a
/// [`Runtime`](crate::Runtime) requests for its device; the matmul tile is that of
/// [`Target::software_vulkan`] for a CPU adapter and of [`Target::discrete_gpu`] otherwise.
pub fn target_from_adapter(adapter: &wgpu::Adapter) -> Target {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    let class = match info.device_type {
        wgpu::DeviceType::Cpu => AdapterClass::Cpu,
        wgpu::DeviceType::DiscreteGpu => AdapterClass::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu => AdapterClass::IntegratedGpu,
        wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => AdapterClass::Other,
    };
    let preset = match class {
        AdapterClass::Cpu => Target::software_vulkan(),
        _ => Target::discrete_gpu(),
    };
    let max_loop_iterations = loop_limit(&info, class);
    Target {
        name: info.name,
        class,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        features: TargetFeatures {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_size: (features.contains(wgpu::Features::SUBGROUP)
                && info.subgroup_min_size == info.subgroup_max_size)
                .then_some(info.subgroup_min_size),
            timestamps: features.contains(
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            ),
        },
        matmul_tile: preset.matmul_tile,
        quick_tile: preset.quick_tile,
        tuning: Default::default(),
        max_loop_iterations,
    }
}

/// The driver's limit on one invocation's loop iterations: llvmpipe's, by its name or
/// driver, under Vulkan or GL; the same, conservatively, for any other CPU adapter;
/// none known otherwise.
fn loop_limit(info: &wgpu::AdapterInfo, class: AdapterClass) -> usize {
    let llvmpipe = [&info.name, &info.driver, &info.driver_info]
        .iter()
        .any(|s| s.to_lowercase().contains("llvmpipe"));
    if llvmpipe || class == AdapterClass::Cpu {
        wgrad_compiler::lower::LOOP_LIMIT
    } else {
        u32::MAX as usize
    }
}
