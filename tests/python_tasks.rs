//! Python tasks, built with the Python SDK (`guest-sdk/python`) by its
//! documented command, run in the real sandbox: the examples give the
//! expected output, log lines and kv writes and see their context; the
//! limits hold for a Python guest as for a Rust one; `weft task run` runs
//! a built task; and the `weft task new --lang python` template builds and
//! runs as generated.
//!
//! The toolchain (componentize-py, pinned) is installed into a virtual
//! environment under `target/` on first use; without Python or PyPI the
//! tests are skipped loudly, or fail under `CI=true`. A Python component is
//! about 19 MB and takes seconds to compile, so each is loaded once per
//! binary.

#[path = "common/mod.rs"]
mod common;
#[path = "common/python_guest.rs"]
mod python_guest;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use weft::Outcome;
use weft::sandbox::{AttemptReport, KvWrite, Level, Limits, MemoryKv, Module};

use common::sandbox;

/// Fuel that no test attempt exhausts, to isolate the other limits.
const UNLIMITED_FUEL: u64 = u64::MAX / 2;

/// The example task `example-tasks/python/NAME`, built and loaded into the
/// shared sandbox once per binary; `None` when the test is skipped.
fn module(name: &str) -> Option<Arc<Module>> {
    static LOADED: Mutex<Option<HashMap<String, Arc<Module>>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(module) = loaded.get_or_insert_with(HashMap::new).get(name) {
        return Some(module.clone());
    }
    let path = python_guest::component(name)?;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let started = Instant::now();
    let module = sandbox()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("the sandbox refuses {}: {e}", path.display()));
    eprintln!(
        "loaded {name} ({:.1} MB) in {:.1?}",
        bytes.len() as f64 / 1e6,
        started.elapsed()
    );
    loaded
        .get_or_insert_with(HashMap::new)
        .insert(name.into(), module.clone());
    Some(module)
}

/// Runs one attempt of a Python example task, or `None` when skipped.
async fn run(name: &str, input: &str, limits: Limits, kv: Arc<MemoryKv>, attempt: u32) -> Option<AttemptReport> {
    let module = module(name)?;
    Some(common::run_module(sandbox(), &module, input, limits, kv, attempt).await)
}

/// Runs an attempt with default limits, an empty kv, as attempt 1.
async fn run_default(name: &str, input: &str) -> Option<AttemptReport> {
    run(name, input, Limits::default(), Arc::new(MemoryKv::new()), 1).await
}

/// The guest error of an outcome, or a panic naming what it was instead.
fn guest_error(report: &AttemptReport) -> (&str, &str, bool) {
    match &report.outcome {
        Outcome::GuestError {
            code,
            message,
            retryable,
        } => (code, message, *retryable),
        other => panic!("expected a guest_error, got {other:?}; stderr: {}", report.logs.stderr),
    }
}

fn ok(output: &str) -> Outcome {
    Outcome::Ok { output: output.into() }
}

#[tokio::test]
async fn hello_greets_logs_its_context_and_counts_in_kv() {
    let kv = Arc::new(MemoryKv::new());
    let seeded = KvWrite {
        key: "greetings/Ada".into(),
        value: Some(b"41".to_vec()),
    };
    kv.apply("acme", &[seeded]);
    let Some(report) = run("hello", r#"{"name": "Ada"}"#, Limits::default(), kv.clone(), 3).await else {
        return;
    };
    assert_eq!(
        report.outcome,
        ok(r#"{"greeting":"Hello, Ada!"}"#),
        "stderr: {}",
        report.logs.stderr
    );
    let lines: Vec<(Level, &str)> = report
        .logs
        .lines
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(Level::Info, "greeting Ada (greeting number 42, attempt 3 of step step)")]
    );
    let written = KvWrite {
        key: "greetings/Ada".into(),
        value: Some(b"42".to_vec()),
    };
    assert_eq!(report.kv_writes, [written]);

    // The defaults of the input dataclass apply; a fresh kv starts at 1.
    let Some(report) = run_default("hello", "{}").await else {
        return;
    };
    assert_eq!(report.outcome, ok(r#"{"greeting":"Hello, world!"}"#));
    assert_eq!(
        report.logs.lines[0].message,
        "greeting world (greeting number 1, attempt 1 of step step)"
    );
}

#[tokio::test]
async fn hello_refuses_bad_input_without_writing() {
    let Some(report) = run_default("hello", r#"{"name": ""}"#).await else {
        return;
    };
    assert_eq!(guest_error(&report), ("invalid_input", "name must not be empty", false));
    assert_eq!(report.kv_writes, []);

    // An unknown field, a wrong type, and text that is not JSON.
    let cases = [
        (r#"{"nme": "Ada"}"#, "unknown field 'nme' for Input"),
        (r#"{"name": 7}"#, "$.name: expected a string, found a number"),
        ("not json", "the input does not match what the task expects"),
    ];
    for (input, expected) in cases {
        let Some(report) = run_default("hello", input).await else {
            return;
        };
        let (code, message, retryable) = guest_error(&report);
        assert_eq!((code, retryable), ("invalid_input", false), "{input}");
        assert!(message.contains(expected), "{input}: {message:?} lacks {expected:?}");
    }
}

#[tokio::test]
async fn send_confirmation_answers_as_the_rust_task_does() {
    let input = r#"{"order_id": "A-1", "email": "ada@example.com", "amount_cents": 1250, "currency": "EUR"}"#;
    let Some(report) = run_default("send_confirmation", input).await else {
        return;
    };
    // What example-tasks/send_confirmation (Rust) returns for this input.
    let expected = serde_json::json!({
        "message_id": "msg_A-1",
        "to": "ada@example.com",
        "subject": "Your order A-1 (12.50 EUR) is confirmed",
    });
    let Outcome::Ok { output } = &report.outcome else {
        panic!("{:?}; stderr: {}", report.outcome, report.logs.stderr)
    };
    let output: serde_json::Value = serde_json::from_str(output).expect("the output is JSON");
    assert_eq!(output, expected);
    assert_eq!(report.logs.lines.len(), 1, "{:?}", report.logs.lines);
    assert_eq!(report.logs.lines[0].level, Level::Info);
    assert_eq!(
        report.logs.lines[0].message,
        "confirmation for order A-1 sent to ada@example.com"
    );

    let bad = r#"{"order_id": "B", "email": "not-an-email", "amount_cents": 1, "currency": "EUR"}"#;
    let Some(report) = run_default("send_confirmation", bad).await else {
        return;
    };
    assert_eq!(
        guest_error(&report),
        ("invalid_email", "'not-an-email' is not an email address", false)
    );
    let missing = r#"{"order_id": "B", "email": "a@b.c", "amount_cents": 1}"#;
    let Some(report) = run_default("send_confirmation", missing).await else {
        return;
    };
    let (code, message, _) = guest_error(&report);
    assert_eq!(code, "invalid_input");
    assert!(message.contains("missing field 'currency'"), "{message}");
}

#[tokio::test]
async fn a_spinning_python_task_times_out_or_runs_out_of_fuel() {
    let limits = Limits {
        fuel: UNLIMITED_FUEL,
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let kv = Arc::new(MemoryKv::new());
    let Some(report) = run("misbehave", r#"{"mode": "spin"}"#, limits, kv.clone(), 1).await else {
        return;
    };
    assert_eq!(report.outcome, Outcome::Timeout, "stderr: {}", report.logs.stderr);
    assert!(report.duration >= Duration::from_millis(500), "{:?}", report.duration);
    assert!(report.duration < Duration::from_secs(5), "{:?}", report.duration);

    // With a timeout far away, the fuel runs out first.
    let limits = Limits {
        fuel: 200_000_000,
        ..Limits::default()
    };
    let Some(report) = run("misbehave", r#"{"mode": "spin"}"#, limits, kv, 1).await else {
        return;
    };
    assert_eq!(report.outcome, Outcome::OutOfFuel, "stderr: {}", report.logs.stderr);
    assert_eq!(report.fuel_used, 200_000_000);
    assert_hello_still_runs().await;
}

#[tokio::test]
async fn a_python_task_allocating_without_end_hits_the_memory_limit() {
    let limits = Limits {
        memory: 96 << 20,
        fuel: UNLIMITED_FUEL,
        ..Limits::default()
    };
    let Some(report) = run(
        "misbehave",
        r#"{"mode": "allocate"}"#,
        limits,
        Arc::new(MemoryKv::new()),
        1,
    )
    .await
    else {
        return;
    };
    assert_eq!(report.outcome, Outcome::MemoryLimit, "stderr: {}", report.logs.stderr);
    assert_hello_still_runs().await;
}

#[tokio::test]
async fn raised_errors_become_guest_errors() {
    let cases = [
        (
            r#"{"mode": "fail", "code": "card_declined", "message": "declined", "retryable": false}"#,
            ("card_declined", "declined", false),
        ),
        (
            r#"{"mode": "fail", "code": "upstream_busy", "message": "try later", "retryable": true}"#,
            ("upstream_busy", "try later", true),
        ),
        (
            r#"{"mode": "raise", "message": "something broke"}"#,
            ("exception", "ValueError: something broke", false),
        ),
    ];
    for (input, expected) in cases {
        let Some(report) = run_default("misbehave", input).await else {
            return;
        };
        assert_eq!(guest_error(&report), expected, "{input}");
        assert_eq!(report.outcome.is_retryable(), expected.2, "{input}");
    }
    // The plain exception's traceback is kept with the attempt, on stderr.
    let Some(report) = run_default("misbehave", r#"{"mode": "raise", "message": "boom"}"#).await else {
        return;
    };
    let stderr = &report.logs.stderr;
    assert!(
        stderr.contains("Traceback") && stderr.contains("ValueError: boom"),
        "{stderr}"
    );
}

/// The host serves an ordinary Python attempt after a misbehaving one.
async fn assert_hello_still_runs() {
    let Some(report) = run_default("hello", r#"{"name": "again"}"#).await else {
        return;
    };
    assert_eq!(report.outcome, ok(r#"{"greeting":"Hello, again!"}"#));
}

#[test]
fn weft_task_run_runs_a_python_task() {
    let Some(component) = python_guest::component("hello") else {
        return;
    };
    let (code, stdout, stderr) = common::weft_task_run(&component, r#"{"name": "CLI"}"#);
    assert_eq!(code, Some(0), "weft task run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(r#""greeting":"Hello, CLI!""#), "{stdout}\n{stderr}");
}

#[test]
fn the_python_template_builds_and_runs_as_generated() {
    let Some(venv) = python_guest::toolchain() else {
        return;
    };
    // Made by the real `weft task new`, as a user would.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let project = scratch.path().join("greet_guest");
    let name = "greet_guest";
    let made = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["task", "new", "--lang", "python", name, "--dir"])
        .arg(&project)
        .output()
        .expect("running weft task new");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(made.status.success(), "{said}{}", String::from_utf8_lossy(&made.stderr));
    assert!(said.contains("build.sh greet_guest.py greet_guest.wasm"), "{said}");
    let task = project.join(format!("{name}.py"));
    assert!(task.is_file(), "the template has no {{{{name}}}}.py");
    let readme = std::fs::read_to_string(project.join("README.md")).expect("the template has a README.md");
    assert!(!readme.contains("{{") && readme.contains(name), "{readme}");

    let component = project.join(format!("{name}.wasm"));
    python_guest::build(&venv, &task, &component);
    let (code, stdout, stderr) = common::weft_task_run(&component, r#"{"name": "Ada"}"#);
    assert_eq!(code, Some(0), "weft task run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(r#""greeting":"Hello, Ada!""#), "{stdout}\n{stderr}");
}

#[test]
fn the_sdk_unit_tests_pass_against_fresh_bindings() {
    let Some(venv) = python_guest::toolchain() else {
        return;
    };
    let bindings = tempfile::tempdir().expect("a scratch directory");
    let generate = python_guest::outside::run(
        Command::new(venv.join("bin/componentize-py"))
            .arg("-d")
            .arg(python_guest::repo().join("wit"))
            .args(["-w", "task", "-q", "bindings"])
            .arg(bindings.path()),
    );
    if let Err(output) = generate {
        panic!("componentize-py cannot generate bindings for wit/: {output}");
    }
    if let Err(output) = sdk_unit_tests(&venv, bindings.path()) {
        panic!("the SDK's unit tests (guest-sdk/python/tests) failed: {output}");
    }
}

/// Runs the SDK's unit tests (`guest-sdk/python/tests`) in `venv` against
/// the generated `bindings`.
fn sdk_unit_tests(venv: &Path, bindings: &Path) -> Result<String, String> {
    let sdk = python_guest::sdk_dir();
    let path = std::env::join_paths([bindings, sdk.as_path()]).expect("a PYTHONPATH");
    python_guest::outside::run(
        Command::new(venv.join("bin/python"))
            .args(["-m", "unittest", "discover", "-s"])
            .arg(sdk.join("tests"))
            .env("PYTHONPATH", path),
    )
}

#[test]
fn pyproject_pins_the_toolchain_build_sh_installs() {
    let path = python_guest::sdk_dir().join("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let pin = python_guest::pin();
    assert!(
        text.contains(&format!("build = [\"{pin}\"]")),
        "{} must pin {pin} in its `build` extra, as build-requirements.txt does",
        path.display()
    );
}

#[test]
fn the_readme_example_is_the_example_task() {
    let readme_path = python_guest::sdk_dir().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("guest-sdk/python/README.md");
    let start = readme.find("```python\n").expect("the README has a Python example") + "```python\n".len();
    let example = &readme[start..start + readme[start..].find("```").expect("the example block ends")];
    let task_path = python_guest::repo().join("example-tasks/python/send_confirmation/send_confirmation.py");
    let task = std::fs::read_to_string(&task_path).expect("the send_confirmation example");
    // The module docstring ends at the first `"""` that closes a line.
    let body = task.split_once("\"\"\"\n\n").map(|(_, rest)| rest);
    assert_eq!(
        Some(example),
        body,
        "the first Python block of {} must be {} without its docstring",
        readme_path.display(),
        task_path.display()
    );
}

mod http_calls {
    //! `example-tasks/python/http_fetch` calls a real axum server on
    //! `127.0.0.1:0` through `weft_sdk.http`, in a sandbox that permits
    //! private destinations the step's allow-list names (as `weft serve
    //! --allow-private-http` makes): a JSON answer reaches the output, a
    //! POST carries the host's `Authorization` header that the task never
    //! sees, a URL off the allow-list fails with `http_refused` and is
    //! recorded, and a 500 fails with a retryable `http_status`. The SDK's
    //! unit tests also run against the bindings of the world it is built
    //! with.

    use std::net::SocketAddr;
    use std::process::Command;
    use std::sync::{Arc, Mutex, OnceLock};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use serde_json::{Value, json};
    use weft::Outcome;
    use weft::sandbox::http::{AllowList, HttpLimits, HttpPolicy, InjectedHeaders, UrlPattern};
    use weft::sandbox::{AttemptReport, Module, Sandbox, SandboxConfig};

    use super::{common, python_guest};

    /// The key the host puts into requests to `/pay`.
    const HTTP_SECRET: &str = "sk_live_python_must_not_see_9b1c";

    /// One request the test server was sent: its path, `Authorization`
    /// header and body.
    type HttpRequest = (String, Option<String>, Vec<u8>);

    /// What the test server was sent.
    #[derive(Default)]
    struct HttpSeen {
        requests: Mutex<Vec<HttpRequest>>,
    }

    impl HttpSeen {
        fn record(&self, path: &str, headers: &HeaderMap, body: &[u8]) {
            let auth = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string());
            self.requests
                .lock()
                .unwrap()
                .push((path.to_string(), auth, body.to_vec()));
        }
    }

    /// A server with a JSON order, a payment endpoint and a broken route.
    async fn http_server() -> (SocketAddr, Arc<HttpSeen>) {
        let seen = Arc::new(HttpSeen::default());
        let app = Router::new()
            .route(
                "/orders/A-1",
                get(|State(seen): State<Arc<HttpSeen>>, headers: HeaderMap| async move {
                    seen.record("/orders/A-1", &headers, b"");
                    axum::Json(json!({"order_id": "A-1", "total_cents": 1250, "items": ["book", "pen"]}))
                }),
            )
            .route("/pay", post(http_pay))
            .route(
                "/broken",
                get(|State(seen): State<Arc<HttpSeen>>, headers: HeaderMap| async move {
                    seen.record("/broken", &headers, b"");
                    (StatusCode::INTERNAL_SERVER_ERROR, "database on fire")
                }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, seen)
    }

    /// Pays when the host's key came; like a real gateway it does not echo
    /// the key, but it does echo the body it parsed.
    async fn http_pay(State(seen): State<Arc<HttpSeen>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
        seen.record("/pay", &headers, &body);
        let expected = format!("Bearer {HTTP_SECRET}");
        let paid = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
        let received: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        axum::Json(json!({"paid": paid, "received": received, "content_type": content_type}))
    }

    /// A sandbox that permits private destinations an allow-list names.
    fn http_sandbox() -> &'static Sandbox {
        static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
        SANDBOX.get_or_init(|| {
            Sandbox::new(SandboxConfig {
                allow_private_http: true,
                ..SandboxConfig::default()
            })
            .expect("creating the sandbox")
        })
    }

    /// `example-tasks/python/http_fetch`, built and loaded into
    /// [`http_sandbox`] once per binary; `None` when the test is skipped.
    fn http_module() -> Option<Arc<Module>> {
        static LOADED: OnceLock<Option<Arc<Module>>> = OnceLock::new();
        LOADED
            .get_or_init(|| {
                let path = python_guest::component("http_fetch")?;
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
                let module = http_sandbox()
                    .load(&bytes)
                    .unwrap_or_else(|e| panic!("the sandbox refuses {}: {e}", path.display()));
                Some(module)
            })
            .clone()
    }

    /// A policy allowing `allow`, with default caps and no headers.
    fn http_policy(allow: &[String]) -> HttpPolicy {
        HttpPolicy {
            allow: AllowList::parse(allow).unwrap(),
            headers: Vec::new(),
            limits: HttpLimits::default(),
        }
    }

    /// Runs one attempt of `http_fetch` with `input` under `http`; the
    /// secret is redacted from the report as the engine would.
    async fn http_attempt(input: Value, http: HttpPolicy) -> Option<AttemptReport> {
        let module = http_module()?;
        let input = input.to_string();
        let report = common::run_with_http(http_sandbox(), &module, &input, http, HTTP_SECRET).await;
        Some(report)
    }

    fn http_output(report: &AttemptReport) -> Value {
        match &report.outcome {
            Outcome::Ok { output } => serde_json::from_str(output).expect("the output is JSON"),
            other => panic!("the attempt did not succeed: {other:?}\n{:#?}", report.logs),
        }
    }

    fn http_guest_error(report: &AttemptReport) -> (&str, &str, bool) {
        match &report.outcome {
            Outcome::GuestError {
                code,
                message,
                retryable,
            } => (code, message, *retryable),
            other => panic!("expected a guest_error, got {other:?}\n{:#?}", report.logs),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http_a_python_get_returns_the_json_answer() {
        let (address, seen) = http_server().await;
        let origin = format!("http://{address}");
        let url = format!("{origin}/orders/A-1");
        let Some(report) = http_attempt(json!({ "url": url }), http_policy(&[origin])).await else {
            return;
        };
        let out = http_output(&report);
        assert_eq!(out["status"], 200, "{out}");
        assert_eq!(out["url"], url);
        assert_eq!(out["content_type"], "application/json");
        assert_eq!(
            out["body"],
            json!({"order_id": "A-1", "total_cents": 1250, "items": ["book", "pen"]})
        );
        assert_eq!(seen.requests.lock().unwrap().len(), 1);
        let call = &report.http[..];
        assert_eq!(call.len(), 1, "{call:?}");
        assert_eq!((call[0].method.as_str(), call[0].status), ("GET", Some(200)));
        assert!(call[0].refused.is_none() && call[0].error.is_none(), "{call:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http_a_python_post_carries_the_host_header_the_task_never_sees() {
        let (address, seen) = http_server().await;
        let origin = format!("http://{address}");
        let mut http = http_policy(std::slice::from_ref(&origin));
        http.headers.push(InjectedHeaders {
            on: UrlPattern::parse(&format!("{origin}/pay")).unwrap(),
            headers: vec![(
                HeaderName::from_static("authorization"),
                HeaderValue::from_str(&format!("Bearer {HTTP_SECRET}")).unwrap(),
            )],
        });
        let input = json!({
            "method": "POST", "url": format!("{origin}/pay"),
            "json": {"amount_cents": 1200, "currency": "EUR"},
            "headers": {"Authorization": "Bearer guessed"}, "secrets": ["payment_key"],
        });
        let Some(report) = http_attempt(input, http).await else {
            return;
        };
        let out = http_output(&report);
        assert_eq!(
            out["body"],
            json!({
                "paid": true,
                "received": {"amount_cents": 1200, "currency": "EUR"},
                "content_type": "application/json",
            }),
            "the host's header replaced the task's, and the JSON body arrived"
        );
        let requests = seen.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1, Some(format!("Bearer {HTTP_SECRET}")));
        assert_eq!(requests[0].2, br#"{"amount_cents":1200,"currency":"EUR"}"#);
        // What the task could see: no environment, no secret.
        assert_eq!(
            out["seen"],
            json!({"environment": {}, "secrets": {"payment_key": null}})
        );
        let everything = format!(
            "{out}{:?}{}{}{:?}",
            report.logs.lines, report.logs.stdout, report.logs.stderr, report.http
        );
        assert!(!everything.contains(HTTP_SECRET), "{everything}");
        assert_eq!(report.http.len(), 1, "{:?}", report.http);
        assert_eq!(
            (report.http[0].method.as_str(), report.http[0].status),
            ("POST", Some(200))
        );
        assert_eq!(report.http[0].sent, requests[0].2.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http_a_url_off_the_allow_list_fails_as_http_refused() {
        let (address, seen) = http_server().await;
        let allowed = format!("http://{address}/orders/A-1");
        let input = json!({"method": "POST", "url": format!("http://{address}/pay"), "json": {"amount_cents": 1}});
        let Some(report) = http_attempt(input, http_policy(&[allowed])).await else {
            return;
        };
        let (code, message, retryable) = http_guest_error(&report);
        assert_eq!((code, retryable), ("http_refused", false), "{message}");
        assert!(message.contains(&format!("http://{address}/pay")), "{message}");
        assert!(!report.outcome.is_retryable());
        assert_eq!(report.http.len(), 1, "{:?}", report.http);
        let refused = report.http[0].refused.as_deref().expect("the refusal is recorded");
        assert!(refused.contains("is not on the step's http.allow list"), "{refused}");
        assert_eq!(report.http[0].status, None);
        assert!(seen.requests.lock().unwrap().is_empty(), "the server was reached");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http_a_500_with_raise_for_status_is_a_retryable_http_status() {
        let (address, seen) = http_server().await;
        let origin = format!("http://{address}");
        let input = json!({ "url": format!("{origin}/broken") });
        let Some(report) = http_attempt(input, http_policy(&[origin])).await else {
            return;
        };
        assert_eq!(
            http_guest_error(&report),
            ("http_status", "the server answered 500: database on fire", true)
        );
        assert!(report.outcome.is_retryable());
        assert_eq!(report.http[0].status, Some(500));
        assert_eq!(seen.requests.lock().unwrap().len(), 1);
    }

    #[test]
    fn http_sdk_unit_tests_pass_against_the_python_task_world() {
        let Some(venv) = python_guest::toolchain() else {
            return;
        };
        let bindings = tempfile::tempdir().expect("a scratch directory");
        let made = python_guest::outside::run(
            Command::new(python_guest::sdk_dir().join("build.sh"))
                .arg("--bindings")
                .arg(bindings.path())
                .env("WEFT_PY_VENV", &venv),
        );
        if let Err(output) = made {
            panic!("build.sh --bindings failed: {output}");
        }
        assert!(
            bindings.path().join("wit_world/imports/outgoing_handler.py").is_file(),
            "the python-task world has no wasi:http bindings"
        );
        if let Err(output) = super::sdk_unit_tests(&venv, bindings.path()) {
            panic!("the SDK's unit tests failed against the python-task bindings: {output}");
        }
    }
}
