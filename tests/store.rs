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
use weft::store::{Change, Expect, ObjectKind, RunFilter};

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
        signals: vec![],
        signal_ids: vec![],
        signals_received: 0,
        paused: false,
        parent: None,
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
        // Run i is created at i seconds.
        let created = |i: u64| RunRecord { created_at: i * 1000, ..run(i, "acme", RunStatus::Running) };
        let mut changes: Vec<Change> = (1..=25).map(|i| Change::PutRun(Box::new(created(i)))).collect();
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
        let window = RunFilter {
            created_from: Some(5_000),
            created_until: Some(9_000),
            limit: 100,
            ..RunFilter::default()
        };
        let (page, _) = db.tenant_runs("acme", &window).await.unwrap();
        let ids: Vec<u64> = page.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [8, 7, 6, 5], "from is inclusive, until exclusive");
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

/// Two tenants' worth of every kind of record, through the same changes
/// the engine and the API make.
async fn fill(db: &dyn weft::store::Store) {
    use weft::tenant::{KeyRecord, Quotas, TenantRecord};
    for tenant in ["acme", "globex"] {
        let bytes = format!("\0asm {tenant}").into_bytes();
        let record = ModuleRecord::of("hello", &bytes, vec![], 3);
        let mut changes = vec![
            Change::PutTenant(Box::new(TenantRecord {
                id: tenant.into(),
                quotas: Quotas::default(),
                disabled: false,
                created_at: 1,
            })),
            Change::PutKey(Box::new(KeyRecord {
                key_id: format!("k{tenant}"),
                tenant: tenant.into(),
                secret_sha256: "00".into(),
                created_at: 1,
                role: weft::roles::Role::Operator,
            })),
            Change::PutModule {
                tenant: tenant.into(),
                digest: record.digest,
                bytes: Arc::new(bytes),
            },
            Change::PutModuleVersion {
                tenant: tenant.into(),
                record: Box::new(record),
            },
            Change::Kv {
                tenant: tenant.into(),
                key: "k".into(),
                value: Some(b"1".to_vec()),
            },
        ];
        for text in ["one", "two", "one"] {
            changes.push(Change::PutWorkflow {
                tenant: tenant.into(),
                name: "w".into(),
                digest: Digest::of(text.as_bytes()),
                source: text.into(),
                at: 2,
            });
        }
        db.commit(changes).await.unwrap();
    }
    let mut changes = Vec::new();
    for id in 1..=30u64 {
        let tenant = if id % 3 == 0 { "globex" } else { "acme" };
        let status = if id % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Running
        };
        let mut record = run(id, tenant, status);
        record.workflow_digest = Digest::of(b"one");
        record.modules = vec![Digest::of(format!("\0asm {tenant}").as_bytes())];
        changes.push(Change::PutRun(Box::new(record)));
        if status.is_final() {
            let event = Event {
                at: 2,
                kind: EventKind::RunFinished { status },
            };
            changes.push(Change::AppendEvent {
                tenant: tenant.into(),
                run: RunId(id),
                seq: 1,
                event,
            });
        }
        changes.push(Change::PutUnit {
            tenant: tenant.into(),
            run: RunId(id),
            key: UnitKey::step(0),
            record: UnitRecord::pending(),
        });
        changes.push(Change::PutUnit {
            tenant: tenant.into(),
            run: RunId(id),
            key: UnitKey::item(0, 1),
            record: UnitRecord::pending(),
        });
        changes.push(Change::AppendEvent {
            tenant: tenant.into(),
            run: RunId(id),
            seq: 0,
            event: Event {
                at: 1,
                kind: EventKind::RunStarted,
            },
        });
        changes.push(Change::PutIdempotencyKey {
            tenant: tenant.into(),
            key: format!("i{id}"),
            run: RunId(id),
        });
        changes.push(Change::InsertObject {
            kind: ObjectKind::Delivery,
            tenant: tenant.into(),
            name: format!("{id}/1"),
            value: json!({"status": "delivered"}),
        });
    }
    db.commit(changes).await.unwrap();
    for tenant in ["acme", "globex"] {
        let schedule = json!({"cron": "0 2 * * *", "input": {"tenant": tenant}});
        db.put_object(ObjectKind::Schedule, tenant, "nightly", &schedule, Expect::Any)
            .await
            .unwrap();
    }
}

/// Every record of `db`, by table, and the tally of them.
async fn contents(db: &dyn weft::store::Store) -> weft::store::Tally {
    weft::store::transfer::scan(db, |_| {}, |_, _| {}).await.unwrap().tally
}

on_both_backends! {
    async fn a_store_copied_to_the_other_backend_and_back_is_the_same(store: TestStore) {
        let source = store.open().await;
        fill(&*source).await;
        let other = match store.backend {
            backend::Backend::Redb => TestStore::postgres(),
            backend::Backend::Postgres => Some(TestStore::redb()),
        };
        let Some(other) = other else { return };
        let target = other.open().await;
        assert!(weft::store::transfer::is_empty(&*target).await.unwrap());
        let copied = weft::store::transfer::copy(&*source, &*target, |_, _| {}).await.unwrap();
        assert!(copied.corrupt.is_empty(), "{:?}", copied.corrupt);
        let here = contents(&*source).await;
        let there = contents(&*target).await;
        assert_eq!(here, there, "per-table counts and checksums");
        assert_eq!(copied.tally, here);
        assert_eq!(there.count(weft::store::Table::Runs), 30);
        assert_eq!(there.count(weft::store::Table::WorkflowVersions), 6, "versions kept as numbered");
        assert_eq!(there.count(weft::store::Table::Workflows), 4, "a document once per tenant");
        // The copy is a store like any other: the engine's reads work on it.
        assert_eq!(target.workflow_versions("acme", "w").await.unwrap().len(), 3);
        assert_eq!(target.workflow_named("acme", "w").await.unwrap(), Some(Digest::of(b"one")));
        assert_eq!(target.units("acme", RunId(1)).await.unwrap().len(), 2);
        assert_eq!(target.idempotent_run("globex", "i3").await.unwrap(), Some(RunId(3)));
        let unfinished = target.active_runs().await.unwrap().len();
        assert_eq!(unfinished, 15);
        // And a check of either finds nothing wrong.
        let report = weft::store::check::check(&*target, |_, _| {}).await.unwrap();
        assert_eq!(report.findings, vec![]);
    }

    async fn retention_deletes_expired_runs_and_unnamed_module_bytes_only(store: TestStore) {
        use weft::store::retention::sweep;
        use weft::tenant::{Quotas, TenantRecord};
        const DAY: u64 = 24 * 60 * 60 * 1000;
        let db = store.open().await;
        let tenant = |id: &str, days: u32| {
            Change::PutTenant(Box::new(TenantRecord {
                id: id.into(),
                quotas: Quotas { retention_days: days, ..Quotas::default() },
                disabled: false,
                created_at: 0,
            }))
        };
        let module = |name: &str| {
            let bytes = format!("\0asm {name}").into_bytes();
            (ModuleRecord::of(name, &bytes, vec![], 0), bytes)
        };
        let (kept, kept_bytes) = module("kept");
        let (deleted, deleted_bytes) = module("deleted");
        let (running_only, running_bytes) = module("running-only");
        let mut changes = vec![tenant("acme", 1), tenant("globex", 30)];
        for (record, bytes) in [(&kept, &kept_bytes), (&deleted, &deleted_bytes), (&running_only, &running_bytes)] {
            changes.push(Change::PutModule { tenant: "acme".into(), digest: record.digest, bytes: Arc::new(bytes.clone()) });
            changes.push(Change::PutModuleVersion { tenant: "acme".into(), record: Box::new(record.clone()) });
        }
        let at = |id: u64, tenant: &str, status: RunStatus, updated: u64, module: &ModuleRecord| {
            let mut record = run(id, tenant, status);
            record.updated_at = updated;
            record.modules = vec![module.digest];
            record
        };
        // acme keeps finished runs 1 day: run 1 is 2 days old, 2 is fresh,
        // 3 is old but unfinished; globex keeps 30 days: run 4 is 2 days old.
        let runs = [
            at(1, "acme", RunStatus::Failed, 0, &deleted),
            at(2, "acme", RunStatus::Succeeded, 2 * DAY - 1000, &kept),
            at(3, "acme", RunStatus::Running, 0, &running_only),
            at(4, "globex", RunStatus::Succeeded, 0, &kept),
        ];
        for record in runs {
            let (id, tenant) = (record.id, record.tenant.clone());
            changes.push(Change::PutRun(Box::new(record)));
            changes.push(Change::PutUnit { tenant: tenant.clone(), run: id, key: UnitKey::step(0), record: UnitRecord::pending() });
            changes.push(Change::AppendEvent { tenant: tenant.clone(), run: id, seq: 0, event: Event { at: 0, kind: EventKind::RunStarted } });
            changes.push(Change::PutIdempotencyKey { tenant, key: format!("key{id}"), run: id });
        }
        db.commit(changes).await.unwrap();
        // The modules of the deleted run and of the running one are deleted
        // by name; only the running run still names its bytes.
        for name in ["deleted", "running-only"] {
            db.commit(vec![Change::DeleteModule { tenant: "acme".into(), name: name.into() }]).await.unwrap();
        }

        assert_eq!(sweep(&*db, 2 * DAY).await.unwrap().runs, 1);

        assert_eq!(db.run(RunId(1)).await.unwrap(), None, "expired");
        assert!(db.units("acme", RunId(1)).await.unwrap().is_empty());
        assert!(db.events_from("acme", RunId(1), 0).await.unwrap().is_empty());
        assert_eq!(db.idempotent_run("acme", "key1").await.unwrap(), None);
        for (tenant, id) in [("acme", 2), ("acme", 3), ("globex", 4)] {
            assert!(db.run(RunId(id)).await.unwrap().is_some(), "run {id} is kept");
            assert_eq!(db.units(tenant, RunId(id)).await.unwrap().len(), 1);
            assert_eq!(db.idempotent_run(tenant, &format!("key{id}")).await.unwrap(), Some(RunId(id)));
        }
        assert!(db.module("acme", &kept.digest).await.unwrap().is_some(), "named by a version");
        assert!(db.module("acme", &running_only.digest).await.unwrap().is_some(), "named by an unfinished run");
        assert_eq!(db.module("acme", &deleted.digest).await.unwrap(), None, "named by nothing");

        // A second sweep at the same time finds nothing more.
        assert_eq!(sweep(&*db, 2 * DAY).await.unwrap().runs, 0);
    }
}

on_both_backends! {
    async fn named_records_compare_and_set_and_go_with_their_runs(store: TestStore) {
        let db = store.open().await;
        let (kind, v1, v2) = (ObjectKind::Schedule, json!({"cron": "* * * * *"}), json!({"cron": "0 * * * *"}));
        assert_eq!(db.put_object(kind, "acme", "s", &v1, Expect::Absent).await.unwrap(), Some(1));
        assert_eq!(db.put_object(kind, "acme", "s", &v2, Expect::Absent).await.unwrap(), None, "the name is taken");
        assert_eq!(db.put_object(kind, "acme", "s", &v2, Expect::Revision(2)).await.unwrap(), None, "not at 2");
        assert_eq!(db.put_object(kind, "acme", "s", &v2, Expect::Revision(1)).await.unwrap(), Some(2));
        assert_eq!(db.put_object(kind, "acme", "s", &v1, Expect::Revision(1)).await.unwrap(), None, "moved on");
        let stored = db.object(kind, "acme", "s").await.unwrap().unwrap();
        assert_eq!((stored.revision, &stored.value), (2, &v2));
        assert_eq!(db.object(kind, "globex", "s").await.unwrap(), None, "another tenant's name");
        assert_eq!(db.object(ObjectKind::Hook, "acme", "s").await.unwrap(), None, "another kind");
        assert_eq!(db.put_object(kind, "acme", "s", &v1, Expect::Any).await.unwrap(), Some(3));
        db.put_object(kind, "globex", "t", &v1, Expect::Any).await.unwrap();
        db.put_object(kind, "acme", "a", &v1, Expect::Any).await.unwrap();

        let names = |list: Vec<weft::store::StoredObject>| -> Vec<String> {
            list.into_iter().map(|o| format!("{}/{}", o.tenant, o.name)).collect()
        };
        assert_eq!(names(db.objects(kind, Some("acme"), "", 10).await.unwrap()), ["acme/a", "acme/s"]);
        assert_eq!(names(db.objects(kind, None, "", 10).await.unwrap()), ["acme/a", "acme/s", "globex/t"]);
        assert_eq!(names(db.objects(kind, None, "", 2).await.unwrap()), ["acme/a", "acme/s"]);
        assert_eq!(names(db.objects(kind, None, "s", 10).await.unwrap()), ["acme/s"]);

        assert!(!db.delete_object(kind, "acme", "s", Expect::Revision(2)).await.unwrap(), "not at 2");
        assert!(db.delete_object(kind, "acme", "s", Expect::Revision(3)).await.unwrap());
        assert!(!db.delete_object(kind, "acme", "s", Expect::Any).await.unwrap(), "gone already");

        // An insert from a batch does not overwrite; a run's records go
        // with the run.
        let insert = |run: u64, status: &str| Change::InsertObject {
            kind: ObjectKind::Delivery,
            tenant: "acme".into(),
            name: format!("{run}/0"),
            value: json!({"status": status}),
        };
        db.commit(vec![Change::PutRun(Box::new(run(1, "acme", RunStatus::Succeeded))), insert(1, "first")]).await.unwrap();
        db.commit(vec![Change::PutRun(Box::new(run(11, "acme", RunStatus::Succeeded))), insert(11, "other")]).await.unwrap();
        db.commit(vec![insert(1, "second")]).await.unwrap();
        let delivery = db.object(ObjectKind::Delivery, "acme", "1/0").await.unwrap().unwrap();
        assert_eq!(delivery.value, json!({"status": "first"}));
        assert_eq!(names(db.objects(ObjectKind::Delivery, Some("acme"), "1/", 10).await.unwrap()), ["acme/1/0"]);
        db.commit(vec![Change::DeleteRuns { tenant: "acme".into(), runs: vec![RunId(1)] }]).await.unwrap();
        assert_eq!(db.object(ObjectKind::Delivery, "acme", "1/0").await.unwrap(), None);
        assert!(db.object(ObjectKind::Delivery, "acme", "11/0").await.unwrap().is_some(), "run 11's stays");
    }
}

/// Corruptions planted in the embedded store's file, under `weft check`.
/// (The same on PostgreSQL: tests/api/migrate.rs.)
#[tokio::test]
async fn check_finds_what_is_planted_in_the_embedded_store() {
    use redb::{ReadableTable as _, TableDefinition};
    let store = TestStore::redb();
    {
        let db = store.open().await;
        fill(&*db).await;
        let report = weft::store::check::check(&*db, |_, _| {}).await.unwrap();
        assert_eq!(report.findings, vec![]);
    }
    let weft::store::StoreLocation::Redb(dir) = store.location() else {
        unreachable!()
    };
    {
        let file = redb::Database::create(dir.join(weft::store::redb::STORE_FILE)).unwrap();
        let txn = file.begin_write().unwrap();
        {
            let mut events = txn
                .open_table(TableDefinition::<(u64, u32), &[u8]>::new("events"))
                .unwrap();
            events.remove((2, 0)).unwrap(); // run 2's history now starts at 1
            let mut runs = txn.open_table(TableDefinition::<u64, &[u8]>::new("runs")).unwrap();
            runs.insert(5, b"\x01{\"garbage\": true}".as_slice()).unwrap();
            let mut units = txn
                .open_table(TableDefinition::<(u64, u32, u32), &[u8]>::new("units"))
                .unwrap();
            let unit = units.get((1, 0, u32::MAX)).unwrap().unwrap().value().to_vec();
            units.insert((999, 0, u32::MAX), unit.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let db = store.open().await;
    let report = weft::store::check::check(&*db, |_, _| {}).await.unwrap();
    let said: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    let found = |text: &str| said.iter().any(|s| s.contains(text));
    assert!(found("events 2#1: the history skips from 0 to 1"), "{said:#?}");
    assert!(found("runs 5: does not decode"), "{said:#?}");
    assert!(
        found("units 999/0: belongs to run 999, which does not exist"),
        "{said:#?}"
    );
}

on_both_backends! {
    async fn lookups_see_every_change_at_once(store: TestStore) {
        // Keys, tenants and names are cached in front of the store; every
        // change must show in the next read all the same.
        use weft::tenant::{KeyRecord, Quotas, TenantRecord};
        let db = store.open().await;
        let workflow = |text: &str| Change::PutWorkflow {
            tenant: "acme".into(),
            name: "w".into(),
            digest: Digest::of(text.as_bytes()),
            source: text.into(),
            at: 1,
        };
        assert_eq!(db.workflow_named("acme", "w").await.unwrap(), None);
        db.commit(vec![workflow("one")]).await.unwrap();
        assert_eq!(db.workflow_named("acme", "w").await.unwrap(), Some(Digest::of(b"one")));
        db.commit(vec![workflow("two")]).await.unwrap();
        assert_eq!(db.workflow_named("acme", "w").await.unwrap(), Some(Digest::of(b"two")));

        let mut tenant = TenantRecord { id: "acme".into(), quotas: Quotas::default(), disabled: false, created_at: 1 };
        assert_eq!(db.tenant("acme").await.unwrap(), None);
        db.commit(vec![Change::PutTenant(Box::new(tenant.clone()))]).await.unwrap();
        assert!(!db.tenant("acme").await.unwrap().unwrap().disabled);

        let key = KeyRecord { key_id: "k1".into(), tenant: "acme".into(), secret_sha256: "00".into(), created_at: 1, role: weft::roles::Role::Viewer };
        assert_eq!(db.key("k1").await.unwrap(), None);
        db.commit(vec![Change::PutKey(Box::new(key.clone()))]).await.unwrap();
        assert_eq!(db.key("k1").await.unwrap(), Some(key));
        db.commit(vec![Change::DeleteKey { key_id: "k1".into() }]).await.unwrap();
        assert_eq!(db.key("k1").await.unwrap(), None, "a revoked key is refused at once");

        tenant.disabled = true;
        db.commit(vec![Change::PutTenant(Box::new(tenant))]).await.unwrap();
        assert!(db.tenant("acme").await.unwrap().unwrap().disabled, "a disabled tenant is refused at once");

        let bytes = b"\0asm".to_vec();
        let record = ModuleRecord::of("m", &bytes, vec![], 1);
        db.commit(vec![Change::PutModuleVersion { tenant: "acme".into(), record: Box::new(record.clone()) }]).await.unwrap();
        assert_eq!(db.module_named("acme", "m").await.unwrap(), Some(record.digest));
        db.commit(vec![Change::DeleteModule { tenant: "acme".into(), name: "m".into() }]).await.unwrap();
        assert_eq!(db.module_named("acme", "m").await.unwrap(), None);
    }
}

/// Nodes share a PostgreSQL database, and two may start a run for the same
/// idempotency key at once: the batch whose key names another run already
/// is refused, with every later batch of its run, and told that run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_starts_one_run_across_stores() {
    use weft::store::StoreError;
    let Some(store) = TestStore::postgres() else { return };
    let (a, b) = (store.open().await, store.open().await);
    let start = |id: u64, key: &str| {
        vec![
            Change::PutRun(Box::new(run(id, "acme", RunStatus::Running))),
            Change::PutIdempotencyKey {
                tenant: "acme".into(),
                key: key.into(),
                run: RunId(id),
            },
        ]
    };
    let duplicate_of = |id: u64| Err(StoreError::Duplicate { run: RunId(id) });

    a.commit(start(1, "k")).await.unwrap();
    assert_eq!(b.commit(start(2, "k")).await, duplicate_of(1));
    assert_eq!(
        b.run(RunId(2)).await.unwrap(),
        None,
        "nothing of a refused batch is written"
    );
    assert_eq!(b.idempotent_run("acme", "k").await.unwrap(), Some(RunId(1)));
    b.commit(start(1, "k"))
        .await
        .expect("the key's own run again (a group sent twice) is no conflict");
    let finished = vec![
        Change::PutRun(Box::new(run(2, "acme", RunStatus::Succeeded))),
        Change::PutUnit {
            tenant: "acme".into(),
            run: RunId(2),
            key: UnitKey::step(0),
            record: UnitRecord::pending(),
        },
    ];
    assert_eq!(
        b.commit(finished).await,
        duplicate_of(1),
        "what follows a refused start is refused"
    );
    assert_eq!(b.run(RunId(2)).await.unwrap(), None);
    assert!(b.units("acme", RunId(2)).await.unwrap().is_empty());
    // A start and what follows it sent together (one group, as a rule).
    let (start3, then3) = (
        b.commit(start(3, "k")),
        b.commit(vec![Change::PutRun(Box::new(run(3, "acme", RunStatus::Succeeded)))]),
    );
    let (start3, then3) = tokio::join!(start3, then3);
    assert_eq!((start3, then3), (duplicate_of(1), duplicate_of(1)));
    assert_eq!(b.run(RunId(3)).await.unwrap(), None);

    // Many at once from both stores, with batches of one store in one
    // group: the first to commit wins each key; the others commit
    // beside the refused ones.
    let mut answers = Vec::new();
    for k in 0..40u64 {
        for (db, id) in [(&a, 100 + 3 * k), (&b, 101 + 3 * k), (&a, 102 + 3 * k)] {
            let db = Arc::clone(db);
            let key = format!("key-{k}");
            let mut batch = start(id, &key);
            batch.push(Change::Kv {
                tenant: "acme".into(),
                key: format!("kv-{id}"),
                value: Some(b"1".to_vec()),
            });
            answers.push((k, id, tokio::spawn(async move { db.commit(batch).await })));
        }
        let db = Arc::clone(&a);
        let plain = 1000 + k;
        answers.push((
            k,
            plain,
            tokio::spawn(async move { db.commit(start(plain, &format!("plain-{plain}"))).await }),
        ));
    }
    let mut winners = std::collections::HashMap::new();
    let mut results = Vec::new();
    for (k, id, answer) in answers {
        let result = answer.await.unwrap();
        if result.is_ok() && id < 1000 {
            assert!(winners.insert(k, id).is_none(), "key-{k} started two runs");
        }
        results.push((k, id, result));
    }
    for (k, id, result) in results {
        let stored = a.run(RunId(id)).await.unwrap().is_some();
        let kv = a.kv_get("acme", &format!("kv-{id}")).await.unwrap().is_some();
        if id >= 1000 {
            assert_eq!(result, Ok(()), "a batch with a key of its own commits");
            assert!(stored);
            continue;
        }
        let winner = winners[&k];
        assert_eq!(
            a.idempotent_run("acme", &format!("key-{k}")).await.unwrap(),
            Some(RunId(winner))
        );
        if id == winner {
            assert!(stored && kv, "run {id} won key-{k} and is stored");
        } else {
            assert_eq!(result, duplicate_of(winner), "run {id} of key-{k}");
            assert!(!stored && !kv, "run {id} lost key-{k} and left no trace");
        }
    }
}
