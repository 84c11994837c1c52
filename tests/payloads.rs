//! Payloads sealed at rest, through the real `weft serve` binary: a tenant
//! with `encrypt_payloads` runs the order workflow; its input, step
//! outputs, kv values and logs are in no plaintext in the redb file or a
//! `pg_dump`, while the API returns them; `weft admin rotate-key` replaces
//! the master key and old and new runs read back; the old key, or none,
//! is refused at start; `weft migrate` carries sealed payloads to
//! PostgreSQL, where they still open.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/mod.rs"]
mod common;
#[path = "common/serve.rs"]
mod serve;

use std::path::Path;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use backend::TestStore;
use serve::{ADMIN, Server, find, refused};
use weft::secrets::KEY_LEN;

/// The order workflow's tasks.
const TASKS: [&str; 5] = [
    "validate_payment",
    "reserve_inventory",
    "notify_warehouse",
    "send_confirmation",
    "refund_payment",
];

fn hex_key(byte: u8) -> String {
    hex::encode([byte; KEY_LEN])
}

/// An order whose personal data is easy to find in a file: `n` tells two
/// orders apart.
fn order(n: u32) -> Value {
    json!({
        "order_id": format!("Z-{n}"),
        "amount_cents": 4999,
        "currency": "EUR",
        "card_number": "4242 4242 4242 4242",
        "email": format!("zq-sealed-{n}@example.net"),
        "items": [{"sku": "WIDGET-1", "quantity": 1}],
        "ship_to": {"name": format!("Wilhelmina Sealworth {n}"), "line1": format!("{n} Cipher Lane"), "city": "Berlin", "postal_code": "10115", "country": "DE"}
    })
}

/// What must be in no file: the order's personal data, and what the
/// steps made of it (read from the API).
struct Markers(Vec<String>);

impl Markers {
    fn of(n: u32, run: &Value) -> Markers {
        let output = &run["output"];
        let mut markers = vec![
            format!("zq-sealed-{n}@example.net"),
            format!("Wilhelmina Sealworth {n}"),
            format!("{n} Cipher Lane"),
        ];
        for field in ["authorization_id", "shipment_id", "confirmation"] {
            let value = output[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {output}"));
            markers.push(value.to_string());
        }
        Markers(markers)
    }

    fn assert_absent(&self, what: &str, bytes: &[u8]) {
        for marker in &self.0 {
            assert!(
                find(bytes, marker.as_bytes()).is_none(),
                "{what} holds {marker:?} in the clear"
            );
        }
    }
}

/// A tenant that seals its payloads, with the order workflow pushed.
async fn setup(server: &Server) -> String {
    let (status, body) = server
        .call(
            ADMIN,
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"name": "acme", "quotas": {"encrypt_payloads": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["tenant"]["quotas"]["encrypt_payloads"], true);
    let token = created["api_key"]["token"].as_str().unwrap().to_string();
    for task in TASKS {
        let upload = server
            .http
            .put(format!("{}/v1/modules/{task}", server.url))
            .bearer_auth(&token)
            .header("content-type", "application/wasm")
            .body(common::guest_bytes(task))
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), StatusCode::CREATED, "{task}");
    }
    let workflow =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks/workflows/order.yaml"))
            .unwrap();
    let pushed = server
        .http
        .put(format!("{}/v1/workflows/order", server.url))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(workflow)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK, "{}", pushed.text().await.unwrap());
    token
}

/// Runs order `n` to its end; the run as the API shows it.
async fn run_order(server: &Server, token: &str, n: u32) -> Value {
    let (status, body) = server
        .call(
            token,
            Method::POST,
            "/v1/workflows/order/runs?wait=60s",
            Some(json!({"input": order(n)})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let started: Value = serde_json::from_str(&body).unwrap();
    let run = read_run(server, token, started["id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

/// A run, checked against the order it ran: what is sealed at rest comes
/// back open.
async fn read_run(server: &Server, token: &str, id: u64) -> Value {
    let (status, body) = server.call(token, Method::GET, &format!("/v1/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Everything the API shows of run `id` of order `n` is open.
async fn assert_reads_back(server: &Server, token: &str, id: u64, n: u32, markers: &Markers) {
    let run = read_run(server, token, id).await;
    assert_eq!(run["input"], order(n), "{run}");
    assert_eq!(run["status"], "succeeded");
    let text = run.to_string();
    for marker in &markers.0 {
        assert!(
            text.contains(marker.as_str()),
            "run {id} does not show {marker:?}: {text}"
        );
    }
    let (status, logs) = server
        .call(
            token,
            Method::GET,
            &format!("/v1/runs/{id}/steps/send_confirmation/logs"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    assert!(
        logs.contains(&format!("sent to zq-sealed-{n}@example.net")),
        "the step's log reads back: {logs}"
    );
}

/// `weft admin rotate-key`; its output.
fn rotate(args: &[&str], key: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["admin", "rotate-key"])
        .args(args)
        .env("WEFT_MASTER_KEY", key)
        .env_remove("WEFT_STORE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "weft admin rotate-key {args:?}:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_workflow_is_sealed_in_the_redb_file_and_survives_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old_key = hex_key(1);
    let server = Server::start(&data, None, Some(&old_key));
    let token = setup(&server).await;
    let first = run_order(&server, &token, 1).await;
    let first_id = first["id"].as_u64().unwrap();
    let markers = Markers::of(1, &first);
    assert_reads_back(&server, &token, first_id, 1, &markers).await;
    // The same order again: the payment step finds its sealed kv entry
    // and answers with the authorisation it stored.
    let again = run_order(&server, &token, 1).await;
    assert_eq!(again["output"]["authorization_id"], first["output"]["authorization_id"]);
    let log = server.stop();
    markers.assert_absent("the server's log", log.as_bytes());
    let file = std::fs::read(data.join(weft::store::redb::STORE_FILE)).unwrap();
    assert!(
        find(&file, b"weft:sealed:v1:").is_some(),
        "the file holds sealed values"
    );
    assert!(find(&file, b"Z-1").is_some(), "ids and kv keys stay readable");
    markers.assert_absent("the redb file", &file);

    // A rotation given the wrong current key changes nothing.
    let new_key_file = dir.path().join("new.key");
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["admin", "rotate-key", "--data", data.to_str().unwrap(), "--new-key"])
        .arg(&new_key_file)
        .env("WEFT_MASTER_KEY", hex_key(9))
        .env_remove("WEFT_STORE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.contains("does not open"), "{said}");
    assert!(!new_key_file.exists(), "no key is left from a failed rotation");

    // Rotate: the new key is made in a file of our choosing.
    let said = rotate(
        &[
            "--data",
            data.to_str().unwrap(),
            "--new-key",
            new_key_file.to_str().unwrap(),
        ],
        &old_key,
    );
    assert!(
        said.contains("0 secret(s) and 1 tenant data key(s) re-sealed"),
        "{said}"
    );
    let new_key = std::fs::read_to_string(&new_key_file).unwrap().trim().to_string();

    let said = refused(&data, None, Some(&old_key));
    assert!(said.contains("does not open this store's secrets"), "{said}");
    let said = refused(&data, None, None);
    assert!(said.contains("does not open this store's secrets"), "{said}");

    let server = Server::start(&data, None, Some(&new_key));
    assert_reads_back(&server, &token, first_id, 1, &markers).await;
    let second = run_order(&server, &token, 2).await;
    let second_markers = Markers::of(2, &second);
    assert_reads_back(&server, &token, second["id"].as_u64().unwrap(), 2, &second_markers).await;
    server.stop();
    let file = std::fs::read(data.join(weft::store::redb::STORE_FILE)).unwrap();
    markers.assert_absent("the redb file after the rotation", &file);
    second_markers.assert_absent("the redb file after the rotation", &file);
}

/// The embedded store's own `master.key` is replaced in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_file_of_an_embedded_store_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None, None);
    let token = setup(&server).await;
    let first = run_order(&server, &token, 3).await;
    server.stop();
    let before = std::fs::read_to_string(data.join("master.key")).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["admin", "rotate-key", "--data"])
        .arg(&data)
        .env_remove("WEFT_MASTER_KEY")
        .env_remove("WEFT_STORE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let after = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(before, after);
    assert!(!data.join("master.key.new").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the new key is readable by its owner only");
    }
    let server = Server::start(&data, None, None);
    assert_reads_back(
        &server,
        &token,
        first["id"].as_u64().unwrap(),
        3,
        &Markers::of(3, &first),
    )
    .await;
}

/// redb to PostgreSQL with `weft migrate`: sealed values are copied as
/// they are and open on the node with the same key; what the node writes
/// is sealed too (`pg_dump`); a rotation on PostgreSQL works the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_payloads_are_sealed_and_migrate_carries_them_sealed() {
    let Some(pg) = TestStore::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = hex_key(7);
    let server = Server::start(&data, None, Some(&key));
    let token = setup(&server).await;
    let first = run_order(&server, &token, 4).await;
    let first_id = first["id"].as_u64().unwrap();
    let markers = Markers::of(4, &first);
    server.stop();

    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["migrate", "--from"])
        .arg(format!("redb:{}", data.display()))
        .args(["--to", pg.arg()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "weft migrate:\n{said}");

    let node = dir.path().join("node");
    let said = refused(&node, Some(pg.arg()), None);
    assert!(said.contains("no master key is given"), "{said}");
    let server = Server::start(&node, Some(pg.arg()), Some(&key));
    assert_reads_back(&server, &token, first_id, 4, &markers).await;
    let second = run_order(&server, &token, 5).await;
    let second_id = second["id"].as_u64().unwrap();
    let second_markers = Markers::of(5, &second);
    server.stop();
    let dump = pg.pg_dump();
    assert!(
        find(&dump, b"weft:sealed:v1:").is_some(),
        "the dump holds sealed values"
    );
    for (what, bytes) in [("pg_dump", dump), ("the tables", pg.dump())] {
        markers.assert_absent(what, &bytes);
        second_markers.assert_absent(what, &bytes);
    }

    let new_key_file = dir.path().join("new.key");
    let said = rotate(
        &["--store", pg.arg(), "--new-key", new_key_file.to_str().unwrap()],
        &key,
    );
    assert!(said.contains("1 tenant data key(s) re-sealed"), "{said}");
    let new_key = std::fs::read_to_string(&new_key_file).unwrap().trim().to_string();
    let said = refused(&node, Some(pg.arg()), Some(&key));
    assert!(said.contains("does not open this store's secrets"), "{said}");
    let server = Server::start(&node, Some(pg.arg()), Some(&new_key));
    assert_reads_back(&server, &token, first_id, 4, &markers).await;
    assert_reads_back(&server, &token, second_id, 5, &second_markers).await;
}
