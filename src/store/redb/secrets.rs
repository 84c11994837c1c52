//! Sealed secrets and the keycheck in redb. Writes are their own durable
//! transactions, not batches for the writer thread: a caller needs to
//! know whether a name was new or existed, and people set secrets
//! rarely, so group commit buys nothing here. redb serialises them with
//! the writer's transactions.

use redb::{ReadableDatabase, ReadableTable};

use super::RedbStore;
use super::tables::*;
use crate::store::{Keycheck, SecretRecord, StoreError, storage};

impl RedbStore {
    pub(super) fn secret_now(&self, tenant: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let secrets = txn.open_table(SECRETS).map_err(storage)?;
        secrets
            .get((tenant, name))
            .map_err(storage)?
            .map(|v| decode(v.value(), "secret"))
            .transpose()
    }

    pub(super) fn secrets_now(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let secrets = txn.open_table(SECRETS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in secrets.range((tenant, "")..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if k.value().0 != tenant {
                break;
            }
            out.push(decode(v.value(), "secret")?);
        }
        Ok(out)
    }

    pub(super) fn put_secret_now(&self, mut record: SecretRecord) -> Result<bool, StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        let created = {
            let mut secrets = txn.open_table(SECRETS).map_err(storage)?;
            let key = (record.tenant.as_str(), record.name.as_str());
            let old: Option<SecretRecord> = secrets
                .get(key)
                .map_err(storage)?
                .map(|v| decode(v.value(), "secret"))
                .transpose()?;
            if let Some(old) = &old {
                record.created_at = old.created_at;
            }
            let key = (record.tenant.as_str(), record.name.as_str());
            secrets.insert(key, encode(&record).as_slice()).map_err(storage)?;
            old.is_none()
        };
        txn.commit().map_err(storage)?;
        Ok(created)
    }

    pub(super) fn delete_secret_now(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        let existed = {
            let mut secrets = txn.open_table(SECRETS).map_err(storage)?;
            secrets.remove((tenant, name)).map_err(storage)?.is_some()
        };
        txn.commit().map_err(storage)?;
        Ok(existed)
    }

    pub(super) fn keycheck_now(&self) -> Result<Option<Keycheck>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let table = txn.open_table(KEYCHECK).map_err(storage)?;
        table
            .get(KEYCHECK_KEY)
            .map_err(storage)?
            .map(|v| decode(v.value(), "keycheck"))
            .transpose()
    }

    pub(super) fn put_keycheck_now(&self, check: Keycheck) -> Result<Keycheck, StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        let stored = {
            let mut table = txn.open_table(KEYCHECK).map_err(storage)?;
            let existing: Option<Keycheck> = table
                .get(KEYCHECK_KEY)
                .map_err(storage)?
                .map(|v| decode(v.value(), "keycheck"))
                .transpose()?;
            match existing {
                Some(existing) => existing,
                None => {
                    table.insert(KEYCHECK_KEY, encode(&check).as_slice()).map_err(storage)?;
                    check
                }
            }
        };
        txn.commit().map_err(storage)?;
        Ok(stored)
    }
}
