//! Prometheus metrics at `/metrics`: runs and attempts by outcome, attempt
//! latency, fuel and outbound HTTP, per tenant; queue depth and work in
//! flight; and for autoscalers, ready work per tenant, the age of the
//! oldest ready unit and the busy share of capacity (docs/operations.md).
//!
//! Counters follow the engine's stream of durable events, so they count
//! what the store recorded, not what was merely tried.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;

use super::ApiState;
use crate::engine::{ReadyWork, Update};
use crate::model::{EventKind, HttpTally};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: String,
}

type Histograms = Family<TenantLabel, Histogram, fn() -> Histogram>;

/// 100 µs (a trivial attempt) to 5 min.
const LATENCY_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    runs_started: Family<TenantLabel, Counter>,
    runs_finished: Family<OutcomeLabels, Counter>,
    attempts: Family<OutcomeLabels, Counter>,
    attempt_seconds: Histograms,
    fuel: Family<TenantLabel, Counter>,
    http_requests: Family<OutcomeLabels, Counter>,
    http_sent: Family<TenantLabel, Counter>,
    http_received: Family<TenantLabel, Counter>,
    queued: Gauge,
    running: Gauge,
    active_runs: Gauge,
    parked_runs: Gauge,
    busy: Gauge<f64, std::sync::atomic::AtomicU64>,
    ready: Family<TenantLabel, Gauge>,
    /// The tenants `ready` reported units for at the last scrape, set back
    /// to 0 once they have none, so a tenant's series reads 0 rather than
    /// vanishing (an autoscaler's query then sees 0, not "no data").
    /// Held across a scrape's update, so two scrapes do not interleave.
    ready_tenants: std::sync::Mutex<std::collections::HashSet<String>>,
    oldest_ready: Gauge<f64, std::sync::atomic::AtomicU64>,
    node: NodeMetrics,
}

/// A node's share of the cluster's work (zero on a store one server owns).
#[derive(Default)]
struct NodeMetrics {
    claimed: Mirror,
    claim_queries: Mirror,
    claim_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    reassigned: Mirror,
    fenced: Mirror,
    expiries: Mirror,
    heartbeat_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    compiled_hits: Mirror,
    compiled_misses: Mirror,
    compiled_rejected: Mirror,
    compiled_evicted: Mirror,
}

/// A counter that follows a count kept elsewhere.
#[derive(Default)]
struct Mirror {
    counter: Counter,
    seen: std::sync::atomic::AtomicU64,
}

impl Mirror {
    fn follow(&self, count: &std::sync::atomic::AtomicU64) {
        let now = count.load(Ordering::Relaxed);
        let before = self.seen.swap(now, Ordering::Relaxed);
        self.counter.inc_by(now.saturating_sub(before));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    pub fn new() -> Metrics {
        let runs_started = Family::<TenantLabel, Counter>::default();
        let runs_finished = Family::<OutcomeLabels, Counter>::default();
        let attempts = Family::<OutcomeLabels, Counter>::default();
        let attempt_seconds = Histograms::new_with_constructor(latency_histogram);
        let fuel = Family::<TenantLabel, Counter>::default();
        let (queued, running, active_runs) = (Gauge::default(), Gauge::default(), Gauge::default());
        let parked_runs = Gauge::default();
        let mut registry = Registry::with_prefix("weft");
        registry.register("runs_started", "Runs started", runs_started.clone());
        registry.register("runs_finished", "Runs finished, by final status", runs_finished.clone());
        registry.register("attempts", "Attempts finished, by outcome", attempts.clone());
        registry.register(
            "attempt_duration_seconds",
            "Wall time of attempts",
            attempt_seconds.clone(),
        );
        registry.register("fuel_consumed", "Fuel burned by attempts", fuel.clone());
        let http_requests = Family::<OutcomeLabels, Counter>::default();
        let (http_sent, http_received) = (Family::default(), Family::default());
        registry.register(
            "http_requests",
            "Outbound HTTP requests of attempts, by outcome (ok, refused, failed)",
            http_requests.clone(),
        );
        registry.register("http_sent_bytes", "Request body bytes attempts sent", http_sent.clone());
        registry.register(
            "http_received_bytes",
            "Response body bytes attempts received",
            http_received.clone(),
        );
        registry.register("queue_depth", "Units waiting for a slot", queued.clone());
        registry.register("attempts_running", "Attempts running now", running.clone());
        registry.register("runs_active", "Unfinished runs", active_runs.clone());
        registry.register(
            "runs_parked",
            "Unfinished runs kept only in the store until their turn",
            parked_runs.clone(),
        );
        let busy = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "busy_ratio",
            "Attempts running over this node's capacity (for autoscalers)",
            busy.clone(),
        );
        let ready = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "ready_units",
            "Units ready and waiting for an attempt slot on this node, by tenant (for autoscalers)",
            ready.clone(),
        );
        let oldest_ready = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "oldest_ready_seconds",
            "How long the oldest unit waiting for a slot on this node has waited; 0 when none waits (for autoscalers)",
            oldest_ready.clone(),
        );
        let node = NodeMetrics::default();
        let counters = [
            ("node_claimed_runs", "Runs this node claimed", &node.claimed),
            (
                "node_claim_queries",
                "Claim queries this node made",
                &node.claim_queries,
            ),
            (
                "node_reassigned_runs",
                "Claimed runs that a dead node had held",
                &node.reassigned,
            ),
            (
                "node_fenced_commits",
                "Commits refused because the run had moved to another node",
                &node.fenced,
            ),
            (
                "node_lease_expiries",
                "Silent nodes this node declared dead",
                &node.expiries,
            ),
            (
                "compiled_cache_hits",
                "Modules read compiled from the on-disk cache instead of compiled",
                &node.compiled_hits,
            ),
            (
                "compiled_cache_misses",
                "Modules compiled because the on-disk cache had none",
                &node.compiled_misses,
            ),
            (
                "compiled_cache_rejected",
                "Corrupt or stale compiled modules found on disk, deleted and compiled again",
                &node.compiled_rejected,
            ),
            (
                "compiled_cache_evicted",
                "Compiled modules deleted to keep the cache under its size",
                &node.compiled_evicted,
            ),
        ];
        for (name, help, mirror) in counters {
            registry.register(name, help, mirror.counter.clone());
        }
        registry.register(
            "node_claim_seconds",
            "Time spent in claim queries (divide by weft_node_claim_queries_total for the mean latency)",
            node.claim_seconds.clone(),
        );
        registry.register(
            "node_heartbeat_age_seconds",
            "Time since this node's last successful heartbeat",
            node.heartbeat_age.clone(),
        );
        Metrics {
            busy,
            ready,
            ready_tenants: Default::default(),
            oldest_ready,
            node,
            registry,
            runs_started,
            runs_finished,
            attempts,
            attempt_seconds,
            fuel,
            http_requests,
            http_sent,
            http_received,
            queued,
            running,
            active_runs,
            parked_runs,
        }
    }

    /// Sets the ready-work gauges from what the scheduler has queued.
    fn set_ready(&self, work: &ReadyWork) {
        let mut reported = self.ready_tenants.lock().unwrap_or_else(|e| e.into_inner());
        for tenant in reported.iter() {
            if !work.by_tenant.iter().any(|(t, _)| t == tenant) {
                self.ready.get_or_create(&TenantLabel { tenant: tenant.clone() }).set(0);
            }
        }
        reported.clear();
        for (tenant, units) in &work.by_tenant {
            let label = TenantLabel { tenant: tenant.clone() };
            self.ready.get_or_create(&label).set(*units as i64);
            reported.insert(tenant.clone());
        }
        self.oldest_ready
            .set(work.oldest_age.map_or(0.0, |age| age.as_secs_f64()));
    }

    fn record(&self, update: &Update) {
        let tenant = update.tenant.to_string();
        match &update.event.kind {
            EventKind::RunStarted => {
                self.runs_started.get_or_create(&TenantLabel { tenant }).inc();
            }
            EventKind::RunFinished { status } => {
                let labels = OutcomeLabels {
                    tenant,
                    outcome: status.to_string(),
                };
                self.runs_finished.get_or_create(&labels).inc();
            }
            EventKind::AttemptFinished {
                outcome,
                duration_us,
                fuel_used,
                http,
                ..
            } => {
                if let Some(http) = http {
                    self.record_http(&tenant, http);
                }
                let labels = OutcomeLabels {
                    tenant: tenant.clone(),
                    outcome: outcome.clone(),
                };
                self.attempts.get_or_create(&labels).inc();
                let tenant = TenantLabel { tenant };
                self.attempt_seconds
                    .get_or_create(&tenant)
                    .observe(*duration_us as f64 / 1e6);
                self.fuel.get_or_create(&tenant).inc_by(*fuel_used);
            }
            EventKind::RunRetried
            | EventKind::RunReset { .. }
            | EventKind::ApprovalEscalated { .. }
            | EventKind::ApprovalDecided { .. }
            | EventKind::ChildStarted { .. }
            | EventKind::RunPaused
            | EventKind::RunResumed
            | EventKind::RetryScheduled { .. }
            | EventKind::StepFinished { .. }
            | EventKind::Waiting { .. }
            | EventKind::SignalReceived { .. } => {}
        }
    }
}

impl Metrics {
    fn record_http(&self, tenant: &str, http: &HttpTally) {
        for (outcome, count) in [("ok", http.ok), ("refused", http.refused), ("failed", http.failed)] {
            if count > 0 {
                let labels = OutcomeLabels {
                    tenant: tenant.to_string(),
                    outcome: outcome.to_string(),
                };
                self.http_requests.get_or_create(&labels).inc_by(u64::from(count));
            }
        }
        let tenant = TenantLabel {
            tenant: tenant.to_string(),
        };
        self.http_sent.get_or_create(&tenant).inc_by(http.sent);
        self.http_received.get_or_create(&tenant).inc_by(http.received);
    }
}

/// Counts every durable event until the engine stops.
pub(super) async fn follow(state: Arc<ApiState>, mut updates: broadcast::Receiver<Update>) {
    loop {
        match updates.recv().await {
            Ok(update) => state.metrics.record(&update),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "metrics fell behind the engine; some events were not counted");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Metrics in the Prometheus text format (names in docs/api.md).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, description = "They could not be encoded (`internal`)", body = super::ErrorBody),
    )
)]
pub(super) async fn scrape(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let metrics = &state.metrics;
    // A stopping engine has nothing to report; the rest still is.
    let ready = state.engine.ready_work().await.unwrap_or_default();
    metrics.set_ready(&ready);
    let stats = state.engine.stats();
    metrics.queued.set(stats.queued.load(Ordering::Relaxed) as i64);
    metrics.running.set(stats.running.load(Ordering::Relaxed) as i64);
    metrics
        .active_runs
        .set(stats.active_runs.load(Ordering::Relaxed) as i64);
    metrics
        .parked_runs
        .set(stats.parked_runs.load(Ordering::Relaxed) as i64);
    let capacity = state.config.max_concurrent_attempts.max(1) as f64;
    metrics
        .busy
        .set(stats.running.load(Ordering::Relaxed) as f64 / capacity);
    let node = &metrics.node;
    node.claimed.follow(&stats.claimed_runs);
    node.claim_queries.follow(&stats.claim_queries);
    node.claim_seconds
        .set(stats.claim_micros.load(Ordering::Relaxed) as f64 / 1e6);
    node.reassigned.follow(&stats.reassigned_runs);
    node.fenced.follow(&stats.fenced_commits);
    if let Some(cache) = state.sandbox.compiled_cache() {
        node.compiled_hits.follow(&cache.hits);
        node.compiled_misses.follow(&cache.misses);
        node.compiled_rejected.follow(&cache.rejected);
        node.compiled_evicted.follow(&cache.evicted);
    }
    if let Some((_, load)) = state.engine.cluster() {
        node.expiries.follow(&load.declared_dead);
        let last = load.heartbeat_at.load(Ordering::Relaxed);
        let age = state.engine.now().saturating_sub(last) as f64 / 1000.0;
        node.heartbeat_age.set(if last == 0 { 0.0 } else { age });
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        return super::ApiError::internal(e).into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
