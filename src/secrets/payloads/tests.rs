//! The sealing store on a real (temporary) redb store.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::model::RunStatus;
use crate::secrets::{KEY_LEN, KeyOrigin, Secrets, rotate};
use crate::store::redb::RedbStore;
use crate::tenant::Quotas;

fn backend(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap())
}

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; KEY_LEN], KeyOrigin::Env)
}

fn tenant(id: &str, encrypt: bool) -> Change {
    Change::PutTenant(Box::new(TenantRecord {
        id: id.into(),
        quotas: Quotas {
            encrypt_payloads: encrypt,
            ..Quotas::default()
        },
        disabled: false,
        created_at: 1,
    }))
}

fn run(tenant: &str, id: u64) -> RunRecord {
    RunRecord {
        id: RunId(id),
        tenant: tenant.into(),
        workflow: "order".into(),
        workflow_digest: Digest::of(b"w"),
        modules: vec![],
        signals: vec![],
        signal_ids: vec![],
        signals_received: 0,
        paused: false,
        parent: None,
        input: json!({"email": format!("ada-{id}@example.com")}),
        priority: 0,
        status: RunStatus::Succeeded,
        output: Some(json!({"shipped_to": "12 Analytical Row"})),
        error: None,
        created_at: 1,
        updated_at: 2,
        caps: None,
    }
}

/// The records `table` holds, as JSON text: what is on disk.
async fn raw(store: &dyn Store, table: Table) -> String {
    let page = store.export_page(table, None, 1000).await.unwrap();
    let records: Vec<Record> = page.records.into_iter().map(Result::unwrap).collect();
    serde_json::to_string(&records).unwrap()
}

#[tokio::test]
async fn a_sealing_tenants_payloads_are_stored_sealed_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let inner = backend(&dir);
    let store = seal_payloads(inner.clone(), Some(key(1)));
    store
        .commit(vec![tenant("acme", true), tenant("plain", false)])
        .await
        .unwrap();
    store
        .commit(vec![
            Change::PutRun(Box::new(run("acme", 1))),
            Change::Kv {
                tenant: "acme".into(),
                key: "card".into(),
                value: Some(br#"{"last4":"4242"}"#.to_vec()),
            },
        ])
        .await
        .unwrap();
    store
        .commit(vec![Change::PutRun(Box::new(run("plain", 2)))])
        .await
        .unwrap();

    let runs = raw(&*inner, Table::Runs).await;
    assert!(!runs.contains("ada-1@example.com"), "{runs}");
    assert!(runs.contains("ada-2@example.com"), "the other tenant is not sealed");
    assert_eq!(runs.matches("12 Analytical Row").count(), 1, "{runs}");
    let card = inner.kv_get("acme", "card").await.unwrap().unwrap();
    assert!(
        card.starts_with(b"\"weft:sealed:v1:"),
        "{}",
        String::from_utf8_lossy(&card)
    );

    assert_eq!(store.run(RunId(1)).await.unwrap().unwrap(), run("acme", 1));
    assert_eq!(store.run(RunId(2)).await.unwrap().unwrap(), run("plain", 2));
    let (listed, _) = store
        .tenant_runs(
            "acme",
            &RunFilter {
                limit: 10,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![run("acme", 1)]);
    assert_eq!(
        store.kv_get("acme", "card").await.unwrap().unwrap(),
        br#"{"last4":"4242"}"#
    );
    assert_eq!(
        store.kv_entries("acme").await.unwrap(),
        vec![("card".to_string(), json!({"last4": "4242"}))]
    );

    // The data key is kept with the tenant's secrets, but never listed.
    let secrets = Secrets::open(inner.clone(), key(1)).await.unwrap();
    assert!(secrets.list("acme").await.unwrap().is_empty());
    assert_eq!(inner.secrets("acme").await.unwrap().len(), 1);
    // And the store now refuses another master key.
    assert!(Secrets::open(inner.clone(), key(2)).await.is_err());
}

#[tokio::test]
async fn batches_keep_their_order_through_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let inner = backend(&dir);
    // Written below the wrapper: it must look the tenant up, so the first
    // batch waits in the queue and the others behind it.
    inner.commit(vec![tenant("acme", true)]).await.unwrap();
    let wrapper = seal_payloads(inner.clone(), Some(key(1)));
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let kv = |value: Option<&str>| Change::Kv {
        tenant: "acme".into(),
        key: "k".into(),
        value: value.map(|v| v.as_bytes().to_vec()),
    };
    for (i, change) in [kv(Some("\"1\"")), kv(Some("\"2\"")), kv(None), kv(Some("\"4\""))]
        .into_iter()
        .enumerate()
    {
        let done = done.clone();
        wrapper.submit(
            vec![change],
            Box::new(move |result| {
                result.unwrap();
                done.send(i).unwrap();
            }),
        );
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(finished.recv().await.unwrap());
    }
    assert_eq!(order, vec![0, 1, 2, 3]);
    assert_eq!(wrapper.kv_get("acme", "k").await.unwrap().unwrap(), b"\"4\"");
    let stored = inner.kv_get("acme", "k").await.unwrap().unwrap();
    assert!(
        stored.starts_with(b"\"weft:sealed:v1:"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
}

#[tokio::test]
async fn a_node_without_the_master_key_writes_nothing_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let inner = backend(&dir);
    let store = seal_payloads(inner.clone(), None);
    let error = store.commit(vec![tenant("acme", true)]).await.unwrap_err();
    assert!(error.to_string().contains("no master key"), "{error}");
    assert!(inner.tenant("acme").await.unwrap().is_none());
    // A tenant that turned sealing on elsewhere.
    inner.commit(vec![tenant("acme", true)]).await.unwrap();
    let error = store
        .commit(vec![Change::PutRun(Box::new(run("acme", 1)))])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("WEFT_MASTER_KEY"), "{error}");
    assert!(inner.run(RunId(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn turning_sealing_off_keeps_old_values_readable() {
    let dir = tempfile::tempdir().unwrap();
    let inner = backend(&dir);
    let store = seal_payloads(inner.clone(), Some(key(1)));
    store.commit(vec![tenant("acme", true)]).await.unwrap();
    store
        .commit(vec![Change::PutRun(Box::new(run("acme", 1)))])
        .await
        .unwrap();
    store.commit(vec![tenant("acme", false)]).await.unwrap();
    store
        .commit(vec![Change::PutRun(Box::new(run("acme", 2)))])
        .await
        .unwrap();
    let runs = raw(&*inner, Table::Runs).await;
    assert!(!runs.contains("ada-1@example.com"));
    assert!(runs.contains("ada-2@example.com"));
    assert_eq!(store.run(RunId(1)).await.unwrap().unwrap(), run("acme", 1));
    assert_eq!(store.run(RunId(2)).await.unwrap().unwrap(), run("acme", 2));
}

#[tokio::test]
async fn after_a_rotation_old_and_new_payloads_read_back_with_the_new_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let inner = backend(&dir);
    let secrets = Secrets::open(inner.clone(), key(1)).await.unwrap();
    secrets.set("acme", "token", "hunter2").await.unwrap();
    let store = seal_payloads(inner.clone(), Some(key(1)));
    store.commit(vec![tenant("acme", true)]).await.unwrap();
    store
        .commit(vec![Change::PutRun(Box::new(run("acme", 1)))])
        .await
        .unwrap();

    let wrong = rotate::rotate(&*inner, &key(3), &key(2)).await.unwrap_err();
    assert!(wrong.to_string().contains("does not open"), "{wrong}");
    let done = rotate::rotate(&*inner, &key(1), &key(2)).await.unwrap();
    assert_eq!((done.secrets, done.data_keys), (1, 1));

    assert!(Secrets::open(inner.clone(), key(1)).await.is_err());
    let secrets = Secrets::open(inner.clone(), key(2)).await.unwrap();
    let values = secrets.reveal("acme", &["token".into()]).await.unwrap();
    assert_eq!(values["token"], "hunter2");
    let store = seal_payloads(inner.clone(), Some(key(2)));
    assert_eq!(store.run(RunId(1)).await.unwrap().unwrap(), run("acme", 1));
    store
        .commit(vec![Change::PutRun(Box::new(run("acme", 2)))])
        .await
        .unwrap();
    assert_eq!(store.run(RunId(2)).await.unwrap().unwrap(), run("acme", 2));
    assert!(!raw(&*inner, Table::Runs).await.contains("ada-2@example.com"));
}
