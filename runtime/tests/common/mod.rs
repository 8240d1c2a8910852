//! Hand-built programs for the runtime tests: small WGSL kernels and a builder for the
//! plain-data `Program` the compiler would emit.

#![allow(dead_code)]

use std::collections::HashMap;

use wgrad_compiler::ir::{DType, Graph, Tensor, Type};
use wgrad_compiler::lower::{
    Buffer, BufferId, BufferRole, IoBinding, Kernel, KernelBinding, Program, StatePair, Target,
};

/// A program under construction.
pub struct ProgramBuilder {
    program: Program,
}

impl ProgramBuilder {
    pub fn new() -> ProgramBuilder {
        ProgramBuilder {
            program: Program {
                graph: Graph::default(),
                target: Target::software_vulkan(),
                buffers: Vec::new(),
                kernels: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                schedule: Vec::new(),
                state: Vec::new(),
                stats: Default::default(),
                quick: None,
            },
        }
    }

    /// Adds an input and its buffer.
    pub fn input(&mut self, name: &str, ty: Type) -> BufferId {
        let id = self.buffer(ty.clone(), BufferRole::Input(name.to_string()));
        self.program.inputs.push(IoBinding {
            name: name.to_string(),
            buffer: id,
            ty,
        });
        id
    }

    /// Adds a computed buffer.
    pub fn computed(&mut self, ty: Type) -> BufferId {
        self.buffer(ty, BufferRole::Computed)
    }

    fn buffer(&mut self, ty: Type, role: BufferRole) -> BufferId {
        let bytes = (ty.numel() as u64 * 4).max(4);
        self.program.buffers.push(Buffer { ty, bytes, role });
        BufferId(self.program.buffers.len() as u32 - 1)
    }

    /// Declares an output held in `buffer`.
    pub fn output(&mut self, name: &str, buffer: BufferId) {
        let ty = self.program.buffers[buffer.0 as usize].ty.clone();
        self.program.outputs.push(IoBinding {
            name: name.to_string(),
            buffer,
            ty,
        });
    }

    /// Declares that output `output` replaces input `input` after each run.
    pub fn state(&mut self, input: &str, output: &str) {
        self.program.state.push(StatePair {
            input: input.to_string(),
            output: output.to_string(),
        });
    }

    /// Adds a kernel binding `reads` read-only then `writes` read-write, in that binding
    /// order, with a 64-wide workgroup covering `n` invocations.
    pub fn kernel(
        &mut self,
        name: &str,
        wgsl: &str,
        reads: &[BufferId],
        writes: &[BufferId],
        n: u32,
    ) {
        let bindings = reads
            .iter()
            .map(|&b| (b, false))
            .chain(writes.iter().map(|&b| (b, true)))
            .enumerate()
            .map(|(i, (buffer, writable))| KernelBinding {
                binding: i as u32,
                buffer,
                writable,
            })
            .collect();
        self.program.kernels.push(Kernel {
            name: name.to_string(),
            variant: "test".to_string(),
            wgsl: wgsl.to_string(),
            entry_point: "main".to_string(),
            bindings,
            workgroup_size: [64, 1, 1],
            dispatch: [n.div_ceil(64).max(1), 1, 1],
            flops: 0,
            bytes_moved: 0,
        });
    }

    pub fn kernels_mut(&mut self) -> &mut Vec<Kernel> {
        &mut self.program.kernels
    }

    pub fn build(self) -> Program {
        self.program
    }
}

/// An elementwise kernel over `n` elements: `out[i] = <expr>`, where the expression
/// reads the read-only bindings named `a`, `b`, ... (declared in that order) at `i`.
pub fn elementwise(n: usize, reads: &[(&str, &str)], out_ty: &str, expr: &str) -> String {
    let mut s = String::new();
    for (i, (name, ty)) in reads.iter().enumerate() {
        s += &format!("@group(0) @binding({i}) var<storage, read> {name}: array<{ty}>;\n");
    }
    s += &format!(
        "@group(0) @binding({}) var<storage, read_write> out: array<{out_ty}>;\n",
        reads.len()
    );
    s += &format!(
        "@compute @workgroup_size(64)\n\
         fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
         \x20   let i = gid.x;\n\
         \x20   if (i >= {n}u) {{ return; }}\n\
         \x20   out[i] = {expr};\n\
         }}\n"
    );
    s
}

/// `out = a * 2 + b` over two `f32[2,3]` inputs.
pub fn axpb() -> Program {
    let ty = Type::f32(&[2, 3]);
    let mut p = ProgramBuilder::new();
    let a = p.input("a", ty.clone());
    let b = p.input("b", ty.clone());
    let out = p.computed(ty);
    let wgsl = elementwise(6, &[("a", "f32"), ("b", "f32")], "f32", "a[i] * 2.0 + b[i]");
    p.kernel("axpb", &wgsl, &[a, b], &[out], 6);
    p.output("out", out);
    p.build()
}

/// An `f32` tensor.
pub fn f32s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f32(shape, data.to_vec()).expect("test data matches its shape")
}

/// A tensor of any dtype.
pub fn tensor(dtype: DType, shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(Type::new(dtype, shape), data.to_vec()).expect("test data fits its type")
}

/// Named inputs.
pub fn inputs(list: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

/// The output named `name`.
pub fn get<'a>(outputs: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output `{name}`"))
        .1
}
