//! Retention: finished runs older than their tenant's `retention_days`
//! are deleted with their units, attempts (and so logs), events and
//! idempotency keys; then module bytes that no module version and no
//! unfinished run names are collected. Under a steady load the store
//! stops growing.
//!
//! [`sweep`] is one pass at a given time (tests pass any clock's time);
//! [`run`] sweeps in the background of `weft serve`.

use std::sync::Arc;
use std::time::Duration;

use super::{Change, Store, StoreError};
use crate::model::Millis;

/// Runs deleted per transaction.
const BATCH: usize = 500;

/// One day, in milliseconds.
const DAY: Millis = 24 * 60 * 60 * 1000;

/// What a sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Finished runs deleted.
    pub runs: usize,
}

/// Deletes, for every tenant, the finished runs last changed more than
/// its `retention_days` before `now`, then the module bytes nothing names.
pub async fn sweep(store: &dyn Store, now: Millis) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    for tenant in store.tenants().await? {
        let before = now.saturating_sub(Millis::from(tenant.quotas.retention_days) * DAY);
        loop {
            let runs = store.expired_runs(&tenant.id, before, BATCH).await?;
            if runs.is_empty() {
                break;
            }
            let deleted = runs.len();
            store
                .commit(vec![Change::DeleteRuns {
                    tenant: tenant.id.clone(),
                    runs,
                }])
                .await?;
            swept.runs += deleted;
            if deleted < BATCH {
                break;
            }
        }
        store
            .commit(vec![Change::CollectModuleBytes {
                tenant: tenant.id.clone(),
            }])
            .await?;
    }
    Ok(swept)
}

/// Sweeps every `every`, the first time shortly after start, until the
/// process ends, at the time `now` tells. A failed sweep is logged and
/// tried again next time.
pub async fn run(store: Arc<dyn Store>, now: impl Fn() -> Millis + Send, every: Duration) {
    tokio::time::sleep(Duration::from_secs(30).min(every)).await;
    loop {
        match sweep(&*store, now()).await {
            Ok(swept) if swept.runs > 0 => tracing::info!(runs = swept.runs, "retention deleted expired runs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention could not sweep; it tries again later"),
        }
        tokio::time::sleep(every).await;
    }
}
