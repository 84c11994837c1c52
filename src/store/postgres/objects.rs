//! Named records (`crate::store::objects`) on PostgreSQL: one table keyed
//! by (kind, tenant, name). A write that expects a revision is one
//! conditional statement, so two nodes racing on a record cannot both
//! win; each write is its own committed statement, outside the writer's
//! group commit. The outbox rows a run's batch adds go through the
//! writer (`insert_on`).

use serde_json::Value;
use tokio_postgres::{GenericClient, Row};

use super::PgStore;
use super::codes::{decode, encode};
use crate::store::{Expect, ObjectKind, StoreError, StoredObject};

/// Stores a record at revision 1 unless the name is taken.
pub(super) async fn insert_on<C: GenericClient + Sync>(
    client: &C,
    kind: ObjectKind,
    tenant: &str,
    name: &str,
    value: &Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO objects (kind, tenant, name, revision, value) VALUES ($1, $2, $3, 1, $4::text::json)
             ON CONFLICT DO NOTHING",
            &[&kind.name(), &tenant, &name, &encode(value)],
        )
        .await?;
    Ok(())
}

/// Stores `object` as it is (an import).
pub(super) async fn put_verbatim_on<C: GenericClient + Sync>(
    client: &C,
    object: &StoredObject,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO objects (kind, tenant, name, revision, value) VALUES ($1, $2, $3, $4, $5::text::json)
             ON CONFLICT (kind, tenant, name) DO UPDATE SET revision = excluded.revision, value = excluded.value",
            &[
                &object.kind.name(),
                &object.tenant,
                &object.name,
                &(object.revision as i64),
                &encode(&object.value),
            ],
        )
        .await?;
    Ok(())
}

/// The record in a row of `kind, tenant, name, revision, value::text`.
pub(super) fn object_of(row: &Row) -> Result<StoredObject, StoreError> {
    let kind: &str = row.get(0);
    Ok(StoredObject {
        kind: ObjectKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("an object of kind {kind:?}")))?,
        tenant: row.get(1),
        name: row.get(2),
        revision: row.get::<_, i64>(3) as u64,
        value: decode(row.get(4), "object")?,
    })
}

const COLUMNS: &str = "kind, tenant, name, revision, value::text";

impl PgStore {
    pub(super) async fn object_row(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM objects WHERE kind = $1 AND tenant = $2 AND name = $3");
        let rows = self.query(&sql, &[&kind.name(), &tenant, &name]).await?;
        rows.first().map(object_of).transpose()
    }

    pub(super) async fn object_rows(
        &self,
        kind: ObjectKind,
        tenant: Option<&str>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM objects
             WHERE kind = $1 AND ($2::text IS NULL OR tenant = $2) AND starts_with(name, $3)
             ORDER BY tenant, name LIMIT $4"
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = self.query(&sql, &[&kind.name(), &tenant, &prefix, &limit]).await?;
        rows.iter().map(object_of).collect()
    }

    pub(super) async fn object_rows_after(
        &self,
        kind: ObjectKind,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM objects
             WHERE kind = $1 AND tenant = $2 AND ($3::text IS NULL OR name > $3)
             ORDER BY name LIMIT $4"
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = self.query(&sql, &[&kind.name(), &tenant, &after, &limit]).await?;
        rows.iter().map(object_of).collect()
    }

    pub(super) async fn put_object_row(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        value: &Value,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let value = encode(value);
        let rows = match expect {
            Expect::Any => {
                self.query(
                    "INSERT INTO objects (kind, tenant, name, revision, value) VALUES ($1, $2, $3, 1, $4::text::json)
                     ON CONFLICT (kind, tenant, name)
                         DO UPDATE SET revision = objects.revision + 1, value = excluded.value
                     RETURNING revision",
                    &[&kind.name(), &tenant, &name, &value],
                )
                .await?
            }
            Expect::Absent => {
                self.query(
                    "INSERT INTO objects (kind, tenant, name, revision, value) VALUES ($1, $2, $3, 1, $4::text::json)
                     ON CONFLICT DO NOTHING RETURNING revision",
                    &[&kind.name(), &tenant, &name, &value],
                )
                .await?
            }
            Expect::Revision(revision) => {
                self.query(
                    "UPDATE objects SET revision = revision + 1, value = $4::text::json
                     WHERE kind = $1 AND tenant = $2 AND name = $3 AND revision = $5
                     RETURNING revision",
                    &[&kind.name(), &tenant, &name, &value, &(revision as i64)],
                )
                .await?
            }
        };
        Ok(rows.first().map(|row| row.get::<_, i64>(0) as u64))
    }

    pub(super) async fn delete_object_row(
        &self,
        kind: ObjectKind,
        tenant: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        let revision = match expect {
            Expect::Any => None,
            // Nothing to delete is what was expected: no row goes.
            Expect::Absent => return Ok(false),
            Expect::Revision(revision) => Some(revision as i64),
        };
        let rows = self
            .query(
                "DELETE FROM objects WHERE kind = $1 AND tenant = $2 AND name = $3
                     AND ($4::bigint IS NULL OR revision = $4)
                 RETURNING name",
                &[&kind.name(), &tenant, &name, &revision],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
