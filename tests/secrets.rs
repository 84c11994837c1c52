//! Tenants' secrets through the real `weft serve` binary on 127.0.0.1:0:
//! set, list and delete over HTTP; the value never comes back in an
//! answer, never reaches the server's log, the redb file or a `pg_dump`;
//! steps that name a secret get it (and fail without it); a wrong master
//! key refuses the start with a message naming it; `weft migrate` carries
//! secrets, still sealed and still readable, from redb to PostgreSQL.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/mod.rs"]
mod common;
#[path = "common/serve.rs"]
mod serve;

use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use backend::TestStore;
use serve::{Server, find, refused};
use weft::secrets::{KEY_LEN, KeyOrigin, MasterKey, Secrets};

/// What no answer, log line, file or dump may hold.
const VALUE: &str = "sk_live_4f9c2d1e8b7a6350-first";
const VALUE2: &str = "sk_live_0a1b2c3d4e5f6789-second";

fn hex_key(byte: u8) -> String {
    hex::encode([byte; KEY_LEN])
}

fn key_id(byte: u8) -> String {
    MasterKey::from_bytes(&[byte; KEY_LEN], KeyOrigin::Env)
        .key_id()
        .to_string()
}

fn assert_absent(what: &str, bytes: &[u8]) {
    for value in [VALUE, VALUE2] {
        assert!(find(bytes, value.as_bytes()).is_none(), "{what} holds a secret's value");
    }
}

/// Set, replace, list, delete; the answers, the redb file and the log
/// never hold the value; the step that names the secret gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_write_only_over_http_and_sealed_in_the_redb_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None, None);
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;

    let (status, body) = server.set(&acme, "api_token", VALUE).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["name"], "api_token");
    assert!(info.get("value").is_none(), "{body}");
    let (status, body) = server.set(&acme, "api_token", VALUE2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut answers = body;

    let (status, body) = server.call(&acme, Method::GET, "/v1/secrets", None).await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(list["secrets"][0]["name"], "api_token");
    assert_eq!(list["secrets"][0]["key_id"], info["key_id"]);
    answers += &body;

    // Another tenant sees none of it.
    let (status, body) = server.call(&globex, Method::GET, "/v1/secrets", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"secrets":[]}"#));
    let (status, _) = server
        .call(&globex, Method::DELETE, "/v1/secrets/api_token", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Refusals name the problem, not the value.
    let big = format!("{VALUE}{}", "x".repeat(64 * 1024));
    for (name, value) in [("1st", VALUE), ("has-dash", VALUE), ("big", big.as_str())] {
        let (status, body) = server.set(&acme, name, value).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        answers += &body;
    }
    let (status, body) = server
        .call(
            &acme,
            Method::PUT,
            "/v1/secrets/x",
            Some(json!({"value": VALUE, "extra": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    answers += &body;
    assert_absent("an answer", answers.as_bytes());

    // `weft secret`: the value from stdin; listed without it.
    let weft = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .env("WEFT_URL", &server.url)
            .env("WEFT_TOKEN", &acme)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            std::io::Write::write_all(&mut input, text.as_bytes()).unwrap();
        }
        drop(input);
        let output = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "weft {args:?}:\n{text}");
        text
    };
    let mut printed = weft(&["secret", "set", "cli_token"], Some(&format!("{VALUE}\n")));
    assert!(printed.contains("secret cli_token created"), "{printed}");
    let listed = weft(&["secret", "list"], None);
    assert!(listed.contains("cli_token") && listed.contains("api_token"), "{listed}");
    printed += &listed;
    printed += &weft(&["secret", "list", "--json"], None);
    printed += &weft(&["secret", "delete", "cli_token"], None);
    assert_absent("weft secret's output", printed.as_bytes());
    // `--value` works too (after the delete, it creates again).
    let again = weft(&["secret", "set", "cli_token", "--value", VALUE], None);
    assert!(again.contains("secret cli_token created"), "{again}");

    // A step that names the secret runs; once it is deleted, it fails
    // `secret_missing`.
    let upload = server
        .http
        .put(format!("{}/v1/modules/hello", server.url))
        .bearer_auth(&acme)
        .header("content-type", "application/wasm")
        .body(common::guest_bytes("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let workflow =
        "name: uses\nsteps:\n  - id: greet\n    task: hello\n    input: {name: Ada}\n    secrets: [api_token]\n";
    let pushed = server
        .http
        .put(format!("{}/v1/workflows/uses", server.url))
        .bearer_auth(&acme)
        .header("content-type", "application/yaml")
        .body(workflow)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK, "{}", pushed.text().await.unwrap());
    let run = |server: &Server| {
        let acme = acme.clone();
        let http = server.http.clone();
        let url = server.url.clone();
        async move {
            let answer: Value = http
                .post(format!("{url}/v1/workflows/uses/runs?wait=30s"))
                .bearer_auth(&acme)
                .json(&json!({"input": {}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = answer["id"].as_u64().unwrap();
            let run: Value = http
                .get(format!("{url}/v1/runs/{id}"))
                .bearer_auth(&acme)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            run
        }
    };
    let ran = run(&server).await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
    let (status, _) = server.call(&acme, Method::DELETE, "/v1/secrets/api_token", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.call(&acme, Method::DELETE, "/v1/secrets/api_token", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ran = run(&server).await;
    assert_eq!(ran["status"], "failed", "{ran}");
    assert!(ran.to_string().contains("secret_missing"), "{ran}");
    // Set again for the file check below.
    let (status, _) = server.set(&acme, "api_token", VALUE).await;
    assert_eq!(status, StatusCode::CREATED);

    let log = server.stop();
    assert!(log.contains("master key"), "the log says where the key is:\n{log}");
    assert_absent("the server's log", log.as_bytes());
    let file = std::fs::read(data.join(weft::store::redb::STORE_FILE)).unwrap();
    assert!(find(&file, b"api_token").is_some(), "the secret's name is in the file");
    assert_absent("the redb file", &file);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "master.key is readable by its owner only");
    }
}

/// A key that did not seal the store's secrets refuses the start, naming
/// where it came from and both key ids; the right one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None, Some(&hex_key(1)));
    let acme = server.tenant("acme").await;
    assert_eq!(server.set(&acme, "token", VALUE).await.0, StatusCode::CREATED);
    server.stop();

    let said = refused(&data, None, Some(&hex_key(2)));
    let wanted = format!(
        "the master key from WEFT_MASTER_KEY does not open this store's secrets (store key id {}, given key id {})",
        key_id(1),
        key_id(2)
    );
    assert!(said.contains(&wanted), "{said}");

    // The key in the data directory is refused the same way, naming the file.
    std::fs::write(data.join("master.key"), format!("{}\n", hex_key(3))).unwrap();
    let said = refused(&data, None, None);
    assert!(
        said.contains(&format!("the master key in {}", data.join("master.key").display())) && said.contains(&key_id(3)),
        "{said}"
    );
    // Not a key at all.
    let said = refused(&data, None, Some("not-a-key"));
    assert!(said.contains("64 hex digits or as base64"), "{said}");

    let server = Server::start(&data, None, Some(&hex_key(1)));
    let (status, body) = server.call(&acme, Method::GET, "/v1/secrets", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"token\""), "{body}");
}

/// On PostgreSQL: the value is in no table (`pg_dump` of the database);
/// secrets moved from redb by `weft migrate` open with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_values_are_sealed_and_migrate_keeps_them_readable() {
    let Some(pg) = TestStore::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = hex_key(7);

    // On redb first, then moved.
    let server = Server::start(&data, None, Some(&key));
    let acme = server.tenant("acme").await;
    assert_eq!(server.set(&acme, "api_token", VALUE).await.0, StatusCode::CREATED);
    assert_eq!(server.set(&acme, "other", VALUE2).await.0, StatusCode::CREATED);
    server.stop();
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["migrate", "--from"])
        .arg(format!("redb:{}", data.display()))
        .args(["--to", pg.arg()])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "weft migrate:\n{said}");
    assert!(said.contains("secrets"), "migrate reports the secrets table:\n{said}");

    // Readable on the target with the key, in-process.
    {
        let store = pg.open().await;
        let key = MasterKey::parse(&key, KeyOrigin::Env).unwrap();
        let secrets = Secrets::open(store, key).await.unwrap();
        let values = secrets
            .reveal("acme", &["api_token".into(), "other".into()])
            .await
            .unwrap();
        assert_eq!(values["api_token"], VALUE);
        assert_eq!(values["other"], VALUE2);
    }

    // A node on it with another key is refused; with the key, it serves.
    let node_data = dir.path().join("node");
    let said = refused(&node_data, Some(pg.arg()), Some(&hex_key(8)));
    assert!(said.contains(&key_id(7)) && said.contains(&key_id(8)), "{said}");
    let said = refused(&node_data, Some(pg.arg()), None);
    assert!(said.contains("no master key is given"), "{said}");
    let server = Server::start(&node_data, Some(pg.arg()), Some(&key));
    assert_eq!(server.set(&acme, "api_token", VALUE2).await.0, StatusCode::OK);
    let (status, body) = server.call(&acme, Method::GET, "/v1/secrets", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"other\""), "{body}");
    let log = server.stop();
    assert_absent("the server's log", log.as_bytes());
    assert!(
        !node_data.join("master.key").exists(),
        "no key is made for a shared store"
    );

    let dump = pg.pg_dump();
    assert!(find(&dump, b"api_token").is_some(), "the dump holds the secrets table");
    assert_absent("pg_dump", &dump);
    assert_absent("the tables", &pg.dump());
}

on_both_backends! {
    /// The store's half, on both backends: sealed bytes kept as given,
    /// per tenant; `created_at` survives a replace; deletes say whether
    /// there was one; the first keycheck stays.
    async fn the_store_keeps_sealed_secrets_per_tenant(store: TestStore) {
        use weft::store::{Keycheck, SecretRecord};
        let db = store.open().await;
        let record = |tenant: &str, name: &str, at: u64, byte: u8| SecretRecord {
            tenant: tenant.into(),
            name: name.into(),
            key_id: "0011223344556677".into(),
            nonce: vec![byte; 24],
            ciphertext: vec![byte; 40],
            created_at: at,
            updated_at: at,
        };
        assert!(db.put_secret(record("acme", "b", 10, 1)).await.unwrap());
        assert!(db.put_secret(record("acme", "a", 11, 2)).await.unwrap());
        assert!(db.put_secret(record("globex", "a", 12, 3)).await.unwrap());
        assert!(!db.put_secret(record("acme", "b", 20, 4)).await.unwrap());
        let b = db.secret("acme", "b").await.unwrap().unwrap();
        assert_eq!((b.created_at, b.updated_at, b.nonce[0], b.ciphertext.len()), (10, 20, 4, 40));
        let names: Vec<String> = db.secrets("acme").await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(db.secret("globex", "b").await.unwrap(), None);
        assert!(db.delete_secret("acme", "a").await.unwrap());
        assert!(!db.delete_secret("acme", "a").await.unwrap());
        assert_eq!(db.secrets("globex").await.unwrap().len(), 1);

        assert_eq!(db.keycheck().await.unwrap(), None);
        let check = |id: &str| Keycheck {
            key_id: id.into(),
            nonce: vec![9; 24],
            ciphertext: vec![9; 32],
        };
        assert_eq!(db.put_keycheck(check("first")).await.unwrap(), check("first"));
        assert_eq!(db.put_keycheck(check("second")).await.unwrap(), check("first"));
        assert_eq!(db.keycheck().await.unwrap(), Some(check("first")));
    }
}

/// `weft run` on a store with secrets gives its steps theirs when the key
/// is at hand, and otherwise runs without (the step fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_run_gives_steps_their_secrets_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = hex_key(5);
    let server = Server::start(&data, None, Some(&key));
    // `weft run` runs as tenant `local`.
    let local = server.tenant("local").await;
    assert_eq!(server.set(&local, "token", VALUE).await.0, StatusCode::CREATED);
    server.stop();

    let workflow = dir.path().join("uses.yaml");
    std::fs::write(
        &workflow,
        "name: uses\nsteps:\n  - id: greet\n    task: hello\n    input: {name: Ada}\n    secrets: [token]\n",
    )
    .unwrap();
    let modules = common::guest("hello").parent().unwrap().to_path_buf();
    let run = |key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .arg("run")
            .arg(&workflow)
            .arg("--modules")
            .arg(&modules)
            .arg("--data")
            .arg(&data)
            .env_remove("WEFT_MASTER_KEY")
            .env_remove("WEFT_STORE");
        if let Some(key) = key {
            command.env("WEFT_MASTER_KEY", key);
        }
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_absent("weft run's output", text.as_bytes());
        (output.status.code(), text)
    };
    let (code, text) = run(Some(&key));
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(None);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("secret_missing"), "{text}");
    let (code, text) = run(Some(&hex_key(6)));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("does not open this store's secrets"), "{text}");
}
