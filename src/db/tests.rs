//! The store against a real redb file.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::model::{Event, EventKind, RunStatus, UnitStatus};

fn run(id: u64, status: RunStatus) -> RunRecord {
    RunRecord {
        id: RunId(id),
        tenant: "acme".into(),
        workflow: "order".into(),
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

#[tokio::test]
async fn records_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    {
        let db = Db::open(&path).unwrap();
        let unit = UnitRecord {
            status: UnitStatus::Succeeded,
            attempts: 1,
            output: Some(json!(1)),
            ..UnitRecord::pending()
        };
        db.commit(vec![
            Change::PutRun(Box::new(run(1, RunStatus::Running))),
            Change::PutUnit {
                run: RunId(1),
                key: UnitKey::step(0),
                record: unit.clone(),
            },
            Change::PutUnit {
                run: RunId(1),
                key: UnitKey::item(1, 3),
                record: UnitRecord::pending(),
            },
            Change::AppendEvent {
                run: RunId(1),
                seq: 0,
                event: Event {
                    at: 5,
                    kind: EventKind::RunStarted,
                },
            },
            Change::Kv {
                tenant: "acme".into(),
                key: "k".into(),
                value: Some(b"\"v\"".to_vec()),
            },
        ])
        .await
        .unwrap();
        assert_eq!(db.units(RunId(1)).unwrap()[0], (UnitKey::step(0), unit));
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.run(RunId(1)).unwrap(), Some(run(1, RunStatus::Running)));
    assert_eq!(db.active_runs().unwrap(), vec![RunId(1)]);
    assert_eq!(db.units(RunId(1)).unwrap()[1].0, UnitKey::item(1, 3));
    assert_eq!(db.events(RunId(1)).unwrap().len(), 1);
    assert_eq!(db.next_event_seq(RunId(1)).unwrap(), 1);
    assert_eq!(db.next_event_seq(RunId(2)).unwrap(), 0);
    assert_eq!(KvRead::get(&db, "acme", "k"), Ok(Some(b"\"v\"".to_vec())));
    assert_eq!(KvRead::get(&db, "other", "k"), Ok(None));
    assert_eq!(db.last_run_id().unwrap(), 1);

    db.commit(vec![Change::PutRun(Box::new(run(1, RunStatus::Succeeded)))])
        .await
        .unwrap();
    assert!(
        db.active_runs().unwrap().is_empty(),
        "a finished run is no longer active"
    );
}

#[tokio::test]
async fn concurrent_writers_are_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("weft.redb")).unwrap());
    let writers: Vec<_> = (1..=200)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.commit(vec![Change::PutRun(Box::new(run(i, RunStatus::Running)))])
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(db.runs().unwrap().len(), 200);
    assert_eq!(db.runs().unwrap()[0].id, RunId(200), "newest first");
}

#[test]
fn refuses_another_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    drop(Db::open(&path).unwrap());
    {
        let database = Database::create(&path).unwrap();
        let txn = database.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", 99).unwrap();
        txn.commit().unwrap();
    }
    let error = Db::open(&path).err().unwrap();
    assert_eq!(
        error,
        DbError::SchemaVersion {
            found: 99,
            expected: SCHEMA_VERSION
        }
    );
}
