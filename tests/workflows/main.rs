//! The example workflows, run on the engine with real components on each
//! backend (a real redb file, a real PostgreSQL database): exact step
//! statuses, attempt counts and outputs.

#[path = "../common/backend.rs"]
mod backend;
#[path = "../common/mod.rs"]
mod common;

use backend::TestStore;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use weft::engine::{Engine, EngineConfig, SandboxRunner, StartRun, TokioClock};
use weft::model::{ModuleRecord, RunRecord, RunStatus, UnitStatus};

struct Harness {
    engine: Engine,
    _store: TestStore,
}

impl Harness {
    /// An engine on a fresh store with the workflow and every module it names.
    async fn new(test_store: TestStore, workflow: &str) -> Harness {
        let store = test_store.open().await;
        let runner = Arc::new(SandboxRunner::new(common::sandbox().clone(), store.clone()));
        let (engine, _) = Engine::start(store, runner, Arc::new(TokioClock::system()), EngineConfig::default())
            .await
            .unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("example-tasks/workflows")
            .join(workflow);
        let source = std::fs::read_to_string(path).unwrap();
        for task in common::EXAMPLE_TASKS {
            engine
                .put_module(
                    "acme",
                    ModuleRecord::of(task, &common::guest_bytes(task), vec![], 0),
                    common::guest_bytes(task),
                )
                .await
                .unwrap();
        }
        engine.put_workflow("acme", &source).await.unwrap();
        Harness {
            engine,
            _store: test_store,
        }
    }

    async fn run(&self, workflow: &str, input: Value) -> (RunRecord, BTreeMap<String, (UnitStatus, usize)>) {
        let start = StartRun {
            tenant: "acme".into(),
            workflow: workflow.into(),
            input,
            priority: 0,
            ..StartRun::default()
        };
        let (id, _) = self.engine.start_run(start).await.unwrap();
        let record = self.engine.wait(id).await.unwrap();
        (record, self.steps(id).await)
    }

    /// Each step (and item) by name: its status and how many attempts ran.
    async fn steps(&self, id: weft::model::RunId) -> BTreeMap<String, (UnitStatus, usize)> {
        let store = self.engine.store();
        let run = store.run(id).await.unwrap().unwrap();
        let source = store.workflow("acme", &run.workflow_digest).await.unwrap().unwrap();
        let workflow = weft::spec::parse(&source, &Default::default()).unwrap();
        let attempts = store.attempts("acme", id).await.unwrap();
        store
            .units("acme", id)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, unit)| {
                let step = &workflow.steps[key.step as usize].id;
                let name = key.item.map_or(step.clone(), |i| format!("{step}[{i}]"));
                (name, (unit.status, attempts.iter().filter(|(k, _)| *k == key).count()))
            })
            .collect()
    }
}

fn order_input() -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("example-tasks/inputs/order.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn expect(pairs: &[(&str, UnitStatus, usize)]) -> BTreeMap<String, (UnitStatus, usize)> {
    pairs
        .iter()
        .map(|(name, status, attempts)| (name.to_string(), (*status, *attempts)))
        .collect()
}

use UnitStatus::{Cancelled, Failed, Skipped, Succeeded};

on_both_backends! {
    async fn an_order_is_paid_reserved_shipped_and_confirmed(store: TestStore) {
        let harness = Harness::new(store, "order.yaml").await;
        let (run, steps) = harness.run("order", order_input()).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        assert_eq!(
            steps,
            expect(&[
                ("validate_payment", Succeeded, 1),
                ("reserve_inventory", Succeeded, 1),
                ("notify_warehouse", Succeeded, 1),
                ("send_confirmation", Succeeded, 1),
                ("refund_payment", Skipped, 0),
            ])
        );
        let output = run.output.unwrap();
        assert_eq!(output["shipment_id"], "shp_A-1001");
        assert_eq!(output["warehouse"], "FRA-1");
        assert_eq!(output["confirmation"], "msg_A-1001");
        assert!(output["authorization_id"].as_str().unwrap().starts_with("auth_"));
    }

    async fn an_order_out_of_stock_is_refunded(store: TestStore) {
        let harness = Harness::new(store, "order.yaml").await;
        let mut input = order_input();
        input["items"] = json!([{"sku": "DISCONTINUED-9", "quantity": 1}]);
        let (run, steps) = harness.run("order", input).await;
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap();
        assert_eq!(
            (error.code.as_str(), error.step.as_deref()),
            ("out_of_stock", Some("reserve_inventory"))
        );
        assert_eq!(
            steps,
            expect(&[
                ("validate_payment", Succeeded, 1),
                ("reserve_inventory", Failed, 1),
                ("notify_warehouse", Cancelled, 0),
                ("send_confirmation", Cancelled, 0),
                ("refund_payment", Succeeded, 1),
            ])
        );
        // The refund found the authorisation validate_payment committed to kv.
        let kv: BTreeMap<String, Value> = harness.engine.store().kv_entries("acme").await.unwrap().into_iter().collect();
        assert_eq!(
            kv["refunds/A-1001"]["authorization_id"],
            kv["payments/A-1001"]["authorization_id"]
        );
        assert_eq!(kv["refunds/A-1001"]["status"], "refunded");
    }

    async fn a_declined_card_fails_the_order_without_a_refund(store: TestStore) {
        let harness = Harness::new(store, "order.yaml").await;
        let mut input = order_input();
        input["card_number"] = json!("4000 0000 0000 0002");
        let (run, steps) = harness.run("order", input).await;
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.error.unwrap().code, "card_declined");
        assert_eq!(
            steps,
            expect(&[
                ("validate_payment", Failed, 1), // card_declined is non_retryable
                ("reserve_inventory", Cancelled, 0),
                ("notify_warehouse", Cancelled, 0),
                ("send_confirmation", Cancelled, 0),
                ("refund_payment", Skipped, 0),
            ])
        );
    }

    async fn input_failing_the_schema_starts_no_run(store: TestStore) {
        let harness = Harness::new(store, "order.yaml").await;
        let mut input = order_input();
        input["amount_cents"] = json!("lots");
        let start = StartRun {
            tenant: "acme".into(),
            workflow: "order".into(),
            input,
            priority: 0,
            ..StartRun::default()
        };
        let error = harness.engine.start_run(start).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("input.amount_cents: \"lots\" is not of type \"integer\""),
            "{error}"
        );
        assert!(harness.engine.store().active_runs().await.unwrap().is_empty());
        assert_eq!(harness.engine.store().last_run_id().await.unwrap(), 0);
    }

    async fn a_fan_out_greets_everyone_in_order(store: TestStore) {
        let harness = Harness::new(store, "fanout.yaml").await;
        let names = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"];
        let (run, steps) = harness.run("greet-everyone", json!({"names": names})).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        let greetings: Vec<String> = names.iter().map(|n| format!("Hello, {n}!")).collect();
        assert_eq!(run.output.unwrap(), json!({"greetings": greetings, "count": 6}));
        let mut expected = vec![("greet".to_string(), (Succeeded, 0))];
        expected.extend((0..6).map(|i| (format!("greet[{i}]"), (Succeeded, 1))));
        assert_eq!(steps, expected.into_iter().collect());

        let (empty, _) = harness.run("greet-everyone", json!({"names": []})).await;
        assert_eq!(empty.output.unwrap(), json!({"greetings": [], "count": 0}));
    }

    async fn a_condition_picks_a_branch(store: TestStore) {
        let harness = Harness::new(store, "conditional.yaml").await;
        let ship_to = json!({"name": "A", "line1": "1 Main St", "city": "NYC", "postal_code": "10001", "country": "US"});
        let input = |express: bool| json!({"order_id": "C-1", "amount_cents": 500, "express": express, "email": "a@b.co", "ship_to": ship_to});

        let (run, steps) = harness.run("express-or-standard", input(true)).await;
        assert_eq!(
            run.output.unwrap(),
            json!({"express": true, "receipt": "Hello, receipt for C-1!"})
        );
        assert_eq!(
            steps,
            expect(&[
                ("validate_payment", Succeeded, 1),
                ("express_shipping", Succeeded, 1),
                ("express_tracking", Succeeded, 1),
                ("standard_confirmation", Skipped, 0),
                ("receipt", Succeeded, 1),
            ])
        );

        let (run, steps) = harness.run("express-or-standard", input(false)).await;
        assert_eq!(
            run.output.unwrap(),
            json!({"express": false, "receipt": "Hello, receipt for C-1!"})
        );
        assert_eq!(
            steps,
            expect(&[
                ("validate_payment", Succeeded, 1),
                ("express_shipping", Skipped, 0),
                ("express_tracking", Skipped, 0), // its need was skipped
                ("standard_confirmation", Succeeded, 1),
                ("receipt", Succeeded, 1), // if_needs_skipped: run
            ])
        );
    }

    async fn a_flaky_step_is_retried_until_it_succeeds(store: TestStore) {
        let harness = Harness::new(store, "retry.yaml").await;
        let (run, steps) = harness.run("flaky-retry", json!({})).await;
        assert_eq!(run.output.unwrap(), json!({"greeting": "Hello, attempt 3!"}));
        assert_eq!(steps, expect(&[("flaky", Succeeded, 3), ("greet", Succeeded, 1)]));

        let events: Vec<Value> = harness
            .engine
            .store()
            .events_from("acme", run.id, 0)
            .await
            .unwrap()
            .iter()
            .map(|(_, e)| serde_json::to_value(e).unwrap())
            .collect();
        let retries: Vec<u64> = events
            .iter()
            .filter(|e| e["event"] == "retry_scheduled")
            .map(|e| e["due"].as_u64().unwrap() - e["at"].as_u64().unwrap())
            .collect();
        assert_eq!(retries, [50, 100], "backoff 50 ms, then 100 ms");
    }
}
