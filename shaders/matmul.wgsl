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
//   {{WG_X}} {{WG_Y}}  tiles per workgroup along columns and rows (the target's)
//   {{K_STEP}}    1u, or 4u when A is read as vec4 along K (four steps of K at a time)
//   {{A_STRIDE}} {{B_STRIDE}} {{C_STRIDE}}  elements between consecutive batches
//   {{ACC}} {{LOADS}} {{FMAS}} {{STORES}}  the unrolled tile, and, when the kernel also
//                 sums an operand over K (a bias gradient), the sums of the loaded B
//                 (or A) values, stored by the invocations of the first tile row (or
//                 column)
//   {{EXIT}}      when the kernel also sums its whole result (a loss), what an
//                 invocation outside the product stores as its sum (0); the stores
//                 then add up each invocation's elements and store their sum too
//   {{EPILOGUE}}  extra bindings and functions: the prologues, and, when elementwise
//                 work on the product is fused into this kernel, `fn epilogue(acc,
//                 row, col)`, applied to every stored element
//   {{STORE_FNS}} `put` and `put4`, which store one or four result elements through
//                 the epilogue when inside the result (and add them to the sum)
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
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * {{TM}}u;
    let col0 = gid.x * {{TN}}u;
    if row0 >= M || col0 >= N {
{{EXIT}}        return;
    }
    let a_base = gid.z * {{A_STRIDE}}u;
    let b_base = gid.z * {{B_STRIDE}}u;
    let c_base = gid.z * {{C_STRIDE}}u;
{{ACC}}
    for (var k: u32 = 0u; k < K; k = k + {{K_STEP}}) {
{{LOADS}}
{{FMAS}}
    }
{{STORES}}
}
