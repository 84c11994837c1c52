//! A node's membership: it registers in `nodes`, heartbeats, and declares
//! silent nodes dead, on a thread of its own.
//!
//! The heartbeat runs on its own OS thread with its own runtime and its
//! own connection, so a node whose executor is busy with attempts, or
//! whose pool is exhausted, still heartbeats on time: a node is declared
//! dead because it stopped, not because it was busy.
//!
//! The connection also holds a session advisory lock named by the node's
//! incarnation. PostgreSQL releases it the moment the process's connection
//! closes, which a killed process's does at once: a node whose lock is
//! free and whose heartbeat is a little late (two intervals) is dead
//! without waiting for the full timeout. A paused or cut-off process keeps
//! its connection open on the server's side, so for it the timeout
//! decides. A node judges others only once it has itself been connected
//! for a whole timeout, so that after an outage of the database every node
//! has had time to come back before anyone is declared dead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};
use tokio_postgres::{Client, Config};

use super::{classify, connect, describe, tls};
use crate::store::StoreError;
use crate::store::cluster::{Incarnation, Load, NodeInfo, Notice, Timing};

/// The first key of every node's advisory lock ("weft" in ASCII); the
/// second is its incarnation.
pub(super) const NODE_LOCK_CLASS: i32 = 0x7765_6674;

/// How often dead nodes' rows without runs are removed.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// A node's membership, as its heartbeat thread keeps it.
pub(super) struct Member {
    pub(super) config: Config,
    pub(super) tls: tls::Connector,
    pub(super) info: NodeInfo,
    pub(super) timing: Timing,
    pub(super) load: Arc<Load>,
    pub(super) notices: broadcast::Sender<Notice>,
}

impl Member {
    /// Starts the membership thread; answers with the node's incarnation
    /// once it is registered. Dropping the returned sender stops the
    /// thread (and with it the heartbeats and the lock).
    pub(super) fn spawn(self) -> (oneshot::Sender<()>, oneshot::Receiver<Result<Incarnation, StoreError>>) {
        let (stop, stopped) = oneshot::channel();
        let (joined, answer) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("weft-heartbeat".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = joined.send(Err(StoreError::Open(format!("cannot start the heartbeat: {e}"))));
                        return;
                    }
                };
                runtime.block_on(self.run(joined, stopped));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the heartbeat thread");
        }
        (stop, answer)
    }
}

impl Member {
    async fn run(self, joined: oneshot::Sender<Result<Incarnation, StoreError>>, mut stopped: oneshot::Receiver<()>) {
        let registered = async {
            let client = connect(&self.config, &self.tls).await.map_err(classify)?;
            let me = self.register(&client).await?;
            Ok::<_, StoreError>((client, me))
        };
        let (mut client, mut me) = match registered.await {
            Ok(joined_as) => joined_as,
            Err(e) => {
                let _ = joined.send(Err(e));
                return;
            }
        };
        let _ = joined.send(Ok(me));
        let mut locked = true;
        let mut connected_since = Instant::now();
        let mut claims = VecDeque::new();
        let mut cleaned = Instant::now();
        let mut ticks = tokio::time::interval(self.timing.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = ticks.tick() => {}
            }
            if !locked {
                // The server may still hold the lost session's lock for a
                // while; until then the heartbeats alone keep the node alive.
                locked = try_lock(&client, me).await.unwrap_or(false);
            }
            // A connection that stalls (a partition that drops packets)
            // must not stall the heartbeat: it reconnects instead.
            let beat = tokio::time::timeout(self.timing.timeout, self.beat(&client, me, &mut claims));
            let beat = beat.await.unwrap_or_else(|_| Err(Stalled.into()));
            match beat {
                Ok(true) => {
                    self.load.heartbeat_at.store(unix_millis(), Ordering::Relaxed);
                }
                Ok(false) if !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty)) => {
                    // It left meanwhile (its row says so): nothing to beat for.
                    return;
                }
                Ok(false) => {
                    // Declared dead while paused or cut off: every run it
                    // held is someone else's. Join again, anew.
                    tracing::warn!(
                        incarnation = me,
                        "this node was declared dead; it drops its runs and joins again"
                    );
                    match self.register(&client).await {
                        Ok(again) => {
                            let _ = client
                                .execute(
                                    "SELECT pg_advisory_unlock($1, $2::bigint::int4)",
                                    &[&NODE_LOCK_CLASS, &me],
                                )
                                .await;
                            locked = true;
                            me = again;
                            let _ = self.notices.send(Notice::Rejoined(me));
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot join the cluster again yet"),
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a heartbeat failed; reconnecting");
                    let reconnected = tokio::time::timeout(self.timing.timeout * 2, self.reconnect(me));
                    let reconnected = reconnected
                        .await
                        .unwrap_or_else(|_| Err(StoreError::Unavailable("reconnecting timed out".into())));
                    match reconnected {
                        Ok((again, incarnation, holds_lock)) => {
                            client = again;
                            locked = holds_lock;
                            connected_since = Instant::now();
                            if incarnation != me {
                                me = incarnation;
                                let _ = self.notices.send(Notice::Rejoined(me));
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "the heartbeat cannot reach the database"),
                    }
                    continue;
                }
            }
            if connected_since.elapsed() >= self.timing.timeout {
                match tokio::time::timeout(self.timing.timeout, self.declare_dead(&client, me)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot look for dead nodes"),
                    Err(_) => tracing::warn!("looking for dead nodes took longer than the node timeout"),
                }
            }
            if cleaned.elapsed() >= CLEANUP_EVERY {
                cleaned = Instant::now();
                let _ = client
                    .execute(
                        "DELETE FROM nodes n WHERE state >= 2 AND heartbeat_at < clock_timestamp() - interval '1 day'
                           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.status = 0 AND r.lease_node = n.incarnation)",
                        &[],
                    )
                    .await;
            }
        }
    }

    /// Registers a new incarnation and takes its lock. An earlier process
    /// with the same node id is waited for, up to the timeout: a killed
    /// one is dead at once (its lock is free), a live one refuses the id.
    async fn register(&self, client: &Client) -> Result<Incarnation, StoreError> {
        let deadline = Instant::now() + self.timing.timeout + self.timing.heartbeat * 2;
        loop {
            let rows = client
                .query(
                    "SELECT incarnation, address,
                        (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::float8,
                        EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                            AND l.classid = $2::int4::oid AND l.objid = n.incarnation::oid AND l.objsubid = 2)
                     FROM nodes n WHERE node_id = $1 AND state < 2",
                    &[&self.info.node_id, &NODE_LOCK_CLASS],
                )
                .await
                .map_err(classify)?;
            let mut live = None;
            for row in &rows {
                let (incarnation, address, age_ms, locked): (i64, String, f64, bool) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                if !locked || age_ms > self.timing.timeout.as_millis() as f64 {
                    client
                        .execute(
                            "UPDATE nodes SET state = 2 WHERE incarnation = $1 AND state < 2",
                            &[&incarnation],
                        )
                        .await
                        .map_err(classify)?;
                    client
                        .execute("SELECT pg_notify('weft_work', 'dead')", &[])
                        .await
                        .map_err(classify)?;
                    tracing::info!(
                        incarnation,
                        "an earlier process of this node is gone; its runs are free"
                    );
                } else {
                    live = Some((incarnation, address));
                }
            }
            match live {
                None => break,
                Some((incarnation, address)) if Instant::now() >= deadline => {
                    return Err(StoreError::Open(format!(
                        "node id {:?} is in use by a live node (incarnation {incarnation}, at {address}); \
                         give each node its own --node-id",
                        self.info.node_id
                    )));
                }
                Some(_) => tokio::time::sleep(self.timing.heartbeat).await,
            }
        }
        let row = client
            .query_one(
                "INSERT INTO nodes (incarnation, node_id, address, version, capacity)
                 VALUES (nextval('node_incarnations'), $1, $2, $3, $4) RETURNING incarnation",
                &[
                    &self.info.node_id,
                    &self.info.address,
                    &self.info.version,
                    &(self.info.capacity as i32),
                ],
            )
            .await
            .map_err(classify)?;
        let me: Incarnation = row.get(0);
        try_lock(client, me).await.map_err(classify)?;
        tracing::info!(node = %self.info.node_id, incarnation = me, "joined the cluster");
        Ok(me)
    }

    /// One heartbeat; `false` when the node has been declared dead.
    async fn beat(
        &self,
        client: &Client,
        me: Incarnation,
        claims: &mut VecDeque<(Instant, u64)>,
    ) -> Result<bool, BeatError> {
        let total = self.load.claims.load(Ordering::Relaxed);
        claims.push_back((Instant::now(), total));
        while claims.len() > 2 && claims[0].0.elapsed() > Duration::from_secs(10) {
            claims.pop_front();
        }
        let (since, before) = claims[0];
        let rate = match since.elapsed().as_secs_f64() {
            elapsed if elapsed > 0.0 => (total - before) as f64 / elapsed,
            _ => 0.0,
        };
        let running = self.load.running.load(Ordering::Relaxed) as i32;
        let draining = self.load.draining.load(Ordering::Relaxed);
        let (total, rate) = (total as i64, rate as f32);
        let beat_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&me, &running, &total, &rate, &draining];
        let me_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&me];
        let beat = client.execute(
            "UPDATE nodes SET heartbeat_at = clock_timestamp(), running = $2, claims = $3, claims_per_s = $4,
                state = CASE WHEN $5 THEN 1 ELSE state END
             WHERE incarnation = $1 AND state < 2",
            &beat_params,
        );
        let elsewhere = client.query_one(
            "SELECT coalesce(sum(greatest(capacity - running, 0)), 0)::bigint FROM nodes
             WHERE state = 0 AND incarnation <> $1 AND heartbeat_at > clock_timestamp() - interval '2 seconds'",
            &me_param,
        );
        let (updated, elsewhere) = tokio::join!(beat, elsewhere);
        let free: i64 = elsewhere.map_err(BeatError::Sql)?.get(0);
        self.load
            .free_elsewhere
            .store(free.clamp(0, i64::from(u32::MAX)) as u32, Ordering::Relaxed);
        Ok(updated.map_err(BeatError::Sql)? == 1)
    }

    /// Marks as dead every other node that stopped heartbeating, and wakes
    /// every node to claim its runs.
    async fn declare_dead(&self, client: &Client, me: Incarnation) -> Result<(), tokio_postgres::Error> {
        let timeout_ms = self.timing.timeout.as_secs_f64() * 1000.0;
        let quick_ms = self.timing.heartbeat.as_secs_f64() * 2000.0;
        let dead = client
            .query(
                "UPDATE nodes n SET state = 2
                 WHERE state < 2 AND incarnation <> $1
                   AND (heartbeat_at < clock_timestamp() - $2 * interval '1 millisecond'
                     OR (heartbeat_at < clock_timestamp() - $3 * interval '1 millisecond'
                         AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                             AND l.classid = $4::int4::oid AND l.objid = n.incarnation::oid AND l.objsubid = 2)))
                 RETURNING node_id, incarnation",
                &[&me, &timeout_ms, &quick_ms, &NODE_LOCK_CLASS],
            )
            .await?;
        if dead.is_empty() {
            return Ok(());
        }
        for row in &dead {
            let (node, incarnation): (String, i64) = (row.get(0), row.get(1));
            tracing::warn!(%node, incarnation, "declared a silent node dead; its runs go to live nodes");
        }
        self.load.declared_dead.fetch_add(dead.len() as u64, Ordering::Relaxed);
        client.execute("SELECT pg_notify('weft_work', 'dead')", &[]).await?;
        Ok(())
    }

    /// A new connection that holds `me`'s lock again, or, if the node was
    /// declared dead meanwhile, a new incarnation.
    async fn reconnect(&self, me: Incarnation) -> Result<(Client, Incarnation, bool), StoreError> {
        let client = connect(&self.config, &self.tls)
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let alive = client
            .execute(
                "UPDATE nodes SET heartbeat_at = clock_timestamp() WHERE incarnation = $1 AND state < 2",
                &[&me],
            )
            .await
            .map_err(classify)?
            == 1;
        if alive {
            let locked = try_lock(&client, me).await.map_err(classify)?;
            return Ok((client, me, locked));
        }
        let again = self.register(&client).await?;
        Ok((client, again, true))
    }
}

/// Why a heartbeat did not get through.
#[derive(Debug, thiserror::Error)]
enum BeatError {
    #[error("{}", describe(.0))]
    Sql(tokio_postgres::Error),
    #[error("the database did not answer within the node timeout")]
    Stalled,
}

/// A heartbeat that took longer than the node timeout.
struct Stalled;

impl From<Stalled> for BeatError {
    fn from(_: Stalled) -> BeatError {
        BeatError::Stalled
    }
}

/// Takes `me`'s lock on this session if it is free; whether it holds it.
async fn try_lock(client: &Client, me: Incarnation) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2::bigint::int4)",
            &[&NODE_LOCK_CLASS, &me],
        )
        .await?
        .get(0))
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
