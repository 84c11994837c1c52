//! Shared by the integration tests: the example-task components, built
//! once per test run, and one shared sandbox per test binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use weft::sandbox::{Attempt, AttemptContext, AttemptReport, Limits, MemoryKv, Module, Sandbox, SandboxConfig};

/// Every example task that is a valid weft task (not the `invalid/` ones).
pub const EXAMPLE_TASKS: [&str; 9] = [
    "validate_payment",
    "reserve_inventory",
    "notify_warehouse",
    "send_confirmation",
    "refund_payment",
    "hello",
    "flaky",
    "misbehave",
    "http_fetch",
];

/// The path of an example task's component, e.g. `guest("hello")`.
///
/// The first call in a test binary builds `example-tasks/` (cargo makes the
/// build a no-op when nothing changed, and serialises concurrent builds).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_example_tasks);
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn build_example_tasks() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks");
    let target_dir = root.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("running cargo to build example-tasks");
    assert!(
        output.status.success(),
        "building example-tasks failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("wasm32-wasip2/release")
}

/// The bytes of an example task's component.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).expect("reading a built component")
}

/// One sandbox shared by the tests of a binary, as the engine shares one.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("creating the sandbox"))
}

/// An example task loaded into the shared sandbox (compiled once, cached).
pub fn module(name: &str) -> Arc<Module> {
    sandbox().load(&guest_bytes(name)).expect("loading an example task")
}

/// A context for test attempts.
pub fn context(attempt: u32) -> AttemptContext {
    AttemptContext {
        tenant: "acme".into(),
        workflow: "tests".into(),
        run_id: "run-1".into(),
        step_id: "step".into(),
        attempt,
        item_index: None,
    }
}

/// Runs one attempt of an example task with `limits` and an empty kv.
pub async fn run_with(name: &str, input: &str, limits: Limits) -> AttemptReport {
    run_in(name, input, limits, Arc::new(MemoryKv::new()), 1).await
}

/// Runs one attempt of an example task with default limits.
pub async fn run(name: &str, input: &str) -> AttemptReport {
    run_with(name, input, Limits::default()).await
}

/// Runs one attempt against the given kv store, as attempt number `attempt`.
pub async fn run_in(name: &str, input: &str, limits: Limits, kv: Arc<MemoryKv>, attempt: u32) -> AttemptReport {
    run_module(sandbox(), &module(name), input, limits, kv, attempt).await
}

/// Runs one attempt of `module` in `sandbox`, with nothing granted beyond
/// kv, as attempt number `attempt`.
pub async fn run_module(
    sandbox: &Sandbox,
    module: &Module,
    input: &str,
    limits: Limits,
    kv: Arc<MemoryKv>,
    attempt: u32,
) -> AttemptReport {
    sandbox
        .run(
            module,
            Attempt {
                input,
                limits,
                context: context(attempt),
                kv,
                http: Default::default(),
                secrets: Default::default(),
                redact: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("the sandbox cannot run the attempt with {input}: {e}"))
}

/// Runs one attempt of `module` in `sandbox` under the HTTP policy
/// `http`, with `secret` redacted from the report as the engine would.
pub async fn run_with_http(
    sandbox: &Sandbox,
    module: &Module,
    input: &str,
    http: weft::sandbox::http::HttpPolicy,
    secret: &str,
) -> AttemptReport {
    sandbox
        .run(
            module,
            Attempt {
                input,
                limits: Limits::default(),
                context: context(1),
                kv: Arc::new(MemoryKv::new()),
                http,
                secrets: Default::default(),
                redact: weft::sandbox::redact::Redactor::new(vec![secret]),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("the sandbox cannot run the attempt with {input}: {e}"))
}

/// `weft task run COMPONENT --input INPUT` with the real binary, to its
/// end: (exit code, stdout, stderr).
pub fn weft_task_run(component: &Path, input: &str) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["task", "run"])
        .arg(component)
        .args(["--input", input])
        .output()
        .expect("running the weft binary");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// Asserts the host still serves an ordinary attempt after a misbehaving one.
pub async fn assert_host_still_serves() {
    let report = run("hello", r#"{"name": "again"}"#).await;
    assert_eq!(
        report.outcome,
        weft::Outcome::Ok {
            output: r#"{"greeting":"Hello, again!"}"#.into()
        }
    );
}
