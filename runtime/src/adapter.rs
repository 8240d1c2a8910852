//! Adapter selection: which GPU (or software driver) runs the programs.
//!
//! The instance is built from the environment, so `WGPU_BACKEND=vulkan` (or `gl`, `metal`,
//! ...) restricts the backends tried. When `WGPU_ADAPTER_NAME` is set, the first adapter
//! whose name contains it (ignoring case) is taken, as `wgpu::util::initialize_adapter_from_env`
//! does; unlike that function, a name that matches nothing is an error rather than a panic,
//! and among several matches the best ranked wins.
//! Otherwise every adapter that can run compute shaders is ranked: discrete GPU, then
//! integrated, virtual, other, and last a CPU (software) adapter; among equals Vulkan is
//! preferred, so Mesa's lavapipe wins over llvmpipe through GL. When nothing is found the
//! error names the package to install.

use std::fmt;

use crate::error::{Error, Result};

/// What to install when no adapter exists.
pub(crate) const NO_ADAPTER_HINT: &str = "install a Vulkan driver; on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1 (Mesa's lavapipe runs compute on the CPU)";

/// A readable description of the adapter a runtime uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The backend, e.g. `vulkan` or `gl`.
    pub backend: String,
    /// The device type: `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    /// The driver's name, e.g. `llvmpipe`.
    pub driver: String,
    /// The driver's version and other details.
    pub driver_info: String,
}

impl AdapterSummary {
    /// Describes an adapter from its information record.
    pub(crate) fn from_info(info: &wgpu::AdapterInfo) -> AdapterSummary {
        AdapterSummary {
            name: info.name.clone(),
            backend: info.backend.to_str().to_string(),
            device_type: device_type_name(info.device_type).to_string(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        match (self.driver.is_empty(), self.driver_info.is_empty()) {
            (true, true) => {}
            (false, true) => write!(f, ", driver {}", self.driver)?,
            (true, false) => write!(f, ", driver {}", self.driver_info)?,
            (false, false) => write!(f, ", driver {} {}", self.driver, self.driver_info)?,
        }
        f.write_str(")")
    }
}

/// The name used for a device type in summaries and logs.
pub(crate) fn device_type_name(device_type: wgpu::DeviceType) -> &'static str {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
        wgpu::DeviceType::VirtualGpu => "virtual-gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// Builds an instance whose backends, flags and backend options come from the
/// environment (`WGPU_BACKEND`, `WGPU_VALIDATION`, ...).
pub(crate) fn instance_from_env() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Picks the adapter to run on, as described in the module documentation.
pub(crate) fn select_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    check_backend_names()?;
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let described = describe_all(&adapters);

    if let Some(wanted) = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|w| !w.is_empty())
    {
        let lower = wanted.to_lowercase();
        let mut matching: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| a.get_info().name.to_lowercase().contains(&lower))
            .collect();
        // One name often matches several backends (llvmpipe through Vulkan and GL).
        matching.sort_by_key(|a| rank(&a.get_info()));
        return matching.into_iter().next().ok_or_else(|| Error::NoAdapter {
            reason: format!(
                "WGPU_ADAPTER_NAME=`{wanted}` matches no adapter{}",
                found_list(&described, backends)
            ),
            hint: "unset WGPU_ADAPTER_NAME, or set it to part of one of the names listed"
                .to_string(),
        });
    }

    let mut usable: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    // A stable sort keeps the enumeration order among equally ranked adapters.
    usable.sort_by_key(|a| rank(&a.get_info()));
    usable.into_iter().next().ok_or_else(|| Error::NoAdapter {
        reason: if described.is_empty() {
            format!("no adapter found for backends {}", backend_names(backends))
        } else {
            format!(
                "no adapter can run compute shaders{}",
                found_list(&described, backends)
            )
        },
        hint: NO_ADAPTER_HINT.to_string(),
    })
}

/// The names `WGPU_BACKEND` may hold (wgpu's own list), comma-separated.
const BACKEND_NAMES: [&str; 11] = [
    "vulkan", "vk", "metal", "mtl", "dx12", "d3d12", "gl", "gles", "opengl", "webgpu", "noop",
];

/// Fails for a `WGPU_BACKEND` naming a backend wgpu does not know (which it would
/// otherwise ignore, leaving no backend to try).
fn check_backend_names() -> Result<()> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(());
    };
    let unknown: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty() && !BACKEND_NAMES.contains(&b.to_lowercase().as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::NoAdapter {
        reason: format!(
            "WGPU_BACKEND=`{value}` names no backend wgpu knows (`{}`)",
            unknown.join("`, `")
        ),
        hint: "set WGPU_BACKEND to vulkan, metal, dx12 or gl (several may be comma-separated), \
               or unset it to try every backend"
            .to_string(),
    })
}

/// The sort key of an adapter: lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let class = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        wgpu::Backend::BrowserWebGpu => 4,
        wgpu::Backend::Noop => 5,
    };
    (class, backend)
}

/// One line per adapter: name, backend and device type.
fn describe_all(adapters: &[wgpu::Adapter]) -> Vec<String> {
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            format!(
                "{} ({}, {})",
                info.name,
                info.backend.to_str(),
                device_type_name(info.device_type)
            )
        })
        .collect()
}

/// `"; found: a, b"` or `" (no adapters found for backends ...)"`.
fn found_list(described: &[String], backends: wgpu::Backends) -> String {
    if described.is_empty() {
        format!(
            " (no adapters found for backends {})",
            backend_names(backends)
        )
    } else {
        format!("; found: {}", described.join(", "))
    }
}

/// The backends tried, e.g. `vulkan, gl`, noting when `WGPU_BACKEND` chose them.
fn backend_names(backends: wgpu::Backends) -> String {
    let names = plain_backend_names(backends);
    match std::env::var("WGPU_BACKEND") {
        Ok(value) if !value.is_empty() => format!("{names} (WGPU_BACKEND={value})"),
        _ => names,
    }
}

fn plain_backend_names(backends: wgpu::Backends) -> String {
    let all = [
        (wgpu::Backends::VULKAN, "vulkan"),
        (wgpu::Backends::METAL, "metal"),
        (wgpu::Backends::DX12, "dx12"),
        (wgpu::Backends::GL, "gl"),
        (wgpu::Backends::BROWSER_WEBGPU, "webgpu"),
    ];
    let names: Vec<&str> = all
        .iter()
        .filter(|(b, _)| backends.contains(*b))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// Switches off Mesa's device-select Vulkan layer for this process (`NODEVICE_SELECT=1`),
/// unless the environment already sets that variable. The layer connects to a Wayland
/// display to rank GPUs by the screen they drive, and on a headless machine prints
/// `XDG_RUNTIME_DIR is invalid or not set in the environment.` for every device opened;
/// wgrad ranks adapters itself, so nothing is lost.
///
/// # Safety
///
/// It sets an environment variable, which is sound only while no other thread reads or
/// writes the environment: call it first thing in `main` (see [`std::env::set_var`]).
pub unsafe fn skip_display_device_selection() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees that no other thread uses the environment.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
