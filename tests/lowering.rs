//! Lowering without a device: fusion decisions, kernel variants per target, dispatch
//! grids, limits, and naga validation of everything the example programs compile to.

mod common;

use wgrad::lower::{AdapterClass, Target};
use wgrad::{Graph, Options};

fn parse(text: &str) -> Graph {
    wgrad::parse(text).unwrap()
}

fn example(name: &str) -> Graph {
    let path = format!("{}/examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn compile(g: &Graph, target: Target) -> wgrad::Program {
    wgrad::compile(g, &Options::new(target)).unwrap_or_else(|e| panic!("{e}"))
}

fn variants(p: &wgrad::Program) -> Vec<&str> {
    p.kernels.iter().map(|k| k.variant.as_str()).collect()
}

#[test]
fn an_elementwise_chain_is_one_kernel() {
    let g = parse(
        "%0 = input x : f32[8]\n%1 = exp %0 : f32[8]\n%2 = sin %1 : f32[8]\n%3 = mul %2, %0 : f32[8]\n%4 = tanh %3 : f32[8]\noutput y = %4\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["elementwise"]);
    assert_eq!(p.stats.kernels, 1);
    // One input buffer and one output buffer: nothing in between is stored.
    assert_eq!(p.buffers.len(), 2);
    assert_eq!(p.stats.temp_bytes, 0);
}

#[test]
fn elementwise_ops_feeding_a_reduction_fuse_into_it() {
    let g = parse(
        "%0 = input x : f32[4,8]\n%1 = exp %0 : f32[4,8]\n%2 = mul %1, %0 : f32[4,8]\n%3 = reduce_sum %2 axes=[1] : f32[4]\noutput s = %3\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["reduce"]);
    assert!(p.kernels[0].wgsl.contains("exp("));
}

#[test]
fn cheap_work_read_by_two_kernels_is_recomputed_by_each() {
    // e = exp(x) is read by a column sum and by an elementwise kernel: one op on an
    // input, so each kernel computes it rather than storing it.
    let g = parse(
        "%0 = input x : f32[4,8]\n%1 = exp %0 : f32[4,8]\n%2 = reduce_sum %1 axes=[0] : f32[8]\n%3 = broadcast %2 dims=[1] : f32[4,8]\n%4 = div %1, %3 : f32[4,8]\noutput y = %4\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["reduce", "elementwise"]);
    assert_eq!(p.stats.temp_bytes, 8 * 4);
}

#[test]
fn a_long_chain_read_by_two_kernels_is_stored_once() {
    // Four elementwise ops deep is more than the compiler recomputes: stored once.
    let g = parse(
        "%0 = input x : f32[4,8]\n%1 = exp %0 : f32[4,8]\n%2 = sin %1 : f32[4,8]\n%3 = tanh %2 : f32[4,8]\n%4 = mul %3, %3 : f32[4,8]\n%5 = reduce_sum %4 axes=[0] : f32[8]\n%6 = broadcast %5 dims=[1] : f32[4,8]\n%7 = div %4, %6 : f32[4,8]\noutput y = %7\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["elementwise", "reduce", "elementwise"]);
    assert_eq!(p.stats.temp_bytes, 4 * 32 + 4 * 8);
}

#[test]
fn the_matmul_variant_and_tile_are_chosen_per_target() {
    let g = parse(
        "%0 = input a : f32[256,16]\n%1 = input b : f32[16,256]\n%2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[256,256]\noutput c = %2\n",
    );
    let cpu = compile(&g, Target::software_vulkan());
    let gpu = compile(&g, Target::discrete_gpu());
    assert_eq!(Target::software_vulkan().class, AdapterClass::Cpu);
    assert_eq!(
        variants(&cpu),
        [format!(
            "matmul_tiled{}x{}_shared",
            Target::software_vulkan().matmul_tile[0],
            Target::software_vulkan().matmul_tile[1]
        )]
    );
    assert_eq!(variants(&gpu), ["matmul_tiled4x4"]);
    assert_eq!(cpu.stats.matmul_kernels, 1);
    assert_eq!(cpu.stats.flops, 2 * 256 * 256 * 16);
    // Transposed operands in storage are read in place by the tiled kernel; a product
    // whose operand is a re-indexing computed inline keeps the generic kernel.
    let g = parse(
        "%0 = input a : f32[3,5]\n%1 = input b : f32[3,5]\n%2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[1] : f32[3,3]\noutput c = %2\n",
    );
    assert_eq!(
        variants(&compile(&g, Target::discrete_gpu())),
        ["matmul_tiled4x4"]
    );
    let g = parse(
        "%0 = input a : f32[5,3]\n%1 = input b : f32[5,3]\n%2 = transpose %0 perm=[1,0] : f32[3,5]\n%3 = dot %2, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[3,3]\noutput c = %3\n",
    );
    assert_eq!(
        variants(&compile(&g, Target::software_vulkan())),
        ["matmul_naive"]
    );
}

#[test]
fn more_workgroups_than_one_dimension_allows_use_a_two_dimensional_grid() {
    let g = parse("%0 = input x : f32[300000]\n%1 = neg %0 : f32[300000]\noutput y = %1\n");
    let mut t = Target::software_vulkan();
    t.max_compute_workgroups_per_dimension = 1000;
    let p = compile(&g, t);
    // 300000 / 256 = 1172 workgroups: 1000 × 2.
    assert_eq!(p.kernels[0].dispatch, [1000, 2, 1]);
}

#[test]
fn more_workgroups_than_the_grid_holds_is_an_error_before_any_kernel_is_written() {
    let g = parse("%0 = input x : f32[300000]\n%1 = neg %0 : f32[300000]\noutput y = %1\n");
    let mut t = Target::software_vulkan();
    t.max_compute_workgroups_per_dimension = 30;
    let err = wgrad::compile(&g, &Options::new(t))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs 1172 workgroups, more than a 30×30 grid"),
        "{err}"
    );
}

#[test]
fn a_tensor_above_the_binding_limit_is_a_clear_error() {
    let g = parse("%0 = input x : f32[64,1048576]\n%1 = neg %0 : f32[64,1048576]\noutput y = %1\n");
    let err = wgrad::compile(&g, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains("f32[64,1048576]"),
        "{err}"
    );
}

#[test]
fn every_example_program_and_gradient_compiles_to_valid_wgsl() {
    for (name, wrt) in [
        ("mlp.wg", vec!["w1", "b1", "w2", "b2"]),
        ("softmax_regression.wg", vec!["w"]),
        ("shared_weight.wg", vec!["w"]),
        ("w5.wg", vec!["x"]),
        ("normalize_loop.wg", vec![]),
    ] {
        let g = example(name);
        let g = if wrt.is_empty() {
            g
        } else {
            wgrad::grad(&g, None, &wrt).unwrap()
        };
        for target in wgrad::lower::Target::PRESETS {
            let p = compile(&g, Target::preset(target).unwrap());
            for k in &p.kernels {
                wgrad::lower::validate_wgsl(&k.name, &k.wgsl, &p.target).unwrap();
                assert!(k.bindings.len() as u32 <= p.target.max_storage_buffers_per_shader_stage);
            }
        }
    }
}

#[test]
fn statistics_of_a_small_gradient_match_a_hand_count() {
    // loss = Σ tanh(x·W), x[2,3], W[3,4], gradient with respect to W. By hand:
    //   k0 t = tanh(x·W) (primal matmul, tanh as its epilogue)
    //                                    reads x 24 B, W 48 B, writes t 32 B
    //   k1 loss = Σ t (primal), and beside it, element by element in the same loop,
    //      g = 1 - t·t (adjoint)         reads t, writes loss 4 B and g 32 B
    //   k2 dW = xᵀ·g (adjoint matmul)    reads x, g, writes dW 48 B
    // flops: (2·2·4·3 + 8) + 8 + 2·8 + 2·3·4·2 = 128; bytes moved: 104 + 68 + 104.
    // Residuals: only t is written by a primal kernel and read by an adjoint one: 32 B.
    // Memory: t lives k0..k1, before dW is first written (k2), so it lives in dW's
    // memory; g lives k1..k2 in a buffer of its own, the only temporary: 32 B.
    // Peak: inputs 72 B always, plus at k1 dW's memory (holding t), g and loss, and at
    // k2 dW, g and loss: 156 B.
    let g = parse(
        "%0 = input x : f32[2,3]\n%1 = input w : f32[3,4]\n%2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,4]\n%3 = tanh %2 : f32[2,4]\n%4 = reduce_sum %3 axes=[0,1] : f32[]\noutput loss = %4\n",
    );
    let d = wgrad::grad(&g, None, &["w"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    let s = &p.stats;
    assert_eq!((s.kernels, s.matmul_kernels), (3, 2));
    assert_eq!(s.flops, 128);
    assert_eq!(s.bytes_moved, 276);
    assert_eq!(s.residual_bytes, 32);
    assert_eq!(s.temp_bytes, 32);
    assert_eq!(s.peak_bytes, 156);
    // Two inputs, two outputs, and one temporary buffer.
    assert_eq!(p.buffers.len(), 5);
    let t = p.kernels[0].bindings[0].buffer;
    assert_eq!(
        p.kernels[2].bindings[0].buffer, t,
        "dW is written where t was"
    );
}

#[test]
fn the_backward_pass_keeps_the_relu_output_not_its_mask() {
    // loss = Σ relu(x·W)·c: the mask x·W > 0 is recomputed from the kept relu output
    // inside the backward kernel, so the only residual is the relu output itself.
    let g = parse(
        "%0 = input x : f32[4,3]\n%1 = input w : f32[3,5]\n%2 = input c : f32[4,5]\n\
         %3 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,5]\n\
         %4 = constant 0.0 : f32[4,5]\n%5 = gt %3, %4 : bool[4,5]\n%6 = select %5, %3, %4 : f32[4,5]\n\
         %7 = mul %6, %2 : f32[4,5]\n%8 = reduce_sum %7 axes=[0,1] : f32[]\noutput loss = %8\n",
    );
    let d = wgrad::grad(&g, None, &["w"]).unwrap();
    let (p, report) = wgrad::lower::compile(&d, &Options::default()).unwrap();
    let decision = |op: &str| {
        report
            .residency
            .iter()
            .find(|r| r.op == op)
            .map(|r| r.decision.clone())
            .unwrap_or_else(|| panic!("no {op} in {:?}", report.residency))
    };
    use wgrad::lower::Decision;
    assert_eq!(decision("gt"), Decision::Dropped);
    assert!(
        matches!(decision("select"), Decision::Kept(_)),
        "{:?}",
        decision("select")
    );
    assert_eq!(p.stats.residual_bytes, 4 * 5 * 4);
    // The forward product, mask and select are one kernel, then the loss reduction.
    let forward: Vec<&str> = p
        .kernels
        .iter()
        .map(|k| k.variant.as_str())
        .take(2)
        .collect();
    assert_eq!(forward, ["matmul_tiled16x16_shared", "reduce"]);
    assert!(p.kernels[0].wgsl.contains("fn epilogue"));
}

#[test]
fn elementwise_work_on_a_reduction_result_runs_after_its_loop() {
    // loss = -Σ exp(x) / 4: the exp runs inside the loop, the negation and scaling after
    // it, all in one kernel.
    let g = parse(
        "%0 = input x : f32[4,8]\n%1 = exp %0 : f32[4,8]\n%2 = reduce_sum %1 axes=[0,1] : f32[]\n%3 = neg %2 : f32[]\n%4 = constant 0.25 : f32[]\n%5 = mul %3, %4 : f32[]\noutput loss = %5\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["reduce"]);
    assert!(p.kernels[0].wgsl.contains("-acc"), "{}", p.kernels[0].wgsl);
}

#[test]
fn the_gradient_of_a_per_row_gather_needs_no_scatter_kernel() {
    // Cross-entropy's label pick: its transpose scatters one element per row, which is
    // a comparison computed inline by the kernel that reads it.
    let g = parse(
        "%0 = input z : f32[4,5]\n%1 = input labels : i32[4,1]\n%2 = gather %0, %1 axis=1 : f32[4,1]\n%3 = reduce_sum %2 axes=[0,1] : f32[]\noutput loss = %3\n",
    );
    let d = wgrad::grad(&g, None, &["z"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    assert!(!variants(&p).contains(&"scatter"), "{:?}", variants(&p));
    assert_eq!(variants(&p), ["reduce", "elementwise"]);
}

#[test]
fn a_softmax_is_one_row_kernel_holding_its_statistics_in_registers() {
    // max, sum of exponentials and the normalized output: three kernels and two
    // per-row buffers without row kernels; one kernel and no temporaries with them.
    let g = parse(
        "%0 = input x : f32[6,10]\n%1 = reduce_max %0 axes=[1] : f32[6]\n%2 = broadcast %1 dims=[0] : f32[6,10]\n%3 = sub %0, %2 : f32[6,10]\n%4 = exp %3 : f32[6,10]\n%5 = reduce_sum %4 axes=[1] : f32[6]\n%6 = broadcast %5 dims=[0] : f32[6,10]\n%7 = div %4, %6 : f32[6,10]\noutput y = %7\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["row"]);
    assert_eq!(p.stats.temp_bytes, 0);
    assert_eq!(p.buffers.len(), 2);
    // Two passes fold the reductions; the output is stored in the third.
    assert_eq!(p.kernels[0].wgsl.matches("for (var c: u32").count(), 3);
}

#[test]
fn a_row_group_that_would_feed_itself_through_another_kernel_is_not_merged() {
    // The row maximum m and e = exp(x - m) form a row kernel; e feeds a product d; the
    // row sum of (x - m) + d reads m and d. Merging that sum into m's kernel would make
    // the kernel both feed the product and wait for it, so it stays a kernel of its own.
    // (Rows of 72: a product that wide is not computed inline by a row kernel.)
    let g = parse(
        "%0 = input x : f32[4,72]\n%1 = input w : f32[72,72]\n%2 = reduce_max %0 axes=[1] : f32[4]\n%3 = broadcast %2 dims=[0] : f32[4,72]\n%4 = sub %0, %3 : f32[4,72]\n%5 = exp %4 : f32[4,72]\n%6 = dot %5, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,72]\n%7 = add %4, %6 : f32[4,72]\n%8 = reduce_sum %7 axes=[1] : f32[4]\noutput y = %8\n",
    );
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["row", "matmul_tiled4x4_shared", "reduce"]);
}

#[test]
fn a_row_result_overwrites_an_operand_only_when_read_at_its_own_element() {
    // g = softmax(z) - y may overwrite z; with a transpose of z added it reads other
    // rows of z, so it gets a buffer of its own. (Rows of 72: z is a tiled product, not
    // computed inline by the row kernel.)
    for (extra, in_place) in [("", true), ("transposed", false)] {
        let mut text = String::from(
            "%0 = input a : f32[72,72]\n%1 = input b : f32[72,72]\n%2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[72,72]\n%3 = reduce_max %2 axes=[1] : f32[72]\n%4 = broadcast %3 dims=[0] : f32[72,72]\n%5 = sub %2, %4 : f32[72,72]\n%6 = exp %5 : f32[72,72]\n%7 = reduce_sum %6 axes=[1] : f32[72]\n%8 = broadcast %7 dims=[0] : f32[72,72]\n%9 = div %6, %8 : f32[72,72]\n",
        );
        if extra.is_empty() {
            text.push_str("%10 = sub %9, %1 : f32[72,72]\n");
        } else {
            text.push_str("%10 = transpose %2 perm=[1,0] : f32[72,72]\n%11 = add %9, %10 : f32[72,72]\n%12 = sub %11, %1 : f32[72,72]\n");
        }
        let last = if extra.is_empty() { 10 } else { 12 };
        text.push_str(&format!(
            "%{} = dot %0, %{last} lhs_batch=[] rhs_batch=[] lhs_contract=[0] rhs_contract=[0] : f32[72,72]\noutput g = %{}\n",
            last + 1,
            last + 1
        ));
        let p = compile(&parse(&text), Target::software_vulkan());
        assert_eq!(variants(&p)[1], "row", "{extra}");
        let z = p.kernels[0].bindings[0].buffer;
        let overwrites = p.kernels[1]
            .bindings
            .iter()
            .any(|b| b.buffer == z && b.writable);
        assert_eq!(overwrites, in_place, "{extra}");
    }
}

/// A chain of `n` elementwise ops over `x: f32[len]` cycling through tanh, sin, a
/// product with `x` and a sum with `x`, summed into `loss`.
fn elementwise_chain(n: usize, len: usize) -> Graph {
    let mut text = format!("%x = input x : f32[{len}]\n");
    let mut prev = "%x".to_string();
    for i in 0..n {
        let op = match i % 4 {
            0 => format!("tanh {prev}"),
            1 => format!("sin {prev}"),
            2 => format!("mul {prev}, %x"),
            _ => format!("add {prev}, %x"),
        };
        text.push_str(&format!("%v{i} = {op} : f32[{len}]\n"));
        prev = format!("%v{i}");
    }
    text.push_str(&format!(
        "%loss = reduce_sum {prev} axes=[0] : f32[]\noutput loss = %loss\n"
    ));
    parse(&text)
}

#[test]
fn a_chain_of_ten_thousand_fused_ops_compiles_on_a_small_stack() {
    // Emission walks expressions with an explicit stack: a 256 KiB thread stack is
    // enough for an expression 10,000 ops deep.
    let g = elementwise_chain(10_000, 16);
    let p = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || compile(&g, Target::software_vulkan()))
        .unwrap()
        .join()
        .expect("compiling a deep chain must not overflow the stack");
    assert_eq!(variants(&p), ["reduce"]);
    assert_eq!(p.stats.temp_bytes, 0);
}

#[test]
fn long_gradients_split_into_kernels_within_the_binding_limit() {
    // The gradient of a long chain, placed without checkpoints, reads hundreds of
    // stored forward values; every kernel is split to bind at most what each preset
    // allows, and every kernel is valid WGSL.
    let g = wgrad::grad(&elementwise_chain(400, 64), None, &["x"]).unwrap();
    for name in Target::PRESETS {
        let target = Target::preset(name).unwrap();
        let mut options = Options::new(target.clone());
        options.optimizations = options.optimizations.without("checkpoint").unwrap();
        let p = wgrad::compile(&g, &options).unwrap();
        let most = p.max_bindings();
        assert!(
            most <= target.max_storage_buffers_per_shader_stage,
            "{name}: {most} bindings"
        );
        // Splitting packs the pieces: some kernel is at the limit.
        assert_eq!(most, target.max_storage_buffers_per_shader_stage, "{name}");
        for k in &p.kernels {
            wgrad::lower::validate_wgsl(&k.name, &k.wgsl, &p.target).unwrap();
        }
    }
}

#[test]
fn a_kernel_that_no_split_makes_fit_is_a_limits_error() {
    // A concat of 12 inputs reads 12 buffers in one expression with nothing to split
    // off: on the portable preset (8 storage buffers) that is a clear limits error.
    let mut text = String::new();
    for i in 0..12 {
        text.push_str(&format!("%x{i} = input x{i} : f32[4]\n"));
    }
    let args: Vec<String> = (0..12).map(|i| format!("%x{i}")).collect();
    text.push_str(&format!(
        "%c = concat {} axis=0 : f32[48]\n%t = tanh %c : f32[48]\noutput y = %t\n",
        args.join(", ")
    ));
    let g = parse(&text);
    let err = wgrad::compile(&g, &Options::new(Target::portable())).unwrap_err();
    match err {
        wgrad::Error::Compiler(wgrad::compiler::Error::Limits {
            what,
            needed,
            available,
        }) => {
            assert!(
                what.starts_with("max_storage_buffers_per_shader_stage"),
                "{what}"
            );
            assert_eq!((needed, available), (13, 8));
        }
        other => panic!("expected a limits error, got {other}"),
    }
    // The software-Vulkan preset binds 32: the same program is one kernel there.
    assert_eq!(compile(&g, Target::software_vulkan()).stats.kernels, 1);
}

#[test]
fn the_plan_lists_every_kernel_in_dispatch_order() {
    let g = wgrad::grad(&example("mlp.wg"), None, &["w1", "b1", "w2", "b2"]).unwrap();
    let (p, report) = wgrad::lower::compile(&g, &Options::default()).unwrap();
    let text = report.plan.print(&p.graph);
    // One paragraph per planned kernel; a two-stage reduction or a product's sum fold
    // adds a kernel without a plan entry of its own.
    let entries = text.lines().filter(|l| l.starts_with("kernel ")).count();
    assert_eq!(entries, report.plan.kernels.len());
    assert!(entries <= p.kernels.len());
    assert!(text.contains("tiled product"), "{text}");
    assert!(text.contains("row kernel"), "{text}");
}

#[test]
fn a_loop_of_independent_iterations_compiles_like_its_whole_tensor_form() {
    // W4 at N = 16384: the loop is optimized as a loop (the norm hoisted, out[i] = x[i]
    // / norm made whole-tensor) before anything is unrolled, so neither the program nor
    // its gradient has one kernel per iteration.
    let text = std::fs::read_to_string(format!(
        "{}/examples/programs/normalize_loop.wg",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("f32[8]", "f32[16384]")
    .replace("trips=8", "trips=16384");
    let g = parse(&text);
    let forward = compile(&g, Target::software_vulkan());
    assert!(forward.stats.kernels <= 4, "{}", forward.stats.kernels);
    let d = wgrad::grad(&g, None, &["x"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    // One row kernel over the one row of 16,384: Σ x·x, the loss, Σ of the norm's
    // cotangent and the gradient in a few passes, the norm in a register, so nothing
    // is kept for the backward pass (W4's targets: ≤ 4 kernels, 0 residual bytes).
    assert_eq!(p.stats.kernels, 1);
    assert_eq!(p.stats.residual_bytes, 0);
}

#[test]
fn w4_gradient_as_one_row_kernel_matches_the_interpreter() {
    // At 32,768 the row kernel's three passes are 98,304 loop iterations, more than
    // llvmpipe runs in one invocation (65,535 in all): the row gets a workgroup.
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    for n in [16384, 32768] {
        let text = std::fs::read_to_string(format!(
            "{}/examples/programs/normalize_loop.wg",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace("f32[8]", &format!("f32[{n}]"))
        .replace("trips=8", &format!("trips={n}"));
        let d = wgrad::grad(&parse(&text), None, &["x"]).unwrap();
        let mut rng = common::Rng::new(90);
        let ins = common::inputs(vec![
            ("x", rng.tensor(&[n], -1.0, 1.0)),
            ("c", rng.tensor(&[n], -1.0, 1.0)),
        ]);
        common::gpu::assert_gpu_matches(&rt, &d, &ins);
    }
}

#[test]
fn sums_and_products_longer_than_a_driver_loop_are_exact_on_the_device() {
    // llvmpipe ends any shader loop after 65,535 iterations: unsplit, the sum of
    // 100,000 ones came back as 65,535. Every figure here is exact in f32. The
    // runtime's target carries that limit.
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    assert_eq!(rt.target().max_loop_iterations, wgrad::lower::LOOP_LIMIT);
    let g = parse(
        "%s = input s : f32[]
         %a = broadcast %s dims=[] : f32[70000,1024]
         %t = reduce_sum %a axes=[0,1] : f32[]
         %c = reduce_sum %a axes=[0] : f32[1024]
         %r = reduce_sum %a axes=[1] : f32[70000]
         %i = iota axis=0 : f32[70000,300]
         %m = reduce_max %i axes=[0] : f32[300]
         %p = broadcast %s dims=[] : f32[2,100000]
         %q = broadcast %s dims=[] : f32[100000,3]
         %d = dot %p, %q lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[2,3]
         %p2 = broadcast %s dims=[] : f32[2,300,300]
         %q2 = broadcast %s dims=[] : f32[300,300,3]
         %d2 = dot %p2, %q2 lhs_batch=[] rhs_batch=[] lhs_contract=[1,2] rhs_contract=[0,1] : f32[2,3]
         %p3 = broadcast %s dims=[] : f32[2,3,300,300]
         %q3 = broadcast %s dims=[] : f32[3,300,300]
         %d3 = dot %p3, %q3 lhs_batch=[] rhs_batch=[] lhs_contract=[1,2,3] rhs_contract=[0,1,2] : f32[2]
         %u = broadcast %s dims=[] : f32[100000,2]
         %k = constant 1 : i32[100000,2]
         %sc = scatter_add %u, %k axis=0 size=4 : f32[4,2]
         output t = %t
         output c = %c
         output r = %r
         output m = %m
         output d = %d
         output d2 = %d2
         output d3 = %d3
         output sc = %sc",
    );
    let p = compile(&g, rt.target().clone());
    let mut exe = rt.load(&p).unwrap();
    let s = wgrad::Tensor::new(wgrad::Type::f32(&[]), vec![1.0]).unwrap();
    let out = exe
        .run(&std::collections::HashMap::from([("s".to_string(), s)]))
        .unwrap();
    let get = |name: &str| &out.iter().find(|(n, _)| n == name).unwrap().1.data;
    assert_eq!(get("t"), &vec![71_680_000.0]);
    assert!(
        get("c").iter().all(|&x| x == 70_000.0),
        "{:?}",
        &get("c")[..4]
    );
    assert!(get("r").iter().all(|&x| x == 1024.0));
    assert!(
        get("m").iter().all(|&x| x == 69_999.0),
        "{:?}",
        &get("m")[..4]
    );
    assert!(get("d").iter().all(|&x| x == 100_000.0), "{:?}", get("d"));
    // Two contracted axes of 300 (90,000 per element), and 100,000 updates scattered
    // into one row: unsplit, both stopped at 65,535.
    assert!(get("d2").iter().all(|&x| x == 90_000.0), "{:?}", get("d2"));
    // Contracted axes of 3, 300 and 300 (270,000 per element): the first cannot be
    // split within the limit, so it becomes a batch axis and the next is split.
    assert!(get("d3").iter().all(|&x| x == 270_000.0), "{:?}", get("d3"));
    assert_eq!(
        get("sc"),
        &vec![0.0, 0.0, 100_000.0, 100_000.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn zero_size_tensors_run_end_to_end() {
    // Empty inputs, results and gradients: outputs are empty arrays, sums over nothing
    // are 0, products over an empty contraction are 0, and no kernel computes an empty
    // result.
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let g = parse(
        "%a = input a : f32[3,0]
         %b = input b : f32[0,2]
         %d = dot %a, %b lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[3,2]
         %e = input e : f32[0,5]
         %m = reduce_max %e axes=[1] : f32[0]
         %s = reduce_sum %e axes=[0] : f32[5]
         %t = transpose %e perm=[1,0] : f32[5,0]
         %y = tanh %a : f32[3,0]
         %r = reduce_sum %y axes=[1] : f32[3]
         %l = reduce_sum %r axes=[0] : f32[]
         output d = %d
         output m = %m
         output s = %s
         output t = %t
         output y = %y
         output l = %l",
    );
    let empty = |shape: &[usize]| wgrad::Tensor::new(wgrad::Type::f32(shape), vec![]).unwrap();
    let ins = std::collections::HashMap::from([
        ("a".to_string(), empty(&[3, 0])),
        ("b".to_string(), empty(&[0, 2])),
        ("e".to_string(), empty(&[0, 5])),
    ]);
    let out = common::gpu::assert_gpu_matches(&rt, &g, &ins);
    assert!(out.iter().any(|(n, t)| n == "y" && t.data.is_empty()));
    let p = compile(&g, rt.target().clone());
    for k in &p.kernels {
        assert!(
            k.dispatch.iter().all(|&d| d > 0),
            "{} dispatches nothing",
            k.name
        );
    }
    let dg = wgrad::grad(&g, Some("l"), &["a", "e"]).unwrap();
    let out = common::gpu::assert_gpu_matches(&rt, &dg, &ins);
    assert!(out.iter().any(|(n, t)| n == "grad.a" && t.data.is_empty()));
}

#[test]
fn a_concat_of_many_operands_compiles_and_runs() {
    // Emitted as one nested `select`, 200 operands exceeded naga's parser recursion
    // limit and were reported as a bug in wgrad.
    let n = 300;
    let mut text = String::from("%x = input x : f32[2]\n");
    for i in 0..n {
        text.push_str(&format!("%n{i} = mul %x, %x : f32[2]\n"));
    }
    let args: Vec<String> = (0..n).map(|i| format!("%n{i}")).collect();
    text.push_str(&format!(
        "%c = concat {} axis=0 : f32[{}]\noutput c = %c\n",
        args.join(", "),
        2 * n
    ));
    let g = parse(&text);
    compile(&g, Target::software_vulkan());
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let x = wgrad::Tensor::new(wgrad::Type::f32(&[2]), vec![1.5, -2.0]).unwrap();
    let ins = std::collections::HashMap::from([("x".to_string(), x)]);
    common::gpu::assert_gpu_matches(&rt, &g, &ins);
}

#[test]
fn a_sum_of_more_than_two_to_the_32_elements_compiles_to_valid_wgsl() {
    // Its element count once became a `u32` literal out of range.
    let g = parse(
        "%s = input s : f32[]
         %a = broadcast %s dims=[] : f32[70000,70000]
         %t = reduce_sum %a axes=[0,1] : f32[]
         output t = %t",
    );
    let p = compile(&g, Target::software_vulkan());
    assert!(p.kernels.len() >= 2, "{}", variants(&p).join(", "));
}

#[test]
fn ops_on_literals_alone_run_on_the_device_even_when_not_finite() {
    // `0.0f / 0.0f` is a WGSL constant expression: naga evaluated it and rejected the
    // kernel ("Float literal is NaN"), reported as a bug in wgrad.
    let g = parse(
        "%x = input x : f32[4]
         %z = constant 0.0 : f32[4]
         %q = div %z, %z : f32[4]
         %l = log %z : f32[4]
         %n = neg %l : f32[4]
         %s = add %q, %x : f32[4]
         %t = mul %n, %x : f32[4]
         %m = constant 2147483647 : i32[4]
         %one = constant 1 : i32[4]
         %w = add %m, %one : i32[4]
         output s = %s
         output t = %t
         output w = %w",
    );
    // Without simplification nothing is folded, so the kernels compute on literals.
    let unfolded = |target: Target| {
        let options = Options {
            optimizations: wgrad::passes::Optimizations::ALL
                .without("simplify")
                .unwrap(),
            ..Options::new(target)
        };
        wgrad::compile(&g, &options).unwrap_or_else(|e| panic!("{e}"))
    };
    let p = unfolded(Target::software_vulkan());
    assert!(p.kernels.iter().any(|k| k.wgsl.contains("/ 0.0f")));
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let x = wgrad::Tensor::new(wgrad::Type::f32(&[4]), vec![1.0, -1.0, 2.0, 0.5]).unwrap();
    let ins = std::collections::HashMap::from([("x".to_string(), x)]);
    let p = unfolded(rt.target().clone());
    let out = rt.load(&p).unwrap().run(&ins).unwrap();
    let get = |name: &str| &out.iter().find(|(n, _)| n == name).unwrap().1.data;
    assert!(get("s").iter().all(|x| x.is_nan()), "{:?}", get("s"));
    assert_eq!(
        get("t"),
        &vec![
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::INFINITY
        ]
    );
    assert!(
        get("w").iter().all(|&w| w == f64::from(i32::MIN)),
        "{:?}",
        get("w")
    );
}

#[test]
fn products_that_contract_nothing_lower() {
    // An outer product, and the gradient of a matrix-vector product, which contains
    // one: splitting long products once indexed their (absent) first contracted axis.
    let g = parse(
        "%m = input m : f32[3,4]
         %v = input v : f32[4]
         %y = dot %m, %v lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[3]
         %t = tanh %y : f32[3]
         %l = reduce_sum %t axes=[0] : f32[]
         output l = %l",
    );
    let dg = wgrad::grad(&g, None, &["m", "v"]).unwrap();
    compile(&dg, Target::software_vulkan());
    let outer = parse(
        "%a = input a : f32[3]
         %b = input b : f32[5]
         %o = dot %a, %b lhs_batch=[] rhs_batch=[] lhs_contract=[] rhs_contract=[] : f32[3,5]
         output o = %o",
    );
    compile(&outer, Target::software_vulkan());
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let mut rng = common::Rng::new(3);
    let ins = std::collections::HashMap::from([
        ("m".to_string(), rng.tensor(&[3, 4], -1.0, 1.0)),
        ("v".to_string(), rng.tensor(&[4], -1.0, 1.0)),
    ]);
    common::gpu::assert_gpu_matches(&rt, &dg, &ins);
}

/// W5, `f(x) = Σ tanh(x)·sin(x)` over `f32[n]`, with `f` and its directional
/// derivatives of orders 1 to 4 along one tangent as outputs: five sums over the same
/// elements.
fn w5_every_order(n: usize) -> Graph {
    let text = format!(
        "%x = input x : f32[{n}]\n%t = tanh %x : f32[{n}]\n%s = sin %x : f32[{n}]\n%p = mul %t, %s : f32[{n}]\n%f = reduce_sum %p axes=[0] : f32[]\noutput f = %f\n"
    );
    wgrad::batch::directional(&parse(&text), None, "x", 4).unwrap()
}

#[test]
fn sibling_reductions_share_one_pair_of_kernels() {
    // W5 at N = 2^20 with f and d1…d4 as outputs: one first stage computing every
    // shared value once per element and folding five sums, one final stage.
    let g = w5_every_order(1 << 20);
    assert_eq!(g.outputs().len(), 5);
    let p = compile(&g, Target::software_vulkan());
    assert_eq!(variants(&p), ["reduce_partial", "reduce_final"]);
    assert!(
        p.stats.temp_bytes <= 1 << 20,
        "{} temporary bytes",
        p.stats.temp_bytes
    );
    // Without it: each sum a pair of kernels, and the shared values stored between.
    let mut options = Options::new(Target::software_vulkan());
    options.optimizations = options.optimizations.without("siblings").unwrap();
    let apart = wgrad::compile(&g, &options).unwrap();
    assert!(apart.stats.kernels >= 10, "{} kernels", apart.stats.kernels);
    assert!(
        apart.stats.temp_bytes > 16 << 20,
        "{}",
        apart.stats.temp_bytes
    );
}

#[test]
fn a_reduction_that_reads_another_is_not_its_sibling() {
    // The variance's sum reads the mean's: they run in order, never in one kernel. The
    // sum of exp(x) is independent of both, and joins one of them.
    let g = parse(
        "%x = input x : f32[65536]\n%s = reduce_sum %x axes=[0] : f32[]\n%c = constant 0.0000152587890625 : f32[]\n%m = mul %s, %c : f32[]\n%mb = broadcast %m dims=[] : f32[65536]\n%d = sub %x, %mb : f32[65536]\n%q = mul %d, %d : f32[65536]\n%v = reduce_sum %q axes=[0] : f32[]\n%e = exp %x : f32[65536]\n%z = reduce_sum %e axes=[0] : f32[]\noutput v = %v\noutput z = %z\noutput s = %s\n",
    );
    let p = compile(&g, Target::software_vulkan());
    let heads: Vec<&str> = p
        .kernels
        .iter()
        .map(|k| k.wgsl.lines().next().unwrap())
        .collect();
    assert_eq!(p.stats.kernels, 4, "{heads:#?}");
    assert!(
        heads
            .iter()
            .any(|h| h.contains("%z, %v") || h.contains("%z, %s")),
        "{heads:#?}"
    );
    assert!(
        !heads.iter().any(|h| h.contains("%v") && h.contains("%s")),
        "{heads:#?}"
    );
    let s_done = heads.iter().rposition(|h| h.contains("%s")).unwrap();
    let v_starts = heads.iter().position(|h| h.contains("%v")).unwrap();
    assert!(s_done < v_starts, "{heads:#?}");
}

/// `Σ f₁(f₂(…f_n(x)))` over `f32[256]`, the `f` cycling through tanh, sin, exp, cos.
fn cycling_chain(n: usize) -> Graph {
    let ops = ["tanh", "sin", "exp", "cos"];
    let mut text = "%x = input x : f32[256]\n".to_string();
    let mut prev = "%x".to_string();
    for i in 0..n {
        text.push_str(&format!("%v{i} = {} {prev} : f32[256]\n", ops[i % 4]));
        prev = format!("%v{i}");
    }
    text.push_str(&format!(
        "%l = reduce_sum {prev} axes=[0] : f32[]\noutput loss = %l\n"
    ));
    parse(&text)
}

#[test]
fn a_long_chain_gradient_is_a_few_checkpointed_segments() {
    // 1,500 ops: one checkpoint stored every 256 forward ops, and each backward kernel
    // recomputes one segment from its checkpoint.
    let d = wgrad::grad(&cycling_chain(1500), None, &["x"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    assert!(p.stats.kernels <= 12, "{} kernels", p.stats.kernels);
    // What the backward keeps: a few checkpoints of f32[256], not one per few ops.
    let checkpoints = p.stats.residual_bytes / 1024;
    assert!(
        (1..=1500 / 256).contains(&checkpoints),
        "{} residual bytes",
        p.stats.residual_bytes
    );
    for k in &p.kernels {
        wgrad::lower::validate_wgsl(&k.name, &k.wgsl, &p.target).unwrap();
    }
    // Without checkpoints a forward value is stored every few ops, each in a kernel.
    let mut options = Options::new(Target::software_vulkan());
    options.optimizations = options.optimizations.without("checkpoint").unwrap();
    let apart = wgrad::compile(&d, &options).unwrap();
    assert!(
        apart.stats.kernels >= 300,
        "{} kernels",
        apart.stats.kernels
    );
    // A long forward chain recomputes nothing: it stays one kernel.
    let f = compile(&cycling_chain(1500), Target::software_vulkan());
    assert_eq!(f.stats.kernels, 1);
}

/// `n` steps of `v ← v + f(v) / 64` over `x: f32[256]`, `f` cycling through sin, tanh
/// and cos, summed: a chain of `3n` elementwise ops whose gradient stays near 1.
fn damped_chain(n: usize) -> Graph {
    let ops = ["sin", "tanh", "cos"];
    let mut text = "%x = input x : f32[256]\n%c = constant 0.015625 : f32[256]\n".to_string();
    let mut prev = "%x".to_string();
    for i in 0..n {
        text.push_str(&format!(
            "%f{i} = {} {prev} : f32[256]\n%s{i} = mul %f{i}, %c : f32[256]\n%v{i} = add {prev}, %s{i} : f32[256]\n",
            ops[i % 3]
        ));
        prev = format!("%v{i}");
    }
    text.push_str(&format!(
        "%l = reduce_sum {prev} axes=[0] : f32[]\noutput loss = %l\n"
    ));
    parse(&text)
}

#[test]
fn a_checkpointed_gradient_matches_the_interpreter_on_the_device() {
    // 900 ops: three segments of recomputation, one cotangent stored at each cut.
    let d = wgrad::grad(&damped_chain(300), None, &["x"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    assert!(
        (3..=8).contains(&p.stats.kernels),
        "{} kernels",
        p.stats.kernels
    );
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let mut rng = common::Rng::new(17);
    let ins = common::inputs(vec![("x", rng.tensor(&[256], -3.0, 3.0))]);
    common::gpu::assert_gpu_matches(&rt, &d, &ins);
}

#[test]
fn a_checkpointed_gradient_of_a_chain_reading_its_input_matches_on_the_device() {
    // 600 ops, half of them reading `x`: `x`'s gradient is a sum of 300 contributions,
    // added as they arrive, so one partial sum crosses each cut with the cotangent.
    let d = wgrad::grad(&elementwise_chain(600, 256), None, &["x"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    assert!(p.stats.kernels <= 12, "{} kernels", p.stats.kernels);
    let Some(rt) = wgrad::runtime::testing::runtime_or_skip() else {
        return;
    };
    let mut rng = common::Rng::new(23);
    let ins = common::inputs(vec![("x", rng.tensor(&[256], -1.0, 1.0))]);
    common::gpu::assert_gpu_matches(&rt, &d, &ins);
}

#[test]
fn an_elementwise_gradient_is_computed_beside_its_loss_with_nothing_stored() {
    // 40 ops: the forward values, the derivative and the loss's sum in one loop, each
    // forward value in registers from its computation to its derivative's.
    let d = wgrad::grad(&cycling_chain(40), None, &["x"]).unwrap();
    let p = compile(&d, Target::software_vulkan());
    assert!(p.stats.kernels <= 2, "{} kernels", p.stats.kernels);
    assert_eq!(p.stats.residual_bytes, 0);
    assert_eq!(p.stats.temp_bytes, 0);
    assert!(
        p.kernels[0]
            .wgsl
            .contains("Also stores, element by element")
    );
    // Without sibling fusion the forward values are stored every few ops.
    let mut options = Options::new(Target::software_vulkan());
    options.optimizations = options.optimizations.without("siblings").unwrap();
    let apart = wgrad::compile(&d, &options).unwrap();
    assert!(apart.stats.kernels >= 10 && apart.stats.residual_bytes > 0);
    // Past `MAX_KERNEL_VALUES` (512) values the rest stays as it was placed: a very
    // long chain keeps its kernel compilable, at the cost of its stored values.
    let long = wgrad::grad(&cycling_chain(400), None, &["x"]).unwrap();
    let p = compile(&long, Target::software_vulkan());
    assert!(p.max_bindings() <= 32);
}
