// Register-tiled matrix product C[b] = A[b] · B[b], with no workgroup memory and no
// barriers (barriers are very slow on CPU adapters such as lavapipe). Each invocation
// computes a TM×TN tile of C held in registers; every register index is a compile-time
// constant because the compiler unrolls the tile into straight-line code.
//
// Placeholders, filled in by the compiler (compiler/src/lower/emit/matmul.rs):
//   {{HEADER}}    comment naming the kernel and the IR value it computes
//   {{A_BINDING}} {{B_BINDING}}  the operands' buffers (as vec4<f32> when four elements
//                 are loaded at a time), or a note that an operand is computed as it
//                 is loaded by `load_a(row, k)` / `load_b(k, col)` (its prologue)
//   {{M}} {{N}} {{K}} {{TM}} {{TN}}  sizes and the register tile
//   {{WG_X}} {{WG_Y}}  the workgroup: 8×8 invocations (tiles along columns and rows), or
//                 64×1 when A's loads are shared by a subgroup
//   {{BUILTINS}}  the entry point's arguments: the global invocation id, or the
//                 workgroup id and the subgroup's id and lane when A's loads are shared
//   {{INVOCATION}} with shared loads, `gid` made from the subgroup and its lane: a
//                 subgroup computes one row of tiles, so its lanes read the same A rows
//   {{K_STEP}}    1u, or 4u when A is read as vec4 along K (four steps of K at a time)
//   {{BATCH}}     the batch an invocation computes: gid.z, or with K split into parts
//                 (split-K) gid.z over the parts, `part` being gid.z modulo them
//   {{K_FROM}} {{K_TO}}  the steps of K it computes: all of them, or its part's
//   {{A_STRIDE}} {{B_STRIDE}} {{C_STRIDE}}  elements between consecutive batches
//   {{ACC}} {{LOADS}} {{FMAS}} {{STORES}}  the unrolled tile, and, when the kernel also
//                 sums an operand over K (a bias gradient), the sums of the loaded B
//                 (or A) values, stored by the invocations of the first tile row (or
//                 column)
//   {{EXIT}}      an invocation whose tile lies outside the product ends at once,
//                 storing 0 as its sum when the kernel also sums its whole result (a
//                 loss; the stores then add up each invocation's elements and store
//                 their sum too). With shared loads only a subgroup wholly outside
//                 ends; a lane outside beside lanes inside runs on (its loads are
//                 clamped and its stores skipped), since the subgroup needs its loads.
//                 The exit is uniform in each subgroup by construction, so the
//                 broadcasts after it run in every lane of a subgroup or in none
//   {{EPILOGUE}}  extra bindings and functions: the prologues, and, when elementwise
//                 work on the product is fused into this kernel, `fn epilogue(acc,
//                 row, col)`, applied to every stored element
//   {{STORE_FNS}} `put` and `put4`, which store one or four result elements through
//                 the epilogue when inside the result (and add them to the sum); with
//                 split-K they store the part's partial result, without the epilogue,
//                 which the kernel adding the parts applies
{{HEADER}}
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
{{A_BINDING}}
{{B_BINDING}}
{{EPILOGUE}}
{{STORE_FNS}}

const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;

@compute @workgroup_size({{WG_X}}, {{WG_Y}}, 1)
fn main({{BUILTINS}}) {
{{INVOCATION}}    let row0 = gid.y * {{TM}}u;
    let col0 = gid.x * {{TN}}u;
{{EXIT}}    let a_base = {{BATCH}} * {{A_STRIDE}}u;
    let b_base = {{BATCH}} * {{B_STRIDE}}u;
    let c_base = {{BATCH}} * {{C_STRIDE}}u;
{{ACC}}
    for (var k: u32 = {{K_FROM}}; k < {{K_TO}}; k = k + {{K_STEP}}) {
{{LOADS}}
{{FMAS}}
    }
{{STORES}}
}
