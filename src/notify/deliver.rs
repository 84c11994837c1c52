//! Every node's delivery loop. Each pass reads the outbox, claims each
//! due record with a compare-and-set on its revision (its due time moved
//! 30 s on: another node takes it over only if this one dies), POSTs the
//! message, and records the try on the delivery: delivered on a 2xx
//! answer, else due again after a backoff that doubles from 1 s up to
//! 30 min, and failed for good after [`MAX_ATTEMPTS`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use super::client::{Answer, Client};
use super::{Delivery, DeliveryAttempt, DeliveryStatus, Due};
use crate::model::Millis;
use crate::secrets::Secrets;
use crate::store::{Expect, ObjectKind, Store, StoreError, StoredObject};
use crate::triggers::signature;

/// How often a pass runs.
pub const TICK: Duration = Duration::from_millis(250);
/// How long a claimed delivery is left to its claimer.
const CLAIM: Millis = 30_000;
/// The most tries of one delivery.
pub const MAX_ATTEMPTS: usize = 12;
/// The most deliveries one node sends at once.
const IN_FLIGHT: usize = 16;
/// The most outbox records one pass reads.
const PAGE: usize = 500;

/// The wait before try `n + 1`, after `n` failed tries.
pub fn backoff(n: usize) -> Millis {
    let exponent = n.saturating_sub(1).min(20) as u32;
    (1_000u64 << exponent).min(30 * 60 * 1_000)
}

/// What a delivery loop needs.
#[derive(Clone)]
pub struct Deliverer {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The tenants' secrets, which sign; `None` on a node without a
    /// master key (its tries fail, recorded, and back off).
    pub secrets: Option<Arc<Secrets>>,
    /// Sends.
    pub client: Client,
    /// The clock (ms since the epoch).
    pub now: Arc<dyn Fn() -> Millis + Send + Sync>,
}

/// Runs passes every [`TICK`] until the task is dropped.
pub async fn run(deliverer: Deliverer) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = deliverer.pass(&slots).await {
            tracing::warn!(error = %e, "the delivery loop could not read the outbox; it tries again");
        }
    }
}

impl Deliverer {
    /// Claims every due outbox record it can and starts its delivery.
    pub async fn pass(&self, slots: &Arc<Semaphore>) -> Result<(), StoreError> {
        let outbox = self.store.objects(ObjectKind::Outbox, None, "", PAGE).await?;
        for record in outbox {
            let now = (self.now)();
            let due = serde_json::from_value::<Due>(record.value.clone()).map_or(0, |d| d.due);
            if due > now {
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                return Ok(()); // busy: the rest wait for a later pass
            };
            let claim = json!(Due { due: now + CLAIM });
            let claimed = self
                .store
                .put_object(
                    ObjectKind::Outbox,
                    &record.tenant,
                    &record.name,
                    &claim,
                    Expect::Revision(record.revision),
                )
                .await?;
            if claimed.is_none() {
                continue; // another node took it
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.attempt(&record).await {
                    tracing::warn!(tenant = %record.tenant, delivery = %record.name, error = %e,
                        "a notification's try could not be recorded; it is tried again once its claim runs out");
                }
                drop(slot);
            });
        }
        Ok(())
    }

    /// One try of the delivery `outbox` names, recorded.
    async fn attempt(&self, outbox: &StoredObject) -> Result<(), StoreError> {
        let (tenant, name) = (&outbox.tenant, &outbox.name);
        let done = || self.store.delete_object(ObjectKind::Outbox, tenant, name, Expect::Any);
        let Some(object) = self.store.object(ObjectKind::Delivery, tenant, name).await? else {
            done().await?;
            return Ok(());
        };
        let mut delivery: Delivery = match serde_json::from_value(object.value) {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(%tenant, delivery = %name, error = %e, "a stored delivery does not decode; dropped");
                done().await?;
                return Ok(());
            }
        };
        if delivery.status != DeliveryStatus::Pending {
            done().await?;
            return Ok(());
        }
        let started = (self.now)();
        let clock = std::time::Instant::now();
        let answer = self.send(tenant, &delivery, started).await;
        delivery.attempts.push(DeliveryAttempt {
            at: started,
            code: answer.code,
            error: answer.error.clone(),
            duration_ms: clock.elapsed().as_millis() as u64,
        });
        let next = match answer.error {
            None => {
                delivery.status = DeliveryStatus::Delivered;
                None
            }
            Some(_) if delivery.attempts.len() >= MAX_ATTEMPTS => {
                delivery.status = DeliveryStatus::Failed;
                tracing::warn!(%tenant, delivery = %name, url = %delivery.url, "a notification failed every try; no more are made");
                None
            }
            Some(_) => Some((self.now)() + backoff(delivery.attempts.len())),
        };
        delivery.next_at = next;
        let value = serde_json::to_value(&delivery).map_err(|e| StoreError::Storage(e.to_string()))?;
        self.store
            .put_object(ObjectKind::Delivery, tenant, name, &value, Expect::Any)
            .await?;
        match next {
            None => {
                done().await?;
            }
            Some(due) => {
                self.store
                    .put_object(ObjectKind::Outbox, tenant, name, &json!(Due { due }), Expect::Any)
                    .await?;
            }
        }
        Ok(())
    }

    /// Signs and POSTs the message.
    async fn send(&self, tenant: &str, delivery: &Delivery, now: Millis) -> Answer {
        let failed = |error: String| Answer {
            code: None,
            error: Some(error),
        };
        let Some(secrets) = &self.secrets else {
            return failed("this node has no master key, so cannot read the secret that signs the message".into());
        };
        let secret = match secrets.value(tenant, &delivery.secret).await {
            Ok(secret) => secret,
            Err(e) => return failed(format!("cannot sign: {e}")),
        };
        let body = serde_json::to_vec(&delivery.payload).expect("a payload is JSON");
        let headers = [
            (signature::HEADER, signature::sign(secret.as_bytes(), now / 1000, &body)),
            ("x-weft-delivery", delivery.id.clone()),
            ("x-weft-event", delivery.event.clone()),
        ];
        drop(secret);
        self.client.post(&delivery.url, &headers, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_half_an_hour() {
        assert_eq!([backoff(1), backoff(2), backoff(3)], [1_000, 2_000, 4_000]);
        assert_eq!(backoff(12), 30 * 60 * 1_000);
        assert_eq!(backoff(100), 30 * 60 * 1_000);
    }
}
