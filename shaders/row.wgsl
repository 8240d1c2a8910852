// Row kernel: each row is made a few passes over, in a fixed order. Each pass folds
// some reductions along the row; the values between passes (a row's maximum, its sum of
// exponentials, its loss) live in registers; the last pass stores what other kernels
// read element by element. On CPU adapters one invocation takes a row, with no
// workgroup memory and no barriers (very slow there); on GPUs a workgroup takes a row,
// its invocations fold interleaved columns and combine their partial results as a tree
// in workgroup memory. Either way the order is fixed, so results are bit-identical
// between runs.
//
// Placeholders, filled in by the compiler (compiler/src/lower/emit/row.rs):
//   {{HEADER}}    comment naming the kernel and the IR values it computes
//   {{BINDINGS}}  the storage buffers, and the workgroup arrays of partial results
//   {{WG}}        invocations per workgroup
//   {{PARAMS}}    the entry point's built-in inputs
//   {{ROW_INDEX}} `let i: u32 = ...;`, the row this invocation (or workgroup) takes
//   {{COUNT}}     rows
//   {{BODY}}      the passes over row `i`, the per-row work between them, the stores
{{HEADER}}
{{BINDINGS}}

@compute @workgroup_size({{WG}})
fn main({{PARAMS}}) {
{{ROW_INDEX}}
    if i >= {{COUNT}}u {
        return;
    }
{{BODY}}
}
