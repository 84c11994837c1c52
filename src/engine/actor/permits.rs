//! A tenant's cap on attempts at once across the nodes of a cluster: an
//! attempt of a capped tenant starts only with a permit this node took
//! from the database (`Cluster::take_permits`, within the cap over every
//! live node), and its permit goes back when it ends. The queue holds
//! the permits and lets a capped tenant run only as many attempts as it
//! has; after each turn the scheduler asks for what the queue wants, one
//! request per tenant at a time, and asks again shortly when the cluster
//! had none to give. On one node there are no permits: the cap alone
//! counts.

use std::sync::Arc;
use std::time::Duration;

use super::{Actor, Msg};
use crate::model::{RunId, UnitKey};
use crate::store::StoreError;

/// How soon a node asks again for permits the cluster had none of.
const PERMIT_RETRY_MS: u64 = 100;

impl Actor {
    /// Asks the cluster for the permits the queue wants, and gives back
    /// those it no longer needs.
    pub(super) fn ask_permits(&mut self) {
        let Some(node) = &mut self.node else { return };
        for (tenant, count) in self.queue.surplus() {
            give_back(node.cluster.clone(), node.me, tenant, count);
        }
        for (tenant, wanted, cap) in self.queue.wanting() {
            if !node.asking_permits.insert(tenant.clone()) {
                continue; // already asked
            }
            let (cluster, me, inbox) = (node.cluster.clone(), node.me, self.shared.inbox.clone());
            tokio::spawn(async move {
                let granted = cluster.take_permits(me, &tenant, wanted, cap).await;
                let _ = inbox.send(Msg::Permits { tenant, granted });
            });
        }
    }

    /// The answer to [`Actor::ask_permits`].
    pub(super) fn permits_granted(&mut self, tenant: Arc<str>, granted: Result<u32, StoreError>) {
        let Some(node) = &mut self.node else { return };
        node.asking_permits.remove(&tenant);
        match granted {
            Ok(count) if count > 0 => self.queue.grant(&tenant, count),
            Ok(_) => self.retry_permits(),
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot take attempt permits; trying again shortly");
                self.retry_permits();
            }
        }
    }

    fn retry_permits(&mut self) {
        let again = self.shared.clock.now() + PERMIT_RETRY_MS;
        self.stalled_until = Some(self.stalled_until.map_or(again, |at| at.min(again)));
    }

    /// An attempt ended (or was abandoned) after holding its slot for
    /// `used`; its permit, if it held one, goes back.
    pub(super) fn attempt_ended(&mut self, run: RunId, key: UnitKey, used: Duration) {
        let permit = self.queue.finished(run, key, used);
        if let (Some(tenant), Some(node)) = (permit, &self.node) {
            give_back(node.cluster.clone(), node.me, tenant, 1);
        }
    }
}

/// Gives permits back in the background. A failure only leaves the cap
/// under-used until this node leaves or is declared dead.
fn give_back(cluster: Arc<dyn crate::store::cluster::Cluster>, me: i64, tenant: Arc<str>, count: u32) {
    tokio::spawn(async move {
        if let Err(e) = cluster.give_back_permits(me, &tenant, count).await {
            tracing::warn!(%tenant, count, error = %e, "cannot give attempt permits back; the tenant's cap is under-used until this node leaves");
        }
    });
}
