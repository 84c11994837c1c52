//! Replacing the master key (`weft admin rotate-key`): every value the
//! master key seals directly, tenants' secrets and their data keys, is
//! opened with the old key and sealed with the new one, and the keycheck
//! is replaced, in one transaction. Payloads are sealed by the data keys,
//! which do not change, so they are not rewritten: a rotation takes the
//! same time however many runs the store holds.

use super::keycheck;
use super::{MasterKey, Sealed, SecretsError, aad};
use crate::store::{Record, SecretRecord, Store, Table};

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-sealed.
    pub secrets: usize,
    /// Tenants' data keys re-sealed.
    pub data_keys: usize,
    /// Whether the store held anything sealed at all (if not, nothing was
    /// written: the new key simply works from now on).
    pub sealed_anything: bool,
}

/// Re-seals everything `old` sealed in `store` with `new`. `old` must be
/// the store's key (its keycheck says so); on any error nothing changes.
/// The store must not be in use by a server: nodes hold the old key.
pub async fn rotate(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> Result<Rotation, SecretsError> {
    if old.key_id() == new.key_id() {
        return Err(SecretsError::Key(format!(
            "the new master key is the old one (key id {}): give a different key",
            old.key_id()
        )));
    }
    if store.keycheck().await?.is_none() {
        return Ok(Rotation {
            secrets: 0,
            data_keys: 0,
            sealed_anything: false,
        });
    }
    keycheck::verify_existing(store, old).await?;
    let mut records = Vec::new();
    let mut rotation = Rotation {
        secrets: 0,
        data_keys: 0,
        sealed_anything: true,
    };
    let mut after = None;
    loop {
        let page = store.export_page(Table::Secrets, after, 500).await?;
        for record in page.records {
            let record = match record {
                Ok(Record::Secret(record)) => record,
                Ok(other) => {
                    return Err(SecretsError::Key(format!(
                        "the secrets table holds a {:?} record",
                        other.table()
                    )));
                }
                Err(corrupt) => {
                    return Err(SecretsError::Key(format!(
                        "secret {} does not decode ({}): nothing was changed; `weft check` reports the store's problems",
                        corrupt.key, corrupt.error
                    )));
                }
            };
            if super::payloads::is_data_key(&record.name) {
                rotation.data_keys += 1;
            } else {
                rotation.secrets += 1;
            }
            records.push(Record::Secret(reseal(record, old, new)?));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    records.push(Record::Keycheck(keycheck::sealed(new)));
    store.import(records).await?;
    Ok(rotation)
}

fn reseal(record: SecretRecord, old: &MasterKey, new: &MasterKey) -> Result<SecretRecord, SecretsError> {
    let aad = aad(&record.tenant, &record.name);
    let plain = old
        .open(
            &aad,
            &Sealed {
                key_id: record.key_id.clone(),
                nonce: record.nonce.clone(),
                ciphertext: record.ciphertext.clone(),
            },
        )
        .map_err(|e| SecretsError::Unreadable {
            name: format!("{}/{}", record.tenant, record.name),
            why: format!("{e}; nothing was changed"),
        })?;
    let sealed = new.seal(&aad, &plain);
    Ok(SecretRecord {
        key_id: sealed.key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        ..record
    })
}
