// Reduction: each invocation folds a run of reduced elements, in a fixed order, into one
// accumulator, so results are bit-identical from run to run and no workgroup barrier is
// needed (barriers are very slow on CPU adapters). A long reduction with few outputs
// runs in two stages: this template once with many partial runs per output, then once
// more over the partial results.
//
// Placeholders, filled in by the compiler (compiler/src/lower/emit/reduce.rs):
//   {{HEADER}}    comment naming the kernel and the IR value it computes
//   {{BINDINGS}}  the storage buffers; binding 0 is the result
//   {{WG}}        invocations per workgroup
//   {{ROW}}       invocations per row of the dispatch grid (2-D grids for big outputs)
//   {{COUNT}}     invocations that do work
//   {{PROLOGUE}}  coordinates of this invocation's output and the run `start..end`
//   {{ACCUMULATORS}} one `var acc…` per reduction, at its initial value (siblings,
//                 reductions of the same domain, each have their own)
//   {{BODY}}      reads element `r` (fused producers inlined, computed once for every
//                 sibling) and folds it into each accumulator
//   {{EPILOGUE}}  elementwise work on the result fused after the loop (may be empty)
//   {{STORES}}    each result stored at `i`: an accumulator, or the epilogue's result
{{HEADER}}
{{BINDINGS}}

@compute @workgroup_size({{WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i: u32 = gid.x + gid.y * {{ROW}}u;
    if i >= {{COUNT}}u {
        return;
    }
{{PROLOGUE}}
{{ACCUMULATORS}}
    for (var r: u32 = start; r < end; r = r + 1u) {
{{BODY}}
    }
{{EPILOGUE}}{{STORES}}
}
