//! The contracts every backend keeps (`weft::store::Store`), one test body
//! run on redb and on a real PostgreSQL: what is committed reads back the
//! same, survives reopening, in the same order; every concurrent writer is
//! acknowledged only once durable; lists page the same way.

#[path = "common/backend.rs"]
mod backend;

use std::sync::Arc;

use backend::TestStore;
use serde_json::json;
use weft::Digest;
use weft::model::{Event, EventKind, ModuleRecord, RunId, RunRecord, RunStatus, UnitKey, UnitRecord, UnitStatus};
use weft::store::{Change, RunFilter};

fn run(id: u64, tenant: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        id: RunId(id),
        tenant: tenant.into(),
        workflow: if id.is_multiple_of(2) { "even" } else { "odd" }.into(),
        workflow_digest: Digest::of(b"doc"),
        modules: vec![Digest::of(b"module")],
        input: json!({"n": id}),
        priority: 0,
        status,
        output: None,
        error: None,
        created_at: 1,
        updated_at: 1,
        caps: None,
    }
}

fn event(seq: u32) -> Change {
    Change::AppendEvent {
        tenant: "acme".into(),
        run: RunId(1),
        seq,
        event: Event {
            at: 5 + u64::from(seq),
            kind: EventKind::RunStarted,
        },
    }
}

on_both_backends! {
    async fn records_round_trip_and_survive_reopening(store: TestStore) {
        let unit = UnitRecord {
            status: UnitStatus::Succeeded,
            attempts: 1,
            output: Some(json!(1)),
            ..UnitRecord::pending()
        };
        {
            let db = store.open().await;
            db.commit(vec![
                Change::PutRun(Box::new(run(1, "acme", RunStatus::Running))),
                Change::PutUnit { tenant: "acme".into(), run: RunId(1), key: UnitKey::step(0), record: unit.clone() },
                Change::PutUnit { tenant: "acme".into(), run: RunId(1), key: UnitKey::step(1), record: UnitRecord::pending() },
                Change::PutUnit { tenant: "acme".into(), run: RunId(1), key: UnitKey::item(1, 3), record: UnitRecord::pending() },
                event(0),
                event(1),
                Change::Kv { tenant: "acme".into(), key: "k".into(), value: Some(b"\"v\"".to_vec()) },
            ])
            .await
            .unwrap();
            assert_eq!(db.units("acme", RunId(1)).await.unwrap()[0], (UnitKey::step(0), unit.clone()));
        }
        let db = store.open().await;
        assert_eq!(db.run(RunId(1)).await.unwrap(), Some(run(1, "acme", RunStatus::Running)));
        assert_eq!(db.active_runs().await.unwrap(), vec![RunId(1)]);
        let keys: Vec<UnitKey> = db.units("acme", RunId(1)).await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [UnitKey::step(0), UnitKey::item(1, 3), UnitKey::step(1)], "items before their step's own row");
        assert_eq!(db.events_from("acme", RunId(1), 1).await.unwrap().len(), 1);
        assert_eq!(db.next_event_seq("acme", RunId(1)).await.unwrap(), 2);
        assert_eq!(db.next_event_seq("acme", RunId(2)).await.unwrap(), 0);
        assert_eq!(db.kv_get("acme", "k").await.unwrap(), Some(b"\"v\"".to_vec()));
        assert_eq!(db.kv_get("other", "k").await.unwrap(), None);
        assert_eq!(db.kv_entries("acme").await.unwrap(), vec![("k".to_string(), json!("v"))]);
        assert_eq!(db.last_run_id().await.unwrap(), 1);

        db.commit(vec![
            Change::PutRun(Box::new(run(1, "acme", RunStatus::Succeeded))),
            Change::Kv { tenant: "acme".into(), key: "k".into(), value: None },
        ])
        .await
        .unwrap();
        assert!(db.active_runs().await.unwrap().is_empty(), "a finished run is no longer active");
        assert_eq!(db.kv_get("acme", "k").await.unwrap(), None);
    }

    async fn a_batch_applied_twice_is_applied_once(store: TestStore) {
        // What a backend does when it cannot learn whether a commit landed.
        let db = store.open().await;
        let batch = vec![
            Change::PutRun(Box::new(run(1, "acme", RunStatus::Running))),
            event(0),
            Change::PutWorkflow { tenant: "acme".into(), name: "w".into(), digest: Digest::of(b"w1"), source: "w1".into(), at: 1 },
            Change::PutIdempotencyKey { tenant: "acme".into(), key: "once".into(), run: RunId(1) },
        ];
        db.commit(batch.clone()).await.unwrap();
        db.commit(batch).await.unwrap();
        assert_eq!(db.events_from("acme", RunId(1), 0).await.unwrap().len(), 1);
        assert_eq!(db.workflow_versions("acme", "w").await.unwrap().len(), 1);
        assert_eq!(db.idempotent_run("acme", "once").await.unwrap(), Some(RunId(1)));
    }

    async fn concurrent_writers_are_all_acknowledged(store: TestStore) {
        let db = store.open().await;
        let writers: Vec<_> = (1..=200)
            .map(|i| {
                let db = Arc::clone(&db);
                tokio::spawn(async move {
                    db.commit(vec![Change::PutRun(Box::new(run(i, "acme", RunStatus::Running)))]).await
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(db.active_runs().await.unwrap().len(), 200);
        assert_eq!(db.last_run_id().await.unwrap(), 200);
    }

    async fn a_tenant_s_runs_page_newest_first(store: TestStore) {
        let db = store.open().await;
        let mut changes: Vec<Change> = (1..=25).map(|i| Change::PutRun(Box::new(run(i, "acme", RunStatus::Running)))).collect();
        changes.push(Change::PutRun(Box::new(run(26, "globex", RunStatus::Running))));
        db.commit(changes).await.unwrap();
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let filter = RunFilter { before, limit: 10, ..RunFilter::default() };
            let (page, next) = db.tenant_runs("acme", &filter).await.unwrap();
            seen.extend(page.iter().map(|r| r.id.0));
            match next {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, (1..=25).rev().collect::<Vec<u64>>(), "every run once, newest first, no other tenant's");
        let odd = RunFilter { workflow: Some("odd".into()), limit: 100, ..RunFilter::default() };
        let (page, next) = db.tenant_runs("acme", &odd).await.unwrap();
        assert_eq!(page.len(), 13);
        assert_eq!(next, None);
    }

    async fn modules_and_workflows_are_versioned_per_tenant(store: TestStore) {
        let db = store.open().await;
        let bytes = b"\0asm not really".to_vec();
        let record = ModuleRecord::of("hello", &bytes, vec![], 7);
        db.commit(vec![
            Change::PutModule { tenant: "acme".into(), digest: record.digest, bytes: Arc::new(bytes.clone()) },
            Change::PutModuleVersion { tenant: "acme".into(), record: Box::new(record.clone()) },
        ])
        .await
        .unwrap();
        assert_eq!(db.module("acme", &record.digest).await.unwrap(), Some(bytes));
        assert_eq!(db.module_named("acme", "hello").await.unwrap(), Some(record.digest));
        assert_eq!(db.module_named("globex", "hello").await.unwrap(), None);
        assert_eq!(db.module_version("acme", "hello", &record.version).await.unwrap(), Some(record.clone()));
        db.commit(vec![Change::DeleteModule { tenant: "acme".into(), name: "hello".into() }]).await.unwrap();
        assert!(db.module_versions("acme").await.unwrap().is_empty());

        for (i, text) in ["v1", "v2", "v2", "v3"].iter().enumerate() {
            let change = Change::PutWorkflow {
                tenant: "acme".into(),
                name: "w".into(),
                digest: Digest::of(text.as_bytes()),
                source: (*text).into(),
                at: i as u64,
            };
            db.commit(vec![change]).await.unwrap();
        }
        let versions = db.workflow_versions("acme", "w").await.unwrap();
        let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
        assert_eq!(numbers, [1, 2, 3], "pushing the newest text again adds no version");
        assert_eq!(db.workflow_named("acme", "w").await.unwrap(), Some(Digest::of(b"v3")));
        assert_eq!(db.workflow("acme", &Digest::of(b"v2")).await.unwrap().as_deref(), Some("v2"));
        assert_eq!(db.workflow_names("acme").await.unwrap(), ["w"]);
        assert!(db.workflow_names("globex").await.unwrap().is_empty());
    }
}
