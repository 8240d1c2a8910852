//! The test helper's contract: without an adapter a test is skipped on a developer's
//! machine but fails on CI. Checked by running this test binary again as a child with a
//! backend that cannot exist on this platform.

use std::process::{Command, Output};

use wgrad_runtime::testing::runtime_or_skip;

/// What the child runs; a no-op unless started by the test below.
#[test]
fn child_probe() {
    if std::env::var_os("WGRAD_RUNTIME_CHILD").is_none() {
        return;
    }
    let runtime = runtime_or_skip();
    println!(
        "child: runtime is {}",
        if runtime.is_some() { "some" } else { "none" }
    );
}

fn run_child(ci: Option<&str>) -> Output {
    let absent_backend = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let mut command = Command::new(std::env::current_exe().expect("the test binary exists"));
    command
        .args(["child_probe", "--exact", "--nocapture", "--test-threads=1"])
        .env("WGRAD_RUNTIME_CHILD", "1")
        .env("WGPU_BACKEND", absent_backend)
        .env_remove("WGPU_ADAPTER_NAME");
    match ci {
        Some(value) => command.env("CI", value),
        None => command.env_remove("CI"),
    };
    command.output().expect("the test binary runs")
}

#[test]
fn no_adapter_skips_locally_and_fails_on_ci() {
    let local = run_child(None);
    let stdout = String::from_utf8_lossy(&local.stdout);
    let stderr = String::from_utf8_lossy(&local.stderr);
    assert!(local.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("child: runtime is none"), "{stdout}");
    assert!(stderr.contains("skipping: no adapter"), "{stderr}");

    let ci = run_child(Some("true"));
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&ci.stdout),
        String::from_utf8_lossy(&ci.stderr)
    );
    assert!(!ci.status.success(), "{both}");
    assert!(both.contains("no usable adapter"), "{both}");
    assert!(both.contains("mesa-vulkan-drivers"), "{both}");
}
