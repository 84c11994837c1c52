//! Tenants' secrets, encrypted at rest (docs/architecture.md, "Secrets").
//!
//! - `seal`: [`Sealer`], authenticated encryption under one key, bound to
//!   associated data;
//! - `key`: the [`MasterKey`], from `WEFT_MASTER_KEY` or `DATA/master.key`;
//! - `keycheck`: a start refuses a key that did not seal the store's
//!   secrets (recorded with the store's first secret).
//!
//! [`Secrets`] sets, lists, deletes and reveals a tenant's secrets. A
//! value is sealed before it reaches the store, with the tenant and name
//! as associated data, so the store (and its backups, and `weft migrate`)
//! only ever hold ciphertext, and a sealed value copied to another tenant
//! or name does not open. Values are never logged, returned by the API,
//! nor put in an error message.

mod key;
pub(crate) mod keycheck;
pub mod payloads;
pub mod rotate;
mod seal;

use std::collections::HashMap;
use std::sync::Arc;

pub use key::{KeyOrigin, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};
pub use seal::{KEY_LEN, NONCE_LEN, OpenError, Sealed, Sealer, key_id};

use crate::model::Millis;
use crate::spec::is_secret_name;
use crate::store::{SecretRecord, Store, StoreError};

/// The longest value, in characters (Unicode scalar values, as JSON
/// Schema's `maxLength` counts them): 64 Ki.
pub const MAX_VALUE_CHARS: usize = 64 * 1024;

/// The rule a secret's name follows, as a pattern (the same as
/// `crate::spec::http::is_secret_name`, which workflows use).
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,63}$";

/// Why a secrets operation failed. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// A name that breaks the naming rule.
    #[error("{0:?} is not a secret name: 1 to 64 ASCII letters, digits and underscores, not starting with a digit")]
    InvalidName(String),
    /// A value over [`MAX_VALUE_CHARS`].
    #[error("the value is {chars} characters long; a secret holds at most {max}")]
    TooLarge {
        /// Its length.
        chars: usize,
        /// The most allowed.
        max: usize,
    },
    /// A name the tenant has not set.
    #[error("secret {0:?} is not set")]
    Missing(String),
    /// A stored value that the master key does not open.
    #[error("secret {name:?} cannot be opened: {why}")]
    Unreadable {
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
    /// The master key cannot be read or written.
    #[error("{0}")]
    Key(String),
    /// The master key is not the one that sealed the store's secrets.
    #[error("{0}")]
    WrongKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What may be shown of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// When it was first set (ms since the epoch).
    pub created_at: Millis,
    /// When its value was last set (ms since the epoch).
    pub updated_at: Millis,
    /// The id of the master key that sealed it.
    pub key_id: String,
}

/// A tenant's secrets, sealed by the master key in the store.
pub struct Secrets {
    store: Arc<dyn Store>,
    key: MasterKey,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("key", &self.key).finish()
    }
}

/// The associated data a tenant's secret is sealed with: it cannot open
/// as another tenant's or under another name. Names hold no NUL, so the
/// pair is unambiguous.
pub(crate) fn aad(tenant: &str, name: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn check_name(name: &str) -> Result<(), SecretsError> {
    if is_secret_name(name) {
        Ok(())
    } else {
        Err(SecretsError::InvalidName(name.to_string()))
    }
}

impl Secrets {
    /// The secrets of `store` under `key`, once `key` is checked against
    /// the store's keycheck, if it has one (it is recorded with the first
    /// secret).
    pub async fn open(store: Arc<dyn Store>, key: MasterKey) -> Result<Secrets, SecretsError> {
        keycheck::verify_existing(&*store, &key).await?;
        Ok(Secrets { store, key })
    }

    /// Checks that a store given no master key has no secrets to read.
    pub async fn require_no_keycheck(store: &dyn Store) -> Result<(), SecretsError> {
        keycheck::require_none(store).await
    }

    /// The master key, which also seals tenants' data keys
    /// ([`payloads`]).
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// The master key's id.
    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// Where the master key came from.
    pub fn key_origin(&self) -> &KeyOrigin {
        self.key.origin()
    }

    /// Sets a tenant's secret, durably; whether the name was new.
    pub async fn set(&self, tenant: &str, name: &str, value: &str) -> Result<bool, SecretsError> {
        check_name(name)?;
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            return Err(SecretsError::TooLarge {
                chars,
                max: MAX_VALUE_CHARS,
            });
        }
        // Every time, not once: another node may have recorded a keycheck
        // since this one started. People set secrets rarely.
        keycheck::verify(&*self.store, &self.key).await?;
        let sealed = self.key.seal(&aad(tenant, name), value.as_bytes());
        let at = now();
        let created = self
            .store
            .put_secret(SecretRecord {
                tenant: tenant.to_string(),
                name: name.to_string(),
                key_id: sealed.key_id,
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                created_at: at,
                updated_at: at,
            })
            .await?;
        Ok(created)
    }

    /// A tenant's secrets, by name, without their values.
    pub async fn list(&self, tenant: &str) -> Result<Vec<SecretInfo>, SecretsError> {
        let mut list: Vec<SecretInfo> = self
            .store
            .secrets(tenant)
            .await?
            .into_iter()
            // A tenant's data keys are kept beside its secrets, unlisted.
            .filter(|r| !payloads::is_data_key(&r.name))
            .map(|r| SecretInfo {
                name: r.name,
                created_at: r.created_at,
                updated_at: r.updated_at,
                key_id: r.key_id,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    /// Deletes a tenant's secret, durably; whether there was one.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<bool, SecretsError> {
        check_name(name)?;
        Ok(self.store.delete_secret(tenant, name).await?)
    }

    /// The values of a tenant's secrets `names`; a name that is not set
    /// is an error naming it.
    pub async fn reveal(&self, tenant: &str, names: &[String]) -> Result<HashMap<String, String>, SecretsError> {
        let mut values = HashMap::with_capacity(names.len());
        for name in names {
            values.insert(name.clone(), self.value(tenant, name).await?);
        }
        Ok(values)
    }

    /// The value of one of a tenant's secrets; an error names it when it
    /// is not set.
    pub async fn value(&self, tenant: &str, name: &str) -> Result<String, SecretsError> {
        let record = self
            .store
            .secret(tenant, name)
            .await?
            .ok_or_else(|| SecretsError::Missing(name.to_string()))?;
        self.open_record(record)
    }

    fn open_record(&self, record: SecretRecord) -> Result<String, SecretsError> {
        let sealed = Sealed {
            key_id: record.key_id,
            nonce: record.nonce,
            ciphertext: record.ciphertext,
        };
        let unreadable = |why: String| SecretsError::Unreadable {
            name: record.name.clone(),
            why,
        };
        let bytes = self
            .key
            .open(&aad(&record.tenant, &record.name), &sealed)
            .map_err(|e| unreadable(e.to_string()))?;
        String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8".into()))
    }
}

#[async_trait::async_trait]
impl crate::engine::SecretSource for Secrets {
    async fn reveal(&self, tenant: &str, names: &[String]) -> Result<HashMap<String, String>, String> {
        Secrets::reveal(self, tenant, names).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
