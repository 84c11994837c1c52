//! `weft migrate` and `weft check` on real stores: a redb store holding
//! runs in every state moves to PostgreSQL, a server there finishes the
//! unfinished runs, the store moves back to a fresh redb store with the
//! same checksum, `weft check` finds nothing in any of them, and finds
//! each corruption the test then plants.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{Body, ORDER_TASKS, Server, order};

const SLOW: &str = "name: slow\nsteps:\n\
    \x20 - id: first\n    task: hello\n    input: {name: Ada}\n\
    \x20 - id: nap\n    task: misbehave\n    needs: [first]\n    input: {mode: sleep, ms: 1500}\n\
    \x20 - id: last\n    task: hello\n    needs: [nap]\n    input: {name: Grace}\n";

/// Fails once, then waits 2 s on its retry timer.
const WAITING: &str = "name: waiting\nsteps:\n\
    \x20 - id: flaky\n    task: flaky\n    input: {fail_times: 1}\n    \
    retry: {max_attempts: 3, initial_interval: 2s, backoff: 1.0, jitter: none}\n\
    \x20 - id: greet\n    task: hello\n    needs: [flaky]\n    input: {name: later}\n";

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("running weft")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `weft check`, which must find the store clean.
fn clean(store: &TestStore) {
    let output = weft(&["check", "--store", store.arg()]);
    assert_eq!(output.status.code(), Some(0), "weft check:\n{}", text(&output));
    assert!(text(&output).contains("no problems"), "{}", text(&output));
}

/// `weft migrate`, which must verify the copy.
fn migrate(from: &TestStore, to: &TestStore) -> String {
    let output = weft(&["migrate", "--from", from.arg(), "--to", to.arg()]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "weft migrate:\n{said}");
    assert!(
        said.contains("the target holds exactly what the source holds"),
        "{said}"
    );
    said
}

/// Polls a run until `done` says so.
async fn until(server: &Server, token: &str, run: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server
            .call(Some(token), Method::GET, &format!("/v1/runs/{run}"), Body::None)
            .await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "run {run} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_every_state_moves_to_postgres_and_back() {
    let Some(pg) = TestStore::postgres() else { return };
    let source = TestStore::redb();

    // Runs in every state, on the embedded store.
    let server = Server::on(&source, &[]);
    let acme = server.tenant("acme", json!({})).await;
    let globex = server.tenant("globex", json!({"retention_days": 7})).await;
    let (order_yaml, order_input) = order();
    for token in [&acme, &globex] {
        server.upload(token, &ORDER_TASKS).await;
        server.upload(token, &["hello", "misbehave", "flaky"]).await;
        server.push(token, "order", &order_yaml).await;
        server.push(token, "slow", SLOW).await;
        server.push(token, "waiting", WAITING).await;
    }
    // A second version of a workflow.
    server.push(&acme, "slow", &SLOW.replace("Grace", "Barbara")).await;

    let succeeded = server.start_run(&acme, "order", order_input.clone()).await;
    let mut out_of_stock = order_input.clone();
    out_of_stock["items"] = json!([{"sku": "DISCONTINUED-9", "quantity": 1}]);
    out_of_stock["order_id"] = json!("B-2002"); // the tasks remember orders by id
    let compensated = server.start_run(&acme, "order", out_of_stock).await;
    let elsewhere = server.start_run(&globex, "order", order_input).await;
    let cancelled = server.start_run(&acme, "slow", json!({})).await;
    until(&server, &acme, cancelled, |r| step(r, "first")["status"] == "succeeded").await;
    let (status, body) = server
        .call(
            Some(&acme),
            Method::POST,
            &format!("/v1/runs/{cancelled}/cancel"),
            Body::None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    for (token, run) in [
        (&acme, succeeded),
        (&acme, compensated),
        (&globex, elsewhere),
        (&acme, cancelled),
    ] {
        server.wait(token, run).await;
    }
    let running = server.start_run(&acme, "slow", json!({})).await;
    let waiting = server.start_run(&globex, "waiting", json!({})).await;
    until(&server, &acme, running, |r| step(r, "first")["status"] == "succeeded").await;
    until(&server, &globex, waiting, |r| step(r, "flaky")["status"] == "retrying").await;
    // A store a server holds is refused, by check and by migrate.
    let output = weft(&["check", "--store", source.arg()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("cannot open"), "{}", text(&output));
    server.kill();

    clean(&source);
    migrate(&source, &pg);
    clean(&pg);
    // A target that holds records is refused unless told.
    let output = weft(&["migrate", "--from", source.arg(), "--to", pg.arg()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--into-non-empty"), "{}", text(&output));

    // A server on PostgreSQL finishes what was unfinished.
    let server = Server::on(&pg, &[]);
    let output = weft(&["migrate", "--from", pg.arg(), "--to", TestStore::redb().arg()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("another weft process holds this store") && text(&output).contains("stop every node"),
        "{}",
        text(&output)
    );
    let done = server.wait(&acme, running).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        step(&done, "first")["attempts"].as_array().unwrap().len(),
        1,
        "first ran again: {done}"
    );
    let done = server.wait(&globex, waiting).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(step(&done, "flaky")["attempts"].as_array().unwrap().len(), 2, "{done}");
    let finished = [
        (succeeded, "succeeded"),
        (compensated, "failed"),
        (cancelled, "cancelled"),
    ];
    for (run, status) in finished {
        let (_, body) = server
            .call(Some(&acme), Method::GET, &format!("/v1/runs/{run}"), Body::None)
            .await;
        assert_eq!(body["status"], status, "{body}");
    }
    let (_, body) = server
        .call(Some(&acme), Method::GET, &format!("/v1/runs/{compensated}"), Body::None)
        .await;
    assert_eq!(
        step(&body, "refund_payment")["status"],
        "succeeded",
        "compensated: {body}"
    );
    let status = server.terminate();
    assert!(status.success());
    clean(&pg);

    // And back, to a fresh embedded store: `migrate` compares the checksums.
    let back = TestStore::redb();
    migrate(&pg, &back);
    clean(&back);

    // Corruptions `weft check` must each find.
    let db = pg.pg().unwrap();
    db.psql(&format!("DELETE FROM events WHERE run_id = {succeeded} AND seq = 1"));
    db.psql(&format!(
        "UPDATE runs SET record = '{{\"not\": \"a run\"}}' WHERE run_id = {cancelled}"
    ));
    db.psql(&format!(
        "INSERT INTO units SELECT tenant, 424242, step, item, status, priority, ready_at, \
         record FROM units WHERE run_id = {succeeded} LIMIT 1"
    ));
    db.psql("DELETE FROM module_bytes WHERE tenant = 'globex'");
    db.psql("INSERT INTO idempotency_keys VALUES ('acme', 'ghost', 777777)");
    db.psql(&format!(
        "UPDATE units SET record = jsonb_set(record::jsonb, '{{status}}', '\"running\"')::json \
         WHERE run_id = {compensated} AND step = 0"
    ));
    let output = weft(&["check", "--store", pg.arg()]);
    let said = text(&output);
    eprintln!("{said}");
    assert_eq!(output.status.code(), Some(1), "{said}");
    for expected in [
        format!("events {succeeded}#2: the history skips from 1 to 2"),
        format!("runs {}: does not decode", json!(["acme", cancelled])),
        "belongs to run 424242, which does not exist".to_string(),
        "globex/hello@".to_string(),
        "started run 777777, which does not exist".to_string(),
        "is running but its run has failed".to_string(),
    ] {
        assert!(
            said.contains(&expected),
            "weft check did not report {expected:?}:\n{said}"
        );
    }
}
