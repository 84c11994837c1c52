//! JavaScript and TypeScript tasks built with the SDK in `guest-sdk/js`:
//! the examples of `example-tasks/js/` in the real sandbox (output, logs,
//! kv, context), the limits a JS guest must not escape (spin, endless
//! allocation, thrown errors), `fetch` refused and allowed (against a
//! real server on 127.0.0.1: JSON both ways, the host's injected header,
//! a 500, redirects followed by the SDK's `fetch` as the Fetch standard
//! says), `weft task run` on a built task, and the project
//! template of `weft task new --lang js` as generated.
//!
//! The build tools come from npm into `target/` (`common/js_guest.rs`);
//! without Node.js or the registry every test here skips loudly, or fails
//! under `CI=true`. Each component embeds a JS engine (about 12 MB), so it
//! is built and compiled once per test binary and shared.

mod common;
#[path = "common/js_guest.rs"]
mod js_guest;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft::Outcome;
use weft::sandbox::{AttemptReport, KvWrite, Level, Limits, MemoryKv, Module};

use common::sandbox;

/// Fuel that no test attempt exhausts, to isolate the other limits.
const UNLIMITED_FUEL: u64 = u64::MAX / 2;

/// The example `name` built and loaded into the shared sandbox, once per
/// binary; `None` when the JS toolchain cannot be had (reported as skipped).
fn module(name: &str) -> Option<Arc<Module>> {
    // Held while compiling, so parallel tests compile each component once.
    static LOADED: Mutex<Option<HashMap<String, Arc<Module>>>> = Mutex::new(None);
    let path = js_guest::component(name)?;
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(module) = loaded.get(name) {
        return Some(module.clone());
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let started = Instant::now();
    let module = sandbox()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("the sandbox refuses the JS task {name} ({}): {e}", path.display()));
    eprintln!(
        "compiled the JS task {name} ({:.1} MiB) in {:.1} s",
        bytes.len() as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64()
    );
    loaded.insert(name.into(), module.clone());
    Some(module)
}

/// Runs one attempt of the JS example `name`; `None` when skipped.
async fn run(name: &str, input: Value, limits: Limits, kv: Arc<MemoryKv>, attempt: u32) -> Option<AttemptReport> {
    let module = module(name)?;
    Some(common::run_module(sandbox(), &module, &input.to_string(), limits, kv, attempt).await)
}

/// Runs one attempt with default limits and an empty kv.
async fn run_default(name: &str, input: Value) -> Option<AttemptReport> {
    run(name, input, Limits::default(), Arc::new(MemoryKv::new()), 1).await
}

/// The output of an `ok` attempt, parsed; panics with the outcome otherwise.
fn output(report: &AttemptReport) -> Value {
    match &report.outcome {
        Outcome::Ok { output } => serde_json::from_str(output).expect("ok output is JSON"),
        other => panic!("expected ok, got {other:?}\nstderr: {}", report.logs.stderr),
    }
}

fn guest_error(code: &str, message: &str, retryable: bool) -> Outcome {
    Outcome::GuestError {
        code: code.into(),
        message: message.into(),
        retryable,
    }
}

#[tokio::test]
async fn hello_greets_and_logs() {
    let Some(report) = run_default("hello", json!({"name": "Ada"})).await else {
        return;
    };
    assert_eq!(output(&report), json!({"greeting": "Hello, Ada!"}));
    let lines: Vec<(Level, &str)> = report
        .logs
        .lines
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(lines, [(Level::Info, "greeting Ada")]);
    assert!(report.kv_writes.is_empty(), "{:?}", report.kv_writes);

    let report = run_default("hello", json!({})).await.unwrap();
    assert_eq!(output(&report), json!({"greeting": "Hello, world!"}));
    let report = run_default("hello", json!({"name": ""})).await.unwrap();
    assert_eq!(
        report.outcome,
        guest_error("invalid_input", "name must not be empty", false)
    );
}

#[tokio::test]
async fn the_typescript_order_task_ships_like_the_rust_one_and_remembers_it() {
    let address = json!({"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "Berlin", "postal_code": "10115", "country": "DE"});
    let input = json!({"order_id": "A-1", "reservation_id": "res_A-1", "ship_to": address});
    let kv = Arc::new(MemoryKv::new());
    let Some(first) = run("notify_warehouse", input.clone(), Limits::default(), kv.clone(), 1).await else {
        return;
    };
    // What the Rust example answers (tests/sandbox/order_tasks.rs).
    let shipment = json!({"shipment_id": "shp_A-1", "order_id": "A-1", "warehouse": "FRA-1", "status": "queued"});
    assert_eq!(output(&first), shipment);
    assert_eq!(first.logs.lines.len(), 1, "{:?}", first.logs.lines);
    assert_eq!(first.logs.lines[0].message, "reservation res_A-1 goes out from FRA-1");
    let [
        KvWrite {
            key,
            value: Some(value),
        },
    ] = first.kv_writes.as_slice()
    else {
        panic!("expected one kv write, got {:?}", first.kv_writes);
    };
    assert_eq!(key, "shipment/A-1");
    assert_eq!(serde_json::from_slice::<Value>(value).unwrap(), shipment);

    // Once committed, a later attempt (a retry, the 2nd) answers from kv
    // even if the address moved to another warehouse's country.
    kv.apply("acme", &first.kv_writes);
    let mut moved = input.clone();
    moved["ship_to"]["country"] = json!("US");
    let second = run("notify_warehouse", moved, Limits::default(), kv.clone(), 2)
        .await
        .unwrap();
    assert_eq!(output(&second), shipment);
    assert_eq!(
        second.logs.lines[0].message,
        "order A-1 already went to FRA-1 (attempt 2)"
    );

    let mut blank = input;
    blank["ship_to"]["city"] = json!("  ");
    let report = run_default("notify_warehouse", blank).await.unwrap();
    assert_eq!(
        report.outcome,
        guest_error("invalid_address", "ship_to.city is empty", false)
    );
    let report = run_default("notify_warehouse", json!({"order_id": "A-2"}))
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        guest_error(
            "invalid_input",
            "the input: missing string field `reservation_id`",
            false
        )
    );
}

#[tokio::test]
async fn context_and_kv_reach_the_guest() {
    let kv = Arc::new(MemoryKv::new());
    kv.apply(
        "acme",
        &[KvWrite {
            key: "echo/count".into(),
            value: Some(b"41".to_vec()),
        }],
    );
    let Some(report) = run("misbehave", json!({"mode": "echo", "n": 7}), Limits::default(), kv, 3).await else {
        return;
    };
    let out = output(&report);
    assert_eq!(out["input"], json!({"mode": "echo", "n": 7}));
    assert_eq!(
        out["context"],
        json!({"tenant": "acme", "workflow": "tests", "runId": "run-1", "stepId": "step", "attempt": 3, "itemIndex": null})
    );
    // The guest read the seeded 41 and its own buffered write.
    assert_eq!(out["count"], 42);
    assert_eq!(report.kv_writes.len(), 1);
    assert_eq!(report.kv_writes[0].value.as_deref(), Some(&b"42"[..]));
    assert_eq!(report.logs.lines[0].message, r#"echo {"before":41}"#);
    assert_eq!(report.logs.lines[0].level, Level::Debug);
}

#[tokio::test]
async fn spinning_forever_times_out() {
    let limits = Limits {
        fuel: UNLIMITED_FUEL,
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let kv = Arc::new(MemoryKv::new());
    let Some(report) = run("misbehave", json!({"mode": "spin"}), limits, kv, 1).await else {
        return;
    };
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(report.duration >= Duration::from_millis(500), "{:?}", report.duration);
    assert!(report.duration < Duration::from_secs(5), "{:?}", report.duration);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn allocating_without_end_hits_the_memory_limit() {
    let limits = Limits {
        fuel: UNLIMITED_FUEL,
        ..Limits::default()
    };
    let kv = Arc::new(MemoryKv::new());
    let Some(report) = run("misbehave", json!({"mode": "allocate"}), limits, kv, 1).await else {
        return;
    };
    assert_eq!(report.outcome, Outcome::MemoryLimit, "stderr: {}", report.logs.stderr);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_thrown_task_error_keeps_its_code_and_retryable_flag() {
    for retryable in [true, false] {
        let input = json!({"mode": "task_error", "code": "card_declined", "message": "the bank said no", "retryable": retryable});
        let Some(report) = run_default("misbehave", input).await else {
            return;
        };
        assert_eq!(
            report.outcome,
            guest_error("card_declined", "the bank said no", retryable)
        );
        assert_eq!(report.outcome.is_retryable(), retryable);
        assert!(report.kv_writes.is_empty());
    }
}

#[tokio::test]
async fn anything_else_thrown_is_a_non_retryable_exception() {
    let Some(report) = run_default("misbehave", json!({"mode": "throw", "message": "the disk is lava"})).await else {
        return;
    };
    assert_eq!(report.outcome, guest_error("exception", "the disk is lava", false));

    let thrown = json!({"mode": "throw_value", "value": {"not": "an error"}});
    let report = run_default("misbehave", thrown).await.unwrap();
    assert_eq!(report.outcome, guest_error("exception", r#"{"not":"an error"}"#, false));

    // A TypeError from a bug names its kind.
    let report = run_default("misbehave", Value::Null).await.unwrap();
    let Outcome::GuestError {
        code,
        message,
        retryable,
    } = &report.outcome
    else {
        panic!("{:?}", report.outcome);
    };
    assert_eq!((code.as_str(), *retryable), ("exception", false));
    assert!(message.starts_with("TypeError: "), "{message}");
}

#[tokio::test]
async fn fetch_goes_through_the_hosts_http_policy() {
    // The shared sandbox's steps have an empty allow-list: the request is
    // refused by the host, recorded, and the task's fetch rejects.
    let url = "http://payments.example.com/v1/charges";
    let Some(report) = run_default("misbehave", json!({"mode": "fetch", "url": url})).await else {
        return;
    };
    assert_eq!(
        report.outcome,
        guest_error(
            "exception",
            "TypeError: NetworkError when attempting to fetch resource",
            false
        )
    );
    assert_eq!(report.http.len(), 1, "{:?}", report.http);
    assert_eq!(report.http[0].url, url);
    let refused = report.http[0].refused.as_deref().expect("the request is refused");
    assert!(refused.contains("http.allow"), "{refused}");
}

/// Asserts the sandbox still serves a JS task after a misbehaving one.
async fn assert_host_still_serves() {
    let report = run_default("hello", json!({"name": "again"})).await.unwrap();
    assert_eq!(output(&report), json!({"greeting": "Hello, again!"}));
}

#[test]
fn weft_task_run_runs_a_js_task() {
    let Some(hello) = js_guest::component("hello") else {
        return;
    };
    let (code, stdout, stderr) = common::weft_task_run(&hello, r#"{"name": "Ada"}"#);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("outcome   ok\noutput    {\"greeting\":\"Hello, Ada!\"}\n"),
        "{stdout}"
    );
    assert!(stdout.contains("greeting Ada"), "{stdout}");
}

#[test]
fn the_template_builds_and_runs_as_generated() {
    let Some(sdk) = js_guest::sdk() else {
        return;
    };
    let name = "ship_parcel";
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("js-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Made by the real `weft task new`, as a user would.
    let made = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["task", "new", "--lang", "js", name, "--dir"])
        .arg(&dir)
        .output()
        .expect("running weft task new");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(made.status.success(), "{said}{}", String::from_utf8_lossy(&made.stderr));
    assert!(said.contains(&format!("build.mjs task.js {name}.wasm")), "{said}");
    for file in ["task.js", "package.json", "README.md"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("no {file}: {e}"));
        assert!(!text.contains("{{"), "{file} keeps a placeholder:\n{text}");
    }

    let component = dir.join(format!("{name}.wasm"));
    sdk.build(&dir.join("task.js"), &component)
        .unwrap_or_else(|why| panic!("the template as generated does not build: {why}"));
    let (code, stdout, stderr) = common::weft_task_run(&component, r#"{"parcel": 7}"#);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let expected = format!(r#"output    {{"task":"{name}","received":{{"parcel":7}}}}"#);
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains(&format!("{name} runs, attempt 1")), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

// Outbound `fetch` that the step allows, against a real server on
// 127.0.0.1:0 (as `tests/sandbox/http.rs` does for the Rust guest), run by
// `example-tasks/js/http_fetch` in a sandbox that permits the private
// address the allow-list names.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use weft::sandbox::http::{AllowList, HttpLimits, HttpPolicy, InjectedHeaders, UrlPattern};
use weft::sandbox::{Sandbox, SandboxConfig};

/// The credential the host adds to requests; the task never holds it.
const FETCH_SECRET: &str = "sk_live_js_never_sees_this_9c1f";

/// One request as the test server received it.
#[derive(Debug, Clone, PartialEq)]
struct FetchSeen {
    method: String,
    path: String,
    /// Every `Authorization` value it carried.
    authorization: Vec<String>,
    body: String,
}

type FetchLog = Arc<Mutex<Vec<FetchSeen>>>;

/// A server recording every request: `/orders/7` answers JSON, `/charges`
/// answers what was charged (201), `/broken` a 500 with a JSON body,
/// `/moved` redirects to `/orders/7`, `/away` to `/orders/7` on the same
/// server by the name `localhost`, `/see-other` (a `POST`) answers 303 to
/// `/orders/7`, `/temporary` (a `POST`) 307 to `/charges`, and `/loop`
/// redirects to itself.
async fn fetch_server() -> (std::net::SocketAddr, FetchLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = FetchState {
        log: FetchLog::default(),
        away: format!("http://localhost:{}/orders/7", address.port()),
    };
    let log = state.log.clone();
    let app = axum::Router::new().fallback(fetch_answer).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, log)
}

#[derive(Clone)]
struct FetchState {
    log: FetchLog,
    /// Where `/away` redirects to.
    away: String,
}

/// Records the request, then answers as its route says.
async fn fetch_answer(
    State(state): State<FetchState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {FETCH_SECRET}"));
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let route = (method.to_string(), uri.path().to_string());
    state.log.lock().unwrap().push(FetchSeen {
        method: route.0.clone(),
        path: route.1.clone(),
        authorization: headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect(),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let redirect = |status: StatusCode, to: &str| (status, [(header::LOCATION, to.to_string())]).into_response();
    match (route.0.as_str(), route.1.as_str()) {
        ("GET", "/orders/7") => {
            axum::Json(json!({"id": 7, "items": ["tea", "scones"], "total_cents": 1200})).into_response()
        }
        // Like a real gateway, it does not echo the key back.
        ("POST", "/charges") => (
            StatusCode::CREATED,
            axum::Json(json!({"charged_cents": asked["amount_cents"], "authorized": authorized})),
        )
            .into_response(),
        ("GET", "/broken") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "the ledger is on fire"})),
        )
            .into_response(),
        ("GET", "/moved") => redirect(StatusCode::FOUND, "/orders/7"),
        ("GET", "/away") => redirect(StatusCode::FOUND, &state.away),
        ("POST", "/see-other") => redirect(StatusCode::SEE_OTHER, "/orders/7"),
        ("POST", "/temporary") => redirect(StatusCode::TEMPORARY_REDIRECT, "/charges"),
        ("GET", "/loop") => redirect(StatusCode::FOUND, "/loop"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A sandbox that permits private destinations an allow-list names, as
/// `weft serve --allow-private-http` makes.
fn fetch_sandbox() -> &'static Sandbox {
    static SANDBOX: std::sync::OnceLock<Sandbox> = std::sync::OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            allow_private_http: true,
            ..SandboxConfig::default()
        })
        .unwrap()
    })
}

/// `example-tasks/js/http_fetch` loaded into [`fetch_sandbox`], once per
/// binary; `None` when the JS toolchain cannot be had.
fn fetch_module() -> Option<Arc<Module>> {
    static LOADED: Mutex<Option<Arc<Module>>> = Mutex::new(None);
    let path = js_guest::component("http_fetch")?;
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(module) = &*loaded {
        return Some(module.clone());
    }
    let started = Instant::now();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let module = fetch_sandbox()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("the sandbox refuses {}: {e}", path.display()));
    eprintln!(
        "compiled the JS task http_fetch in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    *loaded = Some(module.clone());
    Some(module)
}

/// A policy allowing `origin`, adding the secret `Authorization` to its
/// `/charges`.
fn fetch_policy(origin: &str) -> HttpPolicy {
    HttpPolicy {
        allow: AllowList::parse(&[origin.to_string()]).unwrap(),
        headers: vec![InjectedHeaders {
            on: UrlPattern::parse(&format!("{origin}/charges")).unwrap(),
            headers: vec![(
                HeaderName::from_static("authorization"),
                HeaderValue::from_str(&format!("Bearer {FETCH_SECRET}")).unwrap(),
            )],
        }],
        limits: HttpLimits::default(),
    }
}

/// Runs `http_fetch` with `{"fetches": fetches}` under `http`; `None`
/// when skipped.
async fn fetch_attempt(fetches: Value, http: HttpPolicy) -> Option<AttemptReport> {
    let module = fetch_module()?;
    let input = json!({ "fetches": fetches }).to_string();
    let report = common::run_with_http(fetch_sandbox(), &module, &input, http, FETCH_SECRET).await;
    Some(report)
}

/// Everything of a report the task or its readers see, as text.
fn fetch_everything(report: &AttemptReport) -> String {
    format!("{:?}{:?}{:?}", report.outcome, report.logs, report.http)
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_gets_and_posts_json_with_the_hosts_header() {
    let (address, seen) = fetch_server().await;
    let origin = format!("http://{address}");
    let fetches = json!([
        {"url": format!("{origin}/orders/7")},
        {"url": format!("{origin}/charges"), "method": "POST", "json": {"amount_cents": 1200},
         "headers": {"authorization": "Bearer guessed"}},
    ]);
    let Some(report) = fetch_attempt(fetches, fetch_policy(&origin)).await else {
        return;
    };
    let out = output(&report);
    let [got, posted] = out["answers"].as_array().unwrap().as_slice() else {
        panic!("{out}");
    };
    assert_eq!(
        (&got["status"], &got["ok"], &got["contentType"]),
        (&json!(200), &json!(true), &json!("application/json")),
        "{got}"
    );
    assert_eq!(
        got["body"],
        json!({"id": 7, "items": ["tea", "scones"], "total_cents": 1200})
    );
    assert_eq!(
        (&posted["status"], &posted["ok"]),
        (&json!(201), &json!(true)),
        "{posted}"
    );
    assert_eq!(
        posted["body"],
        json!({"charged_cents": 1200, "authorized": true}),
        "the host's header replaced the task's guess"
    );

    let body = r#"{"amount_cents":1200}"#;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            FetchSeen {
                method: "GET".into(),
                path: "/orders/7".into(),
                authorization: vec![],
                body: String::new(),
            },
            FetchSeen {
                method: "POST".into(),
                path: "/charges".into(),
                authorization: vec![format!("Bearer {FETCH_SECRET}")],
                body: body.into(),
            },
        ]
    );
    assert!(
        !fetch_everything(&report).contains(FETCH_SECRET),
        "{}",
        fetch_everything(&report)
    );

    let [get, post] = report.http.as_slice() else {
        panic!("{:?}", report.http);
    };
    assert_eq!((get.method.as_str(), get.status), ("GET", Some(200)), "{get:?}");
    assert_eq!(get.url, format!("{origin}/orders/7"));
    let got_bytes = serde_json::to_string(&got["body"]).unwrap().len() as u64;
    assert_eq!((get.sent, get.received), (0, got_bytes), "{get:?}");
    assert_eq!((post.method.as_str(), post.status), ("POST", Some(201)), "{post:?}");
    assert_eq!(post.url, format!("{origin}/charges"));
    assert_eq!(post.sent, body.len() as u64, "{post:?}");
    assert!(post.received > 0, "{post:?}");
    for call in &report.http {
        assert!(call.refused.is_none() && call.error.is_none(), "{call:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_hands_a_server_error_to_the_task_as_a_response() {
    let (address, seen) = fetch_server().await;
    let origin = format!("http://{address}");
    let fetches = json!([{"url": format!("{origin}/broken")}]);
    let Some(report) = fetch_attempt(fetches, fetch_policy(&origin)).await else {
        return;
    };
    // The attempt succeeds: the 500 is the task's to judge, not a rejection.
    let out = output(&report);
    let answer = &out["answers"][0];
    assert_eq!(
        (&answer["status"], &answer["ok"]),
        (&json!(500), &json!(false)),
        "{answer}"
    );
    assert_eq!(answer["statusText"], "Internal Server Error", "{answer}");
    assert_eq!(answer["body"], json!({"error": "the ledger is on fire"}));
    assert_eq!(seen.lock().unwrap().len(), 1);
    let [call] = report.http.as_slice() else {
        panic!("{:?}", report.http);
    };
    assert_eq!(call.status, Some(500), "{call:?}");
    assert!(call.refused.is_none() && call.error.is_none(), "{call:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_follows_redirects_as_the_fetch_standard_says() {
    let (address, seen) = fetch_server().await;
    let origin = format!("http://{address}");
    let moved = format!("{origin}/moved");
    let order = format!("{origin}/orders/7");
    // The engine's fetch does not follow, nor does the host
    // (docs/architecture.md, "Redirects"): weft-sdk's fetch does.
    let fetches = json!([
        {"url": moved},
        {"url": moved, "redirect": "manual"},
        {"url": moved, "redirect": "error", "catch": true},
        {"url": format!("{origin}/see-other"), "method": "POST", "json": {"amount_cents": 1200}},
        {"url": format!("{origin}/temporary"), "method": "POST", "json": {"amount_cents": 700}},
        {"url": format!("{origin}/loop"), "catch": true},
    ]);
    let Some(report) = fetch_attempt(fetches, fetch_policy(&origin)).await else {
        return;
    };
    let out = output(&report);
    let [followed, manual, error, see_other, temporary, looped] = out["answers"].as_array().unwrap().as_slice() else {
        panic!("{out}");
    };
    assert_eq!(
        (
            &followed["status"],
            &followed["redirected"],
            &followed["url"],
            &followed["body"]["id"]
        ),
        (&json!(200), &json!(true), &json!(order), &json!(7)),
        "{followed}"
    );
    assert_eq!(
        (&manual["status"], &manual["redirected"], &manual["location"]),
        (&json!(302), &json!(false), &json!("/orders/7")),
        "{manual}"
    );
    let rejected = error["rejected"].as_str().unwrap_or_default();
    assert!(
        rejected.starts_with("TypeError") && rejected.contains(r#"redirect is "error""#),
        "{error}"
    );
    assert_eq!(
        (&see_other["status"], &see_other["url"]),
        (&json!(200), &json!(order)),
        "{see_other}"
    );
    // A 307 sends the same POST and body again (and the host adds its
    // header to /charges).
    assert_eq!(
        (&temporary["status"], &temporary["body"]),
        (&json!(201), &json!({"charged_cents": 700, "authorized": true})),
        "{temporary}"
    );
    let rejected = looped["rejected"].as_str().unwrap_or_default();
    assert!(rejected.contains("more than 20 times"), "{looped}");

    let seen = seen.lock().unwrap();
    let hits: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str(), s.body.as_str()))
        .collect();
    let mut expected = vec![
        ("GET", "/moved", ""),
        ("GET", "/orders/7", ""),
        ("GET", "/moved", ""),
        ("GET", "/moved", ""),
        // A 303 after a POST goes on as a GET without the body.
        ("POST", "/see-other", r#"{"amount_cents":1200}"#),
        ("GET", "/orders/7", ""),
        ("POST", "/temporary", r#"{"amount_cents":700}"#),
        ("POST", "/charges", r#"{"amount_cents":700}"#),
    ];
    // The first request and 20 redirects followed, then it gives up.
    expected.extend([("GET", "/loop", ""); 21]);
    assert_eq!(hits, expected);
    assert_eq!(report.http.len(), expected.len(), "each hop a request the host checked");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_follows_a_redirect_only_where_the_list_allows_and_drops_its_authorization_across_origins() {
    let (address, seen) = fetch_server().await;
    let origin = format!("http://{address}");
    let elsewhere = format!("http://localhost:{}", address.port());
    let own = json!({"authorization": "Bearer the-tasks-own"});
    let fetches = json!([
        {"url": format!("{origin}/away"), "headers": own, "catch": true},
    ]);
    // Only 127.0.0.1: the hop to localhost is refused by the host.
    let Some(report) = fetch_attempt(fetches.clone(), fetch_policy(&origin)).await else {
        return;
    };
    let out = output(&report);
    assert_eq!(
        out["answers"][0],
        json!({"rejected": "TypeError: NetworkError when attempting to fetch resource"})
    );
    let [went, refused] = report.http.as_slice() else {
        panic!("{:?}", report.http);
    };
    assert_eq!(went.status, Some(302));
    let away = format!("{elsewhere}/orders/7");
    assert_eq!((refused.url.as_str(), refused.status), (away.as_str(), None));
    let why = refused.refused.as_deref().expect("the hop out is refused");
    assert!(why.contains("is not on the step's http.allow list"), "{why}");
    let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/away"], "the refused hop never reached the server");

    // Both allowed: followed, and the task's own Authorization header is
    // not carried to the other origin.
    seen.lock().unwrap().clear();
    let mut both = fetch_policy(&origin);
    both.allow = AllowList::parse(&[origin.clone(), elsewhere.clone()]).unwrap();
    let report = fetch_attempt(fetches, both).await.expect("loaded above");
    let out = output(&report);
    let answer = &out["answers"][0];
    assert_eq!(
        (&answer["status"], &answer["url"]),
        (&json!(200), &json!(away)),
        "{answer}"
    );
    let seen = seen.lock().unwrap();
    let carried: Vec<(&str, &[String])> = seen
        .iter()
        .map(|s| (s.path.as_str(), s.authorization.as_slice()))
        .collect();
    assert_eq!(
        carried,
        [
            ("/away", &["Bearer the-tasks-own".to_string()][..]),
            ("/orders/7", &[][..])
        ]
    );
}
