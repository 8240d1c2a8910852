//! Features of the f64 reference interpreter, one test per op group, with hand-computed
//! expectations: f64 float arithmetic, WGSL integer semantics, shape ops, reductions,
//! products, indexing, casts, loops, and the errors a caller sees for bad inputs.

use std::collections::HashMap;
use wgrad_compiler::Error;
use wgrad_compiler::ir::{
    Builder, DType, DotDims, Graph, ReduceKind, Scalar, Tensor, Type, Value, eval, eval_graph,
};

type Build = dyn FnOnce(&mut Builder, &[Value]) -> wgrad_compiler::Result<Value>;

/// Builds a graph with inputs `x0, x1, ..` of the types of `inputs` and one output, the
/// value `build` returns, and evaluates it on `inputs`.
fn run(inputs: &[Tensor], build: Box<Build>) -> Tensor {
    let mut b = Builder::new();
    let xs: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| b.input(&format!("x{i}"), t.ty.clone()).unwrap())
        .collect();
    let y = build(&mut b, &xs).unwrap();
    b.output("y", y).unwrap();
    let graph = b.finish().unwrap();
    eval_graph(&graph, inputs).unwrap().remove(0)
}

/// Checks that evaluating `build` on `inputs` gives exactly `expect` (NaN equals NaN).
fn check(
    inputs: &[Tensor],
    build: impl FnOnce(&mut Builder, &[Value]) -> wgrad_compiler::Result<Value> + 'static,
    expect: Tensor,
) {
    let got = run(inputs, Box::new(build));
    assert_eq!(got.ty, expect.ty, "type of the result");
    let same = got
        .data
        .iter()
        .zip(&expect.data)
        .all(|(g, e)| g == e || g.is_nan() && e.is_nan());
    assert!(same, "got {:?}, expected {:?}", got.data, expect.data);
}

/// [`check`] with one input.
fn check1(
    input: &Tensor,
    build: impl FnOnce(&mut Builder, &[Value]) -> wgrad_compiler::Result<Value> + 'static,
    expect: Tensor,
) {
    check(std::slice::from_ref(input), build, expect);
}

fn f(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f32(shape, data.to_vec()).unwrap()
}

fn i(shape: &[usize], data: &[i32]) -> Tensor {
    Tensor::from_i32(shape, data).unwrap()
}

fn u(shape: &[usize], data: &[u32]) -> Tensor {
    Tensor::from_u32(shape, data).unwrap()
}

fn b(shape: &[usize], data: &[bool]) -> Tensor {
    Tensor::from_bool(shape, data).unwrap()
}

/// `0, 1, 2, ..` as an `f32` tensor of `shape`.
fn arange(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f(shape, &(0..n).map(|k| k as f64).collect::<Vec<_>>())
}

const NAN: f64 = f64::NAN;

// ---- Elementwise ----------------------------------------------------------------------

#[test]
fn float_arithmetic_is_f64_not_f32() {
    let x = f(&[5], &[0.1, -2.0, 1.0, 0.0, 1.0]);
    let y = f(&[5], &[0.2, 3.0, 1e-8, 0.0, 0.0]);
    // 0.1 + 0.2 is 0.30000000000000004 in f64, and 1 + 1e-8 would round to 1 in f32.
    let xy = [x, y];
    check(
        &xy,
        |b, v| b.add(v[0], v[1]),
        f(&[5], &[0.1 + 0.2, 1.0, 1.0 + 1e-8, 0.0, 1.0]),
    );
    check(
        &xy,
        |b, v| b.sub(v[0], v[1]),
        f(&[5], &[0.1 - 0.2, -5.0, 1.0 - 1e-8, 0.0, 1.0]),
    );
    check(
        &xy,
        |b, v| b.mul(v[0], v[1]),
        f(&[5], &[0.1 * 0.2, -6.0, 1e-8, 0.0, 0.0]),
    );
    let quotients = [0.1 / 0.2, -2.0 / 3.0, 1.0 / 1e-8, NAN, f64::INFINITY];
    check(&xy, |b, v| b.div(v[0], v[1]), f(&[5], &quotients));
    let base = f(&[3], &[2.0, 4.0, -8.0]);
    let exponent = f(&[3], &[10.0, 0.5, 1.0 / 3.0]);
    check(
        &[base, exponent],
        |b, v| b.pow(v[0], v[1]),
        f(&[3], &[1024.0, 2.0, NAN]),
    );
    // A float literal keeps its f64 value.
    check(&[], |b, _| b.scalar(0.1), Tensor::scalar(0.1));
}

#[test]
fn float_unary_functions() {
    let x = f(&[4], &[4.0, 1.0, 0.0, -0.25]);
    let un = |op: fn(&mut Builder, Value) -> wgrad_compiler::Result<Value>, want: &[f64]| {
        check1(&x, move |b, v| op(b, v[0]), f(&[4], want));
    };
    un(Builder::neg, &[-4.0, -1.0, 0.0, 0.25]);
    un(
        Builder::exp,
        &[4f64.exp(), 1f64.exp(), 1.0, (-0.25f64).exp()],
    );
    un(Builder::log, &[4f64.ln(), 0.0, f64::NEG_INFINITY, NAN]);
    un(
        Builder::sin,
        &[4f64.sin(), 1f64.sin(), 0.0, (-0.25f64).sin()],
    );
    un(
        Builder::cos,
        &[4f64.cos(), 1f64.cos(), 1.0, (-0.25f64).cos()],
    );
    un(
        Builder::tanh,
        &[4f64.tanh(), 1f64.tanh(), 0.0, (-0.25f64).tanh()],
    );
    un(Builder::sqrt, &[2.0, 1.0, 0.0, NAN]);
    un(Builder::rsqrt, &[0.5, 1.0, f64::INFINITY, NAN]);
    un(Builder::recip, &[0.25, 1.0, f64::INFINITY, -4.0]);
    un(Builder::abs, &[4.0, 1.0, 0.0, 0.25]);
    let s = f(&[5], &[-3.5, 0.0, -0.0, 2.0, NAN]);
    check(
        &[s],
        |b, v| b.sign(v[0]),
        f(&[5], &[-1.0, 0.0, 0.0, 1.0, 0.0]),
    );
}

#[test]
fn float_max_and_min_propagate_nan() {
    let x = f(&[4], &[1.0, 5.0, NAN, 2.0]);
    let y = f(&[4], &[2.0, 3.0, 1.0, NAN]);
    let xy = [x, y];
    check(
        &xy,
        |b, v| b.max(v[0], v[1]),
        f(&[4], &[2.0, 5.0, NAN, NAN]),
    );
    check(
        &xy,
        |b, v| b.min(v[0], v[1]),
        f(&[4], &[1.0, 3.0, NAN, NAN]),
    );
}

#[test]
fn i32_arithmetic_wraps() {
    const MAX: i32 = i32::MAX;
    const MIN: i32 = i32::MIN;
    let x = i(&[4], &[MAX, MIN, 65536, MAX]);
    let y = i(&[4], &[1, 1, 65536, 2]);
    let xy = [x.clone(), y];
    check(
        &xy,
        |b, v| b.add(v[0], v[1]),
        i(&[4], &[MIN, MIN + 1, 131072, MIN + 1]),
    );
    check(
        &xy,
        |b, v| b.sub(v[0], v[1]),
        i(&[4], &[MAX - 1, MAX, 0, MAX - 2]),
    );
    check(&xy, |b, v| b.mul(v[0], v[1]), i(&[4], &[MAX, MIN, 0, -2]));
    let n = i(&[4], &[MIN, -7, 0, 7]);
    check1(&n, |b, v| b.neg(v[0]), i(&[4], &[MIN, 7, 0, -7]));
    check1(&n, |b, v| b.abs(v[0]), i(&[4], &[MIN, 7, 0, 7]));
    check(&[n], |b, v| b.sign(v[0]), i(&[4], &[-1, -1, 0, 1]));
    let p = i(&[2], &[-3, 4]);
    let q = i(&[2], &[2, 4]);
    check(
        &[p.clone(), q.clone()],
        |b, v| b.max(v[0], v[1]),
        i(&[2], &[2, 4]),
    );
    check(&[p, q], |b, v| b.min(v[0], v[1]), i(&[2], &[-3, 4]));
}

#[test]
fn u32_arithmetic_wraps() {
    const MAX: u32 = u32::MAX;
    let x = u(&[3], &[MAX, 0, MAX]);
    let y = u(&[3], &[1, 1, MAX]);
    let xy = [x, y];
    check(&xy, |b, v| b.add(v[0], v[1]), u(&[3], &[0, 1, MAX - 1]));
    check(&xy, |b, v| b.sub(v[0], v[1]), u(&[3], &[MAX - 1, MAX, 0]));
    // (2^32 - 1)^2 = 1 modulo 2^32.
    check(&xy, |b, v| b.mul(v[0], v[1]), u(&[3], &[MAX, 0, 1]));
    check(&xy, |b, v| b.max(v[0], v[1]), u(&[3], &[MAX, 1, MAX]));
    check(&xy, |b, v| b.min(v[0], v[1]), u(&[3], &[1, 0, MAX]));
    let n = u(&[3], &[0, 1, 7]);
    check1(&n, |b, v| b.neg(v[0]), u(&[3], &[0, MAX, MAX - 6]));
    check1(&n, |b, v| b.abs(v[0]), u(&[3], &[0, 1, 7]));
    check(&[n], |b, v| b.sign(v[0]), u(&[3], &[0, 1, 1]));
}

#[test]
fn integer_division_truncates_and_follows_wgsl_at_zero_and_overflow() {
    let x = i(&[6], &[7, -7, 7, 5, i32::MIN, i32::MIN]);
    let y = i(&[6], &[2, 2, -2, 0, -1, 0]);
    let want = i(&[6], &[3, -3, -3, 5, i32::MIN, i32::MIN]);
    check(&[x, y], |b, v| b.div(v[0], v[1]), want);
    let x = u(&[3], &[7, 5, u32::MAX]);
    let y = u(&[3], &[2, 0, 2]);
    check(
        &[x, y],
        |b, v| b.div(v[0], v[1]),
        u(&[3], &[3, 5, u32::MAX / 2]),
    );
}

#[test]
fn comparisons_give_bools_and_select_picks() {
    let x = f(&[3], &[1.0, 2.0, NAN]);
    let y = f(&[3], &[2.0, 2.0, NAN]);
    let xy = [x, y];
    check(&xy, |b, v| b.eq(v[0], v[1]), b(&[3], &[false, true, false]));
    check(&xy, |b, v| b.ne(v[0], v[1]), b(&[3], &[true, false, true]));
    check(&xy, |b, v| b.lt(v[0], v[1]), b(&[3], &[true, false, false]));
    check(&xy, |b, v| b.le(v[0], v[1]), b(&[3], &[true, true, false]));
    check(
        &xy,
        |b, v| b.gt(v[0], v[1]),
        b(&[3], &[false, false, false]),
    );
    check(&xy, |b, v| b.ge(v[0], v[1]), b(&[3], &[false, true, false]));
    // Unsigned values compare as unsigned, signed as signed.
    let big = u(&[1], &[u32::MAX]);
    check(
        &[big, u(&[1], &[0])],
        |b, v| b.gt(v[0], v[1]),
        b(&[1], &[true]),
    );
    check(
        &[i(&[1], &[-1]), i(&[1], &[0])],
        |b, v| b.lt(v[0], v[1]),
        b(&[1], &[true]),
    );
    let c = b(&[3], &[true, false, true]);
    let s = [c, f(&[3], &[1.0, 2.0, 3.0]), f(&[3], &[-1.0, -2.0, -3.0])];
    check(
        &s,
        |b, v| b.select(v[0], v[1], v[2]),
        f(&[3], &[1.0, -2.0, 3.0]),
    );
}

#[test]
fn casts_truncate_saturate_and_reinterpret() {
    let x = f(&[7], &[2.7, -2.7, NAN, 1e10, -1e10, -0.0, 0.5]);
    let to_i32 = [2, -2, 0, i32::MAX, i32::MIN, 0, 0];
    check1(&x, |b, v| b.cast(v[0], DType::I32), i(&[7], &to_i32));
    let to_u32 = [2, 0, 0, u32::MAX, 0, 0, 0];
    check1(&x, |b, v| b.cast(v[0], DType::U32), u(&[7], &to_u32));
    let to_bool = [true, true, true, true, true, false, true];
    check(&[x], |b, v| b.cast(v[0], DType::Bool), b(&[7], &to_bool));
    // Between i32 and u32 the bits are reinterpreted.
    let s = i(&[3], &[-1, i32::MIN, 5]);
    let s_as_u = u(&[3], &[u32::MAX, 1 << 31, 5]);
    check1(&s, |b, v| b.cast(v[0], DType::U32), s_as_u.clone());
    check(&[s_as_u], |b, v| b.cast(v[0], DType::I32), s.clone());
    check1(
        &s,
        |b, v| b.cast(v[0], DType::F32),
        f(&[3], &[-1.0, -2147483648.0, 5.0]),
    );
    check(
        &[s],
        |b, v| b.cast(v[0], DType::Bool),
        b(&[3], &[true, true, true]),
    );
    let flags = b(&[2], &[true, false]);
    check1(
        &flags,
        |b, v| b.cast(v[0], DType::F32),
        f(&[2], &[1.0, 0.0]),
    );
    check(&[flags], |b, v| b.cast(v[0], DType::I32), i(&[2], &[1, 0]));
    check(
        &[u(&[2], &[0, 3])],
        |b, v| b.cast(v[0], DType::Bool),
        b(&[2], &[false, true]),
    );
}

#[test]
fn stop_gradient_is_the_identity() {
    let x = f(&[2], &[1.5, -2.0]);
    check1(&x, |b, v| b.stop_gradient(v[0]), x.clone());
}

// ---- Shapes ---------------------------------------------------------------------------

#[test]
fn broadcast_maps_operand_axes_to_result_axes() {
    let row = f(&[3], &[1.0, 2.0, 3.0]);
    let want = f(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    check(&[row], |b, v| b.broadcast_in_dim(v[0], &[2, 3], &[1]), want);
    let col = f(&[2], &[1.0, 2.0]);
    let want = f(&[2, 3], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    check(&[col], |b, v| b.broadcast_in_dim(v[0], &[2, 3], &[0]), want);
    // An operand axis of extent 1 expands.
    let col = f(&[2, 1], &[1.0, 2.0]);
    let want = f(&[2, 3], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    check(
        &[col],
        |b, v| b.broadcast_in_dim(v[0], &[2, 3], &[0, 1]),
        want,
    );
    let s = Tensor::scalar(7.0);
    check(
        &[s],
        |b, v| b.broadcast_in_dim(v[0], &[2, 2], &[]),
        f(&[2, 2], &[7.0; 4]),
    );
    // [2,1] -> [2,2,3] along result axes 0 and 2: new middle axis, expanded last axis.
    let x = f(&[2, 1], &[1.0, 2.0]);
    let mut want = vec![1.0; 6];
    want.extend([2.0; 6]);
    check(
        &[x],
        |b, v| b.broadcast_in_dim(v[0], &[2, 2, 3], &[0, 2]),
        f(&[2, 2, 3], &want),
    );
    // The builder's NumPy broadcasting goes through the same op.
    let m = arange(&[2, 3]);
    let r = f(&[3], &[10.0, 20.0, 30.0]);
    let want = f(&[2, 3], &[10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    check(&[m, r], |b, v| b.add(v[0], v[1]), want);
}

#[test]
fn reshape_and_transpose() {
    let x = arange(&[2, 3]);
    check1(&x, |b, v| b.reshape(v[0], &[3, 2]), arange(&[3, 2]));
    check1(&x, |b, v| b.reshape(v[0], &[6]), arange(&[6]));
    let want = f(&[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    check(&[x], |b, v| b.transpose(v[0], &[1, 0]), want);
    // Result axis i is operand axis perm[i]: out[a,b,c] = x[b,c,a] = 12b + 4c + a.
    let x = arange(&[2, 3, 4]);
    let mut want = Vec::new();
    for a in 0..4 {
        for b in 0..2 {
            for c in 0..3 {
                want.push((12 * b + 4 * c + a) as f64);
            }
        }
    }
    check(
        &[x],
        |b, v| b.transpose(v[0], &[2, 0, 1]),
        f(&[4, 2, 3], &want),
    );
}

#[test]
fn slice_concat_and_pad() {
    let x = arange(&[3, 4]);
    let want = f(&[2, 2], &[5.0, 6.0, 9.0, 10.0]);
    check1(&x, |b, v| b.slice(v[0], &[1, 1], &[3, 3]), want);
    check1(&x, |b, v| b.slice(v[0], &[1, 0], &[1, 4]), f(&[0, 4], &[]));
    check(
        &[x],
        |b, v| b.slice(v[0], &[2, 3], &[3, 4]),
        f(&[1, 1], &[11.0]),
    );

    let p = f(&[2, 1], &[1.0, 2.0]);
    let q = f(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
    let e = f(&[2, 0], &[]);
    let want = f(&[2, 3], &[1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    check(&[p, e, q.clone()], |b, v| b.concat(v, 1), want);
    let r = f(&[1, 2], &[7.0, 8.0]);
    let want = f(&[3, 2], &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    check(&[q, r], |b, v| b.concat(v, 0), want);

    let x = f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    #[rustfmt::skip]
    let want = f(&[3, 4], &[
        -1.0, -1.0, -1.0, -1.0,
         1.0,  2.0, -1.0, -1.0,
         3.0,  4.0, -1.0, -1.0,
    ]);
    check(
        &[x],
        |b, v| b.pad(v[0], &[1, 0], &[0, 2], Scalar::float(-1.0)),
        want,
    );
    let n = i(&[2], &[5, 6]);
    let want = i(&[5], &[9, 5, 6, 9, 9]);
    check(&[n], |b, v| b.pad(v[0], &[1], &[2], Scalar::Int(9)), want);
}

// ---- Reductions and products ----------------------------------------------------------

#[test]
fn reductions_over_axes() {
    let x = f(&[2, 3], &[1.0, 5.0, 5.0, -2.0, 0.0, -2.0]);
    let x1 = [x];
    check(&x1, |b, v| b.sum(v[0], &[0]), f(&[3], &[-1.0, 5.0, 3.0]));
    check(&x1, |b, v| b.sum(v[0], &[1]), f(&[2], &[11.0, -4.0]));
    check(&x1, |b, v| b.sum_all(v[0]), Tensor::scalar(7.0));
    // Ties give the tied value.
    check(&x1, |b, v| b.reduce_max(v[0], &[1]), f(&[2], &[5.0, 0.0]));
    let min = |b: &mut Builder, v: &[Value]| b.reduce(ReduceKind::Min, v[0], &[1]);
    check(&x1, min, f(&[2], &[1.0, -2.0]));
    check(&x1, |b, v| b.sum(v[0], &[]), x1[0].clone());
    // Over non-adjacent axes: out[j] = Σ_{i,k} (6i + 2j + k) = 8j + 14.
    let y = arange(&[2, 3, 2]);
    check(
        &[y],
        |b, v| b.sum(v[0], &[0, 2]),
        f(&[3], &[14.0, 22.0, 30.0]),
    );
    // The sum over no elements is 0.
    check(
        &[f(&[2, 0], &[])],
        |b, v| b.sum(v[0], &[1]),
        f(&[2], &[0.0, 0.0]),
    );
    check(&[f(&[0], &[])], |b, v| b.sum_all(v[0]), Tensor::scalar(0.0));
    let with_nan = f(&[3], &[1.0, NAN, 3.0]);
    check(
        &[with_nan],
        |b, v| b.reduce_max(v[0], &[0]),
        Tensor::scalar(NAN),
    );
}

#[test]
fn integer_reductions_wrap() {
    let x = i(&[3], &[i32::MAX, 1, 0]);
    check(&[x], |b, v| b.sum_all(v[0]), i(&[], &[i32::MIN]));
    let y = u(&[2], &[u32::MAX, 2]);
    check1(&y, |b, v| b.sum_all(v[0]), u(&[], &[1]));
    check(&[y], |b, v| b.reduce_max(v[0], &[0]), u(&[], &[u32::MAX]));
}

#[test]
fn dot_products() {
    let a = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let m = f(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let want = f(&[2, 2], &[4.0, 5.0, 10.0, 11.0]);
    check(&[a, m], |b, v| b.matmul(v[0], v[1]), want);

    let inner = DotDims {
        lhs_contract: vec![0],
        rhs_contract: vec![0],
        ..DotDims::default()
    };
    let p = f(&[3], &[1.0, 2.0, 3.0]);
    let q = f(&[3], &[4.0, 5.0, 6.0]);
    check(
        &[p, q],
        move |b, v| b.dot(v[0], v[1], inner),
        Tensor::scalar(32.0),
    );

    // Batched: [[1,2],[3,4]]·[1,1]ᵀ and [[5,6],[7,8]]·[1,2]ᵀ.
    let l = f(&[2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let r = f(&[2, 2, 1], &[1.0, 1.0, 1.0, 2.0]);
    let want = f(&[2, 2, 1], &[3.0, 7.0, 17.0, 23.0]);
    check(&[l, r], |b, v| b.matmul(v[0], v[1]), want);

    // Contracting the leading axes: lᵀ·r.
    let transposed = DotDims {
        lhs_contract: vec![0],
        rhs_contract: vec![0],
        ..DotDims::default()
    };
    let l = f(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let r = f(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let want = f(&[2, 2], &[6.0, 8.0, 8.0, 10.0]);
    check(&[l, r], move |b, v| b.dot(v[0], v[1], transposed), want);

    // A batch axis that is not leading comes first in the result: out[k,m] = l[m,k]·r[k].
    let scale = DotDims {
        lhs_batch: vec![1],
        rhs_batch: vec![0],
        ..DotDims::default()
    };
    let l = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let r = f(&[3], &[10.0, 20.0, 30.0]);
    let want = f(&[3, 2], &[10.0, 40.0, 40.0, 100.0, 90.0, 180.0]);
    check(&[l, r], move |b, v| b.dot(v[0], v[1], scale), want);

    // An outer product has no contracted axes.
    let p = f(&[2], &[1.0, 2.0]);
    let q = f(&[2], &[3.0, 4.0]);
    let want = f(&[2, 2], &[3.0, 4.0, 6.0, 8.0]);
    check(&[p, q], |b, v| b.dot(v[0], v[1], DotDims::default()), want);
}

#[test]
fn integer_dot_wraps() {
    let p = i(&[1, 2], &[65536, i32::MAX]);
    let q = i(&[2, 1], &[65536, 1]);
    // 2^32 + (2^31 - 1) wraps to 2^31 - 1.
    check(
        &[p, q],
        |b, v| b.matmul(v[0], v[1]),
        i(&[1, 1], &[i32::MAX]),
    );
    let p = u(&[1, 2], &[u32::MAX, u32::MAX]);
    let q = u(&[2, 1], &[u32::MAX, 1]);
    // (2^32 - 1)^2 + 2^32 - 1 = 0 modulo 2^32.
    check(&[p, q], |b, v| b.matmul(v[0], v[1]), u(&[1, 1], &[0]));
}

#[test]
fn mnist_sized_matmul_runs_quickly() {
    let (m, k, n) = (256, 784, 512);
    let l: Vec<f64> = (0..m * k).map(|x| (x % 7) as f64 - 3.0).collect();
    let r: Vec<f64> = (0..k * n).map(|x| (x % 5) as f64 * 0.5).collect();
    let lt = f(&[m, k], &l);
    let rt = f(&[k, n], &r);
    let start = std::time::Instant::now();
    let got = run(&[lt, rt], Box::new(|b, v| b.matmul(v[0], v[1])));
    let elapsed = start.elapsed();
    assert!(
        elapsed.as_secs() < 20,
        "a [256,784]x[784,512] dot took {elapsed:?}"
    );
    for (row, col) in [(0, 0), (17, 300), (255, 511)] {
        let want: f64 = (0..k).map(|p| l[row * k + p] * r[p * n + col]).sum();
        assert_eq!(got.data[row * n + col], want);
    }
}

// ---- Leaves and indexing --------------------------------------------------------------

#[test]
fn iota_counts_along_its_axis() {
    let want = i(&[2, 3], &[0, 1, 2, 0, 1, 2]);
    check(&[], |b, _| b.iota(DType::I32, &[2, 3], 1), want);
    let want = f(&[2, 3], &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    check(&[], |b, _| b.iota(DType::F32, &[2, 3], 0), want);
    let c = |b: &mut Builder, _: &[Value]| b.constant(Scalar::Uint(4), &[2]);
    check(&[], c, u(&[2], &[4, 4]));
}

#[test]
fn one_hot_gives_zero_rows_out_of_range() {
    let idx = i(&[4], &[0, 2, -1, 3]);
    #[rustfmt::skip]
    let want = f(&[4, 3], &[
        1.0, 0.0, 0.0,
        0.0, 0.0, 1.0,
        0.0, 0.0, 0.0,
        0.0, 0.0, 0.0,
    ]);
    check(&[idx], |b, v| b.one_hot(v[0], 3, DType::F32), want);
    let idx = u(&[2, 1], &[1, 0]);
    let want = b(&[2, 1, 2], &[false, true, true, false]);
    check(&[idx], |b, v| b.one_hot(v[0], 2, DType::Bool), want);
}

#[test]
fn gather_takes_along_an_axis_and_reads_zero_out_of_range() {
    let x = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let idx = i(&[2, 2], &[2, 0, 1, 5]);
    let want = f(&[2, 2], &[3.0, 1.0, 5.0, 0.0]);
    check(&[x.clone(), idx], |b, v| b.gather(v[0], v[1], 1), want);
    let idx = i(&[1, 3], &[1, 0, -1]);
    let want = f(&[1, 3], &[4.0, 2.0, 0.0]);
    check(&[x, idx], |b, v| b.gather(v[0], v[1], 0), want);
}

#[test]
fn dynamic_slice_reads_a_window_at_run_time_starts_clamped_into_range() {
    let x = f(&[2, 4], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let at = |r: i32, c: i32| [i(&[], &[r]), i(&[], &[c])];
    let window = |b: &mut Builder, v: &[Value]| b.dynamic_slice(v[0], &v[1..], &[1, 2]);
    for ((r, c), want) in [
        ((1, 1), [6.0, 7.0]),
        // Starts out of range clamp into 0 ..= dim - size: (-5, 9) reads (0, 2).
        ((-5, 9), [3.0, 4.0]),
        ((7, -1), [5.0, 6.0]),
    ] {
        let [sr, sc] = at(r, c);
        check(&[x.clone(), sr, sc], window, f(&[1, 2], &want));
    }
}

#[test]
fn dynamic_update_slice_replaces_a_window_clamped_into_range() {
    let x = f(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let u = f(&[2], &[-1.0, -2.0]);
    let put = |b: &mut Builder, v: &[Value]| b.dynamic_update_slice(v[0], v[1], &v[2..]);
    for (s, want) in [
        (1, [1.0, -1.0, -2.0, 4.0, 5.0]),
        (4, [1.0, 2.0, 3.0, -1.0, -2.0]),
        (-3, [-1.0, -2.0, 3.0, 4.0, 5.0]),
    ] {
        check(&[x.clone(), u.clone(), i(&[], &[s])], put, f(&[5], &want));
    }
}

#[test]
fn dynamic_indexing_checks_its_starts_and_sizes() {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[4])).unwrap();
    let s = b.input("s", Type::new(DType::U32, &[])).unwrap();
    let e = b.dynamic_slice(x, &[s], &[2]).unwrap_err().to_string();
    assert!(e.contains("start indices must be i32 scalars"), "{e}");
    let s = b.input("t", Type::new(DType::I32, &[])).unwrap();
    let e = b.dynamic_slice(x, &[s], &[5]).unwrap_err().to_string();
    assert!(e.contains("each at most the axis's"), "{e}");
    let e = b.dynamic_slice(x, &[], &[1]).unwrap_err().to_string();
    assert!(e.contains("one start index per axis"), "{e}");
    let u = b.input("u", Type::f32(&[6])).unwrap();
    let e = b.dynamic_update_slice(x, u, &[s]).unwrap_err().to_string();
    assert!(e.contains("each extent at most the operand's"), "{e}");
}

#[test]
fn scatter_add_accumulates_in_order_and_drops_out_of_range() {
    let upd = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let idx = i(&[2, 3], &[0, 0, 2, 1, -1, 3]);
    let want = f(&[2, 3], &[3.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    check(&[upd, idx], |b, v| b.scatter_add(v[0], v[1], 1, 3), want);
    // In order of j: (1 + 1e16) rounds to 1e16, then -1e16 gives 0 (reversed, 1).
    let upd = f(&[3], &[1.0, 1e16, -1e16]);
    let idx = i(&[3], &[0, 0, 0]);
    check(
        &[upd, idx],
        |b, v| b.scatter_add(v[0], v[1], 0, 2),
        f(&[2], &[0.0, 0.0]),
    );
    let upd = i(&[2], &[i32::MAX, 1]);
    let idx = u(&[2], &[1, 1]);
    let want = i(&[2], &[0, i32::MIN]);
    check(&[upd, idx], |b, v| b.scatter_add(v[0], v[1], 0, 2), want);
}

// ---- Loops ----------------------------------------------------------------------------

#[test]
fn loop_carries_state_and_reads_invariants() {
    // acc += i and p *= x, four times, from acc = 0 and p = 1.
    let mut g = Builder::new();
    let x = g.input("x", Type::f32(&[])).unwrap();
    let zero = g.scalar(0.0).unwrap();
    let one = g.scalar(1.0).unwrap();
    let out = g
        .loop_(4, &[zero, one], &[x], |b, i, c, inv| {
            let fi = b.cast(i, DType::F32)?;
            Ok(vec![b.add(c[0], fi)?, b.mul(c[1], inv[0])?])
        })
        .unwrap();
    g.output("acc", out[0]).unwrap();
    g.output("pow", out[1]).unwrap();
    let graph = g.finish().unwrap();
    let got = eval_graph(&graph, &[Tensor::scalar(3.0)]).unwrap();
    assert_eq!(got, [Tensor::scalar(6.0), Tensor::scalar(81.0)]);
}

#[test]
fn loop_of_zero_trips_returns_the_initial_values() {
    let v = f(&[2], &[1.0, 2.0]);
    let w = f(&[2], &[10.0, 20.0]);
    let build = |trips| {
        move |b: &mut Builder, v: &[Value]| {
            let out = b.loop_(trips, &[v[0]], &[v[1]], |b, _, c, inv| {
                Ok(vec![b.add(c[0], inv[0])?])
            })?;
            Ok(out[0])
        }
    };
    check(&[v.clone(), w.clone()], build(0), v.clone());
    check(&[v, w], build(3), f(&[2], &[31.0, 62.0]));
}

#[test]
fn nested_loops() {
    // Three outer trips of two inner trips, each adding the outer index plus one.
    let build = |b: &mut Builder, _: &[Value]| {
        let zero = b.scalar(0.0)?;
        let out = b.loop_(3, &[zero], &[], |b, i, c, _| {
            let one = b.scalar(1.0)?;
            let fi = b.cast(i, DType::F32)?;
            let step = b.add(fi, one)?;
            let inner = b.loop_(2, &[c[0]], &[step], |b, _, c, inv| {
                Ok(vec![b.add(c[0], inv[0])?])
            })?;
            Ok(inner)
        })?;
        Ok(out[0])
    };
    check(&[], build, Tensor::scalar(12.0));
}

// ---- Named evaluation and errors ------------------------------------------------------

/// `s = x + y` and `d = x - y`, for `x: f32[2,3]` and `y: f32[3]`.
fn two_output_graph() -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[2, 3])).unwrap();
    let y = b.input("y", Type::f32(&[3])).unwrap();
    let s = b.add(x, y).unwrap();
    let d = b.sub(x, y).unwrap();
    b.output("s", s).unwrap();
    b.output("d", d).unwrap();
    b.finish().unwrap()
}

fn named(pairs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    pairs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

#[test]
fn eval_returns_named_outputs_in_declared_order() {
    let graph = two_output_graph();
    let inputs = named(&[("y", f(&[3], &[1.0, 1.0, 1.0])), ("x", arange(&[2, 3]))]);
    let out = eval(&graph, &inputs).unwrap();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["s", "d"]);
    assert_eq!(out[0].1, f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_eq!(out[1].1, f(&[2, 3], &[-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]));
}

fn input_error(e: Error) -> (String, String) {
    match e {
        Error::Input { name, message } => (name, message),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn a_missing_input_is_named() {
    let graph = two_output_graph();
    let e = eval(&graph, &named(&[("x", arange(&[2, 3]))])).unwrap_err();
    assert_eq!(input_error(e), ("y".to_string(), "missing".to_string()));
    let e = eval_graph(&graph, &[arange(&[2, 3])]).unwrap_err();
    let (name, message) = input_error(e);
    assert_eq!(name, "y");
    assert!(message.starts_with("missing"), "{message}");
}

#[test]
fn an_unknown_input_is_named() {
    let graph = two_output_graph();
    let inputs = named(&[
        ("x", arange(&[2, 3])),
        ("y", arange(&[3])),
        ("z", arange(&[3])),
    ]);
    match eval(&graph, &inputs).unwrap_err() {
        Error::Name(m) => assert!(m.contains("`z`"), "{m}"),
        other => panic!("expected a name error, got {other:?}"),
    }
    let too_many = [arange(&[2, 3]), arange(&[3]), arange(&[3])];
    match eval_graph(&graph, &too_many).unwrap_err() {
        Error::Name(m) => assert!(m.contains("got 3 inputs"), "{m}"),
        other => panic!("expected a name error, got {other:?}"),
    }
}

#[test]
fn a_wrong_shape_or_dtype_is_reported_with_both_types() {
    let graph = two_output_graph();
    let e = eval(&graph, &named(&[("x", arange(&[3])), ("y", arange(&[3]))])).unwrap_err();
    let want = ("x".to_string(), "expected f32[2,3], got f32[3]".to_string());
    assert_eq!(input_error(e), want);
    let wrong_dtype = i(&[3], &[1, 2, 3]);
    let e = eval_graph(&graph, &[arange(&[2, 3]), wrong_dtype]).unwrap_err();
    let want = ("y".to_string(), "expected f32[3], got i32[3]".to_string());
    assert_eq!(input_error(e), want);
    assert_eq!(
        Error::Input {
            name: "y".into(),
            message: "expected f32[3], got i32[3]".into()
        }
        .to_string(),
        "input `y`: expected f32[3], got i32[3]"
    );
}

#[test]
fn tensor_data_must_fit_its_type() {
    assert!(Tensor::from_f32(&[2, 2], vec![1.0; 3]).is_err());
    assert!(Tensor::new(Type::i32(&[1]), vec![1.5]).is_err());
    assert!(Tensor::new(Type::i32(&[1]), vec![2147483648.0]).is_err());
    assert!(Tensor::new(Type::new(DType::U32, &[1]), vec![-1.0]).is_err());
    assert!(Tensor::new(Type::new(DType::Bool, &[1]), vec![2.0]).is_err());
    assert!(Tensor::new(Type::f32(&[1]), vec![NAN]).is_ok());
    assert_eq!(Tensor::zeros(&Type::i32(&[2])), i(&[2], &[0, 0]));
    // A tensor built by hand is checked when it is used.
    let mut b = Builder::new();
    let n = b.input("n", Type::i32(&[2])).unwrap();
    b.output("n", n).unwrap();
    let graph = b.finish().unwrap();
    let bad = Tensor {
        ty: Type::i32(&[2]),
        data: vec![1.0, 0.5],
    };
    let (name, message) = input_error(eval_graph(&graph, &[bad]).unwrap_err());
    assert_eq!(name, "n");
    assert!(message.contains("0.5"), "{message}");
}
