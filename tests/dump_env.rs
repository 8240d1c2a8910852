//! `WGRAD_DUMP`: every program `wgrad::compile` compiles gets a numbered subdirectory.
//! Alone in its test binary, since it sets the environment variable.

#[test]
fn each_compiled_program_is_dumped_in_its_own_directory() {
    let dir = std::env::temp_dir().join(format!("wgrad-dump-env-{}", std::process::id()));
    // SAFETY: this binary runs this one test, so no other thread reads the environment.
    unsafe { std::env::set_var("WGRAD_DUMP", &dir) };
    let small =
        wgrad::parse("%0 = input x : f32[4]\n%1 = exp %0 : f32[4]\noutput y = %1\n").unwrap();
    let mlp = wgrad::parse(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/programs/mlp.wg"
        ))
        .unwrap(),
    )
    .unwrap();
    let options = wgrad::Options::default();
    let first = wgrad::compile(&small, &options).unwrap();
    let second = wgrad::compile(&mlp, &options).unwrap();
    // Before, the second program's dump replaced the first's.
    for (sub, program) in [("program-001", &first), ("program-002", &second)] {
        let stats = std::fs::read_to_string(dir.join(sub).join("stats.json")).unwrap();
        assert!(
            stats.contains(&format!("\"kernels\": {}", program.stats.kernels)),
            "{sub}: {stats}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
