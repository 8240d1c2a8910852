//! NumPy and safetensors files: the fixtures in `tests/data/numpy/` were written by
//! NumPy 2.4 and safetensors 0.8 themselves (`make_fixtures.py`), so reading them checks
//! wgrad against the reference writers; writing is checked by reading back, and the
//! command line's `--inputs`/`--out` against its JSON form.

use std::path::{Path, PathBuf};
use std::process::Command;
use wgrad::io::{
    read_inputs, read_npy, read_npz, read_safetensors, write_npy, write_npz, write_outputs,
    write_safetensors,
};
use wgrad::json::Precision;
use wgrad::{DType, Tensor, Type};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/numpy")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrad-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn t(dtype: DType, shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(Type::new(dtype, shape), data.to_vec()).unwrap()
}

#[test]
fn arrays_numpy_wrote_read_back_with_their_shapes_and_values() {
    assert_eq!(
        read_npy(fixture("x_f32.npy")).unwrap(),
        t(DType::F32, &[2, 3], &[1.5, -2.0, 0.25, 3.0, 0.0, -0.5])
    );
    assert_eq!(
        read_npy(fixture("labels_i32.npy")).unwrap(),
        t(DType::I32, &[4], &[0.0, 2.0, 1.0, -7.0])
    );
    assert_eq!(
        read_npy(fixture("counts_u32.npy")).unwrap(),
        t(DType::U32, &[2], &[7.0, 4294967295.0])
    );
    assert_eq!(
        read_npy(fixture("mask_bool.npy")).unwrap(),
        t(DType::Bool, &[3], &[1.0, 0.0, 1.0])
    );
    assert_eq!(
        read_npy(fixture("scalar_f32.npy")).unwrap(),
        t(DType::F32, &[], &[2.5])
    );
    assert_eq!(
        read_npy(fixture("empty_f32.npy")).unwrap(),
        t(DType::F32, &[3, 0], &[])
    );
}

#[test]
fn numpys_defaults_byte_orders_and_fortran_order_convert() {
    // float64 and int64 are what NumPy makes unless told otherwise.
    assert_eq!(
        read_npy(fixture("x_f64.npy")).unwrap(),
        t(DType::F32, &[2, 2], &[0.1, -1e30, 2.0, 3.0])
    );
    assert_eq!(
        read_npy(fixture("labels_i64.npy")).unwrap(),
        t(DType::I32, &[3], &[3.0, -1.0, 2.0])
    );
    assert_eq!(
        read_npy(fixture("fortran_f32.npy")).unwrap(),
        t(DType::F32, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    );
    assert_eq!(
        read_npy(fixture("big_endian_f32.npy")).unwrap(),
        t(DType::F32, &[3], &[1.0, -2.5, f64::from(1e-3f32)])
    );
}

#[test]
fn what_wgrad_cannot_hold_is_a_clear_error_naming_the_file() {
    for (name, needles) in [
        (
            "too_big_i64.npy",
            &["too_big_i64.npy", "element 1", "does not fit in i32"][..],
        ),
        (
            "complex.npy",
            &["complex.npy", "<c8", "no wgrad element type"][..],
        ),
        (
            "make_fixtures.py",
            &["make_fixtures.py", "not a .npy array"][..],
        ),
    ] {
        let e = read_npy(fixture(name)).unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "{name}: expected {n:?} in {e}");
        }
    }
    let e = read_npz(fixture("x_f32.npy")).unwrap_err().to_string();
    assert!(e.contains("not a .npz archive"), "{e}");
    let e = read_safetensors(fixture("x_f32.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    let e = read_inputs(fixture("x_f32.npy")).unwrap_err().to_string();
    assert!(e.contains("directory of NAME.npy files"), "{e}");
    let e = read_npy(fixture("missing.npy")).unwrap_err().to_string();
    assert!(e.contains("missing.npy: cannot read"), "{e}");
}

#[test]
fn archives_hold_the_same_tensors_as_the_json_inputs() {
    let json = read_inputs(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/programs/mlp.inputs.json"),
    )
    .unwrap();
    for file in [
        "mlp_inputs.npz",
        "mlp_inputs_compressed.npz",
        "mlp_inputs.safetensors",
    ] {
        let read = read_inputs(fixture(file)).unwrap();
        assert_eq!(read.len(), json.len(), "{file}");
        for (name, want) in &json {
            let got = &read[name];
            assert_eq!(got.ty, want.ty, "{file}: {name}");
            // The JSON holds decimals, the archives their f32 roundings.
            for (a, b) in got.data.iter().zip(&want.data) {
                assert_eq!(*a, f64::from(*b as f32), "{file}: {name}");
            }
        }
    }
}

#[test]
fn every_dtype_round_trips_through_each_format() {
    let tensors = vec![
        (
            "w".to_string(),
            t(DType::F32, &[2, 2], &[0.5, -1.25, f64::INFINITY, 3.0]),
        ),
        (
            "labels".to_string(),
            t(DType::I32, &[3], &[-2147483648.0, 0.0, 7.0]),
        ),
        ("n".to_string(), t(DType::U32, &[], &[4294967295.0])),
        ("mask".to_string(), t(DType::Bool, &[2, 1], &[1.0, 0.0])),
        ("empty".to_string(), t(DType::F32, &[0, 4], &[])),
    ];
    let sorted = |mut v: Vec<(String, Tensor)>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let npz = temp("round.npz");
    write_npz(&npz, &tensors).unwrap();
    assert_eq!(sorted(read_npz(&npz).unwrap()), sorted(tensors.clone()));
    let st = temp("round.safetensors");
    write_safetensors(&st, &tensors).unwrap();
    assert_eq!(read_safetensors(&st).unwrap(), sorted(tensors.clone()));
    let dir = temp("npy_dir");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, tensor) in &tensors {
        write_npy(dir.join(format!("{name}.npy")), tensor).unwrap();
    }
    let read = read_inputs(&dir).unwrap();
    for (name, tensor) in &tensors {
        assert_eq!(&read[name], tensor, "{name}");
    }
    let json = temp("round.json");
    write_outputs(&json, &tensors, Precision::F32).unwrap();
    let read = read_inputs(&json).unwrap();
    for (name, tensor) in &tensors {
        assert_eq!(&read[name], tensor, "{name}");
    }
}

#[test]
fn the_command_line_reads_and_writes_archives() {
    let root = env!("CARGO_MANIFEST_DIR");
    let program = format!("{root}/examples/programs/mlp.wg");
    let json_inputs = format!("{root}/examples/programs/mlp.inputs.json");
    let wgrad = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wgrad"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wgrad {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Inputs from NumPy's archive, outputs to one: the same numbers as through JSON,
    // once the JSON inputs are rounded to f32 as the archive holds them.
    let npz_out = temp("grads.npz");
    let npz_in = fixture("mlp_inputs.npz");
    let args = |inputs: &str, out: &str| {
        vec![
            "eval".to_string(),
            program.clone(),
            "--wrt".into(),
            "w1,b1,w2,b2".into(),
            "--inputs".into(),
            inputs.to_string(),
            "--out".into(),
            out.to_string(),
        ]
    };
    let a = args(&npz_in.to_string_lossy(), &npz_out.to_string_lossy());
    let printed = wgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(printed.is_empty(), "{printed}");
    let from_npz = read_npz(&npz_out).unwrap();
    let rounded = temp("mlp_inputs_f32.json");
    write_outputs(&rounded, &read_npz(&npz_in).unwrap(), Precision::F64).unwrap();
    let json_out = temp("grads.json");
    let a = args(&rounded.to_string_lossy(), &json_out.to_string_lossy());
    wgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let from_json = read_inputs(&json_out).unwrap();
    assert_eq!(from_npz.len(), from_json.len());
    for (name, tensor) in &from_npz {
        // The archive stores f32: the interpreter's f64 results, rounded.
        let want = &from_json[name];
        assert_eq!(tensor.ty, want.ty, "{name}");
        for (a, b) in tensor.data.iter().zip(&want.data) {
            assert_eq!(*a, f64::from(*b as f32), "{name}");
        }
    }
    assert!(from_npz.iter().any(|(n, _)| n == "grad.w1"));
    // The original JSON inputs still work, and a safetensors output reads back.
    let st = temp("grads.safetensors");
    let a = args(&json_inputs, &st.to_string_lossy());
    wgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(read_safetensors(&st).unwrap().len(), from_npz.len());
}

#[test]
fn damaged_files_and_unwritable_paths_are_clear_errors() {
    // A .npy cut short, and a safetensors header whose offsets run past the data.
    let bytes = std::fs::read(fixture("x_f32.npy")).unwrap();
    let cut = temp("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let e = read_npy(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.npy") && e.contains("cannot read the data"),
        "{e}"
    );
    let mut st = std::fs::read(fixture("mlp_inputs.safetensors")).unwrap();
    st.truncate(st.len() - 16);
    let lying = temp("lying.safetensors");
    std::fs::write(&lying, &st).unwrap();
    let e = read_safetensors(&lying).unwrap_err().to_string();
    assert!(
        e.contains("lying.safetensors: not a safetensors file"),
        "{e}"
    );
    // A directory that does not exist: an error naming the path, and no file.
    let tensors = vec![("x".to_string(), t(DType::F32, &[1], &[1.0]))];
    let missing = temp("no/such/dir/out.npz");
    let e = write_npz(&missing, &tensors).unwrap_err().to_string();
    assert!(e.contains("out.npz: cannot write"), "{e}");
    assert!(!missing.exists());
    // Files are written beside their place and renamed into it: nothing else is left.
    let dir = temp("atomic");
    std::fs::create_dir_all(&dir).unwrap();
    write_outputs(dir.join("out.json"), &tensors, Precision::F32).unwrap();
    write_outputs(dir.join("out.json"), &tensors, Precision::F32).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
}

#[test]
fn an_archive_whose_arrays_do_not_fit_the_program_names_the_file_and_the_array() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut arrays = read_npz(fixture("mlp_inputs.npz")).unwrap();
    for (name, t) in &mut arrays {
        if name == "labels" {
            *t = Tensor::new(Type::f32(&t.ty.shape), t.data.clone()).unwrap();
        }
    }
    let wrong = temp("wrong_dtype.npz");
    write_npz(&wrong, &arrays).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .args([
            "eval",
            &format!("{root}/examples/programs/mlp.wg"),
            "--inputs",
            &wrong.to_string_lossy(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("wrong_dtype.npz: input `labels`: expected i32[4], got f32[4]"),
        "{err}"
    );
}

/// A version 1.0 `.npy` file with this header dictionary and these data bytes.
fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = header.to_string();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out.extend(data);
    out
}

#[test]
fn crafted_headers_are_errors_not_panics_or_huge_allocations() {
    let six: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    for (name, header) in [
        // Extents whose product wraps to 6 in 64 bits, in both orders.
        (
            "wrap_c.npy",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 9223372036854775809), }",
        ),
        (
            "wrap_f.npy",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 9223372036854775809), }",
        ),
        // A claim of 2^40 elements backed by 24 bytes.
        (
            "huge.npy",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }",
        ),
    ] {
        let path = temp(name);
        std::fs::write(&path, npy_bytes(header, &six)).unwrap();
        let e = read_npy(&path).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("elements"), "{e}");
    }
    // The same header with an honest shape reads.
    let ok = temp("honest.npy");
    std::fs::write(
        &ok,
        npy_bytes(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &six,
        ),
    )
    .unwrap();
    assert_eq!(
        read_npy(&ok).unwrap(),
        t(DType::F32, &[2, 3], &[0.0, 2.0, 4.0, 1.0, 3.0, 5.0])
    );
}

#[test]
#[cfg(unix)]
fn outputs_go_where_the_path_points() {
    use std::os::unix::fs::PermissionsExt;
    let tensors = vec![("x".to_string(), t(DType::F32, &[2], &[1.0, 2.0]))];
    // A device is written in place, not replaced by a regular file.
    write_npz("/dev/null", &tensors).unwrap();
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    // A symbolic link is followed: the file it names gets the outputs.
    let real = temp("real.npz");
    std::fs::write(&real, b"old").unwrap();
    let link = temp("link.npz");
    std::fs::remove_file(&link).ok();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_npz(&link, &tensors).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_npz(&real).unwrap(), tensors);
    // New files are readable by others as any created file would be (umask aside).
    let fresh = temp("fresh.npz");
    std::fs::remove_file(&fresh).ok();
    write_npz(&fresh, &tensors).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_ne!(mode & 0o044, 0, "mode {mode:o}");
    // One .npy holds one array: writing several to one is refused.
    let e = write_outputs(temp("out.npy"), &tensors, Precision::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("write the outputs to a .npz"), "{e}");
}
