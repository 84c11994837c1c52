//! The writer task: group commit on PostgreSQL.
//!
//! It takes every batch queued while the previous transaction ran and
//! commits them together: the rare changes (modules, workflows, tenants,
//! keys) one statement each, in order; the hot ones (runs, units,
//! attempts, events, kv, idempotency keys) as one multi-row `UNNEST`
//! statement per table, sent pipelined. About eight round trips' worth of
//! statements per transaction, however many runs it carries. A batch whose
//! lease moved on (`fence.rs`), or whose idempotency key started another
//! run already (`idempotency.rs`), is left out of its group and fails
//! alone; the others commit.
//!
//! A lost connection keeps the group at the head of the queue; the writer
//! reconnects (and takes the store's lock again) with backoff and
//! re-applies it. Every change is an upsert by its natural key, events are
//! inserted with `ON CONFLICT DO NOTHING` and a key already naming the
//! batch's own run is no conflict, so a group whose `COMMIT` was sent but
//! not answered lands once either way. A group the database refuses is
//! split and its batches retried one by one, so one bad batch fails alone.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Config, GenericClient, Statement, Transaction};

use super::codes::{encode, item, millis, ready_at, run_status, unit_status};
use super::fence::{self, Holds};
use super::idempotency::{self, Keys, Outcome, Refused};
use super::notify::Notices;
use super::{classify, connect, take_lock, tls};
use crate::store::{Change, Continuation, StoreError};

/// One caller's batch.
pub(super) struct Job {
    pub(super) changes: Vec<Change>,
    pub(super) then: Continuation,
}

/// The most changes one transaction takes; the rest wait for the next.
const MAX_BATCH: usize = 8192;
/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle writer checks that its connection (and lock) lives.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long a group commit may take before the connection counts as lost
/// (a partition that drops packets leaves it open but silent); the group
/// is then applied again on a new one.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);

const RUNS: &str = "INSERT INTO runs (tenant, run_id, workflow, status, priority, created_at, updated_at, record,
        lease_node, lease_epoch)
    SELECT t, id, w, s, p, c, u, r::json, ln, le
    FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::smallint[], $5::integer[], $6::bigint[], $7::bigint[], $8::text[],
        $9::bigint[], $10::bigint[])
        AS x(t, id, w, s, p, c, u, r, ln, le)
    ON CONFLICT (tenant, run_id) DO UPDATE SET status = excluded.status, priority = excluded.priority,
        updated_at = excluded.updated_at, record = excluded.record";
const UNITS: &str = "INSERT INTO units (tenant, run_id, step, item, status, priority, ready_at, record)
    SELECT t, id, s, i, st, 0, ra, r::json
    FROM UNNEST($1::text[], $2::bigint[], $3::integer[], $4::integer[], $5::smallint[], $6::bigint[], $7::text[])
        AS x(t, id, s, i, st, ra, r)
    ON CONFLICT (tenant, run_id, step, item) DO UPDATE SET status = excluded.status,
        ready_at = excluded.ready_at, record = excluded.record";
const ATTEMPTS: &str = "INSERT INTO attempts (tenant, run_id, step, item, attempt, record)
    SELECT t, id, s, i, a, r::json
    FROM UNNEST($1::text[], $2::bigint[], $3::integer[], $4::integer[], $5::integer[], $6::text[])
        AS x(t, id, s, i, a, r)
    ON CONFLICT (tenant, run_id, step, item, attempt) DO UPDATE SET record = excluded.record";
const EVENTS: &str = "INSERT INTO events (tenant, run_id, seq, event)
    SELECT t, id, q, e::json FROM UNNEST($1::text[], $2::bigint[], $3::integer[], $4::text[]) AS x(t, id, q, e)
    ON CONFLICT DO NOTHING";
const KV_SET: &str = "INSERT INTO kv (tenant, key, value)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[])
    ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";
const KV_DELETE: &str = "DELETE FROM kv WHERE (tenant, key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))";

/// The hot statements, prepared on the writer's connection.
pub(super) struct Statements {
    runs: Statement,
    units: Statement,
    attempts: Statement,
    events: Statement,
    kv_set: Statement,
    kv_delete: Statement,
    idempotency: Statement,
    fence: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            runs: client.prepare(RUNS).await?,
            units: client.prepare(UNITS).await?,
            attempts: client.prepare(ATTEMPTS).await?,
            events: client.prepare(EVENTS).await?,
            kv_set: client.prepare(KV_SET).await?,
            kv_delete: client.prepare(KV_DELETE).await?,
            idempotency: client.prepare(idempotency::STORE).await?,
            fence: client.prepare(fence::CHECK).await?,
        })
    }
}

/// The writer's connection and its statements, while it has one.
struct Connection {
    client: Client,
    statements: Statements,
    /// The `idle_in_transaction_session_timeout` set on this session, in
    /// milliseconds (0: the server's own).
    idle_limit: u64,
}

pub(super) struct Writer {
    config: Config,
    tls: tls::Connector,
    connection: Option<Connection>,
    queue: mpsc::UnboundedReceiver<Job>,
    available: Arc<AtomicBool>,
    /// Whether the store's lock is held exclusively (a tool) or shared.
    exclusive: bool,
    /// What committed groups did, for `notify.rs` to tell other nodes.
    notices: mpsc::UnboundedSender<Notices>,
    /// The runs whose start was left out lately: their later batches are
    /// left out too.
    refused: Refused,
    /// How long, in milliseconds, the database may keep one of this
    /// writer's transactions open while it hears nothing from it (0: no
    /// limit). A node sets it to its node timeout when it joins: a
    /// transaction left open by a node cut off mid-commit would otherwise
    /// keep its runs' rows locked, and claims skip locked rows, so the
    /// runs would wait for the server to notice the dead TCP connection.
    idle_limit: Arc<AtomicU64>,
}

impl Writer {
    /// A writer on `client`, which holds the store's lock already.
    pub(super) async fn new(
        config: Config,
        tls: tls::Connector,
        client: Client,
        queue: mpsc::UnboundedReceiver<Job>,
        available: Arc<AtomicBool>,
        exclusive: bool,
        notices: mpsc::UnboundedSender<Notices>,
    ) -> Result<Writer, tokio_postgres::Error> {
        let statements = Statements::prepare(&client).await?;
        Ok(Writer {
            config,
            tls,
            connection: Some(Connection {
                client,
                statements,
                idle_limit: 0,
            }),
            queue,
            available,
            exclusive,
            notices,
            refused: Refused::default(),
            idle_limit: Arc::default(),
        })
    }

    /// Where to set the limit on a transaction left idle, in
    /// milliseconds (see the field).
    pub(super) fn idle_limit(&self) -> Arc<AtomicU64> {
        self.idle_limit.clone()
    }

    pub(super) async fn run(mut self) {
        let mut groups: VecDeque<Vec<Job>> = VecDeque::new();
        let mut backoff = MIN_BACKOFF;
        loop {
            if groups.is_empty() {
                match tokio::time::timeout(IDLE_CHECK, self.queue.recv()).await {
                    Ok(Some(first)) => groups.push_back(self.gather(first)),
                    Ok(None) => return,
                    Err(_idle) => {
                        self.check().await;
                        continue;
                    }
                }
            }
            if self.connection.is_none()
                && let Err(e) = self.reconnect().await
            {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot reach the PostgreSQL store");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            let group = groups.pop_front().expect("a group is queued");
            // Only the changes cross the awaits: continuations need not be Sync.
            let changes: Vec<&Vec<Change>> = group.iter().map(|job| &job.changes).collect();
            let result = tokio::time::timeout(COMMIT_TIMEOUT, self.apply(&changes))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("a commit got no answer in time".into())));
            drop(changes);
            match result {
                Ok(outcomes) => {
                    backoff = MIN_BACKOFF;
                    self.available.store(true, Ordering::Relaxed);
                    for (job, outcome) in group.into_iter().zip(outcomes) {
                        (job.then)(outcome.result());
                    }
                }
                Err(StoreError::Unavailable(why)) => {
                    tracing::warn!(error = %why, batches = group.len(), "a commit to PostgreSQL was cut off; it will be applied again");
                    self.lost();
                    groups.push_front(group);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) if group.len() > 1 => {
                    tracing::warn!(error = %e, batches = group.len(), "PostgreSQL refused a group commit; committing its batches one by one");
                    for job in group.into_iter().rev() {
                        groups.push_front(vec![job]);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "PostgreSQL refused a batch");
                    for job in group {
                        (job.then)(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// `first` and every batch queued behind it, up to [`MAX_BATCH`]
    /// changes.
    fn gather(&mut self, first: Job) -> Vec<Job> {
        let mut changes = first.changes.len();
        let mut group = vec![first];
        while changes < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(job) => {
                    changes += job.changes.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        group
    }

    fn lost(&mut self) {
        self.connection = None;
        self.available.store(false, Ordering::Relaxed);
    }

    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let client = connect(&self.config, &self.tls).await.map_err(classify)?;
        take_lock(&client, self.exclusive)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let statements = Statements::prepare(&client).await.map_err(classify)?;
        self.connection = Some(Connection {
            client,
            statements,
            idle_limit: 0,
        });
        self.available.store(true, Ordering::Relaxed);
        tracing::info!("reconnected to the PostgreSQL store");
        Ok(())
    }

    /// While idle: keeps `available` true to the database's state, and
    /// reconnects after an outage without waiting for work.
    async fn check(&mut self) {
        let alive = match &self.connection {
            Some(connection) => tokio::time::timeout(IDLE_CHECK, connection.client.simple_query("SELECT 1"))
                .await
                .is_ok_and(|answer| answer.is_ok()),
            None => false,
        };
        if alive {
            self.available.store(true, Ordering::Relaxed);
            return;
        }
        self.lost();
        if let Err(e) = self.reconnect().await {
            tracing::debug!(error = %e, "the PostgreSQL store is still unreachable");
        }
    }

    /// Commits the group's batches but those left out (their lease moved
    /// on, or their idempotency key started another run); returns what
    /// became of each.
    async fn apply(&mut self, group: &[&Vec<Change>]) -> Result<Vec<Outcome>, StoreError> {
        let connection = self.connection.as_mut().expect("connected before applying");
        let idle_limit = self.idle_limit.load(Ordering::Relaxed);
        if connection.idle_limit != idle_limit {
            let sql = format!("SET idle_in_transaction_session_timeout = {idle_limit}");
            connection.client.batch_execute(&sql).await.map_err(classify)?;
            connection.idle_limit = idle_limit;
        }
        let statements = &connection.statements;
        let holds = Holds::of(group);
        let keys = Keys::of(group, &vec![Outcome::Kept; group.len()]);
        let all_hot = keys.clash_free()
            && !self.refused.touches(group)
            && group.iter().flat_map(|changes| changes.iter()).all(Hot::is_hot);
        if all_hot {
            // The common group, all runs' changes, optimistically: BEGIN,
            // the lease check and the statements go out in one round trip,
            // and COMMIT (with the notices after it) in a second, once
            // they all succeeded and no batch was left out. A left-out
            // batch is rare: the group is rolled back and written again
            // without it, below.
            let client = &connection.client;
            let mut hot = Hot::with_leases(holds.leases());
            for changes in group {
                for change in changes.iter() {
                    hot.take(change);
                }
            }
            let notices = hot.notices();
            // In the slow path's order (lease rows, keys, the rest), so
            // that two writers never wait on each other in a circle.
            let (begun, fenced, stored, written) = tokio::join!(
                client.batch_execute("BEGIN"),
                async {
                    match holds.is_empty() {
                        true => Ok(vec![false; group.len()]),
                        false => holds.check(client, &statements.fence, group.len()).await,
                    }
                },
                keys.store(client, &statements.idempotency),
                hot.write(client, statements)
            );
            match begun.and(written).and(fenced).and_then(|f| Ok((f, stored?))) {
                Ok((fenced, stored)) if !fenced.contains(&true) && keys.taken(&stored).is_empty() => {
                    client.batch_execute("COMMIT").await.map_err(classify)?;
                    let _ = self.notices.send(notices);
                    return Ok(vec![Outcome::Kept; group.len()]);
                }
                Ok(_left_out) => {
                    client.batch_execute("ROLLBACK").await.map_err(classify)?;
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(classify(e));
                }
            }
        }
        let txn = connection.client.transaction().await.map_err(classify)?;
        let mut outcomes = match holds.is_empty() {
            true => vec![Outcome::Kept; group.len()],
            false => holds
                .check(&txn, &statements.fence, group.len())
                .await
                .map_err(classify)?
                .into_iter()
                .map(|fenced| if fenced { Outcome::Fenced } else { Outcome::Kept })
                .collect(),
        };
        // Which batches are duplicates is known before anything else is
        // written: the keys go first.
        self.refused.leave_out(group, &mut outcomes);
        let keys = Keys::of(group, &outcomes);
        let stored = keys.store(&txn, &statements.idempotency).await.map_err(classify)?;
        for (batch, run) in keys.taken(&stored) {
            outcomes[batch] = Outcome::Duplicate(run);
        }
        idempotency::spread(group, &mut outcomes);
        keys.take_back(&txn, &stored, &outcomes).await.map_err(classify)?;
        let mut hot = Hot::with_leases(holds.leases());
        let mut renamed = false;
        for (changes, _) in group.iter().zip(&outcomes).filter(|(_, o)| **o == Outcome::Kept) {
            for change in changes.iter() {
                if !hot.take(change) {
                    renamed |= fence::renames(change);
                    apply_rare(&txn, change).await.map_err(classify)?;
                }
            }
        }
        let mut notices = hot.notices();
        notices.names = renamed;
        hot.write(&txn, statements).await.map_err(classify)?;
        txn.commit().await.map_err(classify)?;
        if !notices.is_empty() {
            let _ = self.notices.send(notices);
        }
        self.refused.remember(group, &outcomes);
        Ok(outcomes)
    }
}

/// The frequent changes of a group, as columns, each key once (its last
/// value: one statement may not touch a row twice).
#[derive(Default)]
pub(super) struct Hot<'a> {
    runs: Keyed<(&'a str, u64), &'a crate::model::RunRecord>,
    units: Keyed<(&'a str, u64, i32, i32), &'a crate::model::UnitRecord>,
    attempts: Keyed<(&'a str, u64, i32, i32, u32), &'a crate::model::AttemptRecord>,
    events: Keyed<(&'a str, u64, u32), &'a crate::model::Event>,
    kv: Keyed<(&'a str, &'a str), Option<&'a [u8]>>,
    idempotency: Keyed<(&'a str, &'a str), u64>,
    /// The lease each held run is inserted with, if it is new.
    leases: HashMap<(&'a str, u64), (i64, u64)>,
    /// Whether idempotency keys are left to `idempotency.rs` (the
    /// writer's groups, whose keys decide which batches commit), rather
    /// than taken (an import).
    keys_apart: bool,
}

/// Values by key, in the order keys were first seen, last value winning.
struct Keyed<K, V> {
    index: HashMap<K, usize>,
    entries: Vec<(K, V)>,
}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed {
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Copy, V> Keyed<K, V> {
    fn put(&mut self, key: K, value: V) {
        match self.index.get(&key) {
            Some(&at) => self.entries[at].1 = value,
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push((key, value));
            }
        }
    }
}

impl<'a> Hot<'a> {
    fn with_leases(leases: HashMap<(&'a str, u64), (i64, u64)>) -> Hot<'a> {
        Hot {
            leases,
            keys_apart: true,
            ..Hot::default()
        }
    }

    /// Whether `take` takes `change`.
    fn is_hot(change: &Change) -> bool {
        !matches!(
            change,
            Change::PutModule { .. }
                | Change::PutModuleVersion { .. }
                | Change::DeleteModule { .. }
                | Change::PutWorkflow { .. }
                | Change::PutTenant(_)
                | Change::PutKey(_)
                | Change::DeleteKey { .. }
                | Change::DeleteRuns { .. }
                | Change::CollectModuleBytes { .. }
                | Change::InsertObject { .. }
        )
    }

    /// Takes `change` if it is a hot one.
    pub(super) fn take(&mut self, change: &'a Change) -> bool {
        match change {
            Change::PutRun(run) => self.runs.put((run.tenant.as_str(), run.id.0), run.as_ref()),
            Change::PutUnit {
                tenant,
                run,
                key,
                record,
            } => self.units.put((tenant, run.0, key.step as i32, item(*key)), record),
            Change::PutAttempt {
                tenant,
                run,
                key,
                record,
            } => self.attempts.put(
                (tenant, run.0, key.step as i32, item(*key), record.attempt),
                record.as_ref(),
            ),
            Change::AppendEvent {
                tenant,
                run,
                seq,
                event,
            } => self.events.put((tenant, run.0, *seq), event),
            Change::Kv { tenant, key, value } => self.kv.put((tenant, key), value.as_deref()),
            Change::PutIdempotencyKey { .. } if self.keys_apart => {}
            Change::PutIdempotencyKey { tenant, key, run } => self.idempotency.put((tenant, key), run.0),
            // Checked before the group is written (`fence`).
            Change::Hold { .. } => {}
            _ => return false,
        }
        true
    }

    /// What the other nodes are told once the group commits: the runs it
    /// advanced, and whether it stored a run unleased (for any node to
    /// claim).
    fn notices(&self) -> Notices {
        Notices {
            advanced: self
                .events
                .entries
                .iter()
                .map(|((_, run, seq), _)| (*run, *seq))
                .collect(),
            work: self.runs.entries.iter().any(|(key, _)| !self.leases.contains_key(key)),
            names: false,
        }
    }

    /// Sends one statement per table that has rows, pipelined.
    pub(super) async fn write<C: GenericClient + Sync>(
        self,
        txn: &C,
        st: &Statements,
    ) -> Result<(), tokio_postgres::Error> {
        let runs = &self.runs.entries;
        let units = &self.units.entries;
        let attempts = &self.attempts.entries;
        let events = &self.events.entries;
        // Rows another node's writer may touch too, in key order, so two
        // transactions never wait on each other in a circle.
        let mut kv = self.kv.entries;
        kv.sort_unstable_by_key(|(key, _)| *key);
        let (kv_set, kv_delete): (Vec<_>, Vec<_>) = kv.iter().partition(|(_, v)| v.is_some());
        let mut idempotency = self.idempotency.entries;
        idempotency.sort_unstable_by_key(|(key, _)| *key);
        let idempotency = &idempotency;
        let leases = &self.leases;

        let runs = async {
            if runs.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = runs.iter().map(|((t, _), _)| *t).collect();
            let id: Vec<i64> = runs.iter().map(|((_, id), _)| *id as i64).collect();
            let workflow: Vec<&str> = runs.iter().map(|(_, r)| r.workflow.as_str()).collect();
            let status: Vec<i16> = runs.iter().map(|(_, r)| run_status(r.status)).collect();
            let priority: Vec<i32> = runs.iter().map(|(_, r)| r.priority).collect();
            let created: Vec<i64> = runs.iter().map(|(_, r)| millis(r.created_at)).collect();
            let updated: Vec<i64> = runs.iter().map(|(_, r)| millis(r.updated_at)).collect();
            let record: Vec<String> = runs.iter().map(|(_, r)| encode(r)).collect();
            let lease: Vec<Option<(i64, u64)>> = runs.iter().map(|(key, _)| leases.get(key).copied()).collect();
            let lease_node: Vec<Option<i64>> = lease.iter().map(|l| l.map(|(node, _)| node)).collect();
            let lease_epoch: Vec<i64> = lease.iter().map(|l| l.map_or(0, |(_, epoch)| epoch as i64)).collect();
            txn.execute(
                &st.runs,
                &[
                    &tenant,
                    &id,
                    &workflow,
                    &status,
                    &priority,
                    &created,
                    &updated,
                    &record,
                    &lease_node,
                    &lease_epoch,
                ],
            )
            .await
        };
        let units = async {
            if units.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = units.iter().map(|(k, _)| k.0).collect();
            let id: Vec<i64> = units.iter().map(|(k, _)| k.1 as i64).collect();
            let step: Vec<i32> = units.iter().map(|(k, _)| k.2).collect();
            let item: Vec<i32> = units.iter().map(|(k, _)| k.3).collect();
            let status: Vec<i16> = units.iter().map(|(_, u)| unit_status(u.status)).collect();
            let ready: Vec<Option<i64>> = units.iter().map(|(_, u)| ready_at(u)).collect();
            let record: Vec<String> = units.iter().map(|(_, u)| encode(u)).collect();
            txn.execute(&st.units, &[&tenant, &id, &step, &item, &status, &ready, &record])
                .await
        };
        let attempts = async {
            if attempts.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = attempts.iter().map(|(k, _)| k.0).collect();
            let id: Vec<i64> = attempts.iter().map(|(k, _)| k.1 as i64).collect();
            let step: Vec<i32> = attempts.iter().map(|(k, _)| k.2).collect();
            let item: Vec<i32> = attempts.iter().map(|(k, _)| k.3).collect();
            let attempt: Vec<i32> = attempts.iter().map(|(k, _)| k.4 as i32).collect();
            let record: Vec<String> = attempts.iter().map(|(_, a)| encode(a)).collect();
            txn.execute(&st.attempts, &[&tenant, &id, &step, &item, &attempt, &record])
                .await
        };
        let events = async {
            if events.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = events.iter().map(|(k, _)| k.0).collect();
            let id: Vec<i64> = events.iter().map(|(k, _)| k.1 as i64).collect();
            let seq: Vec<i32> = events.iter().map(|(k, _)| k.2 as i32).collect();
            let event: Vec<String> = events.iter().map(|(_, e)| encode(e)).collect();
            txn.execute(&st.events, &[&tenant, &id, &seq, &event]).await
        };
        let kv_set = async {
            if kv_set.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = kv_set.iter().map(|((t, _), _)| *t).collect();
            let key: Vec<&str> = kv_set.iter().map(|((_, k), _)| *k).collect();
            let value: Vec<&[u8]> = kv_set.iter().map(|(_, v)| v.unwrap_or_default()).collect();
            txn.execute(&st.kv_set, &[&tenant, &key, &value]).await
        };
        let kv_delete = async {
            if kv_delete.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = kv_delete.iter().map(|((t, _), _)| *t).collect();
            let key: Vec<&str> = kv_delete.iter().map(|((_, k), _)| *k).collect();
            txn.execute(&st.kv_delete, &[&tenant, &key]).await
        };
        let idempotency = async {
            if idempotency.is_empty() {
                return Ok(0);
            }
            let tenant: Vec<&str> = idempotency.iter().map(|((t, _), _)| *t).collect();
            let key: Vec<&str> = idempotency.iter().map(|((_, k), _)| *k).collect();
            let run: Vec<i64> = idempotency.iter().map(|(_, r)| *r as i64).collect();
            txn.execute(&st.idempotency, &[&tenant, &key, &run]).await
        };
        futures_util::try_join!(runs, units, attempts, events, kv_set, kv_delete, idempotency)?;
        Ok(())
    }
}

/// A change made rarely (by people, not by runs), one statement at a time.
pub(super) async fn apply_rare(txn: &Transaction<'_>, change: &Change) -> Result<(), tokio_postgres::Error> {
    match change {
        Change::PutModule { tenant, digest, bytes } => {
            txn.execute(
                "INSERT INTO module_bytes (tenant, digest, bytes) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[tenant, &digest.as_bytes().as_slice(), &bytes.as_slice()],
            )
            .await?;
        }
        Change::PutModuleVersion { tenant, record } => {
            let digest = record.digest.as_bytes().as_slice();
            put_module_version(txn, tenant, record).await?;
            txn.execute(
                "INSERT INTO module_names (tenant, name, digest) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest",
                &[tenant, &record.name, &digest],
            )
            .await?;
        }
        Change::DeleteModule { tenant, name } => {
            txn.execute(
                "DELETE FROM module_names WHERE tenant = $1 AND name = $2",
                &[tenant, name],
            )
            .await?;
            txn.execute(
                "DELETE FROM module_versions WHERE tenant = $1 AND name = $2",
                &[tenant, name],
            )
            .await?;
        }
        Change::PutWorkflow {
            tenant,
            name,
            digest,
            source,
            at,
        } => {
            let digest = digest.as_bytes().as_slice();
            txn.execute(
                "INSERT INTO workflows (tenant, digest, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[tenant, &digest, &&**source],
            )
            .await?;
            let newest = txn
                .query_opt(
                    "SELECT version, digest FROM workflow_versions WHERE tenant = $1 AND name = $2
                     ORDER BY version DESC LIMIT 1",
                    &[tenant, name],
                )
                .await?;
            let last: Option<(i32, Vec<u8>)> = newest.map(|row| (row.get(0), row.get(1)));
            if last.as_ref().is_none_or(|(_, d)| d.as_slice() != digest) {
                let version = last.map_or(1, |(v, _)| v + 1);
                txn.execute(
                    "INSERT INTO workflow_versions (tenant, name, version, digest, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[tenant, name, &version, &digest, &millis(*at)],
                )
                .await?;
            }
            txn.execute(
                "INSERT INTO workflow_names (tenant, name, digest) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest",
                &[tenant, name, &digest],
            )
            .await?;
        }
        Change::PutTenant(record) => {
            txn.execute(
                "INSERT INTO tenants (tenant, record) VALUES ($1, $2::text::json)
                 ON CONFLICT (tenant) DO UPDATE SET record = excluded.record",
                &[&record.id, &encode(record.as_ref())],
            )
            .await?;
        }
        Change::PutKey(record) => {
            txn.execute(
                "INSERT INTO api_keys (key_id, tenant, record) VALUES ($1, $2, $3::text::json)
                 ON CONFLICT (key_id) DO UPDATE SET tenant = excluded.tenant, record = excluded.record",
                &[&record.key_id, &record.tenant, &encode(record.as_ref())],
            )
            .await?;
        }
        Change::DeleteKey { key_id } => {
            txn.execute("DELETE FROM api_keys WHERE key_id = $1", &[key_id]).await?;
        }
        Change::DeleteRuns { tenant, runs } => {
            let ids: Vec<i64> = runs.iter().map(|r| r.0 as i64).collect();
            for table in ["units", "attempts", "events", "idempotency_keys", "runs"] {
                let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND run_id = ANY($2)");
                txn.execute(sql.as_str(), &[tenant, &ids]).await?;
            }
            let prefixes: Vec<String> = runs.iter().map(|r| crate::store::run_prefix(*r)).collect();
            txn.execute(
                "DELETE FROM objects WHERE kind IN ('delivery', 'outbox') AND tenant = $1
                     AND name ^@ ANY($2)",
                &[tenant, &prefixes],
            )
            .await?;
        }
        Change::InsertObject {
            kind,
            tenant,
            name,
            value,
        } => super::objects::insert_on(txn, *kind, tenant, name, value).await?,
        Change::CollectModuleBytes { tenant } => {
            txn.execute(
                "DELETE FROM module_bytes b WHERE b.tenant = $1
                   AND NOT EXISTS (SELECT 1 FROM module_versions v WHERE v.tenant = b.tenant AND v.digest = b.digest)
                   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.tenant = b.tenant AND r.status = 0
                       AND (r.record -> 'modules')::jsonb ? ('sha256:' || encode(b.digest, 'hex')))",
                &[tenant],
            )
            .await?;
        }
        Change::PutRun(_)
        | Change::PutUnit { .. }
        | Change::PutAttempt { .. }
        | Change::AppendEvent { .. }
        | Change::Kv { .. }
        | Change::PutIdempotencyKey { .. }
        | Change::Hold { .. } => unreachable!("hot changes are written by Hot"),
    }
    Ok(())
}

/// Stores a version of a module as it is (its name is pointed at it
/// separately).
pub(super) async fn put_module_version(
    txn: &Transaction<'_>,
    tenant: &str,
    record: &crate::model::ModuleRecord,
) -> Result<(), tokio_postgres::Error> {
    txn.execute(
        "INSERT INTO module_versions (tenant, name, version, digest, created_at, record)
         VALUES ($1, $2, $3, $4, $5, $6::text::json)
         ON CONFLICT (tenant, name, version) DO UPDATE SET digest = excluded.digest,
             created_at = excluded.created_at, record = excluded.record",
        &[
            &tenant,
            &record.name,
            &record.version,
            &record.digest.as_bytes().as_slice(),
            &millis(record.created_at),
            &encode(record),
        ],
    )
    .await?;
    Ok(())
}
