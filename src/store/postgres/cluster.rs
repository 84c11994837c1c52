//! [`Cluster`] on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`,
//! take-overs, leaving, the registry, and blocks of run ids.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{PgStore, heartbeat};
use crate::model::RunId;
use crate::store::StoreError;
use crate::store::cluster::{
    Claimed, Cluster, Incarnation, Lease, Load, NodeInfo, NodeRecord, NodeState, Notice, Timing,
};

/// Run ids per block: one `nextval` (the sequence steps by as many).
const RUN_ID_BLOCK: u64 = 1000;

/// Leases up to $2 unfinished runs that no live node holds to $1, taking
/// turns between tenants (each tenant's runs ranked by priority, then
/// age; the first of every tenant before the second of any), skipping
/// rows another claim or commit has locked.
const CLAIM: &str = "WITH live AS (SELECT array_agg(incarnation) AS nodes FROM nodes WHERE state < 2),
    candidates AS (
        SELECT tenant, run_id, row_number() OVER (PARTITION BY tenant ORDER BY priority DESC, run_id) AS turn
        FROM runs, live
        WHERE status = 0 AND (lease_node IS NULL OR NOT lease_node = ANY(coalesce(live.nodes, '{}')))
    ),
    picked AS (
        SELECT r.tenant, r.run_id, r.lease_node FROM runs r JOIN candidates c USING (tenant, run_id), live
        WHERE r.status = 0 AND (r.lease_node IS NULL OR NOT r.lease_node = ANY(coalesce(live.nodes, '{}')))
        ORDER BY c.turn, c.run_id
        LIMIT $2
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE runs r SET lease_node = $1, lease_epoch = r.lease_epoch + 1
    FROM picked p WHERE r.tenant = p.tenant AND r.run_id = p.run_id
    RETURNING r.tenant, r.run_id, r.lease_epoch, p.lease_node";

// The statements below that change leases are single statements, each its
// own transaction: a node cut off between two statements of a transaction
// would leave the rows it had locked locked, and claims skip locked rows.

/// Leases run $3 of tenant $2 to $1 at the next epoch, whoever held it,
/// and tells the holder ($4 is the notice).
const TAKE_OVER: &str = "WITH moved AS (
        UPDATE runs SET lease_node = $1, lease_epoch = lease_epoch + 1
        WHERE tenant = $2 AND run_id = $3 RETURNING lease_epoch
    )
    SELECT moved.lease_epoch FROM moved CROSS JOIN pg_notify('weft_runs', $4::text)";

/// Frees the unfinished runs node $1 holds and marks it as left; how many
/// runs it freed.
const LEAVE: &str = "WITH released AS (
        UPDATE runs SET lease_node = NULL WHERE lease_node = $1 AND status = 0 RETURNING 1
    ),
    gone AS (
        UPDATE nodes SET state = 3, running = 0, heartbeat_at = clock_timestamp() WHERE incarnation = $1 RETURNING 1
    )
    SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM gone) FROM pg_notify('weft_work', 'left')";

/// Frees the runs (tenants $2, ids $3) that node $1 holds.
const RELEASE: &str = "WITH released AS (
        UPDATE runs SET lease_node = NULL WHERE lease_node = $1
          AND (tenant, run_id) IN (SELECT * FROM UNNEST($2::text[], $3::bigint[]))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM released) FROM pg_notify('weft_work', 'released')";

#[async_trait]
impl Cluster for PgStore {
    async fn join(&self, info: NodeInfo, timing: Timing, load: Arc<Load>) -> Result<Incarnation, StoreError> {
        self.idle_limit.store(
            timing.timeout.as_millis().max(1) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let (stop, joined) = heartbeat::Member {
            config: self.config.clone(),
            tls: self.tls.clone(),
            info,
            timing,
            load,
            notices: self.notices.clone(),
        }
        .spawn();
        let me = joined
            .await
            .map_err(|_| StoreError::Open("the heartbeat thread stopped".into()))??;
        *self.member.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        Ok(me)
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    async fn claim(&self, me: Incarnation, limit: usize) -> Result<Claimed, StoreError> {
        let rows = self.query(CLAIM, &[&me, &(limit as i64)]).await?;
        let mut claimed = Claimed::default();
        for row in rows {
            let previous: Option<i64> = row.get(3);
            claimed.reassigned += usize::from(previous.is_some());
            claimed.leases.push(Lease {
                tenant: row.get(0),
                run: RunId(row.get::<_, i64>(1) as u64),
                epoch: row.get::<_, i64>(2) as u64,
            });
        }
        Ok(claimed)
    }

    async fn take_over(&self, me: Incarnation, tenant: &str, run: RunId) -> Result<u64, StoreError> {
        let row = self
            .query(
                TAKE_OVER,
                &[&me, &tenant, &(run.0 as i64), &format!("moved {run} {me}")],
            )
            .await?;
        let row = row
            .first()
            .ok_or_else(|| StoreError::Storage(format!("no run {run} to take over")))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn leave(&self, me: Incarnation) -> Result<(), StoreError> {
        // Heartbeats stop first, so that the thread does not take the
        // row's new state for having been declared dead and join again. A
        // node that cannot say it left is declared dead by the others,
        // which frees its runs too.
        self.member.lock().unwrap_or_else(|e| e.into_inner()).take();
        let rows = self.query(LEAVE, &[&me]).await?;
        // Its permits no longer count once it has left; deleting them only
        // tidies.
        if let Err(e) = self
            .query("DELETE FROM attempt_permits WHERE incarnation = $1", &[&me])
            .await
        {
            tracing::debug!(error = %e, "cannot delete the permits of a node that left");
        }
        let released = rows.first().map_or(0, |row| row.get::<_, i64>(0));
        tracing::info!(incarnation = me, runs = released, "left the cluster; its runs are free");
        Ok(())
    }

    async fn take_permits(&self, me: Incarnation, tenant: &str, wanted: u32, cap: u32) -> Result<u32, StoreError> {
        let (wanted, cap) = (wanted.min(i32::MAX as u32) as i32, cap.min(i32::MAX as u32) as i32);
        let rows = self
            .query(
                "SELECT weft_take_permits($1, $2, $3, $4)",
                &[&tenant, &me, &wanted, &cap],
            )
            .await?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i32>(0).max(0) as u32))
    }

    async fn give_back_permits(&self, me: Incarnation, tenant: &str, count: u32) -> Result<(), StoreError> {
        let count = count.min(i32::MAX as u32) as i32;
        self.query(
            "UPDATE attempt_permits SET held = greatest(held - $3, 0) WHERE tenant = $1 AND incarnation = $2",
            &[&tenant, &me, &count],
        )
        .await?;
        Ok(())
    }

    async fn release(&self, me: Incarnation, runs: &[(String, RunId)]) -> Result<(), StoreError> {
        let tenants: Vec<&str> = runs.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let ids: Vec<i64> = runs.iter().map(|(_, run)| run.0 as i64).collect();
        self.query(RELEASE, &[&me, &tenants, &ids]).await?;
        Ok(())
    }

    async fn drain(&self, me: Incarnation) -> Result<(), StoreError> {
        self.query(
            "UPDATE nodes SET state = 1 WHERE incarnation = $1 AND state = 0 RETURNING 1",
            &[&me],
        )
        .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT node_id, incarnation, address, version, capacity, running, state,
                    (extract(epoch FROM started_at) * 1000)::bigint,
                    (extract(epoch FROM heartbeat_at) * 1000)::bigint,
                    greatest(extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000, 0)::bigint,
                    claims_per_s, claims
                 FROM nodes WHERE state < 2 OR heartbeat_at > clock_timestamp() - interval '1 hour'
                 ORDER BY node_id, incarnation",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| NodeRecord {
                node_id: row.get(0),
                incarnation: row.get(1),
                address: row.get(2),
                version: row.get(3),
                capacity: row.get::<_, i32>(4).max(0) as u32,
                running: row.get::<_, i32>(5).max(0) as u32,
                state: NodeState::from_code(row.get(6)),
                started_at: row.get::<_, i64>(7).max(0) as u64,
                heartbeat_at: row.get::<_, i64>(8).max(0) as u64,
                heartbeat_age_ms: row.get::<_, i64>(9).max(0) as u64,
                claims_per_s: f64::from(row.get::<_, f32>(10)),
                claims: row.get::<_, i64>(11).max(0) as u64,
            })
            .collect())
    }

    async fn reserve_run_ids(&self) -> Result<Range<u64>, StoreError> {
        let row = self.query("SELECT nextval('run_ids')", &[]).await?;
        let first = row.first().map_or(1, |row| row.get::<_, i64>(0)).max(1) as u64;
        Ok(first..first + RUN_ID_BLOCK)
    }
}
