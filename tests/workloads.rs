//! The deterministic figures of the benchmark workloads (`examples/programs/w*.wg`,
//! full size), compiled for the software-Vulkan preset: kernel counts and bytes are
//! properties of the compiler, so they are asserted here exactly; any change to them
//! is a reviewed change to this file. Timings live in BENCHMARKS.md, never in tests.

use wgrad::{Graph, Options, Program};

fn compiled_gradient(name: &str, wrt: &[&str]) -> (Graph, Program) {
    let path = format!("{}/examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    let f = wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = wgrad::grad(&f, None, wrt).unwrap();
    let p = wgrad::compile(&d, &Options::default()).unwrap();
    (d, p)
}

const MIB: u64 = 1 << 20;

#[test]
fn w1_mlp_keeps_only_the_relu_outputs_and_the_logits() {
    let (_, p) = compiled_gradient("w1.wg", &["w1", "b1", "w2", "b2", "w3", "b3"]);
    let s = &p.stats;
    // h1 and h2 (512 KiB each) and the logits z [256,10]: the row maxima and sums of
    // exponentials never leave the row kernel that computes the loss and dz.
    assert_eq!(s.residual_bytes, 2 * 256 * 512 * 4 + 256 * 10 * 4);
    assert!(s.residual_bytes * 100 <= 105 * MIB);
    // JAX/XLA's 8 matmuls (the dx product removed): 3 forward, 5 backward.
    assert_eq!(s.matmul_kernels, 8);
    // Those 8, the row kernel (loss per row and dz) and the loss's sum over rows: the
    // three bias gradients are column sums computed by their weight gradients' products.
    assert_eq!(s.kernels, 10);
    assert!(s.kernels <= 12);
    let variants: Vec<&str> = p.kernels.iter().map(|k| k.variant.as_str()).collect();
    assert_eq!(variants.iter().filter(|v| **v == "row").count(), 1);
}

#[test]
fn w2_softmax_logloss_from_primitives() {
    let (_, p) = compiled_gradient("w2.wg", &["w"]);
    let variants: Vec<&str> = p.kernels.iter().map(|k| k.variant.as_str()).collect();
    // The logits' product, one row kernel, the loss's sum over rows, xᵀ·dz.
    assert_eq!(
        variants,
        [
            "matmul_tiled16x16_shared",
            "row",
            "reduce",
            "matmul_tiled16x16_shared"
        ]
    );
    assert_eq!((p.stats.kernels, p.stats.matmul_kernels), (4, 2));
    // The only temporary is the logits [1024,1000], which dz overwrites row by row;
    // each row's loss waits in grad.w's memory, which is written last.
    assert_eq!(p.stats.temp_bytes, 1024 * 1000 * 4);
    assert!(p.stats.temp_bytes * 100 <= 391 * MIB);
}

#[test]
fn w3a_shared_weight_does_one_product_each_way_and_keeps_the_tanh_output() {
    let (_, p) = compiled_gradient("w3a.wg", &["w"]);
    assert_eq!(p.stats.matmul_kernels, 2);
    assert_eq!(p.stats.residual_bytes, 256 * 512 * 4);
    assert!(p.stats.residual_bytes <= MIB / 2);
    // The forward product (its tanh and the loss's per-invocation sums fused), the
    // loss's final sum, 1 - t², and the weight gradient's product.
    assert_eq!(p.stats.kernels, 4);
}

#[test]
fn w3b_weight_gradient_is_one_product_over_the_concatenated_batch() {
    let (d, p) = compiled_gradient("w3b.wg", &["w"]);
    let g = d.output("grad.w").unwrap();
    let node = d.node(g);
    assert!(
        matches!(node.op, wgrad::ir::Op::Dot(_)),
        "grad.w is {:?}",
        node.op
    );
    for a in &node.args {
        assert!(matches!(d.node(*a).op, wgrad::ir::Op::Concat { axis: 0 }));
    }
    // Two forward products and one for the weight gradient.
    assert_eq!(p.stats.matmul_kernels, 3);
}

/// The statistics of a workload's gradient with one optimization switched off.
fn without(name: &str, wrt: &[&str], optimization: &str) -> wgrad::lower::Stats {
    let path = format!("{}/examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    let f = wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let enabled = wgrad::passes::Optimizations::ALL
        .without(optimization)
        .unwrap();
    let d = wgrad::autodiff::grad_with(&f, None, wrt, &enabled).unwrap();
    let options = Options {
        optimizations: enabled,
        ..Options::default()
    };
    wgrad::compile(&d, &options).unwrap().stats
}

#[test]
fn each_optimization_pays_for_itself_on_some_workload() {
    let w1 = ["w1", "b1", "w2", "b2", "w3", "b3"];
    let (_, all) = compiled_gradient("w1.wg", &w1);
    // Fusing bias, relu and masks into the products, the softmax's reductions into one
    // row kernel, and bias gradients into products halves W1's kernels.
    assert_eq!(without("w1.wg", &w1, "fusion").kernels, 20);
    assert_eq!(all.stats.kernels, 10);
    // Sharing buffers between temporaries allocates less.
    assert!(without("w1.wg", &w1, "reuse_buffers").allocated_bytes > all.stats.allocated_bytes);
    // Factoring the shared weight halves W3a's products.
    assert_eq!(without("w3a.wg", &["w"], "factor").matmul_kernels, 4);
    // Recomputing cheap values saves W1 a kernel (the label gather's re-indexing) and
    // W3a the storing of x1 + x2 (its residuals halve).
    assert_eq!(without("w1.wg", &w1, "rematerialize").kernels, 11);
    let (_, w3a) = compiled_gradient("w3a.wg", &["w"]);
    assert_eq!(
        without("w3a.wg", &["w"], "rematerialize").residual_bytes,
        2 * w3a.stats.residual_bytes
    );
    let (_, w2) = compiled_gradient("w2.wg", &["w"]);
    // Lending grad.w's memory to each row's loss keeps the logits the only temporary.
    let w2_unshared = without("w2.wg", &["w"], "reuse_buffers");
    assert_eq!(w2_unshared.temp_bytes, w2.stats.temp_bytes + 1024 * 4);
}

#[test]
fn w1_explain_says_why_each_forward_value_is_kept() {
    let path = format!("{}/examples/programs/w1.wg", env!("CARGO_MANIFEST_DIR"));
    let f = wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = wgrad::grad(&f, None, &["w1", "b1", "w2", "b2", "w3", "b3"]).unwrap();
    let (_, report) = wgrad::lower::compile(&d, &Options::default()).unwrap();
    let decision = |op: &str, shape: &[usize]| -> Vec<&wgrad::lower::Decision> {
        report
            .residency
            .iter()
            .filter(|r| r.op == op && r.ty.shape == shape)
            .map(|r| &r.decision)
            .collect()
    };
    use wgrad::lower::Decision;
    // h1 and h2 (the relu selects) are kept; their masks are recomputed from them.
    let selects = decision("select", &[256, 512]);
    assert_eq!(selects.len(), 2);
    assert!(selects.iter().all(|d| matches!(d, Decision::Kept(_))));
    assert!(
        decision("gt", &[256, 512])
            .iter()
            .all(|d| matches!(d, Decision::Dropped))
    );
    // The row maximum and the sum of exponentials stay in the row kernel's registers.
    for op in ["reduce_max", "reduce_sum"] {
        let d = decision(op, &[256]);
        assert!(
            d.iter().any(|d| matches!(d, Decision::Alongside(_))),
            "{op}: {d:?}"
        );
    }
    let printed: Vec<String> = report.residency.iter().map(|r| r.to_string()).collect();
    assert!(
        printed
            .iter()
            .any(|l| l.contains("reduce_max") && l.contains("never stored")),
        "{printed:#?}"
    );
}
