//! `weft task run`, the real binary: output, exit status and error messages.

mod common;

use std::process::{Command, Output};

use common::guest;

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("running weft")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn runs_a_task_and_prints_the_outcome() {
    let hello = guest("hello");
    let output = weft(&["task", "run", hello.to_str().unwrap(), "--input", r#"{"name": "Ada"}"#]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("outcome   ok\noutput    {\"greeting\":\"Hello, Ada!\"}\nfuel      "),
        "{text}"
    );
    assert!(stderr(&output).contains("sha256:"), "{}", stderr(&output));
}

#[test]
fn reads_input_from_a_file_and_prints_json() {
    let dir = std::env::temp_dir().join(format!("weft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("payment.json");
    std::fs::write(
        &input,
        r#"{"order_id": "f-1", "amount_cents": 500, "currency": "GBP", "card_number": "4242424242424242"}"#,
    )
    .unwrap();
    let task = guest("validate_payment");
    let output = weft(&[
        "task",
        "run",
        task.to_str().unwrap(),
        "--input",
        &format!("@{}", input.display()),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["outcome"], "ok");
    assert!(report["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(report["kv_writes"][0]["key"], "payments/f-1");
    assert_eq!(
        report["logs"]["lines"][0]["message"],
        "authorised 500 GBP for order f-1"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exits_1_when_the_attempt_fails() {
    let task = guest("misbehave");
    let output = weft(&[
        "task",
        "run",
        task.to_str().unwrap(),
        "--input",
        r#"{"mode": "spin"}"#,
        "--fuel",
        "1000000",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("outcome   out_of_fuel\nreason    used all 1000000 units of fuel\n"),
        "{}",
        stdout(&output)
    );

    let output = weft(&[
        "task",
        "run",
        task.to_str().unwrap(),
        "--input",
        r#"{"mode": "sleep", "ms": 10000}"#,
        "--timeout",
        "100ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("outcome   timeout\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn the_attempt_flag_reaches_the_task() {
    let task = guest("flaky");
    let first = weft(&["task", "run", task.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(1));
    assert!(
        stdout(&first).contains("error     transient: attempt 1 of 2 planned failures\nretryable true\n"),
        "{}",
        stdout(&first)
    );
    let third = weft(&["task", "run", task.to_str().unwrap(), "--attempt", "3"]);
    assert_eq!(third.status.code(), Some(0), "{}", stdout(&third));
}

#[test]
fn kv_can_be_seeded() {
    let task = guest("refund_payment");
    let payment = r#"payments/k-1={"authorization_id": "auth_1", "amount_cents": 700, "currency": "EUR"}"#;
    let output = weft(&[
        "task",
        "run",
        task.to_str().unwrap(),
        "--input",
        r#"{"order_id": "k-1"}"#,
        "--kv",
        payment,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("\"refund_id\":\"ref_k-1\""),
        "{}",
        stdout(&output)
    );
}

#[test]
fn exits_2_naming_what_is_wrong() {
    let bad_import = guest("bad_import");
    let output = weft(&["task", "run", bad_import.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("the component imports `acme:rogue/net@1.0.0`, which weft does not provide"),
        "{}",
        stderr(&output)
    );

    let hello = guest("hello");
    let output = weft(&["task", "run", hello.to_str().unwrap(), "--input", "{not json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: --input is not JSON"),
        "{}",
        stderr(&output)
    );

    let output = weft(&["task", "run", "/nonexistent/task.wasm"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: cannot read /nonexistent/task.wasm"),
        "{}",
        stderr(&output)
    );

    let output = weft(&["task", "run", hello.to_str().unwrap(), "--memory", "lots"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("\"lots\" is not a size"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_explains_the_command() {
    let output = weft(&["task", "run", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for expected in [
        "--fuel",
        "--memory",
        "--timeout",
        "Exit status: 0 when the outcome is `ok`",
        "Examples:",
    ] {
        assert!(text.contains(expected), "help lacks {expected:?}:\n{text}");
    }
}

#[test]
fn validate_lists_every_problem_and_exits_1() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = root.join("example-tasks/workflows/order.yaml");
    let bad = root.join("tests/golden/invalid/unknown_needs.yaml");
    let output = weft(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("order.yaml: ok (order, 5 steps)"), "{text}");
    let bad_lines: Vec<&str> = text.lines().filter(|l| l.contains("unknown_needs.yaml:")).collect();
    assert_eq!(bad_lines.len(), 3, "{text}");
    assert!(bad_lines[0].ends_with(
        "unknown_needs.yaml:7:13: steps[1].needs[0]: unknown step `valdate_payment` (did you mean `validate_payment`?)"
    ));

    let output = weft(&["validate", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn run_executes_the_order_workflow_as_the_readme_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = guest("hello").parent().unwrap().to_path_buf();
    let workflow = root.join("example-tasks/workflows/order.yaml");
    let input = format!("@{}", root.join("example-tasks/inputs/order.json").display());
    let output = weft(&[
        "run",
        workflow.to_str().unwrap(),
        "--modules",
        modules.to_str().unwrap(),
        "--input",
        &input,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["shipment_id"], "shp_A-1001");
    let progress = stderr(&output);
    for step in [
        "validate_payment",
        "reserve_inventory",
        "notify_warehouse",
        "send_confirmation",
    ] {
        assert!(
            progress
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [step, "succeeded"]),
            "{progress}"
        );
    }
    assert!(progress.contains("refund_payment           skipped"), "{progress}");

    let output = weft(&[
        "run",
        workflow.to_str().unwrap(),
        "--modules",
        modules.to_str().unwrap(),
        "--input",
        r#"{"order_id": 5}"#,
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("does not match the workflow's input_schema"),
        "{}",
        stderr(&output)
    );
}

#[path = "../example-tasks/stand-in/services.rs"]
mod stand_in;

/// The stand-in services on a free port, served by a runtime of their own
/// for as long as the returned runtime lives.
fn stand_in(key: &str) -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    let app = stand_in::app(key.to_string());
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, address)
}

#[test]
fn run_executes_order_http_against_the_stand_in_as_the_readme_shows() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = guest("http_fetch").parent().unwrap().to_path_buf();
    let (_services, address) = stand_in("sk_test_weft");
    let yaml = std::fs::read_to_string(root.join("example-tasks/workflows/order-http.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let workflow = dir.path().join("order-http.yaml");
    std::fs::write(&workflow, yaml.replace("127.0.0.1:8787", &address.to_string())).unwrap();
    let input = format!("@{}", root.join("example-tasks/inputs/order.json").display());
    let run = |secret: &str, private: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .args([
                "run",
                workflow.to_str().unwrap(),
                "--modules",
                modules.to_str().unwrap(),
            ])
            .args(["--input", &input, "--secret", "payment_key=PAYMENT_KEY"])
            .env("PAYMENT_KEY", secret);
        if private {
            command.arg("--allow-private-http");
        }
        command.output().unwrap()
    };

    let output = run("sk_test_weft", true);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["charge_id"], "ch_A-1001", "{result}");
    assert_eq!(result["confirmation"], "msg_1", "{result}");
    assert!(!stderr(&output).contains("sk_test_weft"), "{}", stderr(&output));

    // A wrong key: the gateway's 401 fails the charge for good.
    let output = run("sk_wrong", true);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(said.contains("http_status: the server answered 401"), "{said}");

    // Without the server setting, loopback is refused, and the run says why.
    let output = run("sk_test_weft", false);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(said.contains("http_refused"), "{said}");
}

#[test]
fn task_new_makes_a_rust_project_that_builds_and_runs_as_made() {
    // The example tasks first: their build leaves the SDK's dependencies
    // compiled, which the new project reuses through the same target
    // directory and lock file (a user's first build compiles them).
    let examples = guest("hello");
    let target = examples.ancestors().nth(3).expect("example-tasks/target").to_path_buf();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("greeter");
    let made = weft(&["task", "new", "greeter", "--dir", dir.to_str().unwrap()]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    assert!(
        stdout(&made).contains("cargo build --release --target wasm32-wasip2"),
        "{}",
        stdout(&made)
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("example-tasks/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "the new project does not build:\n{}",
        stderr(&built)
    );
    let component = target.join("wasm32-wasip2/release/greeter.wasm");
    let ran = weft(&[
        "task",
        "run",
        component.to_str().unwrap(),
        "--input",
        r#"{"name": "Ada"}"#,
    ]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let text = stdout(&ran);
    assert!(
        text.contains(r#""greeting":"Hello, Ada!""#) && text.contains("greeting Ada (attempt 1)"),
        "{text}"
    );

    // A second time into the same place, and a name no language takes.
    let again = weft(&["task", "new", "greeter", "--dir", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exists and is not empty"),
        "{}",
        stderr(&again)
    );
    let bad = weft(&[
        "task",
        "new",
        "Send-Mail",
        "--dir",
        scratch.path().join("x").to_str().unwrap(),
    ]);
    assert!(stderr(&bad).contains("is not a task name"), "{}", stderr(&bad));
}
