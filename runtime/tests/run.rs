//! Running hand-built programs: results, determinism, state, the pipeline cache, limits
//! and input errors. Every test skips on a machine without an adapter (and fails on CI).

mod common;

use common::*;
use wgrad_compiler::Error as CompilerError;
use wgrad_compiler::ir::{DType, Type};
use wgrad_compiler::lower::AdapterClass;
use wgrad_runtime::testing::{runtime_or_skip, runtime_with_options_or_skip};
use wgrad_runtime::{Error, RuntimeOptions, target_from_adapter};

#[test]
fn elementwise_kernel_computes_a_times_two_plus_b() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&axpb()).unwrap();
    let a = f32s(&[2, 3], &[1.0, 2.0, 3.0, -4.0, 0.5, 0.0]);
    let b = f32s(&[2, 3], &[10.0, 20.0, 30.0, 40.0, 50.0, -1.25]);
    let out = exe.run(&inputs(&[("a", a), ("b", b)])).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "out");
    assert_eq!(out[0].1.ty, Type::f32(&[2, 3]));
    assert_eq!(out[0].1.data, vec![12.0, 24.0, 36.0, 32.0, 51.0, -1.25]);
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&axpb()).unwrap();
    let a = f32s(&[2, 3], &[0.1, 0.2, 0.3, 1e-7, 3.3e5, -2.7]);
    let b = f32s(&[2, 3], &[0.7, -0.3, 1.0 / 3.0, 9.9, 1e-3, 2.2]);
    let given = inputs(&[("a", a), ("b", b)]);
    let first = exe.run(&given).unwrap();
    let bits = |t: &wgrad_compiler::ir::Tensor| -> Vec<u64> {
        t.data.iter().map(|x| x.to_bits()).collect()
    };
    for _ in 0..5 {
        let again = exe.run(&given).unwrap();
        assert_eq!(bits(&again[0].1), bits(&first[0].1));
    }
}

/// `y = w * 3` and `new.w = w + 1`, with `new.w` replacing `w` after each run.
fn counter() -> wgrad_compiler::lower::Program {
    let ty = Type::f32(&[4]);
    let mut p = ProgramBuilder::new();
    let w = p.input("w", ty.clone());
    let y = p.computed(ty.clone());
    let nw = p.computed(ty);
    p.kernel(
        "triple",
        &elementwise(4, &[("w", "f32")], "f32", "w[i] * 3.0"),
        &[w],
        &[y],
        4,
    );
    p.kernel(
        "increment",
        &elementwise(4, &[("w", "f32")], "f32", "w[i] + 1.0"),
        &[w],
        &[nw],
        4,
    );
    p.output("y", y);
    p.output("new.w", nw);
    p.state("w", "new.w");
    p.build()
}

#[test]
fn state_stays_on_the_device_between_runs() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&counter()).unwrap();
    let w0 = [1.0, -2.0, 0.5, 100.0];

    let out = exe.run(&inputs(&[("w", f32s(&[4], &w0))])).unwrap();
    // The state output is not read back.
    assert_eq!(out.len(), 1);
    assert_eq!(get(&out, "y").data, vec![3.0, -6.0, 1.5, 300.0]);

    exe.run(&inputs(&[])).unwrap();
    let out = exe.run(&inputs(&[])).unwrap();
    // The third run saw w0 + 2.
    assert_eq!(get(&out, "y").data, vec![9.0, 0.0, 7.5, 306.0]);
    let w = exe.read("w").unwrap();
    assert_eq!(w.data, w0.iter().map(|x| x + 3.0).collect::<Vec<_>>());
    assert_eq!(exe.read("new.w").unwrap().data, w.data);
}

#[test]
fn state_input_may_be_set_instead_of_passed() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&counter()).unwrap();
    let err = exe.run(&inputs(&[])).unwrap_err();
    assert!(
        matches!(&err, Error::Compiler(CompilerError::Input { name, message }) if name == "w" && message.starts_with("missing")),
        "{err}"
    );
    exe.set("w", &f32s(&[4], &[0.0, 1.0, 2.0, 3.0])).unwrap();
    let out = exe.run(&inputs(&[])).unwrap();
    assert_eq!(get(&out, "y").data, vec![0.0, 3.0, 6.0, 9.0]);
    assert_eq!(exe.read("w").unwrap().data, vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn state_pairs_that_swap_buffers_go_through_scratch() {
    let Some(rt) = runtime_or_skip() else { return };
    // No kernels: `new.a` is `b`'s buffer and `new.b` is `a`'s, so each copy's source is
    // the other's destination.
    let ty = Type::f32(&[3]);
    let mut p = ProgramBuilder::new();
    let a = p.input("a", ty.clone());
    let b = p.input("b", ty);
    p.output("new.a", b);
    p.output("new.b", a);
    p.output("a_before", a);
    p.state("a", "new.a");
    p.state("b", "new.b");
    let mut exe = rt.load(&p.build()).unwrap();
    let out = exe
        .run(&inputs(&[
            ("a", f32s(&[3], &[1.0, 2.0, 3.0])),
            ("b", f32s(&[3], &[4.0, 5.0, 6.0])),
        ]))
        .unwrap();
    // The output is read before state replaces its buffer.
    assert_eq!(get(&out, "a_before").data, vec![1.0, 2.0, 3.0]);
    assert_eq!(exe.read("a").unwrap().data, vec![4.0, 5.0, 6.0]);
    assert_eq!(exe.read("b").unwrap().data, vec![1.0, 2.0, 3.0]);
}

#[test]
fn outputs_may_share_buffers_with_inputs_and_each_other() {
    let Some(rt) = runtime_or_skip() else { return };
    let ty = Type::f32(&[5]);
    let mut p = ProgramBuilder::new();
    let x = p.input("x", ty.clone());
    let y = p.computed(ty);
    p.kernel(
        "neg",
        &elementwise(5, &[("x", "f32")], "f32", "-x[i]"),
        &[x],
        &[y],
        5,
    );
    p.output("x_again", x);
    p.output("y", y);
    p.output("y_too", y);
    let mut exe = rt.load(&p.build()).unwrap();
    let x0 = [1.0, 2.0, 3.0, 4.0, 5.0];
    let out = exe.run(&inputs(&[("x", f32s(&[5], &x0))])).unwrap();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x_again", "y", "y_too"]);
    assert_eq!(get(&out, "x_again").data, x0);
    assert_eq!(get(&out, "y").data, vec![-1.0, -2.0, -3.0, -4.0, -5.0]);
    assert_eq!(get(&out, "y_too").data, get(&out, "y").data);
}

#[test]
fn integer_and_bool_tensors_round_trip() {
    let Some(rt) = runtime_or_skip() else { return };
    let n = 4;
    let mut p = ProgramBuilder::new();
    let i = p.input("i", Type::i32(&[n]));
    let u = p.input("u", Type::new(DType::U32, &[n]));
    let m = p.input("m", Type::new(DType::Bool, &[n]));
    let prod = p.computed(Type::i32(&[n]));
    let pos = p.computed(Type::new(DType::Bool, &[n]));
    let sum = p.computed(Type::new(DType::U32, &[n]));
    p.kernel(
        "scale",
        &elementwise(n, &[("a", "i32")], "i32", "a[i] * -3"),
        &[i],
        &[prod],
        n as u32,
    );
    p.kernel(
        "positive",
        &elementwise(n, &[("a", "i32")], "u32", "select(0u, 1u, a[i] > 0)"),
        &[i],
        &[pos],
        n as u32,
    );
    p.kernel(
        "masked",
        &elementwise(
            n,
            &[("a", "u32"), ("b", "u32")],
            "u32",
            "select(0u, a[i], b[i] != 0u)",
        ),
        &[u, m],
        &[sum],
        n as u32,
    );
    p.output("prod", prod);
    p.output("pos", pos);
    p.output("masked", sum);
    let mut exe = rt.load(&p.build()).unwrap();
    let out = exe
        .run(&inputs(&[
            (
                "i",
                tensor(DType::I32, &[n], &[-2.0, 0.0, 7.0, 2147483647.0]),
            ),
            (
                "u",
                tensor(DType::U32, &[n], &[1.0, 2.0, 3.0, 4294967295.0]),
            ),
            ("m", tensor(DType::Bool, &[n], &[1.0, 0.0, 0.0, 1.0])),
        ]))
        .unwrap();
    let prod = get(&out, "prod");
    assert_eq!(prod.ty, Type::i32(&[n]));
    // i32 multiplication wraps, as in WGSL.
    let wrapped = (2147483647i32).wrapping_mul(-3) as f64;
    assert_eq!(prod.data, vec![6.0, 0.0, -21.0, wrapped]);
    assert_eq!(get(&out, "pos").ty.dtype, DType::Bool);
    assert_eq!(get(&out, "pos").data, vec![0.0, 0.0, 1.0, 1.0]);
    assert_eq!(get(&out, "masked").data, vec![1.0, 0.0, 0.0, 4294967295.0]);
}

#[test]
fn empty_tensors_pass_through() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut p = ProgramBuilder::new();
    let e = p.input("e", Type::f32(&[0, 3]));
    p.output("e", e);
    let mut exe = rt.load(&p.build()).unwrap();
    let out = exe.run(&inputs(&[("e", f32s(&[0, 3], &[]))])).unwrap();
    assert_eq!(out[0].1.ty, Type::f32(&[0, 3]));
    assert!(out[0].1.data.is_empty());
}

#[test]
fn loading_twice_compiles_nothing_new() {
    let Some(rt) = runtime_or_skip() else { return };
    assert_eq!(rt.cached_pipelines(), 0);
    let program = counter();
    let _first = rt.load(&program).unwrap();
    assert_eq!(rt.cached_pipelines(), 2);
    let mut second = rt.load(&program).unwrap();
    assert_eq!(rt.cached_pipelines(), 2);
    // The second executable has buffers of its own.
    let out = second
        .run(&inputs(&[("w", f32s(&[4], &[1.0, 1.0, 1.0, 1.0]))]))
        .unwrap();
    assert_eq!(out[0].1.data, vec![3.0; 4]);
    // Another program adds only its new kernel.
    let _other = rt.load(&axpb()).unwrap();
    assert_eq!(rt.cached_pipelines(), 3);
}

#[test]
fn kernels_that_differ_only_in_comments_share_a_pipeline() {
    let Some(rt) = runtime_or_skip() else { return };
    let program = axpb();
    let _first = rt.load(&program).unwrap();
    let before = rt.cached_pipelines();
    let mut renamed = program.clone();
    for k in &mut renamed.kernels {
        k.name = format!("{}_again", k.name);
        k.wgsl = format!(
            "// Another header.\n{}",
            k.wgsl.replace(";\n", "; // a note\n")
        );
    }
    let mut second = rt.load(&renamed).unwrap();
    assert_eq!(rt.cached_pipelines(), before);
    let t = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let out = second.run(&inputs(&[("a", t.clone()), ("b", t)])).unwrap();
    assert_eq!(out[0].1.data, vec![3.0, 6.0, 9.0, 12.0, 15.0, 18.0]);
    // Different code is a different pipeline.
    let mut changed = program.clone();
    for k in &mut changed.kernels {
        k.wgsl = k.wgsl.replace("2.0", "3.0");
    }
    let _third = rt.load(&changed).unwrap();
    assert_eq!(rt.cached_pipelines(), before + 1);
}

#[test]
fn too_many_storage_buffers_is_a_limits_error() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut p = ProgramBuilder::new();
    let reads: Vec<_> = (0..99)
        .map(|i| p.input(&format!("x{i}"), Type::f32(&[1])))
        .collect();
    let out = p.computed(Type::f32(&[1]));
    // Never compiled: the limits are checked before any pipeline is created.
    p.kernel("wide", "not even WGSL", &reads, &[out], 1);
    p.output("out", out);
    let err = rt.load(&p.build()).unwrap_err();
    match err {
        Error::Limits {
            what,
            needed,
            available,
        } => {
            assert_eq!(what, "max_storage_buffers_per_shader_stage");
            assert_eq!(needed, 100);
            assert_eq!(
                available,
                u64::from(rt.target().max_storage_buffers_per_shader_stage)
            );
        }
        other => panic!("expected a limits error, got {other}"),
    }
    assert_eq!(rt.cached_pipelines(), 0);
}

#[test]
fn oversized_workgroups_and_dispatches_are_limits_errors() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut program = axpb();
    program.kernels[0].workgroup_size = [4096, 1, 1];
    let err = rt.load(&program).unwrap_err();
    assert!(
        matches!(&err, Error::Limits { what, needed: 4096, .. } if what == "max_compute_invocations_per_workgroup"),
        "{err}"
    );
    let mut program = axpb();
    program.kernels[0].dispatch = [1, 1 << 20, 1];
    let err = rt.load(&program).unwrap_err();
    assert!(
        matches!(&err, Error::Limits { what, .. } if what == "max_compute_workgroups_per_dimension"),
        "{err}"
    );
}

#[test]
fn wrong_inputs_are_named() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&axpb()).unwrap();
    let good = f32s(&[2, 3], &[0.0; 6]);

    let err = exe
        .run(&inputs(&[
            ("a", f32s(&[3], &[0.0; 3])),
            ("b", good.clone()),
        ]))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Compiler(CompilerError::Input {
            name: "a".into(),
            message: "expected f32[2,3], got f32[3]".into()
        })
    );

    let err = exe
        .run(&inputs(&[
            ("a", tensor(DType::I32, &[2, 3], &[0.0; 6])),
            ("b", good.clone()),
        ]))
        .unwrap_err();
    assert!(
        err.to_string().contains("expected f32[2,3], got i32[2,3]"),
        "{err}"
    );

    let err = exe
        .run(&inputs(&[
            ("a", good.clone()),
            ("b", good.clone()),
            ("c", good.clone()),
        ]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Compiler(CompilerError::Name(m)) if m.contains("`c`")),
        "{err}"
    );

    let err = exe.run(&inputs(&[("a", good.clone())])).unwrap_err();
    assert_eq!(
        err,
        Error::Compiler(CompilerError::Input {
            name: "b".into(),
            message: "missing".into()
        })
    );

    // A hand-built tensor whose data does not match its type.
    let mut short = good.clone();
    short.data.pop();
    let err = exe
        .run(&inputs(&[("a", short), ("b", good.clone())]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Compiler(CompilerError::Input { name, .. }) if name == "a"),
        "{err}"
    );

    assert!(matches!(
        exe.read("nope"),
        Err(Error::Compiler(CompilerError::Name(_)))
    ));
    assert!(matches!(
        exe.set("out", &good),
        Err(Error::Compiler(CompilerError::Name(_)))
    ));
    // After all those errors the executable still works.
    let out = exe
        .run(&inputs(&[("a", good.clone()), ("b", good)]))
        .unwrap();
    assert_eq!(out[0].1.data, vec![0.0; 6]);
}

#[test]
fn device_errors_are_errors_not_panics() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut program = axpb();
    program.kernels[0].wgsl = "fn main( {".to_string();
    let err = rt.load(&program).unwrap_err();
    assert!(
        matches!(&err, Error::Device(m) if m.contains("axpb")),
        "{err}"
    );

    // The layout says `out` is read-only, the shader writes it.
    let mut program = axpb();
    program.kernels[0].bindings[2].writable = false;
    let err = rt.load(&program).unwrap_err();
    assert!(matches!(&err, Error::Device(_)), "{err}");

    // A malformed program (a binding to a buffer that does not exist).
    let mut program = axpb();
    program.kernels[0].bindings[0].buffer.0 = 17;
    let err = rt.load(&program).unwrap_err();
    assert!(
        matches!(&err, Error::Compiler(CompilerError::Compile(m)) if m.contains("buffer 17")),
        "{err}"
    );

    // The runtime is still usable afterwards.
    let mut exe = rt.load(&axpb()).unwrap();
    let t = f32s(&[2, 3], &[1.0; 6]);
    let out = exe.run(&inputs(&[("a", t.clone()), ("b", t)])).unwrap();
    assert_eq!(out[0].1.data, vec![3.0; 6]);
}

#[test]
fn profiled_runs_time_each_kernel_when_timestamps_exist() {
    let options = RuntimeOptions {
        timestamps: true,
        ..RuntimeOptions::default()
    };
    let Some(rt) = runtime_with_options_or_skip(&options) else {
        return;
    };
    let mut exe = rt.load(&counter()).unwrap();
    let (out, timings) = exe
        .run_profiled(&inputs(&[("w", f32s(&[4], &[1.0, 2.0, 3.0, 4.0]))]))
        .unwrap();
    assert_eq!(get(&out, "y").data, vec![3.0, 6.0, 9.0, 12.0]);
    if rt.target().features.timestamps {
        let names: Vec<&str> = timings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["triple", "increment"]);
        eprintln!("timings: {timings:?}");
    } else {
        assert!(timings.is_empty());
    }
    // State advanced as in a plain run.
    assert_eq!(exe.read("w").unwrap().data, vec![2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn the_runtime_describes_its_adapter_as_a_target() {
    let Some(rt) = runtime_or_skip() else { return };
    let summary = rt.adapter();
    assert!(!summary.name.is_empty());
    assert!(summary.to_string().contains(&summary.backend));
    let target = rt.target();
    assert_eq!(target.name, summary.name);
    // The device was opened with more than wgpu's defaults where the adapter allows.
    assert!(target.max_storage_buffers_per_shader_stage >= 8);
    assert!(target.max_compute_invocations_per_workgroup >= 256);
    if summary.device_type == "cpu" {
        assert_eq!(target.class, AdapterClass::Cpu);
        assert_eq!(
            target.matmul_tile,
            wgrad_compiler::lower::Target::software_vulkan().matmul_tile
        );
    }
    eprintln!("adapter: {summary}\ntarget: {target:?}");
    // `target_from_adapter` is public for callers holding their own adapter.
    let _ = target_from_adapter;
}

#[test]
fn a_runtime_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<wgrad_runtime::Runtime>();
    let Some(rt) = runtime_or_skip() else { return };
    std::thread::scope(|s| {
        for k in 0..4 {
            let rt = &rt;
            s.spawn(move || {
                let mut exe = rt.load(&axpb()).unwrap();
                let a = f32s(&[2, 3], &[k as f64; 6]);
                let out = exe.run(&inputs(&[("a", a.clone()), ("b", a)])).unwrap();
                assert_eq!(out[0].1.data, vec![3.0 * k as f64; 6]);
            });
        }
    });
    assert_eq!(rt.cached_pipelines(), 1);
}

#[test]
fn async_runs_agree_with_blocking_runs() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&axpb()).unwrap();
    let a = f32s(&[2, 3], &[1.0, 2.0, 3.0, -4.0, 0.5, 0.0]);
    let b = f32s(&[2, 3], &[10.0, 20.0, 30.0, 40.0, 50.0, -1.25]);
    let given = inputs(&[("a", a), ("b", b)]);
    let blocking = exe.run(&given).unwrap();
    let awaited = futures::executor::block_on(exe.run_async(&given)).unwrap();
    assert_eq!(awaited, blocking);
    // Invalid inputs fail at submission, before anything reaches the device.
    let e = exe.submit(&inputs(&[])).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    // Loaded asynchronously (its pipelines created on another thread), it runs the same.
    let mut loaded = futures::executor::block_on(rt.load_async(&axpb())).unwrap();
    assert_eq!(loaded.run(&given).unwrap(), blocking);
    // A program the device cannot hold fails as `load` does.
    let mut too_wide = axpb();
    too_wide.kernels[0].workgroup_size = [4096, 1, 1];
    let sync = rt.load(&too_wide).map(|_| ()).unwrap_err().to_string();
    let asynchronous = futures::executor::block_on(rt.load_async(&too_wide))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert_eq!(sync, asynchronous);
}

#[test]
fn pipelined_runs_read_back_their_own_results_in_order() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&axpb()).unwrap();
    let run = |k: f64| {
        let a = f32s(&[2, 3], &[k, k + 1.0, k + 2.0, k + 3.0, k + 4.0, k + 5.0]);
        let b = f32s(&[2, 3], &[k; 6]);
        inputs(&[("a", a), ("b", b)])
    };
    // Eight runs in flight before any is read back: each has its own staging buffer.
    let pending: Vec<_> = (0..8)
        .map(|k| exe.submit(&run(f64::from(k))).unwrap())
        .collect();
    let results: Vec<_> = pending
        .into_iter()
        .map(|next| futures::executor::block_on(next).unwrap())
        .collect();
    for (k, out) in results.iter().enumerate() {
        let k = k as f64;
        let want: Vec<f64> = (0..6).map(|i| 2.0 * (k + f64::from(i)) + k).collect();
        assert_eq!(out[0].1.data, want, "run {k}");
    }
    // The last submitted, awaited first, finds the earlier ones finished too.
    let first = exe.submit(&run(1.0)).unwrap();
    let last = exe.submit(&run(2.0)).unwrap();
    let out = futures::executor::block_on(last).unwrap();
    assert_eq!(out[0].1.data[0], 6.0);
    let earlier = futures::FutureExt::now_or_never(first)
        .expect("an earlier submission is read back once a later one is")
        .unwrap();
    assert_eq!(earlier[0].1.data[0], 3.0);
}

#[test]
fn pipelined_state_updates_apply_in_submission_order() {
    let Some(rt) = runtime_or_skip() else { return };
    let mut exe = rt.load(&counter()).unwrap();
    let w = f32s(&[4], &[0.0, 1.0, 2.0, 3.0]);
    let first = exe.submit(&inputs(&[("w", w)])).unwrap();
    let second = exe.submit(&inputs(&[])).unwrap();
    let third = exe.submit(&inputs(&[])).unwrap();
    let (a, b, c) = futures::executor::block_on(async { futures::join!(first, second, third) });
    assert_eq!(a.unwrap()[0].1.data, vec![0.0, 3.0, 6.0, 9.0]);
    assert_eq!(b.unwrap()[0].1.data, vec![3.0, 6.0, 9.0, 12.0]);
    assert_eq!(c.unwrap()[0].1.data, vec![6.0, 9.0, 12.0, 15.0]);
}

#[test]
fn a_run_that_reads_nothing_back_completes_when_the_device_has_run_it() {
    // Every output is state: the future has nothing to map, and once completed it
    // only tells the run is done. Polled again, it is an error, not a second result.
    let Some(rt) = runtime_or_skip() else { return };
    let ty = Type::f32(&[4]);
    let mut p = ProgramBuilder::new();
    let w = p.input("w", ty.clone());
    let nw = p.computed(ty);
    p.kernel(
        "increment",
        &elementwise(4, &[("w", "f32")], "f32", "w[i] + 1.0"),
        &[w],
        &[nw],
        4,
    );
    p.output("new.w", nw);
    p.state("w", "new.w");
    let mut exe = rt.load(&p.build()).unwrap();
    let w0 = f32s(&[4], &[0.0, 1.0, 2.0, 3.0]);
    let mut pending = exe.submit(&inputs(&[("w", w0)])).unwrap();
    let out = futures::executor::block_on(&mut pending).unwrap();
    assert!(out.is_empty());
    let again = futures::FutureExt::now_or_never(&mut pending).unwrap();
    assert!(again.is_err());
    for _ in 0..3 {
        futures::executor::block_on(exe.run_async(&inputs(&[]))).unwrap();
    }
    assert_eq!(exe.read("w").unwrap().data, vec![4.0, 5.0, 6.0, 7.0]);
}
