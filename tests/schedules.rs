//! Schedules on tokio's paused clock: the scheduler's passes fire each
//! instant once, keyed by instant, across a restart, with the catch-up
//! and overlap each schedule asks for. (Over HTTP and on a cluster of
//! real nodes: tests/api/schedules.rs, tests/cluster_schedules.rs.)

#[path = "common/fake_runner.rs"]
mod fake_runner;

use std::time::Duration;

use fake_runner::*;
use serde_json::Map;
use weft::engine::Engine;
use weft::model::RunId;
use weft::store::{Change, Expect, ObjectKind, RunFilter};
use weft::tenant::{Quotas, TenantRecord};
use weft::triggers::schedule::{CatchUp, Overlap, ScheduleSpec, ScheduleState, StoredSchedule};
use weft::triggers::scheduler::{fire_key, pass};

const WORKFLOWS: &str = "
name: tick
steps:
  - {id: a, task: task}
";

const SLOW: &str = "
name: slow
steps:
  - {id: nap, sleep: 1h}
";

async fn with_tenant(engine: &Engine) {
    let tenant = TenantRecord {
        id: "t".into(),
        quotas: Quotas::default(),
        disabled: false,
        created_at: T0,
    };
    engine
        .store()
        .commit(vec![Change::PutTenant(Box::new(tenant))])
        .await
        .unwrap();
}

async fn put(engine: &Engine, name: &str, workflow: &str, overlap: Overlap, catch_up: CatchUp) {
    put_cron(engine, name, "*/10 * * * * *", workflow, overlap, catch_up).await;
}

async fn put_cron(engine: &Engine, name: &str, cron: &str, workflow: &str, overlap: Overlap, catch_up: CatchUp) {
    let spec = ScheduleSpec {
        cron: cron.into(),
        timezone: "UTC".into(),
        workflow: workflow.into(),
        input: Map::new(),
        overlap,
        catch_up,
        grace: Some("2s".into()),
        paused: false,
    };
    let state = ScheduleState {
        created_at: engine.now(),
        updated_at: engine.now(),
        ..ScheduleState::default()
    };
    let value = serde_json::to_value(StoredSchedule { spec, state }).unwrap();
    engine
        .store()
        .put_object(ObjectKind::Schedule, "t", name, &value, Expect::Any)
        .await
        .unwrap();
}

async fn state(engine: &Engine, name: &str) -> ScheduleState {
    let object = engine
        .store()
        .object(ObjectKind::Schedule, "t", name)
        .await
        .unwrap()
        .unwrap();
    serde_json::from_value::<StoredSchedule>(object.value).unwrap().state
}

/// The instants (ms after T0) among `candidates` that started a run.
async fn fired(engine: &Engine, name: &str, candidates: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for &at in candidates {
        if engine
            .store()
            .idempotent_run("t", &fire_key(name, T0 + at))
            .await
            .unwrap()
            .is_some()
        {
            out.push(at);
        }
    }
    out
}

async fn runs_of(engine: &Engine, workflow: &str) -> Vec<RunId> {
    let filter = RunFilter {
        workflow: Some(workflow.into()),
        limit: 1000,
        ..RunFilter::default()
    };
    engine
        .store()
        .tenant_runs("t", &filter)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Moves the clock to T0 + `at` and runs one pass.
async fn pass_at(engine: &Engine, at: u64) {
    let now = engine.now();
    if T0 + at > now {
        tokio::time::advance(Duration::from_millis(T0 + at - now)).await;
    }
    pass(engine).await.unwrap();
}

const EVERY_10S: [u64; 8] = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000];

#[tokio::test(start_paused = true)]
async fn instants_fire_once_each_across_a_restart_with_the_chosen_catch_up() {
    // T0 is 22:13:20 UTC: the instants of `*/10 * * * * *` are T0 + 10 s, 20 s, ...
    let s = setup(WORKFLOWS, 8).await;
    with_tenant(&s.engine).await;
    put(&s.engine, "latest", "tick", Overlap::Allow, CatchUp::Latest).await;
    put(&s.engine, "skip", "tick", Overlap::Allow, CatchUp::Skip).await;

    pass_at(&s.engine, 0).await;
    assert_eq!(state(&s.engine, "latest").await.next_fire, Some(T0 + 10_000));
    pass_at(&s.engine, 5_000).await;
    assert!(
        runs_of(&s.engine, "tick").await.is_empty(),
        "nothing before the first instant"
    );
    pass_at(&s.engine, 10_000).await;
    pass_at(&s.engine, 10_250).await;
    pass_at(&s.engine, 20_500).await;
    for name in ["latest", "skip"] {
        assert_eq!(fired(&s.engine, name, &EVERY_10S).await, [10_000, 20_000], "{name}");
    }
    assert_eq!(
        runs_of(&s.engine, "tick").await.len(),
        4,
        "one run per instant per schedule"
    );

    // Down from 25 s to 65 s: 30, 40, 50 and 60 s pass with no node.
    tokio::time::advance(Duration::from_secs(4)).await;
    s.engine.shutdown().await;
    drop(s.engine);
    let engine = start_engine(s.dir.path(), s.fake.clone(), T0 + 65_000, 8).await;
    pass(&engine).await.unwrap();
    assert_eq!(
        fired(&engine, "latest", &EVERY_10S).await,
        [10_000, 20_000, 60_000],
        "catch-up `latest` fires the last missed instant once"
    );
    assert_eq!(
        fired(&engine, "skip", &EVERY_10S).await,
        [10_000, 20_000],
        "catch-up `skip` fires none"
    );
    let (latest, skip) = (state(&engine, "latest").await, state(&engine, "skip").await);
    assert_eq!((latest.fired, latest.missed), (3, 3));
    assert_eq!((skip.fired, skip.missed), (2, 4));
    assert_eq!(latest.next_fire, Some(T0 + 70_000));

    // A second pass at the same moment, as a second node's, adds nothing.
    pass(&engine).await.unwrap();
    assert_eq!(runs_of(&engine, "tick").await.len(), 5);

    pass_at(&engine, 71_000).await;
    assert_eq!(
        fired(&engine, "latest", &EVERY_10S).await,
        [10_000, 20_000, 60_000, 70_000]
    );
    assert_eq!(fired(&engine, "skip", &EVERY_10S).await, [10_000, 20_000, 70_000]);
    assert_eq!(runs_of(&engine, "tick").await.len(), 7);
    let last = state(&engine, "latest").await.last_run.map(RunId);
    assert_eq!(
        last,
        engine
            .store()
            .idempotent_run("t", &fire_key("latest", T0 + 70_000))
            .await
            .unwrap()
    );
}

/// Waits in real time until the engine's clock reads T0 + `at`, then
/// runs one pass.
async fn pass_when(engine: &Engine, at: u64) {
    let now = engine.now();
    if T0 + at > now {
        tokio::time::sleep(Duration::from_millis(T0 + at - now)).await;
    }
    pass(engine).await.unwrap();
}

const EVERY_1S: [u64; 5] = [1_000, 2_000, 3_000, 4_000, 5_000];

// In real time, one instant a second: a run that sleeps for an hour stays
// unfinished, which on the paused clock would let time jump ahead.
#[tokio::test]
async fn overlap_skips_buffers_or_allows_a_fire_while_the_last_run_is_unfinished() {
    let s = setup(SLOW, 8).await;
    with_tenant(&s.engine).await;
    for (name, overlap) in [
        ("skip", Overlap::Skip),
        ("buffer", Overlap::BufferOne),
        ("allow", Overlap::Allow),
    ] {
        put_cron(&s.engine, name, "* * * * * *", "slow", overlap, CatchUp::Skip).await;
    }
    pass(&s.engine).await.unwrap();
    for at in [1_100, 2_100, 3_100] {
        pass_when(&s.engine, at).await;
    }
    // Each first run sleeps for an hour, so is unfinished at 2 and 3 s.
    assert_eq!(
        fired(&s.engine, "skip", &EVERY_1S).await,
        [1_000],
        "{:?}",
        state(&s.engine, "skip").await
    );
    assert_eq!(state(&s.engine, "skip").await.skipped, 2);
    assert_eq!(fired(&s.engine, "allow", &EVERY_1S).await, [1_000, 2_000, 3_000]);
    assert_eq!(fired(&s.engine, "buffer", &EVERY_1S).await, [1_000]);
    let buffer = state(&s.engine, "buffer").await;
    assert_eq!(
        (buffer.buffered, buffer.skipped),
        (Some(T0 + 3_000), 1),
        "the newest fire is kept"
    );

    // Once the buffer's run ends, the kept fire starts on the next pass.
    let first = RunId(buffer.last_run.unwrap());
    s.engine.cancel(first).await.unwrap();
    s.engine.wait(first).await.unwrap();
    pass(&s.engine).await.unwrap();
    assert_eq!(fired(&s.engine, "buffer", &EVERY_1S).await, [1_000, 3_000]);
    let buffer = state(&s.engine, "buffer").await;
    assert_eq!(buffer.buffered, None);
    assert_ne!(buffer.last_run, Some(first.0));
}

#[tokio::test(start_paused = true)]
async fn a_fire_that_cannot_start_is_recorded_and_a_paused_schedule_fires_nothing() {
    let s = setup(WORKFLOWS, 8).await;
    with_tenant(&s.engine).await;
    put(&s.engine, "gone", "no_such_workflow", Overlap::Allow, CatchUp::Skip).await;
    put(&s.engine, "resting", "tick", Overlap::Allow, CatchUp::Skip).await;
    let object = s
        .engine
        .store()
        .object(ObjectKind::Schedule, "t", "resting")
        .await
        .unwrap()
        .unwrap();
    let mut stored: StoredSchedule = serde_json::from_value(object.value).unwrap();
    stored.spec.paused = true;
    let value = serde_json::to_value(&stored).unwrap();
    s.engine
        .store()
        .put_object(
            ObjectKind::Schedule,
            "t",
            "resting",
            &value,
            Expect::Revision(object.revision),
        )
        .await
        .unwrap()
        .unwrap();
    pass_at(&s.engine, 0).await;
    pass_at(&s.engine, 10_000).await;
    let gone = state(&s.engine, "gone").await;
    assert_eq!(gone.fired, 0);
    let error = gone.last_error.unwrap();
    assert!(error.contains("no workflow named \"no_such_workflow\""), "{error}");
    assert_eq!(gone.next_fire, Some(T0 + 20_000), "the schedule goes on");
    assert!(runs_of(&s.engine, "tick").await.is_empty(), "paused");
}
