//! Checks a program before anything is created on the device.
//!
//! A program from the compiler is well-formed and fits the target it was compiled for, but
//! the runtime may run it on another adapter, and a hand-built program may be neither.
//! Checking first turns what would be a wgpu validation error (or an index panic) into an
//! [`Error::Limits`] naming the limit, or a compiler [`Error::Compile`] naming the malformed
//! part.
//!
//! [`Error::Compile`]: wgrad_compiler::Error::Compile

use std::collections::HashSet;

use crate::error::{Error, Result};
use wgrad_compiler::lower::{BufferId, Program, Step};

/// Checks that every handle in `program` is valid and that it fits `limits`.
pub(crate) fn check_program(program: &Program, limits: &wgpu::Limits) -> Result<()> {
    check_structure(program)?;
    check_limits(program, limits)
}

fn malformed(message: String) -> Error {
    wgrad_compiler::Error::Compile(format!("malformed program: {message}")).into()
}

fn check_structure(program: &Program) -> Result<()> {
    let n = program.buffers.len();
    let valid = |id: BufferId| (id.0 as usize) < n;
    for (i, buffer) in program.buffers.iter().enumerate() {
        // Sizes are compared exactly (in 128 bits): a program built by hand may name a
        // type whose size in bytes overflows `u64`.
        if buffer.bytes == 0 || buffer.bytes % 4 != 0 || (buffer.bytes as u128) < buffer.ty.bytes()
        {
            return Err(malformed(format!(
                "buffer {i} of type {} has {} bytes",
                buffer.ty, buffer.bytes
            )));
        }
    }
    for kernel in &program.kernels {
        let mut seen = HashSet::new();
        for b in &kernel.bindings {
            if !valid(b.buffer) {
                return Err(malformed(format!(
                    "kernel `{}` binds buffer {}, but there are {n} buffers",
                    kernel.name, b.buffer.0
                )));
            }
            if !seen.insert(b.binding) {
                return Err(malformed(format!(
                    "kernel `{}` uses @binding({}) twice",
                    kernel.name, b.binding
                )));
            }
        }
    }
    let mut stack: Vec<&Step> = program.schedule.iter().collect();
    while let Some(step) = stack.pop() {
        match step {
            Step::Kernel(k) if *k >= program.kernels.len() => {
                return Err(malformed(format!(
                    "the schedule dispatches kernel {k}, but there are {} kernels",
                    program.kernels.len()
                )));
            }
            Step::Kernel(_) => {}
            Step::Loop { even, odd, .. } => stack.extend(even.iter().chain(odd)),
        }
    }
    for (what, list) in [("input", &program.inputs), ("output", &program.outputs)] {
        for io in list {
            if !valid(io.buffer) {
                return Err(malformed(format!(
                    "{what} `{}` is in buffer {}, but there are {n} buffers",
                    io.name, io.buffer.0
                )));
            }
            let buffer = program.buffer(io.buffer);
            if buffer.ty.bytes() != io.ty.bytes() {
                return Err(malformed(format!(
                    "{what} `{}` of type {} is in buffer {} of type {}",
                    io.name, io.ty, io.buffer.0, buffer.ty
                )));
            }
        }
    }
    let mut targets = HashSet::new();
    for pair in &program.state {
        let input = program.inputs.iter().find(|io| io.name == pair.input);
        let output = program.outputs.iter().find(|io| io.name == pair.output);
        match (input, output) {
            (Some(i), Some(o)) if i.ty == o.ty => {}
            (Some(i), Some(o)) => {
                return Err(malformed(format!(
                    "state output `{}` of type {} cannot replace input `{}` of type {}",
                    pair.output, o.ty, pair.input, i.ty
                )));
            }
            _ => {
                return Err(malformed(format!(
                    "state pair `{}` -> `{}` names a missing input or output",
                    pair.output, pair.input
                )));
            }
        }
        if !targets.insert(pair.input.as_str()) {
            return Err(malformed(format!(
                "input `{}` is replaced by two state outputs",
                pair.input
            )));
        }
    }
    Ok(())
}

fn exceeds(what: &str, needed: u64, available: u64) -> Result<()> {
    if needed > available {
        Err(Error::Limits {
            what: what.to_string(),
            needed,
            available,
        })
    } else {
        Ok(())
    }
}

fn check_limits(program: &Program, limits: &wgpu::Limits) -> Result<()> {
    exceeds(
        "max_storage_buffers_per_shader_stage",
        program.max_bindings().into(),
        limits.max_storage_buffers_per_shader_stage.into(),
    )?;
    exceeds(
        "max_compute_invocations_per_workgroup",
        program.max_workgroup_invocations().into(),
        limits.max_compute_invocations_per_workgroup.into(),
    )?;
    exceeds(
        "max_buffer_size",
        program.max_buffer_bytes(),
        limits.max_buffer_size,
    )?;
    let per_axis = [
        (
            "max_compute_workgroup_size_x",
            limits.max_compute_workgroup_size_x,
        ),
        (
            "max_compute_workgroup_size_y",
            limits.max_compute_workgroup_size_y,
        ),
        (
            "max_compute_workgroup_size_z",
            limits.max_compute_workgroup_size_z,
        ),
    ];
    for kernel in &program.kernels {
        for (axis, (what, available)) in per_axis.iter().enumerate() {
            exceeds(
                what,
                kernel.workgroup_size[axis].into(),
                (*available).into(),
            )?;
        }
        for &groups in &kernel.dispatch {
            exceeds(
                "max_compute_workgroups_per_dimension",
                groups.into(),
                limits.max_compute_workgroups_per_dimension.into(),
            )?;
        }
        for b in &kernel.bindings {
            exceeds(
                "max_storage_buffer_binding_size",
                program.buffer(b.buffer).bytes,
                limits.max_storage_buffer_binding_size,
            )?;
        }
    }
    Ok(())
}
