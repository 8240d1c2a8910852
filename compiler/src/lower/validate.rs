//! naga validation of generated WGSL.
//!
//! Every kernel is parsed and validated on the CPU before it is accepted, with the
//! capabilities the target's features allow. Generated WGSL that naga rejects is a
//! compiler bug: the error carries the kernel's name, naga's message and the full text.

use super::target::Target;
use crate::error::{Error, Result};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The naga capabilities matching the device features a target offers.
pub fn capabilities(target: &Target) -> Capabilities {
    let mut caps = Capabilities::empty();
    if target.features.shader_f16 {
        caps |= Capabilities::SHADER_FLOAT16;
    }
    if target.features.subgroups {
        caps |= Capabilities::SUBGROUP;
    }
    caps
}

/// Parses and validates one kernel's WGSL.
pub fn validate_wgsl(name: &str, wgsl: &str, target: &Target) -> Result<()> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| {
        Error::Internal(format!(
            "kernel {name}: generated WGSL does not parse:\n{}\n{wgsl}",
            e.emit_to_string(wgsl)
        ))
    })?;
    Validator::new(ValidationFlags::all(), capabilities(target))
        .validate(&module)
        .map_err(|e| {
            Error::Internal(format!(
                "kernel {name}: naga rejects the generated WGSL:\n{}\n{wgsl}",
                e.emit_to_string(wgsl)
            ))
        })?;
    Ok(())
}
