//! Cluster mode: several `weft serve` nodes on one PostgreSQL database
//! (`tests/common/cluster.rs`). Runs started through any node finish, each
//! step's success recorded once, when nodes are killed, paused, cut off the
//! database, restarted one by one, or added under load; and a tenant's cap
//! on attempts at once holds across the nodes.
//!
//! Timing is asserted loosely (the suite runs on two cores); each test
//! prints what it measured.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cluster::proxy::{Cut, Proxy};
use cluster::{Api, Cluster, NodeOptions, Started, now_ms};

/// Four steps, one after another: a greeting, two naps of `nap_ms` in the
/// host, another greeting. Its output names the input, so a run's output
/// shows it ran with its own input.
fn napping(name: &str, nap_ms: u64) -> String {
    format!(
        "name: {name}\n\
         steps:\n\
         \x20 - id: greet\n    task: hello\n    input:\n      name: ${{{{ input.name }}}}\n\
         \x20 - id: nap1\n    task: misbehave\n    needs: [greet]\n    input: {{mode: sleep, ms: {nap_ms}}}\n\
         \x20 - id: nap2\n    task: misbehave\n    needs: [nap1]\n    input: {{mode: sleep, ms: {nap_ms}}}\n\
         \x20 - id: bye\n    task: hello\n    needs: [nap2]\n    input:\n      name: ${{{{ input.name }}}}\n\
         output:\n\
         \x20 first: ${{{{ steps.greet.output.greeting }}}}\n\
         \x20 last: ${{{{ steps.bye.output.greeting }}}}\n\
         \x20 napped: ${{{{ steps.nap2.output.slept_ms }}}}\n"
    )
}

const STEPS: [&str; 4] = ["greet", "nap1", "nap2", "bye"];

/// The input of the k-th run.
fn input(k: usize) -> Value {
    json!({ "name": format!("r{k}") })
}

/// What the k-th run of [`napping`] must output.
fn output(k: usize, nap_ms: u64) -> Value {
    json!({"first": format!("Hello, r{k}!"), "last": format!("Hello, r{k}!"), "napped": nap_ms})
}

/// A cluster with the example tasks `hello` and `misbehave` and the
/// workflow `naps` ([`napping`] with `nap_ms`).
async fn with_naps(cluster: &Cluster, nap_ms: u64) {
    cluster.setup(&["hello", "misbehave"]).await;
    cluster.push("naps", &napping("naps", nap_ms)).await;
}

/// Asserts that run `run` succeeded with `expected` as output, and that
/// its history and its steps each record one success per step: one `ok`
/// attempt, one `step_finished`, one `run_finished`, and no event twice.
fn assert_succeeded_once(run: &Value, events: &[Value], expected: &Value) {
    let id = &run["id"];
    assert_eq!(run["status"], "succeeded", "run {id}: {run:#}");
    assert_eq!(&run["output"], expected, "run {id}'s output: {run:#}");
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), STEPS.len(), "run {id}: {run:#}");
    for step in steps {
        assert_eq!(step["status"], "succeeded", "run {id}: {step:#}");
        let attempts = step["attempts"].as_array().expect("attempts");
        let ok = attempts.iter().filter(|a| a["outcome"] == "ok").count();
        assert_eq!(ok, 1, "run {id}: step {} has {ok} ok attempts: {step:#}", step["step"]);
        let mut numbers: Vec<u64> = attempts.iter().filter_map(|a| a["attempt"].as_u64()).collect();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            attempts.len(),
            "run {id}: an attempt recorded twice: {step:#}"
        );
    }
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs.len() == events.len(),
        "run {id}: events out of order or without seq: {events:#?}"
    );
    let count = |kind: &str, step: Option<&str>, ok: bool| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .filter(|e| step.is_none_or(|s| e["step"] == s))
            .filter(|e| !ok || e["outcome"] == "ok" || e["status"] == "succeeded")
            .count()
    };
    assert_eq!(count("run_started", None, false), 1, "run {id}: {events:#?}");
    assert_eq!(count("run_finished", None, false), 1, "run {id}: {events:#?}");
    for step in STEPS {
        let ok = count("attempt_finished", Some(step), true);
        assert_eq!(
            ok, 1,
            "run {id}: {ok} ok attempt_finished events for {step}: {events:#?}"
        );
        let finished = count("step_finished", Some(step), false);
        assert_eq!(
            finished, 1,
            "run {id}: {finished} step_finished events for {step}: {events:#?}"
        );
    }
}

/// Waits for `started` to end, then checks each with [`assert_succeeded_once`].
async fn assert_all_succeed_once(api: &Api, started: &[(Started, usize)], nap_ms: u64, within: Duration) {
    let ids: Vec<u64> = started.iter().map(|(s, _)| s.id).collect();
    let runs = api.wait_final(&ids, within).await;
    for (s, k) in started {
        let events = api.events(s.id).await;
        assert_succeeded_once(&runs[&s.id], &events, &output(*k, nap_ms));
    }
}

/// Starts `n` runs of `naps` through the serving nodes in turn; each with
/// the index of its input.
async fn start_naps(api: &Api, n: usize) -> Vec<(Started, usize)> {
    let started = api.start_round_robin("naps", n, input).await;
    started.into_iter().enumerate().map(|(k, s)| (s, k)).collect()
}

/// Waits until `GET /v1/admin/nodes` shows node `node_id` in `state`;
/// returns its row.
async fn wait_node_state(api: &Api, node_id: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let row = api.node(node_id).await;
        if let Some(row) = &row
            && row["state"] == state
        {
            return row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "node {node_id} is not {state} within {within:?}: {:#?}",
            api.nodes().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every run's events, by run id.
async fn histories(api: &Api, ids: &[u64]) -> HashMap<u64, Vec<Value>> {
    let mut all = HashMap::new();
    for &id in ids {
        all.insert(id, api.events(id).await);
    }
    all
}

/// The first attempt of any of `runs` that started at or after `since`
/// (ms since the epoch): when work moved after a fault.
fn first_attempt_since(runs: &HashMap<u64, Value>, ids: &[u64], since: u64) -> Option<u64> {
    ids.iter()
        .flat_map(|id| runs[id]["steps"].as_array().cloned().unwrap_or_default())
        .flat_map(|step| step["attempts"].as_array().cloned().unwrap_or_default())
        .filter_map(|attempt| attempt["started_at"].as_u64())
        .filter(|&at| at >= since)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_started_through_every_node_finish_each_step_once() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, 50).await;
    for i in 0..3 {
        let row = wait_node_state(&api, cluster.node_id(i), "alive", Duration::from_secs(5)).await;
        assert!(row["heartbeat_age_ms"].as_u64().is_some(), "{row:#}");
    }

    let started = start_naps(&api, 30).await;
    assert_all_succeed_once(&api, &started, 50, Duration::from_secs(60)).await;

    // Every node answers for every run, whichever node ran it.
    for (s, _) in started.iter().take(3) {
        for i in 0..3 {
            let path = format!("/v1/runs/{}", s.id);
            let (status, body) = api
                .call(i, Some(api.token()), reqwest::Method::GET, &path, cluster::Body::None)
                .await
                .unwrap();
            assert!(status.is_success(), "node {i}: {status} {body}");
            assert_eq!(body["status"], "succeeded", "node {i} on run {}: {body:#}", s.id);
        }
    }
}

/// Nodes never call each other, yet any node serves any run: a live
/// event stream from a node that does not hold the run (fed by the
/// database's notifications), and a cancel and a retry through it (it
/// takes the run over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_streams_cancels_and_retries_a_run_another_node_holds() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, 400).await;

    // A stream through node 1 of a run node 0 holds: every event, in order.
    let streamed = api.start_on(0, "naps", input(0)).await;
    let url = format!("{}/v1/runs/{}/events", cluster.url(1), streamed.id);
    let stream = tokio::spawn(
        reqwest::Client::new()
            .get(url)
            .bearer_auth(api.token().to_string())
            .header("accept", "text/event-stream")
            .send(),
    );
    let runs = api.wait_final(&[streamed.id], Duration::from_secs(30)).await;
    let body = tokio::time::timeout(Duration::from_secs(10), async {
        stream.await.unwrap().unwrap().text().await.unwrap()
    })
    .await
    .expect("the stream ends when the run does");
    let ids: Vec<u64> = body
        .lines()
        .filter_map(|line| line.strip_prefix("id:"))
        .map(|id| id.trim().parse().unwrap())
        .collect();
    let history = api.events(streamed.id).await;
    assert_eq!(ids, (0..history.len() as u64).collect::<Vec<_>>(), "{body}");
    assert_succeeded_once(&runs[&streamed.id], &history, &output(0, 400));

    // A cancel through node 1 of a run node 0 is running.
    let cancelled = api.start_on(0, "naps", input(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/v1/runs/{}/cancel", cancelled.id);
    let (status, body) = api
        .call(1, Some(api.token()), reqwest::Method::POST, &path, cluster::Body::None)
        .await
        .unwrap();
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["status"], "cancelled", "{body:#}");
    // Node 0 records nothing more for it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let run = api.run(cancelled.id).await;
    assert_eq!(run["status"], "cancelled", "{run:#}");

    // A retry through node 1 finishes it there.
    let path = format!("/v1/runs/{}/retry", cancelled.id);
    let (status, body) = api
        .call(1, Some(api.token()), reqwest::Method::POST, &path, cluster::Body::None)
        .await
        .unwrap();
    assert!(status.is_success(), "{status} {body}");
    let runs = api.wait_final(&[cancelled.id], Duration::from_secs(30)).await;
    assert_eq!(runs[&cancelled.id]["status"], "succeeded", "{:#}", runs[&cancelled.id]);
    assert_eq!(runs[&cancelled.id]["output"], output(1, 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_runs_finish_on_the_others() {
    const NAP: u64 = 500;
    let Some(mut cluster) = Cluster::start(3).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, NAP).await;
    let started = start_naps(&api, 12).await;
    // Mid-flight: past the greeting, in the first or second nap.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let killed_at = now_ms();
    cluster.kill(1);
    let victims: Vec<u64> = started.iter().filter(|(s, _)| s.node == 1).map(|(s, _)| s.id).collect();
    let runs = api.wait_final(&victims, Duration::from_secs(30)).await;
    let finished_in = now_ms() - killed_at;
    let moved = first_attempt_since(&runs, &victims, killed_at).expect(
        "no run of the killed node ran an attempt after the kill: they had all ended, so the test tested nothing",
    );
    eprintln!(
        "SIGKILL: the first attempt of the killed node's runs started {} ms after the kill; all {} finished after {finished_in} ms",
        moved - killed_at,
        victims.len()
    );
    assert!(
        moved - killed_at < 5_000,
        "the killed node's work moved only after {} ms",
        moved - killed_at
    );

    // Each attempt names the node that ran it: after the kill, never the
    // dead one.
    let killed = cluster.node_id(1);
    for run in runs.values() {
        for step in run["steps"].as_array().unwrap() {
            for attempt in step["attempts"].as_array().unwrap() {
                let node = attempt["node"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no node in {attempt}"));
                assert!(
                    (0..3).any(|i| cluster.node_id(i) == node),
                    "{node} is no node of the cluster"
                );
                if attempt["started_at"].as_u64().unwrap() > killed_at + 100 {
                    assert_ne!(
                        node, killed,
                        "an attempt after the kill ran on the killed node: {attempt}"
                    );
                }
            }
        }
    }

    assert_all_succeed_once(&api, &started, NAP, Duration::from_secs(30)).await;
    wait_node_state(&api, cluster.node_id(1), "dead", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_records_nothing_for_work_that_moved() {
    const NAP: u64 = 600;
    let Some(mut cluster) = Cluster::start_with(3, &["--node-timeout", "1.5s"]).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, NAP).await;
    let started = start_naps(&api, 12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let paused_at = now_ms();
    cluster.pause(1);
    let victims: Vec<u64> = started.iter().filter(|(s, _)| s.node == 1).map(|(s, _)| s.id).collect();
    let runs = api.wait_final(&victims, Duration::from_secs(30)).await;
    let moved = first_attempt_since(&runs, &victims, paused_at).expect("the paused node's runs ran on");
    eprintln!(
        "SIGSTOP: the paused node's work moved {} ms after the pause; its runs ended after {} ms",
        moved - paused_at,
        now_ms() - paused_at
    );
    let before = histories(&api, &victims).await;

    // Its attempts were mid-nap: awake, they end, and it tries to commit.
    cluster.resume(1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        cluster.is_running(1),
        "the resumed node exited; its log:\n{}",
        cluster.log(1)
    );
    let after = histories(&api, &victims).await;
    for id in &victims {
        assert_eq!(
            before[id], after[id],
            "run {id}'s history changed after the paused node woke"
        );
    }
    assert_all_succeed_once(&api, &started, NAP, Duration::from_secs(30)).await;

    // It comes back as a node again and takes new work.
    wait_node_state(&api, cluster.node_id(1), "alive", Duration::from_secs(10)).await;
    let mut again = Vec::new();
    for k in 100..103 {
        again.push((api.start_on(1, "naps", input(k)).await, k));
    }
    assert_all_succeed_once(&api, &again, NAP, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_run() {
    const NAP: u64 = 200;
    let Some(mut cluster) = Cluster::start_with(3, &["--shutdown-grace", "10s"]).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, NAP).await;

    // A steady trickle of starts through whichever nodes serve.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let submitter = {
        let (api, stop, acknowledged) = (api.clone(), Arc::clone(&stop), Arc::clone(&acknowledged));
        tokio::spawn(async move {
            let mut refused = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let node = api.next_node();
                match api.try_start(node, "naps", input(k)).await {
                    Ok(started) => acknowledged.lock().unwrap().push((started, k)),
                    Err(e) => refused.push(e),
                }
                k += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            refused
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..cluster.len() {
        let began = Instant::now();
        let status = cluster.terminate(i, Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "node {i} exited with {status} on SIGTERM; its log:\n{}",
            cluster.log(i)
        );
        let drained = began.elapsed();
        cluster.restart(i).await;
        wait_node_state(&api, cluster.node_id(i), "alive", Duration::from_secs(10)).await;
        eprintln!(
            "rolling restart: node {i} drained in {drained:?}, serving again after {:?}",
            began.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let refused = submitter.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "rolling restart: {} runs acknowledged, {} starts refused{}",
        acknowledged.len(),
        refused.len(),
        refused
            .first()
            .map(|e| format!(" (the first: {e})"))
            .unwrap_or_default()
    );
    assert!(
        acknowledged.len() >= 20,
        "too few runs to call it load: {}",
        acknowledged.len()
    );
    assert_all_succeed_once(&api, &acknowledged, NAP, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_under_load_gets_work_within_a_second() {
    const NAP: u64 = 300;
    // Two slots per node, so that most of the runs wait unclaimed.
    let Some(mut cluster) = Cluster::start_with(2, &["--max-concurrent-attempts", "2"]).await else {
        return;
    };
    let api = cluster.api();
    with_naps(&cluster, NAP).await;
    let started = start_naps(&api, 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let joined = cluster.add_node(NodeOptions::default()).await;
    let ready = Instant::now();
    let id = cluster.node_id(joined).to_owned();
    let mut seen = None;
    let mut last = Value::Null;
    while ready.elapsed() < Duration::from_secs(5) {
        if let Some(row) = api.node(&id).await {
            let busy = row["running"].as_u64().unwrap_or(0) > 0 || row["claims_per_s"].as_f64().unwrap_or(0.0) > 0.0;
            last = row;
            if busy {
                seen = Some(ready.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen = seen.unwrap_or_else(|| panic!("the new node took no work within 5 s; its row: {last:#}"));
    eprintln!("join: the new node showed work {seen:?} after it listened: {last}");
    assert!(
        seen <= Duration::from_secs(1),
        "the new node took work only after {seen:?}"
    );
    assert_all_succeed_once(&api, &started, NAP, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_loses_its_runs_and_records_nothing_when_healed() {
    const NAP: u64 = 500;
    let Some(mut cluster) = Cluster::empty(&[]) else {
        return;
    };
    cluster.add_node(NodeOptions::default()).await;
    cluster.add_node(NodeOptions::default()).await;
    let cut = cluster.add_node(NodeOptions::proxied()).await;
    let api = cluster.api();
    with_naps(&cluster, NAP).await;
    let started = start_naps(&api, 12).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Cut at the worst moment: the node has sent a transaction's statements
    // (its runs' rows are locked) and the COMMIT is held. Claims skip
    // locked rows, so its runs move only once the database gives up on
    // that transaction.
    cluster.partition(cut, Cut::StallAtCommit);
    let armed = Instant::now();
    while !cluster.proxy(cut).is_stalled() {
        assert!(
            armed.elapsed() < Duration::from_secs(10),
            "the cut-off node sent no COMMIT within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cut_at = now_ms();
    let victims: Vec<u64> = started
        .iter()
        .filter(|(s, _)| s.node == cut)
        .map(|(s, _)| s.id)
        .collect();
    let runs = api.wait_final(&victims, Duration::from_secs(30)).await;
    let moved = first_attempt_since(&runs, &victims, cut_at).expect("the cut-off node's runs ran on");
    eprintln!(
        "partition: the cut-off node's work moved {} ms after the cut; its runs ended after {} ms",
        moved - cut_at,
        now_ms() - cut_at
    );
    let before = histories(&api, &victims).await;

    cluster.heal(cut);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = histories(&api, &victims).await;
    for id in &victims {
        assert_eq!(
            before[id], after[id],
            "run {id}'s history changed after the link came back"
        );
    }
    assert_all_succeed_once(&api, &started, NAP, Duration::from_secs(30)).await;

    // It takes new work again: starts through it are acknowledged (once it
    // is back) and finish.
    wait_node_state(&api, cluster.node_id(cut), "alive", Duration::from_secs(10)).await;
    let mut again = Vec::new();
    for k in 100..104 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = loop {
            match api.try_start(cut, "naps", input(k)).await {
                Ok(started) => break started,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("partition: a start through the healed node failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the healed node does not take starts: {e}"),
            }
        };
        again.push((started, k));
    }
    assert_all_succeed_once(&api, &again, NAP, Duration::from_secs(30)).await;
}

/// The proxy the partition test relies on, against a plain echo server:
/// forwards, stalls without closing, carries on when restored, resets.
#[test]
fn the_proxy_stalls_restores_and_resets() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in echo.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(upstream);
    let mut conn = TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 5];
    conn.write_all(b"hello").unwrap();
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    proxy.cut(Cut::Stall);
    conn.write_all(b"stall").unwrap();
    let err = conn.read_exact(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "a stalled link answered or closed: {err}"
    );
    // A new connection is accepted but goes nowhere.
    let mut fresh = TcpStream::connect(proxy.addr()).unwrap();
    fresh.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    fresh.write_all(b"fresh").unwrap();
    assert!(
        fresh.read_exact(&mut buf).is_err(),
        "a new connection got through a stall"
    );

    proxy.restore();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"stall", "the held bytes arrive after the restore");
    fresh.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    fresh.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"fresh");

    proxy.cut(Cut::Reset);
    let mut rest = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        matches!(conn.read_to_end(&mut rest), Ok(0) | Err(_)),
        "a reset connection stays open"
    );
    let mut refused = TcpStream::connect(proxy.addr()).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        matches!(refused.read(&mut buf), Ok(0) | Err(_)),
        "a new connection got through a reset"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.open_connections() > 0 {
        assert!(Instant::now() < deadline, "connections stay open after a reset");
        std::thread::sleep(Duration::from_millis(10));
    }

    proxy.restore();
    let mut again = TcpStream::connect(proxy.addr()).unwrap();
    again.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    again.write_all(b"again").unwrap();
    again.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"again");
}

/// The most attempts of `runs` that ran at once, from their recorded
/// start times and durations.
fn most_at_once(runs: &HashMap<u64, Value>) -> usize {
    let mut edges: Vec<(u64, i32)> = runs
        .values()
        .flat_map(|run| run["steps"].as_array().cloned().unwrap_or_default())
        .flat_map(|step| step["attempts"].as_array().cloned().unwrap_or_default())
        .flat_map(|attempt| {
            let start = attempt["started_at"].as_u64().expect("started_at") * 1000;
            let end = start + attempt["duration_us"].as_u64().expect("duration_us");
            [(start, 1), (end, -1)]
        })
        .collect();
    // An attempt that ends as another starts does not overlap it.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_cap_on_attempts_at_once_holds_across_the_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    const CAP: usize = 2;
    cluster
        .setup_with_quotas(&["misbehave"], json!({"max_concurrent_attempts": CAP}))
        .await;
    cluster
        .push(
            "nap",
            "name: nap\nsteps:\n  - {id: nap, task: misbehave, input: {mode: sleep, ms: 300}}\n",
        )
        .await;
    let api = cluster.api();
    let started = Instant::now();
    let ids: Vec<u64> = api
        .start_round_robin("nap", 12, |_| json!({}))
        .await
        .iter()
        .map(|s| s.id)
        .collect();
    let runs = api.wait_final(&ids, Duration::from_secs(60)).await;
    let took = started.elapsed();
    assert!(runs.values().all(|run| run["status"] == "succeeded"), "{runs:#?}");
    let most = most_at_once(&runs);
    eprintln!("12 runs of 300 ms through 3 nodes, at most {CAP} at once: {most} at once at most, {took:.1?} in all");
    // Counted per node, each of the three would have run two at once.
    assert!(
        (1..=CAP).contains(&most),
        "{most} attempts ran at once, over the cap of {CAP}"
    );
    assert!(
        took >= Duration::from_millis(1_800),
        "12 × 300 ms two at a time took only {took:?}"
    );
}
