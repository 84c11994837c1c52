//! The web console (`/ui`) in a real headless Chromium against a real
//! `weft serve`: signing in, starting the order workflow and watching its
//! graph go green live, a step's logs, retrying a failed run, every page
//! (each one's screenshot kept in `target/tmp/console-screenshots/`), a
//! viewer who sees no buttons and is refused by the API anyway, and the
//! server admin's pages.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::backend::TestStore;
use super::browser::Browser;
use super::server::{ADMIN, Body, ORDER_TASKS, Server, order};

/// A workflow whose one step fails on its first attempt and has no retry:
/// the run fails, and retrying it succeeds.
const FLAKY_ONCE: &str = "
name: flaky_once
steps:
  - id: wobble
    task: flaky
    input: {fail_times: 1}
    retry: {max_attempts: 1}
";

/// The example order workflow with a signal gate in front, so the test sees
/// the graph before anything has run and then watches it turn green.
fn gated_order() -> (String, Value) {
    let (yaml, input) = order();
    let gate = "steps:\n  - id: go_ahead\n    wait_for: {signal: go, timeout: 10m}\n\n  - id: validate_payment\n    \
                task: validate_payment\n    needs: [go_ahead]\n";
    let gated = yaml.replacen(
        "steps:\n  - id: validate_payment\n    task: validate_payment\n",
        gate,
        1,
    );
    assert_ne!(gated, yaml, "order.yaml changed shape: the gate was not inserted");
    (gated, input)
}

/// Records every status each graph node shows, and marks the page, so a
/// test can tell that it changed live rather than by a reload.
const WATCH: &str = "
    window.__page = 'the same page';
    window.__seen = {};
    const note = () => document.querySelectorAll('g.node').forEach((n) => {
        const seen = (window.__seen[n.dataset.step] ||= []);
        if (seen[seen.length - 1] !== n.dataset.status) seen.push(n.dataset.status);
    });
    note();
    new MutationObserver(note).observe(document.getElementById('main'), {subtree: true, childList: true, attributes: true});
    return true;
";

const ORDER_GREEN: &str = "
    const nodes = [...document.querySelectorAll('g.node')];
    return nodes.length === 6 && nodes.every((n) => n.dataset.step === 'refund_payment' ? n.dataset.status === 'pending' || n.dataset.status === 'skipped' : n.dataset.status === 'succeeded')
        && document.querySelector('.run-head .badge').dataset.status === 'succeeded';
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_an_order_live_retries_a_failure_and_shows_each_role_what_it_may_do() {
    let Some(b) = Browser::start().await else { return };
    let store = TestStore::redb();
    let server = Server::on(&store, &[]);
    let key = server.tenant("shop", json!({})).await;
    let mut tasks = ORDER_TASKS.to_vec();
    tasks.push("flaky");
    server.upload(&key, &tasks).await;
    let (order_yaml, order_input) = gated_order();
    server.push(&key, "order", &order_yaml).await;
    server.push(&key, "flaky_once", FLAKY_ONCE).await;
    let (status, viewer) = server
        .call(
            Some(&key),
            Method::POST,
            "/v1/api-keys",
            Body::Json(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    let viewer_token = viewer["token"].as_str().unwrap().to_string();
    let schedule = json!({"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "workflow": "flaky_once"});
    let (status, body) = server
        .call(
            Some(&key),
            Method::PUT,
            "/v1/schedules/weekday-mornings",
            Body::Json(schedule),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Signing in: the key goes in a header and session storage, never a URL.
    b.client.goto(&format!("{}/ui", server.url)).await.unwrap();
    b.find("#token").await.send_keys(&key).await.unwrap();
    b.shot("01-sign-in").await;
    b.click("#sign-in").await;
    b.find("#start-run").await;
    let url = b.client.current_url().await.unwrap().to_string();
    assert!(url.ends_with("/ui#/runs"), "{url}");
    let kept = b.js("return sessionStorage.getItem('weft.session')", vec![]).await;
    assert!(
        kept.as_str().unwrap().contains(&key),
        "the key is kept in the tab's session storage"
    );

    // Starting the order from the console opens its run, waiting at the gate.
    b.click("#start-run").await;
    b.js(
        "const f = document.querySelector('form.dialog');
         f.workflow.value = 'order';
         f.input.value = JSON.stringify(arguments[0]);
         return true;",
        vec![order_input.clone()],
    )
    .await;
    b.click("form.dialog [data-submit]").await;
    b.find("g.node[data-step='go_ahead'][data-status='waiting']").await;
    let url = b.client.current_url().await.unwrap().to_string();
    let run: u64 = url.rsplit('/').next().unwrap().parse().expect("a run's page");
    assert_eq!(b.all("g.node").await.len(), 6, "every step of the order is drawn");
    let pending = b
        .js(
            "return document.querySelector(\"g.node[data-step='send_confirmation']\").dataset.status",
            vec![],
        )
        .await;
    assert_eq!(pending, "pending");
    b.js(WATCH, vec![]).await;
    b.shot("02-run-waiting").await;

    // Sending the gate's signal from the console; the graph turns green
    // live, on the same page.
    b.click("[data-action='signal']").await;
    b.js(
        "const f = document.querySelector('form.dialog'); f.name.value = 'go'; f.payload.value = '{}'; return true;",
        vec![],
    )
    .await;
    b.click("form.dialog [data-submit]").await;
    b.until("the order's graph turns green", Duration::from_secs(30), ORDER_GREEN)
        .await;
    assert_eq!(b.js("return window.__page", vec![]).await, "the same page", "no reload");
    let seen = b.js("return window.__seen", vec![]).await;
    for step in [
        "validate_payment",
        "reserve_inventory",
        "notify_warehouse",
        "send_confirmation",
    ] {
        let statuses: Vec<&str> = seen[step]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            statuses.first(),
            Some(&"pending"),
            "{step} was drawn before it ran: {seen}"
        );
        assert_eq!(statuses.last(), Some(&"succeeded"), "{step} turned green live: {seen}");
    }
    b.shot("03-run-succeeded").await;

    // A step's logs: what the task logged, in its panel.
    b.click("g.node[data-step='send_confirmation']").await;
    let line = b.find(".logs .lines li").await.text().await.unwrap();
    assert!(
        line.contains("confirmation for order A-1001 sent to ada@example.com"),
        "{line}"
    );
    b.shot("04-step-logs").await;

    // Retrying a failed run from its page: it runs again and succeeds.
    let failed = server.start_run(&key, "flaky_once", json!({})).await;
    assert_eq!(server.wait(&key, failed).await["status"], "failed");
    b.client
        .goto(&format!("{}/ui#/runs/{failed}", server.url))
        .await
        .unwrap();
    b.find(".run-head .badge[data-status='failed']").await;
    b.shot("05-run-failed").await;
    b.click("[data-action='retry']").await;
    b.find(".run-head .badge[data-status='succeeded']").await;
    b.find("g.node[data-step='wobble'][data-status='succeeded']").await;
    assert_eq!(b.all(".panel .attempt").await.len(), 2, "two attempts listed");
    let (_, retried) = server
        .call(Some(&key), Method::GET, &format!("/v1/runs/{failed}"), Body::None)
        .await;
    assert_eq!(retried["status"], "succeeded", "{retried}");

    // Every other page, with something on it.
    let pages = [
        ("#/runs", "06-runs", "#".to_string() + &run.to_string()),
        ("#/workflows", "07-workflows", "flaky_once".into()),
        ("#/workflows/order", "08-workflow", "go_ahead".into()),
        ("#/modules", "09-modules", "validate_payment".into()),
        ("#/schedules", "10-schedules", "weekday-mornings".into()),
        ("#/approvals", "11-approvals", "Nothing waits".into()),
        ("#/audit", "12-audit", format!("/v1/runs/{failed}/retry")),
        ("#/keys", "13-keys", viewer["key_id"].as_str().unwrap().into()),
    ];
    for (route, name, expect) in pages {
        b.client.goto(&format!("{}/ui{route}", server.url)).await.unwrap();
        b.find("main .page-head").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !b.page_text().await.contains(&expect) {
            assert!(
                std::time::Instant::now() < deadline,
                "{route} shows no {expect:?}:\n{}",
                b.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.shot(name).await;
    }

    // A viewer sees the same run with no buttons, and the API refuses it
    // if it calls anyway.
    b.click("#sign-out").await;
    b.find("#token").await.send_keys(&viewer_token).await.unwrap();
    b.click("#sign-in").await;
    b.find("main .page-head").await;
    assert!(b.all("#start-run").await.is_empty(), "a viewer cannot start runs");
    b.client.goto(&format!("{}/ui#/runs/{run}", server.url)).await.unwrap();
    b.find("g.node[data-step='send_confirmation']").await;
    b.click("g.node[data-step='send_confirmation']").await;
    b.find(".logs .lines li").await;
    assert!(
        b.all("[data-action]").await.is_empty(),
        "a viewer sees no action buttons"
    );
    b.shot("14-viewer-run").await;
    let refused = b
        .js(
            "const token = JSON.parse(sessionStorage.getItem('weft.session')).token;
             return fetch(arguments[0], {method: 'POST', headers: {Authorization: `Bearer ${token}`}})
               .then(async (r) => ({status: r.status, body: await r.json()}));",
            vec![json!(format!("/v1/runs/{failed}/retry"))],
        )
        .await;
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["body"]["error"]["code"], "permission_denied", "{refused}");

    // The server admin: tenants, a tenant's keys, nodes, the server trail.
    b.click("#sign-out").await;
    b.find("#token").await.send_keys(ADMIN).await.unwrap();
    b.click("#sign-in").await;
    b.find("a[href='#/admin/tenants/shop']").await;
    b.shot("15-admin-tenants").await;
    b.click("a[href='#/admin/tenants/shop']").await;
    b.find("[data-action='make-key']").await;
    let text = b.page_text().await;
    assert!(text.contains(viewer["key_id"].as_str().unwrap()), "{text}");
    b.shot("16-admin-tenant").await;
    for (route, name) in [("#/admin/nodes", "17-admin-nodes"), ("#/admin/audit", "18-admin-audit")] {
        b.client.goto(&format!("{}/ui{route}", server.url)).await.unwrap();
        b.find("main .page-head").await;
        b.shot(name).await;
    }
    let text = b.page_text().await;
    assert!(
        text.contains("/v1/admin/tenants"),
        "the tenant's creation is in the server trail: {text}"
    );
    b.close().await;
}

#[tokio::test]
async fn the_console_is_served_offline_with_strict_headers_and_revalidates() {
    let store = TestStore::redb();
    let server = Server::on(&store, &[]);
    let page = server.http.get(format!("{}/ui", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // Nothing from elsewhere: every script and style is the server's own.
    for reference in ["http://", "https://", "//cdn"] {
        assert!(!html.contains(reference), "the page refers to {reference}: {html}");
    }
    for asset in [
        "app.js",
        "api.js",
        "ui.js",
        "dag.js",
        "runs.js",
        "run.js",
        "pages.js",
        "admin.js",
        "style.css",
    ] {
        let response = server
            .http
            .get(format!("{}/ui/{asset}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let tag = response.headers()["etag"].clone();
        let body = response.text().await.unwrap();
        assert!(!body.contains("https://"), "{asset} refers to somewhere else");
        let again = server
            .http
            .get(format!("{}/ui/{asset}", server.url))
            .header("If-None-Match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset} revalidates");
    }
    let missing = server
        .http
        .get(format!("{}/ui/nothing.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()["location"], "/ui");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_page_stays_fast_on_ten_thousand_runs() {
    let Some(b) = Browser::start().await else { return };
    let store = TestStore::redb();
    let server = Server::on(&store, &[]);
    let quotas = json!({"start_rate": 1_000_000, "max_concurrent_runs": 20_000});
    let key = server.tenant("busy", quotas).await;
    // Runs that wait an hour: 10,000 of them, all running, no task needed.
    server
        .push(&key, "nap", "name: nap\nsteps:\n  - {id: nap, sleep: 1h}\n")
        .await;
    let mut starters = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, key) = (server.http.clone(), server.url.clone(), key.clone());
        starters.spawn(async move {
            for _ in 0..625 {
                let response = http
                    .post(format!("{url}/v1/workflows/nap/runs"))
                    .bearer_auth(&key)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        });
    }
    while let Some(done) = starters.join_next().await {
        done.unwrap();
    }

    b.client.goto(&format!("{}/ui", server.url)).await.unwrap();
    b.find("#token").await.send_keys(&key).await.unwrap();
    b.click("#sign-in").await;
    // The first page, from a cold navigation to its rows drawn.
    let timed =
        |route: &str| format!("window.__t0 = performance.now(); window.location.hash = '{route}'; return true;");
    let mut took = Vec::new();
    for route in ["#/runs?workflow=nap", "#/runs?status=failed", "#/runs?range=1h"] {
        b.click("a[href='#/workflows']").await;
        b.find("main .page-head h1").await;
        b.js(&timed(route), vec![]).await;
        b.until(
            &format!("{route} is drawn"),
            Duration::from_secs(10),
            "return !!document.querySelector('main .count') && /shown/.test(document.querySelector('main .count').textContent)
               && (document.querySelectorAll('table.list tbody tr').length > 0 || !!document.querySelector('main .empty'))",
        )
        .await;
        let ms = b
            .js("return performance.now() - window.__t0", vec![])
            .await
            .as_f64()
            .unwrap();
        took.push((route, ms));
    }
    b.shot("19-ten-thousand-runs").await;
    let rows = b.all("table.list tbody tr").await.len();
    assert_eq!(rows, 50, "a page of 50 of the 10,000");
    // Loose bounds: a page, filtered in the store, drawn well within a
    // second even on a debug build and a busy machine.
    for (route, ms) in &took {
        assert!(*ms < 2_000.0, "{route} took {ms:.0} ms to draw: {took:?}");
    }
    eprintln!("runs page over 10,000 runs: {took:?}");
}
