//! The `wgrad` command line: its stable contract (commands, output names, JSON, exit
//! codes) and its behaviour on mistakes (a clear message naming the thing, exit 1 for
//! user errors and 2 for bad usage, never a panic).

mod common;

use common::{inputs, output};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn root() -> String {
    env!("CARGO_MANIFEST_DIR").to_string()
}

fn prog(name: &str) -> String {
    format!("{}/examples/programs/{name}", root())
}

/// Runs `wgrad args...` with `stdin` as standard input.
fn wgrad(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a command expected to succeed and returns its standard output.
fn ok(args: &[&str], stdin: &str) -> String {
    let out = wgrad(args, stdin);
    assert!(
        out.status.success(),
        "wgrad {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command expected to fail with `code`; returns its standard error, which must
/// mention every one of `needles` and never a panic.
fn fails(args: &[&str], stdin: &str, code: i32, needles: &[&str]) -> String {
    let out = wgrad(args, stdin);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "wgrad {args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "wgrad {args:?}: expected {n:?} in: {err}");
    }
    err
}

fn write_temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("wgrad-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn grad_of_the_mlp_evaluates_to_gradients_that_pass_gradcheck() {
    let params = "w1,b1,w2,b2";
    let printed = ok(&["grad", &prog("mlp.wg"), "--wrt", params], "");
    let d = wgrad::parse(&printed).unwrap();
    let outs: Vec<&str> = d.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outs, ["loss", "grad.w1", "grad.b1", "grad.w2", "grad.b2"]);

    // `eval` of the printed derivative program.
    let file = write_temp("mlp_grad.wg", &printed);
    let inputs_path = prog("mlp.inputs.json");
    let evaluated = json(&ok(&["eval", &file, "--inputs", &inputs_path], ""));

    // The same gradients pass gradcheck, and agree with the finite differences.
    let f = wgrad::parse(&std::fs::read_to_string(prog("mlp.wg")).unwrap()).unwrap();
    let ins = wgrad::json::parse_tensors(&std::fs::read_to_string(&inputs_path).unwrap()).unwrap();
    let report = wgrad::gradcheck(
        &f,
        None,
        &["w1", "b1", "w2", "b2"],
        &ins,
        Default::default(),
    )
    .unwrap();
    assert!(report.passed, "{report}");
    assert_eq!(report.checked, 6 * 8 + 8 + 8 * 3 + 3);
    for w in ["w1", "b1", "w2", "b2"] {
        let data = evaluated[format!("grad.{w}")]["data"].as_array().unwrap();
        let x = &ins[w];
        for (i, g) in data.iter().enumerate() {
            let at = |s: f64| {
                let mut moved = ins.clone();
                moved.get_mut(w).unwrap().data[i] = x.data[i] + s;
                output(&wgrad::eval(&f, &moved).unwrap(), "loss").data[0]
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!((g.as_f64().unwrap() - fd).abs() < 1e-6, "grad.{w}[{i}]");
        }
    }
}

#[test]
fn eval_with_wrt_equals_eval_of_the_grad_program() {
    let inputs_path = prog("mlp.inputs.json");
    let direct = ok(
        &[
            "eval",
            &prog("mlp.wg"),
            "--inputs",
            &inputs_path,
            "--wrt",
            "w1,b2",
        ],
        "",
    );
    let printed = ok(&["grad", &prog("mlp.wg"), "--wrt", "w1,b2"], "");
    let via_file = ok(&["eval", "-", "--inputs", &inputs_path], &printed);
    assert_eq!(direct, via_file);
    let v = json(&direct);
    assert_eq!(v["grad.w1"]["shape"], serde_json::json!([6, 8]));
    assert_eq!(v["loss"]["shape"], serde_json::json!([]));
}

#[test]
fn hessian_vector_product_pipeline_matches_reverse_over_reverse() {
    // The README's pipeline: wgrad grad w5.wg --wrt x | wgrad jvp - --of grad.x --wrt x
    let g = ok(&["grad", &prog("w5.wg"), "--wrt", "x"], "");
    let hvp = ok(&["jvp", "-", "--of", "grad.x", "--wrt", "x"], &g);
    let out = json(&ok(
        &["eval", "-", "--inputs", &prog("w5_hvp.inputs.json")],
        &hvp,
    ));
    let got: Vec<f64> = out["tan.grad.x"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();

    // Reverse over reverse through the library.
    let f = wgrad::parse(&std::fs::read_to_string(prog("w5.wg")).unwrap()).unwrap();
    let gf = wgrad::grad(&f, None, &["x"]).unwrap();
    let rr = wgrad::vjp(&gf, Some("grad.x"), &["x"]).unwrap();
    let ins =
        wgrad::json::parse_tensors(&std::fs::read_to_string(prog("w5_hvp.inputs.json")).unwrap())
            .unwrap();
    let ins = inputs(vec![
        ("x", ins["x"].clone()),
        ("ct.grad.x", ins["tan.x"].clone()),
    ]);
    let want = output(&wgrad::eval(&rr, &ins).unwrap(), "grad.grad.x")
        .data
        .clone();
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn higher_order_composes_on_the_command_line() {
    let g1 = ok(&["grad", &prog("w5.wg"), "--wrt", "x"], "");
    let v = ok(&["vjp", "-", "--of", "grad.x"], &g1);
    let d = wgrad::parse(&v).unwrap();
    assert!(d.input("ct.grad.x").is_ok());
    assert!(d.output("grad.grad.x").is_ok());
    let j2 = ok(
        &["jvp", "-", "--of", "tan.f", "--wrt", "x"],
        &ok(&["jvp", &prog("w5.wg"), "--wrt", "x"], ""),
    );
    let d = wgrad::parse(&j2).unwrap();
    assert!(d.input("tan.tan.x").is_ok() && d.output("tan.tan.f").is_ok());
}

#[test]
fn json_contract_for_scalars_bools_and_non_finite_values() {
    let program = "%0 = input x : f32[3]\n%1 = log %0 : f32[3]\n%2 = constant 0.0 : f32[3]\n%3 = gt %0, %2 : bool[3]\n%4 = input n : i32[]\n%5 = neg %4 : i32[]\noutput l = %1\noutput p = %3\noutput m = %5\n";
    let ins = r#"{"x": {"shape": [3], "dtype": "f32", "data": [0, -1, "inf"]}, "n": {"shape": [], "dtype": "i32", "data": [-2147483648]}}"#;
    let file = write_temp("json_contract.wg", program);
    let in_file = write_temp("json_contract.json", ins);
    let out = ok(&["eval", &file, "--inputs", &in_file], "");
    let v = json(&out);
    assert_eq!(v["l"]["data"], serde_json::json!(["-inf", "NaN", "inf"]));
    assert_eq!(v["p"]["data"], serde_json::json!([false, false, true]));
    assert_eq!(v["p"]["dtype"], "bool");
    // -i32::MIN wraps to itself, as in WGSL.
    assert_eq!(
        v["m"],
        serde_json::json!({"shape": [], "dtype": "i32", "data": [-2147483648]})
    );
    // Shortest round-trip decimals: 0.1 stays 0.1.
    let out = ok(
        &[
            "eval",
            "-",
            "--inputs",
            &write_temp(
                "tenth.json",
                r#"{"x": {"shape": [], "dtype": "f32", "data": [0.1]}}"#,
            ),
        ],
        "%0 = input x : f32[]\noutput y = %0\n",
    );
    assert!(out.contains("[0.1]"), "{out}");
    // `-0` is an integer zero (serde_json reads it as the float -0.0).
    let ins =
        wgrad::json::parse_tensors(r#"{"n": {"shape": [2], "dtype": "i32", "data": [-0, 3]}}"#)
            .unwrap();
    assert_eq!(ins["n"].data, vec![0.0, 3.0]);
    let e = wgrad::json::parse_tensors(r#"{"n": {"shape": [1], "dtype": "i32", "data": [1.5]}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid i32"), "{e}");
}

#[test]
fn mistakes_are_clear_errors_with_exit_code_1() {
    let mlp = prog("mlp.wg");
    let good = std::fs::read_to_string(prog("mlp.inputs.json")).unwrap();
    let mut v = json(&good);
    v.as_object_mut().unwrap().remove("b1");
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("missing.json", &v.to_string()),
        ],
        "",
        1,
        &["missing.json: input `b1`", "missing"],
    );
    let mut v = json(&good);
    v["w9"] = v["b1"].clone();
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("unknown.json", &v.to_string()),
        ],
        "",
        1,
        &["unknown.json:", "`w9`"],
    );
    let mut v = json(&good);
    v["b1"]["shape"] = serde_json::json!([2, 4]);
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("shape.json", &v.to_string()),
        ],
        "",
        1,
        &["shape.json: input `b1`", "f32[8]", "f32[2,4]"],
    );
    let mut v = json(&good);
    v["labels"]["dtype"] = serde_json::json!("f32");
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("dtype.json", &v.to_string()),
        ],
        "",
        1,
        &["dtype.json: input `labels`", "i32[4]", "f32[4]"],
    );
    let mut v = json(&good);
    v["b1"]["data"] = serde_json::json!([1, 2]);
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("len.json", &v.to_string()),
        ],
        "",
        1,
        &["`b1`", "8 elements"],
    );
    fails(
        &[
            "eval",
            &mlp,
            "--inputs",
            &write_temp("bad.json", "{not json"),
        ],
        "",
        1,
        &["bad.json: parse error at 1:2: key must be a string"],
    );
    // A key given twice is an error where it appears again, not "the last one wins".
    let twice = write_temp(
        "twice.json",
        "{\"x\": {\"shape\": [], \"dtype\": \"f32\", \"data\": [1]},\n \"x\": {\"shape\": [], \"dtype\": \"f32\", \"data\": [2]}}",
    );
    fails(
        &["eval", &mlp, "--inputs", &twice],
        "",
        1,
        &["twice.json: parse error at 2:", "duplicate key `x`"],
    );
    fails(
        &["eval", &mlp, "--inputs", "/nonexistent/in.json"],
        "",
        1,
        &["/nonexistent/in.json"],
    );

    fails(&["grad", &mlp, "--wrt", "w7"], "", 1, &["`w7`"]);
    fails(
        &["grad", &mlp, "--wrt", "w1", "--of", "nope"],
        "",
        1,
        &["`nope`"],
    );
    fails(
        &["grad", "/nonexistent/f.wg", "--wrt", "x"],
        "",
        1,
        &["/nonexistent/f.wg"],
    );
    fails(
        &["grad", "-", "--wrt", "x"],
        "%0 = input x : f32[2]\n%1 = frob %0 : f32[2]\n",
        1,
        &["<stdin>:2:6", "unknown op `frob`"],
    );
    fails(
        &["grad", "-", "--wrt", "x"],
        "%0 = input x : f32[2]\noutput y = %0\n",
        1,
        &["scalar", "vjp"],
    );
    fails(
        &["grad", "-", "--wrt", "x"],
        "%0 = input x : f32[]\noutput a = %0\noutput b = %0\n",
        1,
        &["--of", "`a`", "`b`"],
    );
    fails(
        &["jvp", "-", "--wrt", "n"],
        "%0 = input n : i32[]\n%1 = input x : f32[]\noutput y = %1\n",
        1,
        &["`n`", "i32"],
    );
}

#[test]
fn bad_usage_exits_with_code_2() {
    fails(&[], "", 2, &["Usage"]);
    fails(&["grad", &prog("mlp.wg")], "", 2, &["--wrt"]);
    fails(&["frobnicate"], "", 2, &["frobnicate"]);
    fails(&["eval", &prog("mlp.wg")], "", 2, &["--inputs"]);
}

#[test]
fn an_input_that_does_not_reach_the_output_gets_a_zero_gradient() {
    let program = "%0 = input x : f32[2]\n%1 = input unused : f32[2,2]\n%2 = reduce_sum %0 axes=[0] : f32[]\noutput y = %2\n";
    let printed = ok(&["grad", "-", "--wrt", "x,unused"], program);
    let ins = write_temp(
        "zero_grad.json",
        r#"{"x": {"shape": [2], "dtype": "f32", "data": [1, 2]}, "unused": {"shape": [2,2], "dtype": "f32", "data": [1, 2, 3, 4]}}"#,
    );
    let v = json(&ok(&["eval", "-", "--inputs", &ins], &printed));
    assert_eq!(v["grad.x"]["data"], serde_json::json!([1.0, 1.0]));
    assert_eq!(
        v["grad.unused"],
        serde_json::json!({"shape": [2, 2], "dtype": "f32", "data": [0.0, 0.0, 0.0, 0.0]})
    );
}

#[test]
fn compile_dumps_readable_ir_and_naga_valid_wgsl() {
    let dir = std::env::temp_dir().join(format!("wgrad-dump-{}", std::process::id()));
    let dir_s = dir.to_string_lossy().into_owned();
    let out = ok(
        &[
            "compile",
            &prog("mlp.wg"),
            "--wrt",
            "w1,b1,w2,b2",
            "--dump",
            &dir_s,
        ],
        "",
    );
    assert!(out.contains("\"kernels\""), "{out}");
    let stats = json(&std::fs::read_to_string(dir.join("stats.json")).unwrap());
    for key in [
        "kernels",
        "matmul_kernels",
        "flops",
        "bytes_moved",
        "peak_bytes",
        "temp_bytes",
    ] {
        assert!(stats[key].is_u64(), "stats.json lacks {key}: {stats}");
    }
    let mut passes: Vec<_> = std::fs::read_dir(dir.join("ir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    passes.sort();
    assert!(!passes.is_empty());
    // Differentiation's stages come first, numbered in order with lowering's.
    let names: Vec<String> = passes
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[0], "00_grad.source.wg", "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("_grad.differentiated.wg")),
        "{names:?}"
    );
    let first_lowering = names.iter().position(|n| n.ends_with("_input.wg")).unwrap();
    assert!(
        names[..first_lowering].iter().all(|n| n.contains("_grad.")),
        "{names:?}"
    );
    // Every per-pass dump is a program the parser accepts.
    for p in &passes {
        wgrad::parse(&std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    let kernels: Vec<_> = std::fs::read_dir(dir.join("kernels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kernels.len() as u64, stats["kernels"].as_u64().unwrap());
    let target = wgrad::Target::software_vulkan();
    for k in &kernels {
        let name = k.file_stem().unwrap().to_string_lossy();
        wgrad::lower::validate_wgsl(&name, &std::fs::read_to_string(k).unwrap(), &target).unwrap();
    }
    assert!(
        std::fs::read_to_string(dir.join("buffers.txt"))
            .unwrap()
            .contains("input `w1`")
    );
    // The picture: every kernel a node, the inputs feeding kernels and kernels feeding
    // the outputs through labelled buffers.
    let dot = std::fs::read_to_string(dir.join("kernels.dot")).unwrap();
    assert!(
        dot.starts_with("digraph kernels {") && dot.ends_with("}\n"),
        "{dot}"
    );
    for k in &kernels {
        let name = k.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            dot.contains(&format!("label=\"{name}\\n")),
            "{name} missing:\n{dot}"
        );
    }
    assert!(dot.contains("input w1\\nf32[6,8]") && dot.contains("% of bytes moved"));
    assert!(
        dot.lines()
            .any(|l| l.contains("-> out") && l.contains("bytes\"]"))
    );
    fails(
        &["compile", &prog("mlp.wg"), "--target", "abacus"],
        "",
        2,
        &["abacus"],
    );
}

#[test]
fn run_on_the_gpu_agrees_with_eval() {
    // Skips without an adapter (and fails under CI=true) like every GPU test.
    if wgrad::runtime::testing::runtime_or_skip().is_none() {
        return;
    }
    let inputs_path = prog("mlp.inputs.json");
    let args = ["--inputs", inputs_path.as_str(), "--wrt", "w1,b1,w2,b2"];
    let gpu = json(&ok(&[&["run", &prog("mlp.wg")][..], &args].concat(), ""));
    let cpu = json(&ok(&[&["eval", &prog("mlp.wg")][..], &args].concat(), ""));
    // The GPU computes in f32 from inputs rounded to f32: compare with the tolerance
    // table of the GPU tests.
    let f = wgrad::parse(&std::fs::read_to_string(prog("mlp.wg")).unwrap()).unwrap();
    let tolerance =
        common::gpu::tolerance(&wgrad::grad(&f, None, &["w1", "b1", "w2", "b2"]).unwrap());
    for name in ["loss", "grad.w1", "grad.b1", "grad.w2", "grad.b2"] {
        let (a, b) = (
            gpu[name]["data"].as_array().unwrap(),
            cpu[name]["data"].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                common::gpu::within(x, y, tolerance),
                "{name}: gpu {x} vs eval {y}"
            );
        }
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_and_to_a_full_disk_with_an_error() {
    let program = write_temp(
        "long_output.wg",
        "%0 = iota axis=0 : f32[300000]\noutput y = %0\n",
    );
    let no_inputs = write_temp("no_inputs.json", "{}");
    // The reader takes a few bytes and stops reading, as `| head -c 10` does.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .args(["eval", &program, "--inputs", &no_inputs])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A full disk is a clear error.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let out = Command::new(env!("CARGO_BIN_EXE_wgrad"))
            .args(["eval", &program, "--inputs", &no_inputs])
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot write the output"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn an_empty_program_is_an_error_and_a_byte_order_mark_is_skipped() {
    // An empty standard input is most often the failed first stage of a pipe.
    fails(&["print", "-"], "", 1, &["<stdin>: the program is empty"]);
    fails(&["print", "-"], " \n\n", 1, &["the program is empty"]);
    let printed = ok(
        &["print", "-"],
        "\u{feff}%0 = input x : f32[2]\noutput y = %0\n",
    );
    assert!(printed.contains("input x : f32[2]"), "{printed}");
}

#[test]
fn a_json_number_beyond_f32_is_an_error_not_infinity() {
    let program = write_temp("scalar.wg", "%0 = input x : f32[]\noutput y = %0\n");
    let big = write_temp(
        "big.json",
        r#"{"x": {"shape": [], "dtype": "f32", "data": [3.5e38]}}"#,
    );
    fails(
        &["eval", &program, "--inputs", &big],
        "",
        1,
        &["big.json", "`x`", "beyond f32's range"],
    );
    let inf = write_temp(
        "inf.json",
        r#"{"x": {"shape": [], "dtype": "f32", "data": ["inf"]}}"#,
    );
    ok(&["eval", &program, "--inputs", &inf], "");
}

#[test]
fn internal_errors_introduce_themselves_as_bugs_in_wgrad() {
    // The command line exits 3 for exactly the errors whose message says this.
    let e = wgrad::Error::from(wgrad::compiler::Error::Internal("a lost buffer".into()));
    assert_eq!(
        e.to_string(),
        "internal error (this is a bug in wgrad): a lost buffer"
    );
}

/// `depth` loops of 2 trips, each the body of the one around it: 2^depth iterations.
fn nested_loops(depth: usize) -> String {
    fn body(depth: usize, indent: usize) -> String {
        let pad = " ".repeat(indent);
        if depth == 0 {
            return format!("{pad}%r = neg %c : f32[]\n");
        }
        format!(
            "{pad}%l = loop %c trips=2 carried=1 {{\n{pad}  %i = input i : i32[]\n{pad}  %c = input c0 : f32[]\n{}{pad}  output c0 = %r\n{pad}}} : (f32[])\n{pad}%r = get %l index=0 : f32[]\n",
            body(depth - 1, indent + 2)
        )
    }
    format!(
        "%c = constant 1.0 : f32[]\n{}output y = %r\n",
        body(depth, 0)
    )
}

#[test]
fn programs_beyond_the_interpreters_budget_are_errors_not_aborts_or_hangs() {
    let no_inputs = write_temp("empty_inputs.json", "{}");
    for (name, text, needle) in [
        (
            "huge_iota.wg",
            "%0 = iota axis=0 : f32[4294967295]\noutput y = %0\n",
            "elements, more than the interpreter's budget",
        ),
        (
            "huge_constant.wg",
            "%0 = constant 1.0 : f32[100000,100000]\noutput y = %0\n",
            "elements, more than the interpreter's budget",
        ),
        (
            "endless_loop.wg",
            "%0 = constant 0.0 : f32[]
             %1 = loop %0 trips=4294967295 carried=1 {
               %2 = input i : i32[]
               %3 = input c0 : f32[]
               output c0 = %3
             } : (f32[])
             %4 = get %1 index=0 : f32[]
             output y = %4\n",
            "element operations",
        ),
        (
            "huge_broadcast.wg",
            "%0 = constant 1.0 : f32[]\n%1 = broadcast %0 dims=[] : f32[100000,100000]\noutput y = %1\n",
            "elements, more than the interpreter's budget",
        ),
        (
            "huge_one_hot.wg",
            "%0 = constant 1 : i32[2]\n%1 = one_hot %0 depth=4294967295 : f32[2,4294967295]\noutput y = %1\n",
            "elements, more than the interpreter's budget",
        ),
        (
            "huge_dot.wg",
            "%0 = constant 1.0 : f32[10000,10000]
             %1 = dot %0, %0 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[10000,10000]
             output y = %1\n",
            "element operations",
        ),
        ("nested_loops.wg", &nested_loops(64), "element operations"),
    ] {
        // Before the budget these aborted allocating terabytes, or ran without end.
        let program = write_temp(name, text);
        fails(
            &["eval", &program, "--inputs", &no_inputs],
            "",
            1,
            &[needle],
        );
    }
}

#[test]
fn sizes_that_overflow_byte_counts_are_type_errors() {
    // 2⁶² f32 elements: 2⁶⁴ bytes would wrap to 0 and be planned as a 4-byte buffer.
    fails(
        &["print", "-"],
        "%0 = input x : f32[2147483648,2147483648]\noutput y = %0\n",
        1,
        &["16 EiB", "at most 2^61 elements"],
    );
    fails(
        &["stats", "-"],
        "%0 = input s : f32[]\n%1 = broadcast %0 dims=[] : f32[2147483648,2147483648]\noutput y = %1\n",
        1,
        &["16 EiB", "at most 2^61 elements"],
    );
}

#[test]
#[cfg(unix)]
fn a_large_json_input_evaluates_in_memory_near_its_own_size() {
    // Read into a tree of JSON values, inputs took about 40 bytes of memory per byte of
    // JSON, and the output was formatted as one string about 8× its tensors' size. Now
    // both stream: the peak is the input and output tensors (8 bytes an element each)
    // and the program, within 3× the file's size.
    let n = 4_000_000usize;
    let dir = std::env::temp_dir().join(format!("wgrad-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("large.json");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        write!(w, "{{\"x\":{{\"shape\":[{n}],\"dtype\":\"f32\",\"data\":[").unwrap();
        for i in 0..n {
            let sep = if i == 0 { "" } else { "," };
            write!(w, "{sep}{:.7}", ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).unwrap();
        }
        write!(w, "]}}}}").unwrap();
    }
    let json_bytes = std::fs::metadata(&path).unwrap().len();
    let program = write_temp(
        "large.wg",
        &format!("%0 = input x : f32[{n}]\n%1 = mul %0, %0 : f32[{n}]\noutput y = %1\n"),
    );
    let peak = peak_memory(&["eval", &program, "--inputs", &path.to_string_lossy()]);
    assert!(
        peak <= 3 * json_bytes,
        "peak resident memory {peak} bytes for {json_bytes} bytes of JSON"
    );
    std::fs::remove_file(&path).ok();
}

/// The peak resident memory of `wgrad args…`, which must succeed (its output discarded).
#[cfg(unix)]
fn peak_memory(args: &[&str]) -> u64 {
    #[allow(clippy::zombie_processes, reason = "reaped by `wait4` below")]
    let child = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `wait4` reports the peak resident memory of this child alone.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
#[cfg(unix)]
fn outputs_are_neither_copied_nor_formatted_in_memory() {
    // Two outputs of 2^22 elements: 64 MiB as the interpreter's f64. They were copied
    // out of the run and then formatted as one string, several times their size.
    let n = 1usize << 22;
    let program = write_temp(
        "two_outputs.wg",
        &format!(
            "%0 = iota axis=0 : f32[{n}]\n%1 = neg %0 : f32[{n}]\noutput a = %0\noutput b = %1\n"
        ),
    );
    let inputs = write_temp("two_outputs.json", "{}");
    let tensors = 2 * n as u64 * 8;
    let peak = peak_memory(&["eval", &program, "--inputs", &inputs]);
    assert!(
        peak <= tensors * 3 / 2,
        "peak resident memory {peak} bytes for {tensors} bytes of output tensors"
    );
}

#[test]
fn a_misspelt_backend_is_named_with_the_valid_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .arg("adapter")
        .env("WGPU_BACKEND", "vulkn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("WGPU_BACKEND=`vulkn`"), "{err}");
    assert!(err.contains("vulkan, metal, dx12 or gl"), "{err}");
    assert!(!err.contains("install a Vulkan driver"), "{err}");
}

#[test]
fn a_headless_machine_gets_no_display_warnings() {
    // Mesa's device-select layer printed "XDG_RUNTIME_DIR is invalid or not set in the
    // environment." twice per runtime when no Wayland display exists.
    let out = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .arg("adapter")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

#[test]
fn batched_derivatives_on_the_command_line() {
    let w5 = prog("w5.wg");
    // The Hessian: value, gradient and Hessian, one program the other commands accept.
    let h = ok(&["hessian", &w5, "--wrt", "x"], "");
    assert!(
        h.contains("output hessian.x = ") && h.contains("output grad.x = "),
        "{h}"
    );
    let x = r#"{"x": {"shape": [4], "dtype": "f32", "data": [0.5, -1.0, 1.5, 0.25]}}"#;
    let xs = write_temp("hessian_x.json", x);
    let out = json(&ok(&["eval", "-", "--inputs", &xs], &h));
    assert_eq!(out["hessian.x"]["shape"], serde_json::json!([4, 4]));
    // Its diagonal against the Hessian-vector products along basis vectors.
    let hvp = ok(
        &["jvp", "-", "--of", "grad.x", "--wrt", "x"],
        &ok(&["grad", &w5, "--wrt", "x"], ""),
    );
    for j in 0..4 {
        let mut e = [0.0; 4];
        e[j] = 1.0;
        let ins = format!(
            r#"{{"x": {{"shape": [4], "dtype": "f32", "data": [0.5, -1.0, 1.5, 0.25]}}, "tan.x": {{"shape": [4], "dtype": "f32", "data": {e:?}}}}}"#
        );
        let ins = write_temp(&format!("hvp_{j}.json"), &ins);
        let col = json(&ok(&["eval", "-", "--inputs", &ins], &hvp));
        let want = col["tan.grad.x"]["data"][j].as_f64().unwrap();
        let got = out["hessian.x"]["data"][j * 4 + j].as_f64().unwrap();
        assert!((want - got).abs() < 1e-12, "{want} vs {got}");
    }
    // k tangents at once, and derivatives of every order along one tangent.
    let jk = ok(&["jvp", &w5, "--wrt", "x", "--directions", "3"], "");
    assert!(jk.contains("input tan.x : f32[3,4]"), "{jk}");
    assert!(jk.contains("output tan.f = "), "{jk}");
    let d4 = ok(&["jvp", &w5, "--wrt", "x", "--order", "4"], "");
    for k in 1..=4 {
        assert!(d4.contains(&format!("output d{k}.f = ")), "{d4}");
    }
    assert_eq!(d4.matches(" = input ").count(), 2, "{d4}");
    let vk = ok(&["vjp", &w5, "--directions", "2"], "");
    assert!(
        vk.contains("input ct.f : f32[2]") && vk.contains("output grad.x = "),
        "{vk}"
    );
    // The Jacobian says which mode it took.
    let out = wgrad(&["jacobian", &w5, "--wrt", "x"], "");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jac.x: reverse mode, 1 directions"), "{err}");
    let v = ok(&["vmap", &w5, "--over", "x", "--size", "5"], "");
    assert!(
        v.contains("input x : f32[5,4]") && v.contains(": f32[5]\noutput f"),
        "{v}"
    );
    // Mistakes.
    fails(
        &["vmap", &w5, "--over", "y", "--size", "2"],
        "",
        1,
        &["no input named `y`"],
    );
    fails(
        &["vmap", &w5, "--over", "x", "--size", "0"],
        "",
        1,
        &["size 0"],
    );
    fails(
        &["jvp", &w5, "--wrt", "x", "--order", "0"],
        "",
        1,
        &["at least 1"],
    );
    fails(
        &[
            "jvp",
            &w5,
            "--wrt",
            "x",
            "--order",
            "2",
            "--directions",
            "2",
        ],
        "",
        2,
        &["cannot be used with"],
    );
    fails(
        &["hessian", &w5, "--wrt", "q"],
        "",
        1,
        &["no input named `q`"],
    );
    fails(
        &["jacobian", &w5, "--wrt", "x", "--mode", "sideways"],
        "",
        2,
        &["sideways"],
    );
}
