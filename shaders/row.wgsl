// Row kernel: one invocation per row makes a few passes over its row, in a fixed
// order. Each pass folds some reductions along the row; the values between passes
// (a row's maximum, its sum of exponentials, its loss) live in registers; the last
// pass stores what other kernels read element by element. No workgroup memory and no
// barriers (very slow on CPU adapters), and results are bit-identical between runs.
//
// Placeholders, filled in by the compiler (compiler/src/lower/row.rs):
//   {{HEADER}}    comment naming the kernel and the IR values it computes
//   {{BINDINGS}}  the storage buffers
//   {{WG}}        invocations per workgroup
//   {{ROW}}       invocations per row of the dispatch grid (2-D grids for many rows)
//   {{COUNT}}     rows
//   {{BODY}}      the passes over row `i`, the per-row work between them, the stores
{{HEADER}}
{{BINDINGS}}

@compute @workgroup_size({{WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i: u32 = gid.x + gid.y * {{ROW}}u;
    if i >= {{COUNT}}u {
        return;
    }
{{BODY}}
}
