//! Outbound HTTP from real guests to real servers on 127.0.0.1:0: what is
//! allowed goes through with the host's secret header, everything else is
//! refused with a reason, and every cap holds — requests, bytes each way,
//! the attempt's deadline — without the host buffering what it streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use weft::Outcome;
use weft::sandbox::http::{AllowList, HttpLimits, HttpPolicy, InjectedHeaders, UrlPattern};
use weft::sandbox::redact::Redactor;
use weft::sandbox::{Attempt, AttemptReport, Limits, MemoryKv, Sandbox, SandboxConfig};

use crate::common::{context, guest_bytes};

const SECRET: &str = "sk_live_do_not_leak_4e7a";

/// What the test server saw.
#[derive(Default)]
struct Seen {
    authorization: Mutex<Vec<Option<String>>>,
}

/// A server with one route per behaviour under test.
async fn server() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/pay", post(pay))
        .route("/ok", get(|| async { "fine" }))
        .route("/redirect-in", get(|| async { redirect("/ok") }))
        .route("/hang", get(std::future::pending::<&'static str>))
        .route("/endless", get(|| async { endless() }))
        .route("/upload", post(swallow))
        .route("/big", get(|| async { vec![b'z'; 4 << 20] }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

async fn pay(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    assert_eq!(&body[..], br#"{"amount_cents":1200}"#);
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    let paid = auth.as_deref() == Some(&format!("Bearer {SECRET}"));
    seen.authorization.lock().unwrap().push(auth);
    // Like a real gateway, it does not echo the key back.
    axum::Json(json!({ "paid": paid }))
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

fn endless() -> Body {
    let chunk = Bytes::from(vec![b'e'; 64 << 10]);
    Body::from_stream(futures_util::stream::repeat_with(move || {
        Ok::<_, Infallible>(chunk.clone())
    }))
}

async fn swallow(body: Body) -> StatusCode {
    let mut body = body.into_data_stream();
    while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {}
    StatusCode::NO_CONTENT
}

/// A sandbox whose server setting permits private destinations an
/// allow-list names, as `weft serve --allow-private-http` makes.
fn private_sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            allow_private_http: true,
            ..SandboxConfig::default()
        })
        .unwrap()
    })
}

fn policy(allow: &[String], limits: HttpLimits) -> HttpPolicy {
    HttpPolicy {
        allow: AllowList::parse(allow).unwrap(),
        headers: Vec::new(),
        limits,
    }
}

/// Runs `task` with `input` under `http` in `sandbox`.
async fn attempt(sandbox: &Sandbox, task: &str, input: Value, http: HttpPolicy, limits: Limits) -> AttemptReport {
    attempt_given(sandbox, task, input, http, limits, HashMap::new()).await
}

/// As [`attempt`], with `given` readable through the `secrets` import.
async fn attempt_given(
    sandbox: &Sandbox,
    task: &str,
    input: Value,
    http: HttpPolicy,
    limits: Limits,
    given: HashMap<String, String>,
) -> AttemptReport {
    let module = sandbox.load(&guest_bytes(task)).unwrap();
    let input = input.to_string();
    let secrets: Vec<&str> = vec![SECRET];
    sandbox
        .run(
            &module,
            Attempt {
                input: &input,
                limits,
                context: context(1),
                kv: Arc::new(MemoryKv::new()),
                http,
                secrets: Arc::new(given),
                redact: Redactor::new(secrets),
            },
        )
        .await
        .unwrap()
}

fn output(report: &AttemptReport) -> Value {
    match &report.outcome {
        Outcome::Ok { output } => serde_json::from_str(output).unwrap(),
        other => panic!("the attempt did not succeed: {other:?}\n{:#?}", report.logs),
    }
}

fn error_code(report: &AttemptReport) -> &str {
    match &report.outcome {
        Outcome::GuestError { code, .. } => code,
        other => panic!("expected a task error, got {other:?}\n{:#?}", report.logs),
    }
}

fn log_text(report: &AttemptReport) -> String {
    let lines: Vec<&str> = report.logs.lines.iter().map(|l| l.message.as_str()).collect();
    format!("{}\n{}\n{}", lines.join("\n"), report.logs.stdout, report.logs.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_call_carries_the_secret_header_the_task_never_sees() {
    let (address, seen) = server().await;
    let origin = format!("http://{address}");
    let mut http = policy(std::slice::from_ref(&origin), HttpLimits::default());
    http.headers.push(InjectedHeaders {
        on: UrlPattern::parse(&format!("{origin}/pay")).unwrap(),
        headers: vec![(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&format!("Bearer {SECRET}")).unwrap(),
        )],
    });
    let input = json!({
        "method": "POST", "url": format!("{origin}/pay"), "json": {"amount_cents": 1200},
        "headers": {"authorization": "Bearer guessed"}, "secrets": ["payment_key"],
    });
    let report = attempt(private_sandbox(), "http_fetch", input, http, Limits::default()).await;
    let out = output(&report);

    assert_eq!(out["status"], 200);
    assert_eq!(
        out["body"],
        json!({"paid": true}),
        "the host's header replaced the task's"
    );
    assert_eq!(
        *seen.authorization.lock().unwrap(),
        vec![Some(format!("Bearer {SECRET}"))]
    );
    // Everything the task could see: no environment, no secret.
    assert_eq!(
        out["seen"],
        json!({"environment": {}, "secrets": {"payment_key": null}})
    );
    let everything = format!("{out}{}{:?}", log_text(&report), report.http);
    assert!(!everything.contains(SECRET), "{everything}");

    let call = &report.http[0];
    assert_eq!((call.method.as_str(), call.status), ("POST", Some(200)));
    assert_eq!(call.url, format!("{origin}/pay"));
    assert_eq!(call.sent, r#"{"amount_cents":1200}"#.len() as u64);
    assert!(call.refused.is_none() && call.error.is_none(), "{call:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_not_on_the_list_is_refused_with_a_reason() {
    let (address, _) = server().await;
    let http = policy(&[format!("http://{address}/pay")], HttpLimits::default());
    let input = json!({"url": format!("http://{address}/ok")});
    let report = attempt(private_sandbox(), "http_fetch", input, http, Limits::default()).await;

    assert_eq!(error_code(&report), "http_refused");
    let refused = report.http[0].refused.as_deref().unwrap();
    assert!(refused.contains("is not on the step's http.allow list"), "{refused}");
    assert!(log_text(&report).contains("http: refused GET"), "{}", log_text(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_only_inside_the_list() {
    let (address, _) = server().await;
    let origin = format!("http://{address}");
    let http = policy(std::slice::from_ref(&origin), HttpLimits::default());
    let inside = json!({"url": format!("{origin}/redirect-in")});
    let report = attempt(private_sandbox(), "http_fetch", inside, http.clone(), Limits::default()).await;
    assert_eq!(output(&report)["body"], "fine");
    assert_eq!(report.http.len(), 2);

    // The same server under another name is not on the list.
    let (other, _) = server().await;
    let app_redirecting_out = format!("http://localhost:{}/ok", other.port());
    let router = Router::new().route("/", get(move || std::future::ready(redirect(&app_redirecting_out))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let out_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let http = policy(&[format!("http://{out_address}")], HttpLimits::default());
    let report = attempt(
        private_sandbox(),
        "http_fetch",
        json!({"url": format!("http://{out_address}/")}),
        http,
        Limits::default(),
    )
    .await;
    assert_eq!(error_code(&report), "http_refused");
    assert_eq!(report.http[0].status, Some(302));
    assert!(
        report.http[1].refused.as_deref().unwrap().contains("localhost"),
        "{:?}",
        report.http
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_needs_the_server_setting_and_the_address_named() {
    let (address, _) = server().await;
    let input = json!({"url": format!("http://{address}/ok")});

    // Named, but the server does not permit private destinations.
    let named = policy(&[format!("http://{address}")], HttpLimits::default());
    let report = attempt(
        crate::common::sandbox(),
        "http_fetch",
        input.clone(),
        named,
        Limits::default(),
    )
    .await;
    assert_eq!(error_code(&report), "http_refused");
    assert!(
        report.http[0].refused.as_deref().unwrap().contains("loopback"),
        "{:?}",
        report.http
    );

    // Permitted, but reached by a name: what `localhost` resolves to is not named.
    let by_name = policy(&[format!("http://localhost:{}", address.port())], HttpLimits::default());
    let input = json!({"url": format!("http://localhost:{}/ok", address.port())});
    let report = attempt(private_sandbox(), "http_fetch", input, by_name, Limits::default()).await;
    assert_eq!(error_code(&report), "http_refused");
    assert!(
        report.http[0].refused.as_deref().unwrap().contains("loopback"),
        "{:?}",
        report.http
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_is_cut_off_by_the_attempt_deadline() {
    let (address, _) = server().await;
    let http = policy(&[format!("http://{address}")], HttpLimits::default());
    let timeout = Duration::from_millis(800);
    let limits = Limits {
        timeout,
        ..Limits::default()
    };
    let input = json!({"url": format!("http://{address}/hang")});
    let report = attempt(private_sandbox(), "http_fetch", input, http, limits).await;

    assert_eq!(report.outcome, Outcome::Timeout);
    println!(
        "a hanging server: the attempt ended after {:?} (deadline {timeout:?})",
        report.duration
    );
    assert!(
        report.duration < timeout + Duration::from_millis(100),
        "{:?}",
        report.duration
    );
    assert_eq!(report.http.len(), 1);
}

/// The resident set of this process, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_answer_is_cut_at_the_byte_cap_without_host_memory_growth() {
    let (address, _) = server().await;
    let cap = 64u64 << 20;
    let limits = HttpLimits {
        received: cap,
        ..HttpLimits::default()
    };
    let http = policy(&[format!("http://{address}")], limits);
    let input = json!({"mode": "http_drain", "url": format!("http://{address}/endless")});
    let before = resident();
    let report = attempt(private_sandbox(), "misbehave", input, http, Limits::default()).await;
    let grown = resident().saturating_sub(before);

    let out = output(&report);
    assert_eq!(out["error"], "http_limit", "{out}");
    let read = out["read"].as_u64().unwrap();
    assert!(read <= cap && read > cap - (1 << 20), "read {read} of a {cap} cap");
    assert!(
        report.http[0].error.as_deref().unwrap().contains("cut off"),
        "{:?}",
        report.http
    );
    println!(
        "an endless answer: cut at {read} bytes; the host grew by {} KiB",
        grown >> 10
    );
    assert!(grown < 24 << 20, "the host grew by {grown} bytes streaming {read}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_upload_is_cut_at_the_byte_cap() {
    let (address, _) = server().await;
    let cap = 8u64 << 20;
    let limits = HttpLimits {
        sent: cap,
        ..HttpLimits::default()
    };
    let http = policy(&[format!("http://{address}")], limits);
    let input = json!({"mode": "endless_upload", "url": format!("http://{address}/upload")});
    let report = attempt(private_sandbox(), "misbehave", input, http, Limits::default()).await;

    let out = output(&report);
    assert!(out["error"].as_str().unwrap().contains("HttpRequestBodySize"), "{out}");
    assert!(
        report.http[0].error.as_deref().unwrap().contains("cut off"),
        "{:?}",
        report.http
    );
    let sent = report.http[0].sent;
    assert!(
        sent <= cap + 4096 && sent > cap - (1 << 20),
        "sent {sent} of a {cap} cap"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_flood_hits_the_request_cap() {
    let (address, _) = server().await;
    let limits = HttpLimits {
        requests: 7,
        ..HttpLimits::default()
    };
    let http = policy(&[format!("http://{address}")], limits);
    let input = json!({"mode": "http_flood", "url": format!("http://{address}/ok")});
    let report = attempt(private_sandbox(), "misbehave", input, http, Limits::default()).await;

    let out = output(&report);
    assert_eq!(
        (out["made"].as_u64(), out["error"].as_str()),
        (Some(7), Some("http_limit")),
        "{out}"
    );
    assert_eq!(report.http.len(), 8, "seven made and the refused eighth");
    assert!(
        report.http[7].refused.as_deref().unwrap().contains("requests"),
        "{:?}",
        report.http[7]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_is_held_to_its_deadline_and_not_buffered_for() {
    let (address, _) = server().await;
    let http = policy(&[format!("http://{address}")], HttpLimits::default());
    let timeout = Duration::from_millis(1500);
    let limits = Limits {
        timeout,
        ..Limits::default()
    };
    let input = json!({"mode": "slow_reader", "url": format!("http://{address}/big"), "pause_ms": 20});
    let report = attempt(private_sandbox(), "misbehave", input, http, limits).await;

    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(
        report.duration < timeout + Duration::from_millis(100),
        "{:?}",
        report.duration
    );
    // What was handed to the guest is bounded by what it read, a chunk at a
    // time, not by the 4 MiB the server had ready.
    let received = report.http[0].received;
    assert!(received < 2 << 20, "{received} bytes went to a guest that read ~1 KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_the_step_gives_the_task_is_redacted_wherever_the_task_puts_it() {
    let (address, _) = server().await;
    let http = policy(&[format!("http://{address}")], HttpLimits::default());
    let given = HashMap::from([("signing_key".to_string(), SECRET.to_string())]);
    // The task reports what it read, in its output, and its log line
    // carries the URL it was given, which holds the value too.
    let input = json!({"url": format!("http://{address}/ok?key={SECRET}"), "secrets": ["signing_key", "other"]});
    let report = attempt_given(private_sandbox(), "http_fetch", input, http, Limits::default(), given).await;

    let out = output(&report);
    assert_eq!(
        out["seen"]["secrets"],
        json!({"signing_key": "[redacted]", "other": null})
    );
    let everything = format!("{out}{}{:?}", log_text(&report), report.http);
    assert!(!everything.contains(SECRET), "{everything}");
    assert!(log_text(&report).contains("key=[redacted]"), "{}", log_text(&report));
}
