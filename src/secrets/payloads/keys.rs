//! Tenants' data keys (envelope encryption): one random key per tenant
//! seals its payloads, and the master key seals that key. A data key is
//! stored as one of the tenant's secrets, under a name no secret can have
//! (`@data_key.<id>`), so it is sealed, copied by `weft migrate` and
//! re-sealed by a key rotation exactly as secrets are, and never listed.
//!
//! Two nodes that make a tenant's first data key at once make two; both
//! are kept, values name the one that sealed them, and every node seals
//! new values with the oldest. Keys are kept in memory once opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::Millis;
use crate::secrets::{KEY_LEN, MasterKey, Sealer, SecretsError, key_id, keycheck};
use crate::store::{SecretRecord, Store, StoreError};

/// What a data key's secret name starts with: `@` is in no secret name.
pub const NAME_PREFIX: &str = "@data_key.";

/// Whether a secret's name is a data key's.
pub fn is_data_key(name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
}

/// The data keys of every tenant, opened as needed.
pub struct DataKeys {
    store: Arc<dyn Store>,
    master: Option<MasterKey>,
    /// Opened keys by tenant and id; `None` for an id the tenant has no
    /// key of.
    opened: Mutex<HashMap<(String, String), Option<Sealer>>>,
}

impl DataKeys {
    /// Data keys in `store`, sealed by `master` (none on a node without a
    /// master key: it cannot open or make one).
    pub fn new(store: Arc<dyn Store>, master: Option<MasterKey>) -> DataKeys {
        DataKeys {
            store,
            master,
            opened: Mutex::new(HashMap::new()),
        }
    }

    fn master(&self, tenant: &str) -> Result<&MasterKey, StoreError> {
        self.master.as_ref().ok_or_else(|| {
            StoreError::Storage(format!(
                "tenant {tenant:?} has its payloads sealed (encrypt_payloads) and this node has no master key: \
                 give every node the store's key with WEFT_MASTER_KEY"
            ))
        })
    }

    /// The key `tenant` seals new payloads with: its oldest data key, made
    /// now (durably, before it seals anything) if it has none.
    pub async fn current(&self, tenant: &str) -> Result<Sealer, StoreError> {
        let master = self.master(tenant)?;
        let mut records = self.records(tenant).await?;
        if records.is_empty() {
            // The keycheck first: a store whose payloads are sealed must
            // refuse a start with another key, or without one.
            keycheck::verify(&*self.store, master).await.map_err(store_error)?;
            let key: [u8; KEY_LEN] = rand::random();
            let sealed = master.seal(&aad(tenant, &name_of(&key_id(&key))), &key);
            let at = now();
            self.store
                .put_secret(SecretRecord {
                    tenant: tenant.to_string(),
                    name: name_of(&key_id(&key)),
                    key_id: sealed.key_id,
                    nonce: sealed.nonce,
                    ciphertext: sealed.ciphertext,
                    created_at: at,
                    updated_at: at,
                })
                .await?;
            tracing::info!(tenant, key_id = key_id(&key), "made a data key for sealed payloads");
            records = self.records(tenant).await?;
        }
        let oldest = records
            .into_iter()
            .min_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)))
            .ok_or_else(|| StoreError::Storage(format!("tenant {tenant:?}'s data key vanished as it was made")))?;
        let id = oldest.name[NAME_PREFIX.len()..].to_string();
        let key = self.open(master, oldest)?;
        self.remember(tenant, &id, Some(key.clone()));
        Ok(key)
    }

    /// The keys `ids` of `tenant`, each `None` where the tenant has no
    /// data key of that id.
    pub async fn find(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, Option<Sealer>>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        for id in ids {
            if found.contains_key(id) {
                continue;
            }
            let known = self.lock().get(&(tenant.to_string(), id.clone())).cloned();
            let key = match known {
                Some(key) => key,
                None => {
                    let key = match self.store.secret(tenant, &name_of(id)).await? {
                        Some(record) => Some(self.open(self.master(tenant)?, record)?),
                        None => None,
                    };
                    self.remember(tenant, id, key.clone());
                    key
                }
            };
            found.insert(id.clone(), key);
        }
        Ok(found)
    }

    async fn records(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let mut records = self.store.secrets(tenant).await?;
        records.retain(|r| is_data_key(&r.name));
        Ok(records)
    }

    fn open(&self, master: &MasterKey, record: SecretRecord) -> Result<Sealer, StoreError> {
        let unreadable = |why: String| {
            StoreError::Corrupt(format!(
                "tenant {:?}'s data key {} cannot be opened: {why}",
                record.tenant, record.name
            ))
        };
        let sealed = crate::secrets::Sealed {
            key_id: record.key_id.clone(),
            nonce: record.nonce.clone(),
            ciphertext: record.ciphertext.clone(),
        };
        let bytes = master
            .open(&aad(&record.tenant, &record.name), &sealed)
            .map_err(|e| unreadable(e.to_string()))?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| unreadable("it is not 32 bytes".into()))?;
        if name_of(&key_id(&key)) != record.name {
            return Err(unreadable("it is not the key its name says".into()));
        }
        Ok(Sealer::new(&key))
    }

    fn remember(&self, tenant: &str, id: &str, key: Option<Sealer>) {
        self.lock().insert((tenant.to_string(), id.to_string()), key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Option<Sealer>>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn name_of(id: &str) -> String {
    format!("{NAME_PREFIX}{id}")
}

/// A data key is sealed as a secret is: bound to its tenant and name.
fn aad(tenant: &str, name: &str) -> Vec<u8> {
    crate::secrets::aad(tenant, name)
}

fn store_error(e: SecretsError) -> StoreError {
    match e {
        SecretsError::Store(e) => e,
        other => StoreError::Storage(other.to_string()),
    }
}

fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
