//! Golden derivative programs: each case starts from program text, applies one
//! transform, and compares the printed result with a reviewed file under
//! `tests/golden/`. Regenerate every file with `INSTA_UPDATE=always cargo test --test
//! golden` and review the diff.

use wgrad::Graph;

fn program(name: &str) -> Graph {
    let path = format!("{}/examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    wgrad::parse(&text).unwrap_or_else(|e| panic!("{path}:{e}"))
}

fn check(name: &str, printed: String) {
    insta::with_settings!({
        snapshot_path => "golden",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, printed);
    });
}

fn parse(text: &str) -> Graph {
    wgrad::parse(text).unwrap()
}

#[test]
fn a_value_used_twice_gets_one_summed_cotangent() {
    // y = Σ x·x: both uses of x send a cotangent; they are added once, in one node.
    let f = parse(
        "%0 = input x : f32[3]\n\
         %1 = mul %0, %0 : f32[3]\n\
         %2 = reduce_sum %1 axes=[0] : f32[]\n\
         output y = %2\n",
    );
    let g = wgrad::grad(&f, None, &["x"]).unwrap();
    let adds = g
        .nodes()
        .iter()
        .filter(|n| n.op == wgrad::ir::Op::Binary(wgrad::ir::BinaryOp::Add))
        .count();
    assert_eq!(adds, 1);
    check("used_twice_grad", wgrad::print(&g));
}

#[test]
fn broadcast_operands_are_unbroadcast_once() {
    let f = parse(
        "%0 = input x : f32[2,3]\n\
         %1 = input b : f32[3]\n\
         %2 = broadcast %1 dims=[1] : f32[2,3]\n\
         %3 = add %0, %2 : f32[2,3]\n\
         %4 = tanh %3 : f32[2,3]\n\
         %5 = reduce_sum %4 axes=[0,1] : f32[]\n\
         output y = %5\n",
    );
    check(
        "broadcast_bias_grad",
        wgrad::print(&wgrad::grad(&f, None, &["x", "b"]).unwrap()),
    );
}

#[test]
fn mlp_gradient() {
    let g = wgrad::grad(&program("mlp.wg"), None, &["w1", "b1", "w2", "b2"]).unwrap();
    check("mlp_grad", wgrad::print(&g));
}

#[test]
fn softmax_regression_gradient() {
    let g = wgrad::grad(&program("softmax_regression.wg"), None, &["w"]).unwrap();
    check("softmax_regression_grad", wgrad::print(&g));
}

#[test]
fn shared_weight_gradient() {
    let g = wgrad::grad(&program("shared_weight.wg"), None, &["w"]).unwrap();
    check("shared_weight_grad", wgrad::print(&g));
}

#[test]
fn tanh_jvp_and_hessian_vector_product() {
    let f = parse(
        "%0 = input x : f32[4]\n\
         %1 = tanh %0 : f32[4]\n\
         %2 = sin %0 : f32[4]\n\
         %3 = mul %1, %2 : f32[4]\n\
         %4 = reduce_sum %3 axes=[0] : f32[]\n\
         output f = %4\n",
    );
    check(
        "w5_jvp",
        wgrad::print(&wgrad::jvp(&f, None, &["x"]).unwrap()),
    );
    let g = wgrad::grad(&f, None, &["x"]).unwrap();
    let hvp = wgrad::jvp(&g, Some("grad.x"), &["x"]).unwrap();
    check("w5_hvp", wgrad::print(&hvp));
}

#[test]
fn vjp_takes_an_explicit_cotangent() {
    let f = parse(
        "%0 = input a : f32[2,3]\n\
         %1 = input b : f32[3,2]\n\
         %2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,2]\n\
         output c = %2\n",
    );
    check(
        "matmul_vjp",
        wgrad::print(&wgrad::vjp(&f, None, &["a", "b"]).unwrap()),
    );
}

/// The kernels of `text` compiled for the software-Vulkan preset, one file per kernel.
fn check_kernels(prefix: &str, text: &str) {
    let g = parse(text);
    let program = wgrad::compile(&g, &wgrad::Options::default()).unwrap();
    for k in &program.kernels {
        check(&format!("{prefix}_{}", k.name), k.wgsl.clone());
    }
}

#[test]
fn fused_elementwise_kernel() {
    // tanh(x·2 + broadcast(b)) in one kernel.
    check_kernels(
        "wgsl_elementwise",
        "%0 = input x : f32[4,3]\n\
         %1 = input b : f32[3]\n\
         %2 = constant 2.0 : f32[4,3]\n\
         %3 = mul %0, %2 : f32[4,3]\n\
         %4 = broadcast %1 dims=[1] : f32[4,3]\n\
         %5 = add %3, %4 : f32[4,3]\n\
         %6 = tanh %5 : f32[4,3]\n\
         output y = %6\n",
    );
}

#[test]
fn reduction_with_fused_operand_kernel() {
    // Σ_row exp(x - 1): the exp and the subtraction run inside the reduction's loop.
    check_kernels(
        "wgsl_reduce",
        "%0 = input x : f32[4,3]\n\
         %1 = constant 1.0 : f32[4,3]\n\
         %2 = sub %0, %1 : f32[4,3]\n\
         %3 = exp %2 : f32[4,3]\n\
         %4 = reduce_sum %3 axes=[1] : f32[4]\n\
         output s = %4\n",
    );
}

#[test]
fn tiled_matmul_kernel() {
    check_kernels(
        "wgsl_matmul",
        "%0 = input a : f32[16,8]\n\
         %1 = input b : f32[8,12]\n\
         %2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[16,12]\n\
         output c = %2\n",
    );
}

#[test]
fn softmax_log_loss_row_kernel_and_weight_gradient_with_bias_gradient() {
    // The gradient of a linear layer under a softmax log-loss, W2's shape at a small
    // size with a bias: the product, one row kernel (max, sum of exponentials, the
    // targets' sum and each row's loss, then dz overwriting the logits), the loss's sum
    // over rows, and xᵀ·dz with the bias gradient Σ_rows dz computed beside it. Rows of
    // 72 classes: more columns than a row kernel computes a product for inline.
    let mut b = wgrad::Builder::new();
    let x = b.input("x", wgrad::Type::f32(&[6, 4])).unwrap();
    let w = b.input("w", wgrad::Type::f32(&[4, 72])).unwrap();
    let bias = b.input("b", wgrad::Type::f32(&[72])).unwrap();
    let y = b.input("y", wgrad::Type::f32(&[6, 72])).unwrap();
    let z = b.linear(x, w, bias).unwrap();
    let loss = b.cross_entropy_dense(z, y).unwrap();
    b.output("loss", loss).unwrap();
    let d = wgrad::grad(&b.finish().unwrap(), None, &["w", "b"]).unwrap();
    let program = wgrad::compile(&d, &wgrad::Options::default()).unwrap();
    let variants: Vec<&str> = program.kernels.iter().map(|k| k.variant.as_str()).collect();
    assert_eq!(
        variants,
        [
            "matmul_tiled4x4_shared",
            "row",
            "reduce",
            "matmul_tiled4x4_shared"
        ]
    );
    for k in &program.kernels {
        check(&format!("wgsl_logloss_{}", k.name), k.wgsl.clone());
    }
    // On a GPU a workgroup shares each row and combines partial results as a tree.
    let gpu = wgrad::compile(&d, &wgrad::Options::new(wgrad::Target::discrete_gpu())).unwrap();
    let row = gpu.kernels.iter().find(|k| k.variant == "row").unwrap();
    check(&format!("wgsl_logloss_gpu_{}", row.name), row.wgsl.clone());
}

#[test]
fn a_small_loss_head_is_computed_inline_by_its_row_kernel() {
    // A loss head of few classes (W7's: [32,128]·[128,10]): the row kernel of the
    // softmax and its gradient computes the logits itself, each a loop over K in the
    // tiled kernel's order, so the backward keeps nothing of the forward product; the
    // weight gradient is still a tiled product.
    let mut b = wgrad::Builder::new();
    let h = b.input("h", wgrad::Type::f32(&[6, 12])).unwrap();
    let v = b.input("v", wgrad::Type::f32(&[12, 5])).unwrap();
    let c = b.input("c", wgrad::Type::f32(&[5])).unwrap();
    let labels = b
        .input("labels", wgrad::Type::new(wgrad::DType::I32, &[6]))
        .unwrap();
    let z = b.linear(h, v, c).unwrap();
    let loss = b.cross_entropy(z, labels).unwrap();
    b.output("loss", loss).unwrap();
    let d = wgrad::grad(&b.finish().unwrap(), None, &["v", "c"]).unwrap();
    let program = wgrad::compile(&d, &wgrad::Options::default()).unwrap();
    let variants: Vec<&str> = program.kernels.iter().map(|k| k.variant.as_str()).collect();
    // The row kernel first (it computes the logits), one product: the weight gradient.
    assert_eq!(variants[0], "row", "{variants:?}");
    assert_eq!(program.stats.matmul_kernels, 1, "{variants:?}");
    assert_eq!(program.stats.residual_bytes, 0, "{variants:?}");
    check(
        &format!("wgsl_loss_head_{}", program.kernels[0].name),
        program.kernels[0].wgsl.clone(),
    );
}

#[test]
fn a_sum_over_rows_and_columns_splits_into_a_per_row_sum_for_the_row_kernel() {
    // The stable log-loss Σ_{i,j} y·(z − lse) reads the row statistics at its own row:
    // lowering sums each row first (in the row kernel), then the rows.
    let g = program("softmax_regression.wg");
    let d = wgrad::grad(&g, None, &["w"]).unwrap();
    let (_, report) = wgrad::lower::compile(&d, &wgrad::Options::default()).unwrap();
    let ir = |pass: &str| {
        let at = report.passes.iter().position(|p| p.pass == pass).unwrap();
        (
            report.passes[at - 1].ir.clone(),
            report.passes[at].ir.clone(),
        )
    };
    let (before, after) = ir("split_rows");
    check(
        "split_rows_softmax_regression",
        format!("# before\n{before}\n# after\n{after}"),
    );
}

#[test]
fn kernel_plans_of_the_workload_gradients() {
    // The plan says, per kernel, what it computes, what it stores, and how it is
    // shaped: W1's products with their epilogues and bias gradients, W2's row kernel,
    // W3a's product summing its own result.
    for (name, wrt) in [
        ("w1", &["w1", "b1", "w2", "b2", "w3", "b3"][..]),
        ("w2", &["w"][..]),
        ("w3a", &["w"][..]),
    ] {
        let d = wgrad::grad(&program(&format!("{name}.wg")), None, wrt).unwrap();
        let (p, report) = wgrad::lower::compile(&d, &wgrad::Options::default()).unwrap();
        check(&format!("plan_{name}"), report.plan.print(&p.graph));
    }
}

#[test]
fn a_product_summing_its_result_and_the_fold_of_its_sums() {
    // Σ tanh(x·W): the product stores tanh and sums what it stores per invocation; the
    // reduction's final stage adds the invocations' sums in order.
    let g = parse(
        "%0 = input x : f32[64,32]\n\
         %1 = input w : f32[32,128]\n\
         %2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[64,128]\n\
         %3 = tanh %2 : f32[64,128]\n\
         %4 = reduce_sum %3 axes=[0, 1] : f32[]\n\
         output t = %3\n\
         output loss = %4\n",
    );
    let program = wgrad::compile(&g, &wgrad::Options::default()).unwrap();
    let variants: Vec<&str> = program.kernels.iter().map(|k| k.variant.as_str()).collect();
    assert_eq!(variants, ["matmul_tiled4x8_shared", "reduce_final"]);
    for k in &program.kernels {
        check(&format!("wgsl_product_sum_{}", k.name), k.wgsl.clone());
    }
}
