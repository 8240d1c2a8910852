//! Linearity factoring (`passes::factor`): a sum of two products sharing an operand is one
//! product of a sum, and a sum of two products contracting one axis is one product over
//! the concatenated axis.
//!
//! The rule tests start from program text and compare the optimized program's text with
//! the expected one (`check`), which also checks that optimizing again changes nothing
//! and that the interpreter gives the same results before and after. The workload tests
//! differentiate W3a and W3b (`x1·W + x2·W` and `Σ tanh(x1·W) + Σ tanh(x2·W)`) and count
//! the products the compiled gradient runs.

mod common;

use approx::abs_diff_eq;
use common::{Rng, example, text};
use wgrad_compiler::autodiff::{self, GradcheckOptions, backward, gradcheck};
use wgrad_compiler::ir::{
    BinaryOp, Builder, DType, Graph, Op, Side, Tensor, Type, Value, eval_graph, parse, print,
};
use wgrad_compiler::lower::{Options, Target, compile};
use wgrad_compiler::passes::{self, optimize};

// ---- Helpers ----------------------------------------------------------------------

/// Optimizes `input` and compares the printed result with `expect`. Also checks that a
/// second run changes nothing and that both programs compute the same outputs.
fn check(input: &str, expect: &str) {
    let before = parse(&text(input)).unwrap_or_else(|e| panic!("{e}\n{input}"));
    let after = optimized(&before);
    assert_eq!(print(&after), text(expect));
}

/// Optimizes a copy of `g`, checks it computes what `g` does and that a second run
/// changes nothing, and returns it.
fn optimized(g: &Graph) -> Graph {
    let mut o = g.clone();
    optimize(&mut o).unwrap();
    assert_same_results(g, &o);
    let mut again = o.clone();
    assert_eq!(
        optimize(&mut again).unwrap(),
        Vec::<&str>::new(),
        "not idempotent"
    );
    assert_eq!(again, o);
    o
}

/// Pseudo-random floats in [-1, 1) for every input of `g`.
fn inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut r = Rng::new(seed);
    g.inputs()
        .iter()
        .map(|(_, v)| {
            let ty = g.ty(*v).clone();
            assert_eq!(ty.dtype, DType::F32);
            let data = (0..ty.numel()).map(|_| r.unit()).collect();
            Tensor::new(ty, data).unwrap()
        })
        .collect()
}

/// Checks that `before` and `after` have the same signature and compute the same outputs
/// on the same pseudo-random inputs, within 1e-12 relative to the largest magnitude of
/// each output: factoring sums in another order, so an element that cancels to near
/// zero may differ by more than 1e-12 of itself.
fn assert_same_results(before: &Graph, after: &Graph) {
    let sig = |g: &Graph, list: &[(String, Value)]| -> Vec<(String, Type)> {
        list.iter()
            .map(|(n, v)| (n.clone(), g.ty(*v).clone()))
            .collect()
    };
    assert_eq!(sig(before, before.inputs()), sig(after, after.inputs()));
    assert_eq!(sig(before, before.outputs()), sig(after, after.outputs()));
    for seed in 0..3 {
        let args = inputs(before, seed);
        let x = eval_graph(before, &args).unwrap();
        let y = eval_graph(after, &args).unwrap();
        for (((name, _), x), y) in before.outputs().iter().zip(&x).zip(&y) {
            let scale = x.data.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            for (k, (&a, &b)) in x.data.iter().zip(&y.data).enumerate() {
                assert!(
                    abs_diff_eq!(a, b, epsilon = 1e-12 * scale),
                    "output `{name}` element {k}: {a} before, {b} after\nbefore:\n{}\nafter:\n{}",
                    print(before),
                    print(after)
                );
            }
        }
    }
}

/// The gradient of `f`'s only output as the autodiff sweep emits it, before any
/// optimization (only dead code removed): two products per use of the weight.
fn raw_grad(f: &Graph, wrt: &[&str]) -> Graph {
    let (_, out) = autodiff::resolve_output(f, None).unwrap();
    let mut b = Builder::from_graph(f.clone());
    b.set_side(Side::Adjoint);
    let seed = b.full(1.0, &f.ty(out).clone()).unwrap();
    let ws: Vec<Value> = wrt.iter().map(|w| f.input(w).unwrap()).collect();
    let grads = backward(&mut b, out, seed, &ws).unwrap();
    for (w, g) in wrt.iter().zip(grads) {
        b.output(&format!("grad.{w}"), g.unwrap()).unwrap();
    }
    let mut g = b.finish().unwrap();
    passes::dce::run(&mut g);
    g
}

/// The number of `dot` nodes of `g`.
fn dots(g: &Graph) -> usize {
    g.nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::Dot(_)))
        .count()
}

/// The products the compiled program of `g` runs for the software-Vulkan target.
fn matmul_kernels(g: &Graph) -> u64 {
    let options = Options::new(Target::software_vulkan());
    let (program, _) = compile(g, &options).unwrap();
    let products = program
        .kernels
        .iter()
        .filter(|k| k.variant.starts_with("matmul"))
        .count();
    assert_eq!(products as u64, program.stats.matmul_kernels);
    program.stats.matmul_kernels
}

/// W3a with `x1, x2 : [n, k]` and `w : [k, m]`: `Σ tanh(x1·w + x2·w)`.
fn w3a(n: usize, k: usize, m: usize) -> Graph {
    parse(&format!(
        "%0 = input x1 : f32[{n},{k}]
%1 = input x2 : f32[{n},{k}]
%2 = input w : f32[{k},{m}]
%3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[{n},{m}]
%4 = dot %1, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[{n},{m}]
%5 = add %3, %4 : f32[{n},{m}]
%6 = tanh %5 : f32[{n},{m}]
%7 = reduce_sum %6 axes=[0,1] : f32[]
output loss = %7
"
    ))
    .unwrap()
}

/// W3b with `x1, x2 : [n, k]` and `w : [k, m]`: `Σ tanh(x1·w) + Σ tanh(x2·w)`.
fn w3b(n: usize, k: usize, m: usize) -> Graph {
    parse(&format!(
        "%0 = input x1 : f32[{n},{k}]
%1 = input x2 : f32[{n},{k}]
%2 = input w : f32[{k},{m}]
%3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[{n},{m}]
%4 = tanh %3 : f32[{n},{m}]
%5 = reduce_sum %4 axes=[0,1] : f32[]
%6 = dot %1, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[{n},{m}]
%7 = tanh %6 : f32[{n},{m}]
%8 = reduce_sum %7 axes=[0,1] : f32[]
%9 = add %5, %8 : f32[]
output loss = %9
"
    ))
    .unwrap()
}

/// Checks the gradient `grad` computes for `f` against central differences.
fn assert_gradcheck(f: &Graph) {
    let args = inputs(f, 11);
    let named = f
        .inputs()
        .iter()
        .map(|(n, _)| n.clone())
        .zip(args)
        .collect();
    let report = gradcheck(f, None, &["w"], &named, GradcheckOptions::default()).unwrap();
    assert!(report.passed, "{report}");
}

// ---- The rules ----------------------------------------------------------------------

#[test]
fn products_sharing_the_right_operand_factor_into_one() {
    // The contraction is over one axis, so the concatenation rule would apply too; the
    // cheaper one, which copies nothing, is taken.
    check(
        "%0 = input a : f32[2,3]
         %1 = input b : f32[2,3]
         %2 = input w : f32[3,4]
         %3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %4 = dot %1, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %5 = add %3, %4 : f32[2,4]
         output y = %5",
        "%0 = input a : f32[2,3]
         %1 = input b : f32[2,3]
         %2 = input w : f32[3,4]
         %3 = add %0, %1 : f32[2,3]
         %4 = dot %3, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         output y = %4",
    );
}

#[test]
fn products_sharing_the_left_operand_factor_into_one() {
    check(
        "%0 = input w : f32[4,3]
         %1 = input a : f32[3,2]
         %2 = input b : f32[3,2]
         %3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,2]
         %4 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,2]
         %5 = add %3, %4 : f32[4,2]
         output y = %5",
        "%0 = input w : f32[4,3]
         %1 = input a : f32[3,2]
         %2 = input b : f32[3,2]
         %3 = add %2, %1 : f32[3,2]
         %4 = dot %0, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,2]
         output y = %4",
    );
}

#[test]
fn a_sum_of_weight_gradients_is_one_product_over_the_concatenated_batch() {
    // x1ᵀ·g1 + x2ᵀ·g2 with batches of 3 and 2 rows.
    check(
        "%0 = input x1 : f32[3,4]
         %1 = input g1 : f32[3,5]
         %2 = input x2 : f32[2,4]
         %3 = input g2 : f32[2,5]
         %4 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %5 = dot %2, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %6 = add %4, %5 : f32[4,5]
         output dw = %6",
        "%0 = input x1 : f32[3,4]
         %1 = input g1 : f32[3,5]
         %2 = input x2 : f32[2,4]
         %3 = input g2 : f32[2,5]
         %4 = concat %0, %2 axis=0 : f32[5,4]
         %5 = concat %1, %3 axis=0 : f32[5,5]
         %6 = dot %4, %5 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         output dw = %6",
    );
}

#[test]
fn batched_products_concatenate_along_their_contracted_axes() {
    check(
        "%0 = input a : f32[2,3,4]
         %1 = input c : f32[2,5,3]
         %2 = input b : f32[2,1,4]
         %3 = input d : f32[2,5,1]
         %4 = dot %0, %1 lhs_batch=[0] rhs_batch=[0] lhs_contract=[1] rhs_contract=[2] : f32[2,4,5]
         %5 = dot %2, %3 lhs_batch=[0] rhs_batch=[0] lhs_contract=[1] rhs_contract=[2] : f32[2,4,5]
         %6 = add %5, %4 : f32[2,4,5]
         output y = %6",
        "%0 = input a : f32[2,3,4]
         %1 = input c : f32[2,5,3]
         %2 = input b : f32[2,1,4]
         %3 = input d : f32[2,5,1]
         %4 = concat %2, %0 axis=1 : f32[2,4,4]
         %5 = concat %3, %1 axis=2 : f32[2,5,4]
         %6 = dot %4, %5 lhs_batch=[0] rhs_batch=[0] lhs_contract=[1] rhs_contract=[2] : f32[2,4,5]
         output y = %6",
    );
}

#[test]
fn three_uses_of_a_weight_factor_into_one_product() {
    check(
        "%0 = input a : f32[2,3]
         %1 = input b : f32[2,3]
         %2 = input c : f32[2,3]
         %3 = input w : f32[3,4]
         %4 = dot %0, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %5 = dot %1, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %6 = dot %2, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %7 = add %4, %5 : f32[2,4]
         %8 = add %7, %6 : f32[2,4]
         output y = %8",
        "%0 = input a : f32[2,3]
         %1 = input b : f32[2,3]
         %2 = input c : f32[2,3]
         %3 = input w : f32[3,4]
         %4 = add %0, %1 : f32[2,3]
         %5 = add %4, %2 : f32[2,3]
         %6 = dot %5, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         output y = %6",
    );
}

#[test]
fn three_weight_gradients_are_one_product_over_three_pieces() {
    // The second round joins the first round's concatenations with the third piece; the
    // nested concatenations are flattened as they are built.
    check(
        "%0 = input x1 : f32[3,4]
         %1 = input g1 : f32[3,5]
         %2 = input x2 : f32[2,4]
         %3 = input g2 : f32[2,5]
         %4 = input x3 : f32[1,4]
         %5 = input g3 : f32[1,5]
         %6 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %7 = dot %2, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %8 = dot %4, %5 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %9 = add %6, %7 : f32[4,5]
         %10 = add %9, %8 : f32[4,5]
         output dw = %10",
        "%0 = input x1 : f32[3,4]
         %1 = input g1 : f32[3,5]
         %2 = input x2 : f32[2,4]
         %3 = input g2 : f32[2,5]
         %4 = input x3 : f32[1,4]
         %5 = input g3 : f32[1,5]
         %6 = concat %0, %2, %4 axis=0 : f32[6,4]
         %7 = concat %1, %3, %5 axis=0 : f32[6,5]
         %8 = dot %6, %7 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         output dw = %8",
    );
}

#[test]
fn a_product_read_elsewhere_is_not_factored() {
    // Each product is computed anyway for its other reader, so factoring would add a
    // third product (or a copy) instead of saving one.
    let shared = "%0 = input a : f32[2,3]
         %1 = input b : f32[2,3]
         %2 = input w : f32[3,4]
         %3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %4 = dot %1, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]
         %5 = add %3, %4 : f32[2,4]
         %6 = tanh %4 : f32[2,4]
         output y = %5
         output z = %6";
    check(shared, shared);
    let concatenated = "%0 = input x1 : f32[3,4]
         %1 = input g1 : f32[3,5]
         %2 = input x2 : f32[2,4]
         %3 = input g2 : f32[2,5]
         %4 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %5 = dot %2, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[4,5]
         %6 = add %4, %5 : f32[4,5]
         output dw = %6
         output dw1 = %4";
    check(concatenated, concatenated);
}

#[test]
fn products_with_other_dimension_numbers_or_several_contracted_axes_are_kept() {
    // Different dimension numbers: w and wᵀ are different products even with one w.
    let transposed = "%0 = input a : f32[3,3]
         %1 = input b : f32[3,3]
         %2 = input w : f32[3,3]
         %3 = dot %0, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[3,3]
         %4 = dot %1, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[1] : f32[3,3]
         %5 = add %3, %4 : f32[3,3]
         output y = %5";
    check(transposed, transposed);
    // Two contracted axes and no shared operand: only the single-axis case concatenates.
    let two_axes = "%0 = input a : f32[2,3,4]
         %1 = input c : f32[2,3,5]
         %2 = input b : f32[2,3,4]
         %3 = input d : f32[2,3,5]
         %4 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[0,1] rhs_contract=[0,1] : f32[4,5]
         %5 = dot %2, %3 lhs_batch=[] rhs_batch=[] lhs_contract=[0,1] rhs_contract=[0,1] : f32[4,5]
         %6 = add %4, %5 : f32[4,5]
         output y = %6";
    check(two_axes, two_axes);
}

// ---- The workloads ------------------------------------------------------------------

#[test]
fn the_w3a_gradient_is_two_products() {
    // x1·W + x2·W is factored before differentiating, so the weight gradient is one
    // product (x1 + x2)ᵀ·g of the cotangent g = 1 - tanh², computed once; the sum
    // x1 + x2 is shared by both products.
    let f = w3a(4, 6, 5);
    let g = autodiff::grad(&f, None, &["w"]).unwrap();
    assert_eq!(dots(&g), 2, "{}", print(&g));
    let adds = g
        .nodes()
        .iter()
        .filter(|n| n.op == Op::Binary(BinaryOp::Add))
        .count();
    assert_eq!(adds, 1, "x1 + x2 computed once:\n{}", print(&g));
    assert_eq!(matmul_kernels(&g), 2);
    assert_gradcheck(&f);
    // Without `grad`'s optimization of the forward program first, the sweep emits four
    // products; optimizing that factors both sums, and their x1 + x2 meet in `cse`.
    let raw = raw_grad(&f, &["w"]);
    assert_eq!(dots(&raw), 4);
    let opt = optimized(&raw);
    assert_eq!(dots(&opt), 2, "{}", print(&opt));
    assert_eq!(print(&opt), print(&g));
}

#[test]
fn the_w3b_weight_gradient_is_one_product_over_the_concatenated_batch() {
    // The cotangents g1 = 1 - tanh(x1·W)² and g2 = 1 - tanh(x2·W)² differ, so nothing
    // factors; x1ᵀ·g1 + x2ᵀ·g2 becomes concat(x1, x2)ᵀ·concat(g1, g2). The forward
    // products x1·W and x2·W stay two (each feeds its own tanh): three in all, where
    // the unoptimized gradient has four.
    let f = w3b(4, 6, 5);
    let g = autodiff::grad(&f, None, &["w"]).unwrap();
    let dw = g.output("grad.w").unwrap();
    let node = g.node(dw);
    assert!(matches!(node.op, Op::Dot(_)), "{}", print(&g));
    // The pieces go in the order the reverse sweep added the two gradients.
    let x = g.node(node.args[0]);
    assert_eq!(x.op, Op::Concat { axis: 0 });
    let mut pieces = x.args.clone();
    pieces.sort();
    assert_eq!(
        pieces,
        [g.input("x1").unwrap(), g.input("x2").unwrap()],
        "{}",
        print(&g)
    );
    let cotangents = g.node(node.args[1]);
    assert_eq!(cotangents.op, Op::Concat { axis: 0 });
    assert_eq!(g.ty(node.args[1]).shape, [8, 5]);
    assert_eq!(dots(&g), 3, "{}", print(&g));
    assert_eq!(dots(&raw_grad(&f, &["w"])), 4);
    assert_eq!(matmul_kernels(&g), 3);
    assert_gradcheck(&f);
    assert_same_results(&raw_grad(&f, &["w"]), &g);
}

#[test]
fn the_w3_example_programs_compile_to_the_goal_products() {
    let a = autodiff::grad(&example("w3a.wg"), None, &["w"]).unwrap();
    assert_eq!(matmul_kernels(&a), 2);
    let b = autodiff::grad(&example("w3b.wg"), None, &["w"]).unwrap();
    assert_eq!(matmul_kernels(&b), 3);
    // At full size the factored gradients agree with the unfactored ones within 1e-12
    // of each output's largest element (not of every element: a weight-gradient entry
    // is a sum over the batch that can cancel to far below its terms).
    for (name, g) in [("w3a.wg", &a), ("w3b.wg", &b)] {
        assert_same_results(&raw_grad(&example(name), &["w"]), g);
    }
    // shared_weight.wg is W3a too.
    let s = autodiff::grad(&example("shared_weight.wg"), None, &["w"]).unwrap();
    assert_eq!(print(&s), print(&a));
}
