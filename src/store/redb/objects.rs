//! Named records (`crate::store::objects`) in redb: one table keyed by
//! (kind, tenant, name). A write with an expectation reads and writes in
//! one transaction; redb serialises write transactions, so the check and
//! the write are one step. Like secrets, these writes are their own
//! durable transactions, outside the writer's group commit; the outbox
//! rows a run's batch adds go through the writer (`insert`).

use redb::{ReadableDatabase, ReadableTable, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RedbStore;
use super::tables::*;
use crate::store::{Expect, ObjectKind, StoreError, StoredObject, storage};

/// What the table holds under a key.
#[derive(Serialize, Deserialize)]
pub(super) struct Body {
    pub(super) revision: u64,
    pub(super) value: Value,
}

type Objects<'t> = Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>;

pub(super) fn object_of(kind: &str, tenant: &str, name: &str, bytes: &[u8]) -> Result<StoredObject, StoreError> {
    let body: Body = decode(bytes, "object")?;
    Ok(StoredObject {
        kind: ObjectKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("an object of kind {kind:?}")))?,
        tenant: tenant.to_string(),
        name: name.to_string(),
        revision: body.revision,
        value: body.value,
    })
}

/// Stores `value` at revision 1 unless the name is taken.
pub(super) fn insert(
    table: &mut Objects<'_>,
    kind: ObjectKind,
    tenant: &str,
    name: &str,
    value: &Value,
) -> Result<(), StoreError> {
    let key = (kind.name(), tenant, name);
    if table.get(key).map_err(storage)?.is_none() {
        let body = Body {
            revision: 1,
            value: value.clone(),
        };
        table.insert(key, encode(&body).as_slice()).map_err(storage)?;
    }
    Ok(())
}

/// Deletes the run-kind records of `run` (retention).
pub(super) fn delete_of_run(table: &mut Objects<'_>, tenant: &str, run: u64) -> Result<(), StoreError> {
    let prefix = format!("{run}/");
    for kind in [ObjectKind::Delivery, ObjectKind::Outbox] {
        table
            .retain_in((kind.name(), tenant, prefix.as_str()).., |(k, t, name), _| {
                !(k == kind.name() && t == tenant && name.starts_with(&prefix))
            })
            .map_err(storage)?;
    }
    Ok(())
}

impl RedbStore {
    pub(super) fn object_now(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let table = txn.open_table(OBJECTS).map_err(storage)?;
        table
            .get((kind.name(), tenant, name))
            .map_err(storage)?
            .map(|v| object_of(kind.name(), tenant, name, v.value()))
            .transpose()
    }

    pub(super) fn objects_now(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let table = txn.open_table(OBJECTS).map_err(storage)?;
        let start = (
            kind.name(),
            tenant.unwrap_or(""),
            if tenant.is_some() { prefix } else { "" },
        );
        let mut out = Vec::new();
        for entry in table.range(start..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let (k_kind, k_tenant, k_name) = k.value();
            if k_kind != kind.name() || tenant.is_some_and(|t| t != k_tenant) {
                break;
            }
            if !k_name.starts_with(prefix) {
                if tenant.is_some() {
                    break;
                }
                continue;
            }
            out.push(object_of(k_kind, k_tenant, k_name, v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub(super) fn objects_after_now(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        use std::ops::Bound;
        let txn = self.database.begin_read().map_err(storage)?;
        let table = txn.open_table(OBJECTS).map_err(storage)?;
        let lower = match after {
            Some(after) => Bound::Excluded((kind.name(), tenant, after)),
            None => Bound::Included((kind.name(), tenant, "")),
        };
        let mut out = Vec::new();
        for entry in table
            .range::<(&str, &str, &str)>((lower, Bound::Unbounded))
            .map_err(storage)?
        {
            let (k, v) = entry.map_err(storage)?;
            let (k_kind, k_tenant, k_name) = k.value();
            if k_kind != kind.name() || k_tenant != tenant || out.len() >= limit {
                break;
            }
            out.push(object_of(k_kind, k_tenant, k_name, v.value())?);
        }
        Ok(out)
    }

    pub(super) fn put_object_now(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        let revision = {
            let mut table = txn.open_table(OBJECTS).map_err(storage)?;
            let key = (kind.name(), tenant, name);
            let found: Option<Body> = table
                .get(key)
                .map_err(storage)?
                .map(|v| decode(v.value(), "object"))
                .transpose()?;
            if !expected(found.as_ref().map(|b| b.revision), expect) {
                return Ok(None);
            }
            let revision = found.map_or(1, |b| b.revision + 1);
            table
                .insert(key, encode(&Body { revision, value }).as_slice())
                .map_err(storage)?;
            revision
        };
        txn.commit().map_err(storage)?;
        Ok(Some(revision))
    }

    pub(super) fn delete_object_now(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(OBJECTS).map_err(storage)?;
            let key = (kind.name(), tenant, name);
            let found: Option<Body> = table
                .get(key)
                .map_err(storage)?
                .map(|v| decode(v.value(), "object"))
                .transpose()?;
            if found.is_none() || !expected(found.map(|b| b.revision), expect) {
                return Ok(false);
            }
            table.remove(key).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(true)
    }
}

/// Whether a record at `found` (`None`: absent) is what `expect` asks.
fn expected(found: Option<u64>, expect: Expect) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => found.is_none(),
        Expect::Revision(r) => found == Some(r),
    }
}
