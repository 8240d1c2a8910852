//! Tuning: `wgrad tune` measures product tiles on the adapter and writes a tuning file;
//! the runtime reads it and compiles those products with the tiles it names; a file
//! that is corrupt, from another adapter or driver version, or names a tile this
//! version does not have is ignored with a warning naming it, never a wrong result.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use wgrad::lower::{ReductionShape, ReductionStages, RowShape, Tiling, TuningFile};
use wgrad::runtime::testing::runtime_with_options_or_skip;
use wgrad::{Options, RuntimeOptions, Target, Tensor, Type};

const PRODUCT: &str = "%a = input a : f32[64,96]\n%b = input b : f32[96,80]\n\
    %c = dot %a, %b lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[64,80]\n\
    %t = tanh %c : f32[64,80]\noutput t = %t\n";

fn shape() -> Tiling {
    Tiling {
        a_transposed: false,
        b_transposed: false,
        m: 64,
        n: 80,
        k: 96,
        batch: 1,
    }
}

/// A tuning file for `rt`'s adapter giving the product of [`PRODUCT`] `tile`.
fn file_for(rt: &wgrad::Runtime, tile: [u32; 2]) -> TuningFile {
    TuningFile {
        adapter: rt.adapter().name.clone(),
        driver: rt.adapter().driver.clone(),
        driver_info: rt.adapter().driver_info.clone(),
        products: vec![(shape(), tile, String::new())],
        rows: Vec::new(),
        loads: Vec::new(),
        splits: Vec::new(),
        reductions: Vec::new(),
    }
}

fn runtime_reading(path: &Path) -> Option<wgrad::Runtime> {
    runtime_with_options_or_skip(&RuntimeOptions {
        tiers: false,
        tuning: wgrad::runtime::TuningSource::File(path.to_path_buf()),
        ..RuntimeOptions::default()
    })
}

#[test]
fn a_tuned_tile_replaces_the_preset_for_its_shape_only() {
    let mut target = Target::software_vulkan();
    target.tuning.products = vec![(shape(), [8, 16])];
    let g = wgrad::parse(PRODUCT).unwrap();
    let p = wgrad::compile(&g, &Options::new(target.clone())).unwrap();
    assert_eq!(p.kernels[0].variant, "matmul_tiled8x16_shared");
    assert!(p.kernels[0].wgsl.contains("Tile 8x16 from the tuning file"));
    // Another shape large enough for the preset keeps it, and the quick tier its own
    // tile.
    let other = wgrad::parse(
        &PRODUCT
            .replace("f32[64,96]", "f32[256,96]")
            .replace("f32[96,80]", "f32[96,256]")
            .replace("f32[64,80]", "f32[256,256]"),
    )
    .unwrap();
    let q = wgrad::compile(&other, &Options::new(target.clone())).unwrap();
    assert_eq!(q.kernels[0].variant, "matmul_tiled16x16_shared");
    assert!(!q.kernels[0].wgsl.contains("tuning file"));
    let quick = p.quick.as_ref().expect("a quick tier");
    assert_eq!(quick.kernels[0].variant, "matmul_tiled4x4_shared");
}

#[test]
fn a_tuning_files_loads_choose_how_a_product_reads_a_for_its_shape_only() {
    let g = wgrad::parse(PRODUCT).unwrap();
    let other = product(256, 64, 256);
    let compiled = |target: &Target, g: &wgrad::Graph| {
        let p = wgrad::compile(g, &Options::new(target.clone())).unwrap();
        p.kernels[0].clone()
    };
    // On the CPU preset a subgroup shares A's loads unless the file says `own`.
    let mut cpu = Target::software_vulkan();
    assert!(compiled(&cpu, &g).variant.ends_with("_shared"));
    cpu.tuning.loads = vec![(shape(), false)];
    let own = compiled(&cpu, &g);
    assert!(!own.variant.ends_with("_shared"), "{}", own.variant);
    assert!(!own.wgsl.contains("subgroupBroadcast"));
    assert!(compiled(&cpu, &other).variant.ends_with("_shared"));
    // On the GPU preset (subgroups of 32) only where the file says `shared`: one
    // subgroup per row of tiles, 32 tiles wide.
    let mut gpu = Target::discrete_gpu();
    assert!(!compiled(&gpu, &g).variant.ends_with("_shared"));
    gpu.tuning.loads = vec![(shape(), true)];
    let shared = compiled(&gpu, &g);
    assert!(shared.variant.ends_with("_shared"), "{}", shared.variant);
    assert_eq!(shared.workgroup_size, [64, 1, 1]);
    assert!(shared.wgsl.contains("wg.x * 32u + lane"), "{}", shared.wgsl);
    // Without subgroups of one known width there is no choice.
    let mut portable = Target::portable();
    portable.tuning.loads = vec![(shape(), true)];
    assert_eq!(portable.load_sharing_width(), None);
    assert!(!compiled(&portable, &g).variant.ends_with("_shared"));
}

#[test]
fn a_long_contraction_is_split_on_gpus_by_shape_and_anywhere_by_the_tuning_file() {
    let long = product(64, 2048, 64);
    let kernels = |target: &Target| {
        let p = wgrad::compile(&long, &Options::new(target.clone())).unwrap();
        p.kernels
            .iter()
            .map(|k| k.wgsl.lines().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let t = Tiling {
        a_transposed: false,
        b_transposed: false,
        m: 64,
        n: 64,
        k: 2048,
        batch: 1,
    };
    // A GPU wants 4,096 invocations; 4×4 tiles give 256, so K splits into 8 parts
    // of 256 (the most of SPLITS within 4,096), added by a second kernel.
    let gpu = Target::discrete_gpu();
    assert_eq!(gpu.split_k(&t, [4, 4]), 8);
    let headers = kernels(&gpu);
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(
        headers[1].contains("adding the 8 partial products"),
        "{headers:?}"
    );
    // A short contraction is not split, nor is anything on a CPU adapter by default.
    assert_eq!(gpu.split_k(&Tiling { k: 512, ..t }, [4, 4]), 1);
    let cpu = Target::software_vulkan();
    assert_eq!(kernels(&cpu).len(), 1);
    // The tuning file splits its shape only, into parts of at least MIN_SPLIT_RUN.
    let mut tuned = cpu.clone();
    tuned.tuning.splits = vec![(t, 4)];
    assert!(kernels(&tuned)[1].contains("adding the 4 partial products"));
    assert_eq!(tuned.split_k(&Tiling { m: 32, ..t }, [4, 4]), 1);
    tuned.tuning.splits = vec![(Tiling { k: 300, ..t }, 4)];
    assert_eq!(tuned.split_k(&Tiling { k: 300, ..t }, [4, 4]), 1);
    // And `split=1` keeps a GPU's long contraction whole.
    let mut whole = gpu.clone();
    whole.tuning.splits = vec![(t, 1)];
    assert_eq!(kernels(&whole).len(), 1);
    // Only products whose tiles leave too few invocations are worth measuring.
    assert_eq!(cpu.splits_to_try(&t, [4, 4]), Vec::<usize>::new());
    assert_eq!(cpu.splits_to_try(&t, [16, 16]), vec![2, 4, 8]);
}

/// A `[m×k]·[k×n]` product followed by tanh.
fn product(m: usize, k: usize, n: usize) -> wgrad::Graph {
    wgrad::parse(&format!(
        "%a = input a : f32[{m},{k}]\n%b = input b : f32[{k},{n}]\n\
         %c = dot %a, %b lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[{m},{n}]\n\
         %t = tanh %c : f32[{m},{n}]\noutput t = %t\n"
    ))
    .unwrap()
}

#[test]
fn without_a_tuning_file_small_and_narrow_products_get_smaller_tiles() {
    let variant = |target: Target, (m, k, n): (usize, usize, usize)| {
        let p = wgrad::compile(&product(m, k, n), &Options::new(target)).unwrap();
        (p.kernels[0].variant.clone(), p.kernels[0].wgsl.clone())
    };
    let cpu = Target::software_vulkan();
    // Large enough for the preset's 16×16 tiles: 4,096 and 256 invocations.
    for shape in [(1024, 1024, 1024), (256, 512, 256)] {
        let (v, wgsl) = variant(cpu.clone(), shape);
        assert_eq!(v, "matmul_tiled16x16_shared", "{shape:?}");
        assert!(!wgsl.contains("chosen by the product's shape"));
    }
    // Ten columns (W1's last layer): a 16-wide tile would compute 16 columns, 4 wide
    // computes 12.
    let (v, wgsl) = variant(cpu.clone(), (256, 512, 10));
    assert_eq!(v, "matmul_tiled4x4_shared");
    assert!(wgsl.contains("Tile 4x4 chosen by the product's shape"));
    // A small product (a digits classifier's first layer, batch 32): 16×16 tiles
    // would be 16 invocations, 4×4 ones are 256.
    assert_eq!(
        variant(cpu.clone(), (32, 64, 128)).0,
        "matmul_tiled4x4_shared"
    );
    // Wide but with too few rows for 16×16 tiles (128 invocations): 8×16 leaves 256.
    assert_eq!(
        variant(cpu.clone(), (32, 64, 1024)).0,
        "matmul_tiled8x16_shared"
    );
    // A GPU preset's tile is already the smallest.
    assert_eq!(
        variant(Target::discrete_gpu(), (32, 64, 128)).0,
        "matmul_tiled4x4"
    );
    // A tuning file's tile wins over the shape's.
    let mut tuned = cpu.clone();
    tuned.tuning.products = vec![(
        Tiling {
            a_transposed: false,
            b_transposed: false,
            m: 32,
            n: 128,
            k: 64,
            batch: 1,
        },
        [16, 16],
    )];
    assert_eq!(variant(tuned, (32, 64, 128)).0, "matmul_tiled16x16_shared");
}

/// A softmax over rows of `x: f32[64,100]`: one row kernel with two row reductions.
const SOFTMAX: &str = "%x = input x : f32[64,100]\n\
    %m = reduce_max %x axes=[1] : f32[64]\n%mb = broadcast %m dims=[0] : f32[64,100]\n\
    %d = sub %x, %mb : f32[64,100]\n%e = exp %d : f32[64,100]\n\
    %s = reduce_sum %e axes=[1] : f32[64]\n%sb = broadcast %s dims=[0] : f32[64,100]\n\
    %y = div %e, %sb : f32[64,100]\noutput y = %y\n";

#[test]
fn a_tuned_row_mode_replaces_the_rule_for_its_shape_and_runs_correctly() {
    let g = wgrad::parse(SOFTMAX).unwrap();
    let header = |target: Target| {
        let p = wgrad::compile(&g, &Options::new(target)).unwrap();
        assert_eq!(p.kernels.len(), 1);
        assert_eq!(p.kernels[0].variant, "row");
        p.kernels[0].wgsl.lines().next().unwrap().to_string()
    };
    let shape = RowShape {
        rows: 64,
        len: 100,
        sums: 2,
    };
    // On a CPU adapter the rule gives each row one invocation.
    let plain = header(Target::software_vulkan());
    assert!(plain.contains(": one invocation per row"), "{plain}");
    assert!(plain.contains(&format!("({shape})")), "{plain}");
    // The tuning file's mode for that shape replaces it; another shape keeps the rule.
    let mut tuned = Target::software_vulkan();
    tuned.tuning.rows = vec![(shape, 64)];
    let h = header(tuned.clone());
    assert!(h.contains(": a workgroup of 64 per row"), "{h}");
    assert!(h.contains("mode from the tuning file"), "{h}");
    tuned.tuning.rows = vec![(RowShape { rows: 32, ..shape }, 64)];
    assert!(header(tuned).contains(": one invocation per row"));

    // On the device, read from a tuning file, each mode matches the interpreter.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuning.txt");
    let Some(probe) = runtime_reading(&path) else {
        return;
    };
    let mut rng = common::Rng::new(5);
    let ins = common::inputs(vec![("x", rng.tensor(&[64, 100], -4.0, 4.0))]);
    for threads in wgrad::lower::ROW_MODES {
        let mut file = file_for(&probe, [16, 16]);
        file.products.clear();
        file.rows = vec![(shape, threads, String::new())];
        std::fs::write(&path, file.print()).unwrap();
        let rt = runtime_reading(&path).unwrap();
        assert_eq!(rt.target().tuning.rows, vec![(shape, threads)]);
        assert!(
            rt.tuning_status().contains("1 row kernel mode"),
            "{}",
            rt.tuning_status()
        );
        common::gpu::assert_gpu_matches(&rt, &g, &ins);
    }
}

/// The sum of the squares of `x: f32[n]`, with `n` elements into one output.
fn sum_of_squares(n: usize) -> wgrad::Graph {
    wgrad::parse(&format!(
        "%x = input x : f32[{n}]\n%s = mul %x, %x : f32[{n}]\n\
         %t = reduce_sum %s axes=[0] : f32[]\noutput t = %t\n"
    ))
    .unwrap()
}

#[test]
fn a_tuned_reduction_split_replaces_the_rule_for_its_shape_and_runs_correctly() {
    let kernels = |target: &Target, n: usize| {
        let p = wgrad::compile(&sum_of_squares(n), &Options::new(target.clone())).unwrap();
        p.kernels
            .iter()
            .map(|k| {
                (
                    k.variant.clone(),
                    k.wgsl.lines().next().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let shape = |trips| ReductionShape { trips, outputs: 1 };
    let cpu = Target::software_vulkan();
    // The rule: one stage for 1,024 elements, two (runs of 1,024) for 8,192.
    let short = kernels(&cpu, 1024);
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].0, "reduce");
    assert!(
        short[0].1.contains("(1 output of 1024 elements)"),
        "{}",
        short[0].1
    );
    let long = kernels(&cpu, 8192);
    assert_eq!(long[0].0, "reduce_partial");
    assert!(
        long[0].1.contains("8 runs of 1024 per output"),
        "{}",
        long[0].1
    );
    // The tuning file's split for a shape replaces the rule for that shape only.
    let mut tuned = cpu.clone();
    tuned.tuning.reductions = vec![
        (shape(1024), ReductionStages::Two(256)),
        (shape(8192), ReductionStages::One),
    ];
    let short = kernels(&tuned, 1024);
    assert_eq!(short[0].0, "reduce_partial");
    assert!(
        short[0].1.contains("4 runs of 256 per output"),
        "{}",
        short[0].1
    );
    assert!(
        short[0].1.contains("stages from the tuning file"),
        "{}",
        short[0].1
    );
    assert_eq!(short[1].0, "reduce_final");
    let long = kernels(&tuned, 8192);
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].0, "reduce");
    assert!(kernels(&tuned, 2048)[0].0 == "reduce");
    // A split the target cannot run is not used: one stage over more elements than a
    // driver loop may run, or runs as long as the reduction.
    let mut limited = cpu.clone();
    limited.max_loop_iterations = 4096;
    limited.tuning.reductions = vec![(shape(8192), ReductionStages::One)];
    assert!(!limited.reduction_split(shape(8192)).tuned);
    limited.tuning.reductions = vec![(shape(1024), ReductionStages::Two(4096))];
    assert!(!limited.reduction_split(shape(1024)).tuned);

    // On the device, read from a tuning file, every split matches the interpreter.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuning.txt");
    let Some(probe) = runtime_reading(&path) else {
        return;
    };
    let mut rng = common::Rng::new(6);
    let ins = common::inputs(vec![("x", rng.tensor(&[8192], -1.0, 1.0))]);
    let g = sum_of_squares(8192);
    for stages in [
        ReductionStages::One,
        ReductionStages::Two(256),
        ReductionStages::Two(1024),
        ReductionStages::Two(4096),
    ] {
        let mut file = file_for(&probe, [16, 16]);
        file.products.clear();
        file.reductions = vec![(shape(8192), stages, String::new())];
        std::fs::write(&path, file.print()).unwrap();
        let rt = runtime_reading(&path).unwrap();
        assert_eq!(rt.target().tuning.reductions, vec![(shape(8192), stages)]);
        assert!(
            rt.tuning_status().contains("1 reduction split"),
            "{}",
            rt.tuning_status()
        );
        common::gpu::assert_gpu_matches(&rt, &g, &ins);
    }
}

#[test]
fn the_runtime_reads_the_tuning_file_and_runs_the_tuned_tile_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuning.txt");
    // Learn the adapter's name first, with no file at that path.
    let Some(probe) = runtime_reading(&path) else {
        return;
    };
    assert!(
        probe.tuning_status().contains("no tuning file"),
        "{}",
        probe.tuning_status()
    );
    // The tile alone, then with each way of loading A where the adapter has both.
    let mut files = vec![(file_for(&probe, [16, 8]), None)];
    if probe.target().load_sharing_width().is_some() {
        for shared in [false, true] {
            let mut file = file_for(&probe, [16, 8]);
            file.loads = vec![(shape(), shared)];
            files.push((file, Some(shared)));
        }
    }
    drop(probe);
    for (file, loads) in files {
        std::fs::write(&path, file.print()).unwrap();
        let rt = runtime_reading(&path).unwrap();
        assert_eq!(rt.target().tuning.products, vec![(shape(), [16, 8])]);
        assert!(
            rt.tuning_status().contains("1 product tile"),
            "{}",
            rt.tuning_status()
        );
        let g = wgrad::parse(PRODUCT).unwrap();
        let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
        let shared = loads.unwrap_or(rt.target().shared_loads(&shape()).is_some());
        let want = if shared {
            "matmul_tiled16x8_shared"
        } else {
            "matmul_tiled16x8"
        };
        assert_eq!(program.kernels[0].variant, want);
        runs_like_the_interpreter(&rt, &program, &g);
    }
}

/// Runs `program`, compiled from `g` (the product of [`PRODUCT`]), on `rt` and
/// compares every element with the interpreter's.
fn runs_like_the_interpreter(rt: &wgrad::Runtime, program: &wgrad::Program, g: &wgrad::Graph) {
    let a = Tensor::new(
        Type::f32(&[64, 96]),
        (0..64 * 96)
            .map(|i| ((i % 13) as f64 - 6.0) / 8.0)
            .collect(),
    )
    .unwrap();
    let b = Tensor::new(
        Type::f32(&[96, 80]),
        (0..96 * 80)
            .map(|i| ((i % 7) as f64 - 3.0) / 16.0)
            .collect(),
    )
    .unwrap();
    let ins = HashMap::from([("a".to_string(), a), ("b".to_string(), b)]);
    let gpu = rt.load(program).unwrap().run(&ins).unwrap();
    let reference = wgrad::eval(g, &ins).unwrap();
    for (x, y) in gpu[0].1.data.iter().zip(&reference[0].1.data) {
        assert!((x - y).abs() <= 1e-5 + 1e-5 * y.abs(), "{x} vs {y}");
    }
}

#[test]
fn a_bad_tuning_file_is_ignored_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuning.txt");
    let Some(probe) = runtime_reading(&path) else {
        return;
    };
    let good = file_for(&probe, [16, 8]);
    drop(probe);
    let mut other_driver = good.clone();
    other_driver.driver_info = "Mesa 99.0".into();
    for (text, expect) in [
        ("not a tuning file\n\u{1}\n".to_string(), "ignored: line 1"),
        (
            other_driver.print(),
            "ignored: it was measured on driver version `Mesa 99.0`",
        ),
        (
            good.print().replace("tile=16x8", "tile=3x3"),
            "ignored: line 5: tile 3x3 is not a variant",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let rt = runtime_reading(&path).unwrap();
        assert!(
            rt.tuning_status().contains(expect),
            "{}",
            rt.tuning_status()
        );
        assert!(rt.tuning_status().contains(&path.display().to_string()));
        assert!(rt.target().tuning.products.is_empty());
        // No tile comes from the file: the tile is the one chosen without it.
        let g = wgrad::parse(PRODUCT).unwrap();
        let p = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
        let mut untuned = rt.target().clone();
        untuned.tuning = Default::default();
        let q = wgrad::compile(&g, &Options::new(untuned)).unwrap();
        assert_eq!(p.kernels[0].variant, q.kernels[0].variant);
        assert!(!p.kernels[0].wgsl.contains("tuning file"));
    }
}

#[test]
fn wgrad_tune_writes_a_tuning_file_that_wgrad_adapter_then_reports() {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("p.wg");
    std::fs::write(&prog, PRODUCT).unwrap();
    let rows = dir.path().join("softmax.wg");
    std::fs::write(&rows, SOFTMAX).unwrap();
    let out = dir.path().join("sub/tuning.txt");
    let tune_with = |budget: &str| {
        Command::new(env!("CARGO_BIN_EXE_wgrad"))
            .args(["tune", prog.to_str().unwrap(), rows.to_str().unwrap()])
            .args(["--budget", budget])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let tune = tune_with("20");
    let stdout = String::from_utf8_lossy(&tune.stdout);
    let stderr = String::from_utf8_lossy(&tune.stderr);
    if stderr.contains("no adapter") && !wgrad::runtime::testing::on_ci() {
        eprintln!("skipping: no adapter");
        return;
    }
    assert!(tune.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 product tile, 1 row kernel mode"),
        "{stdout}"
    );
    // One line of progress per row mode, per tile of the tuning space (a product too
    // small for the preset tile gets them all), and, where the adapter can share A's
    // loads, for the other way of loading at the fastest tile.
    assert_eq!(
        stderr.matches("64 rows of 100, 2 row reductions: ").count(),
        2,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("1×[64×96]·[96×80]: tile").count(),
        wgrad::lower::PRODUCT_TILES.len() + usize::from(stderr.contains("A's loads")),
        "{stderr}"
    );
    // lavapipe's subgroups have one width (its SIMD width), so both ways are measured.
    if stderr.contains("llvmpipe") {
        assert!(stderr.contains("A's loads own"), "{stderr}");
    }
    let file = TuningFile::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(file.products.len(), 1);
    assert_eq!(file.products[0].0, shape());
    assert_eq!(file.rows.len(), 1);
    assert_eq!(file.rows[0].0.len, 100);

    let adapter = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .arg("adapter")
        .env("WGRAD_TUNING_FILE", &out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&adapter.stdout);
    assert!(text.contains("1 product tile"), "{text}");
    assert!(text.contains("1×[64×96]·[96×80]"), "{text}");
    assert!(text.contains("1 row kernel mode"), "{text}");
    assert!(
        text.contains("64 rows of 100, 2 row reductions: "),
        "{text}"
    );

    let bad = tune_with("0");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--budget must be a positive number"));
}

#[test]
fn a_product_inside_a_loop_on_the_device_is_timed_with_its_loop() {
    // A loop of 100 steps stays a loop on the device, timed as one step: the product
    // inside it is measured with the loop, never as zero.
    let g = wgrad::parse(
        "%h = input h : f32[4,8]\n%w = input w : f32[8,8]\n\
         %l = loop %h, %w trips=100 carried=1 {\n  %i = input i : i32[]\n  %c = input c : f32[4,8]\n  \
         %x = input x : f32[8,8]\n  %p = dot %c, %x lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,8]\n  \
         %t = tanh %p : f32[4,8]\n  output c = %t\n} : (f32[4,8])\n\
         %y = get %l index=0 : f32[4,8]\noutput y = %y\n",
    )
    .unwrap();
    let Some(rt) = runtime_with_options_or_skip(&RuntimeOptions {
        tiers: false,
        timestamps: true,
        tuning: wgrad::runtime::TuningSource::Off,
    }) else {
        return;
    };
    let options = wgrad::tune::TuneOptions {
        budget: std::time::Duration::from_secs(20),
        runs: 1,
    };
    let report = wgrad::tune::tune(&rt, &[("loop".into(), g)], &options, |_| {}).unwrap();
    assert!(!report.variants.is_empty());
    for (shape, tile, ms) in &report.variants {
        let ms = ms.as_ref().unwrap();
        assert!(*ms > 0.0, "{shape} {tile:?}: {ms} ms");
    }
    assert_eq!(report.file.products.len(), 1);
    // Where the adapter can share A's loads, the other way was measured at the
    // fastest tile too, and the file says which was faster.
    if rt.target().load_sharing_width().is_some() {
        assert_eq!(report.load_variants.len(), 1);
        let (shape, _, ms) = &report.load_variants[0];
        assert!(*ms.as_ref().unwrap() > 0.0);
        assert_eq!(report.file.loads.len(), 1);
        assert_eq!(report.file.loads[0].0, *shape);
    }
}
