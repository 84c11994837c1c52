//! Fencing and notices inside the writer's transaction.
//!
//! A group commit first locks the runs row of every lease its batches
//! hold (`SELECT ... FOR UPDATE`, in key order so that two writers never
//! wait on each other in a circle) and leaves out every batch whose lease
//! has moved on: another node claimed the run, or took it over. A claim
//! updates the same row, so it either committed before the check (and the
//! check sees the new epoch) or waits until the group has committed. A
//! node that was paused and wakes therefore cannot write anything for a
//! run that moved, whatever its batch holds: result, kv writes, events.
//!
//! What a committed group did is told to every node afterwards, by
//! `notify.rs`, never inside the group's transaction.

use std::collections::HashMap;

use tokio_postgres::{GenericClient, Statement};

use crate::store::Change;

/// Finds, among `runs`, those whose lease is no longer what the batches
/// hold, and locks the rest until the transaction ends.
pub(super) const CHECK: &str = "SELECT tenant, run_id, lease_node, lease_epoch FROM runs
    WHERE (tenant, run_id) IN (SELECT * FROM UNNEST($1::text[], $2::bigint[]))
    ORDER BY tenant, run_id FOR UPDATE";

/// The largest payload of one notification (PostgreSQL's limit is 8000
/// bytes).
pub(super) const MAX_PAYLOAD: usize = 7900;

/// The leases the batches of a group hold.
#[derive(Default)]
pub(super) struct Holds<'a> {
    /// (batch, tenant, run, node, epoch)
    holds: Vec<(usize, &'a str, u64, i64, u64)>,
}

impl<'a> Holds<'a> {
    pub(super) fn of(group: &[&'a Vec<Change>]) -> Holds<'a> {
        let mut holds = Vec::new();
        for (batch, changes) in group.iter().enumerate() {
            for change in changes.iter() {
                if let Change::Hold {
                    tenant,
                    run,
                    node,
                    epoch,
                } = change
                {
                    holds.push((batch, tenant.as_str(), run.0, *node, *epoch));
                }
            }
        }
        Holds { holds }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// The lease a new run is inserted with.
    pub(super) fn leases(&self) -> HashMap<(&'a str, u64), (i64, u64)> {
        self.holds
            .iter()
            .map(|&(_, tenant, run, node, epoch)| ((tenant, run), (node, epoch)))
            .collect()
    }

    /// Locks the held runs' rows and returns, per batch of a group of
    /// `batches`, whether it is fenced. A run not stored yet is being
    /// started by its batch: not fenced.
    pub(super) async fn check<C: GenericClient + Sync>(
        &self,
        client: &C,
        statement: &Statement,
        batches: usize,
    ) -> Result<Vec<bool>, tokio_postgres::Error> {
        let tenants: Vec<&str> = self.holds.iter().map(|h| h.1).collect();
        let runs: Vec<i64> = self.holds.iter().map(|h| h.2 as i64).collect();
        let rows = client.query(statement, &[&tenants, &runs]).await?;
        let mut stored = HashMap::with_capacity(rows.len());
        for row in &rows {
            let tenant: &str = row.get(0);
            let run: i64 = row.get(1);
            let node: Option<i64> = row.get(2);
            let epoch: i64 = row.get(3);
            stored.insert((tenant.to_string(), run as u64), (node, epoch as u64));
        }
        let mut fenced = vec![false; batches];
        for &(batch, tenant, run, node, epoch) in &self.holds {
            if let Some(&(held_by, held_at)) = stored.get(&(tenant.to_string(), run))
                && (held_by != Some(node) || held_at != epoch)
            {
                fenced[batch] = true;
            }
        }
        Ok(fenced)
    }
}

/// Whether `change` alters an answer other nodes may have cached.
pub(super) fn renames(change: &Change) -> bool {
    matches!(
        change,
        Change::PutTenant(_)
            | Change::PutKey(_)
            | Change::DeleteKey { .. }
            | Change::PutWorkflow { .. }
            | Change::PutModuleVersion { .. }
            | Change::DeleteModule { .. }
    )
}
