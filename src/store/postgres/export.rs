//! Every record out, a page at a time in primary-key order (keyset
//! pagination: `WHERE (key) > (cursor) ORDER BY key LIMIT n`, an index
//! range scan however deep the page), and back in verbatim, one
//! transaction per call: the frequent records through the writer's
//! multi-row statements, the rest one statement each.

use serde_json::{Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::codes::{decode, digest, millis, unit_key};
use super::reads::{put_secret_on, secret_of};
use super::writer::{Hot, Statements, apply_rare, put_module_version};
use super::{PgStore, classify};
use crate::model::{Millis, RunId, WorkflowVersion};
use crate::store::{Change, Cursor, Keycheck, Page, Record, StoreError, Table};

/// A key column's type, to bind a cursor's value.
#[derive(Clone, Copy)]
enum Col {
    Text,
    Bigint,
    Int,
    /// `bytea`, hex in the cursor.
    Bytes,
}

/// A table's key columns and what else a page reads.
fn layout(table: Table) -> (&'static str, &'static [(&'static str, Col)], &'static str) {
    use Col::*;
    match table {
        Table::Tenants => ("tenants", &[("tenant", Text)], "record::text"),
        Table::Keys => ("api_keys", &[("key_id", Text)], "record::text"),
        Table::ModuleBytes => ("module_bytes", &[("tenant", Text), ("digest", Bytes)], "bytes"),
        Table::ModuleVersions => (
            "module_versions",
            &[("tenant", Text), ("name", Text), ("version", Text)],
            "record::text",
        ),
        Table::ModuleNames => ("module_names", &[("tenant", Text), ("name", Text)], "digest"),
        Table::Workflows => ("workflows", &[("tenant", Text), ("digest", Bytes)], "source"),
        Table::WorkflowVersions => (
            "workflow_versions",
            &[("tenant", Text), ("name", Text), ("version", Int)],
            "digest, created_at",
        ),
        Table::WorkflowNames => ("workflow_names", &[("tenant", Text), ("name", Text)], "digest"),
        Table::Runs => ("runs", &[("tenant", Text), ("run_id", Bigint)], "record::text"),
        Table::Units => (
            "units",
            &[("tenant", Text), ("run_id", Bigint), ("step", Int), ("item", Int)],
            "record::text",
        ),
        Table::Attempts => (
            "attempts",
            &[
                ("tenant", Text),
                ("run_id", Bigint),
                ("step", Int),
                ("item", Int),
                ("attempt", Int),
            ],
            "record::text",
        ),
        Table::Events => (
            "events",
            &[("tenant", Text), ("run_id", Bigint), ("seq", Int)],
            "event::text",
        ),
        Table::Kv => ("kv", &[("tenant", Text), ("key", Text)], "value"),
        Table::IdempotencyKeys => ("idempotency_keys", &[("tenant", Text), ("key", Text)], "run_id"),
        Table::Secrets => (
            "secrets",
            &[("tenant", Text), ("name", Text)],
            "key_id, nonce, ciphertext, created_at, updated_at",
        ),
        Table::Keycheck => ("keycheck", &[("id", Int)], "key_id, nonce, ciphertext"),
        Table::Objects => (
            "objects",
            &[("kind", Text), ("tenant", Text), ("name", Text)],
            "revision, value::text",
        ),
    }
}

/// A cursor value, bound as its column's type.
fn bind(value: &Value, col: Col) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let bad = || StoreError::Corrupt(format!("a cursor that names no key: {value}"));
    Ok(match col {
        Col::Text => Box::new(value.as_str().ok_or_else(bad)?.to_string()),
        Col::Bigint => Box::new(value.as_i64().ok_or_else(bad)?),
        Col::Int => Box::new(i32::try_from(value.as_i64().ok_or_else(bad)?).map_err(|_| bad())?),
        Col::Bytes => Box::new(hex::decode(value.as_str().ok_or_else(bad)?).map_err(|_| bad())?),
    })
}

/// A row's key, as a cursor value.
fn key_of(row: &Row, cols: &[(&str, Col)]) -> Value {
    Value::Array(
        cols.iter()
            .enumerate()
            .map(|(i, (_, col))| match col {
                Col::Text => json!(row.get::<_, String>(i)),
                Col::Bigint => json!(row.get::<_, i64>(i)),
                Col::Int => json!(row.get::<_, i32>(i)),
                Col::Bytes => json!(hex::encode(row.get::<_, Vec<u8>>(i))),
            })
            .collect(),
    )
}

/// The record a row holds: key columns first, then the rest as `layout`
/// lists them.
fn record(table: Table, row: &Row) -> Result<Record, StoreError> {
    let text = |i: usize| row.get::<_, String>(i);
    Ok(match table {
        Table::Tenants => Record::Tenant(decode(row.get(1), "tenant")?),
        Table::Keys => Record::Key(decode(row.get(1), "api key")?),
        Table::ModuleBytes => Record::ModuleBytes {
            tenant: text(0),
            digest: digest(row.get(1))?,
            bytes: row.get(2),
        },
        Table::ModuleVersions => Record::ModuleVersion {
            tenant: text(0),
            record: decode(row.get(3), "module version")?,
        },
        Table::ModuleNames => Record::ModuleName {
            tenant: text(0),
            name: text(1),
            digest: digest(row.get(2))?,
        },
        Table::Workflows => Record::Workflow {
            tenant: text(0),
            digest: digest(row.get(1))?,
            source: text(2),
        },
        Table::WorkflowVersions => Record::WorkflowVersion {
            tenant: text(0),
            name: text(1),
            version: WorkflowVersion {
                version: row.get::<_, i32>(2) as u32,
                digest: digest(row.get(3))?,
                created_at: row.get::<_, i64>(4) as Millis,
            },
        },
        Table::WorkflowNames => Record::WorkflowName {
            tenant: text(0),
            name: text(1),
            digest: digest(row.get(2))?,
        },
        Table::Runs => Record::Run(decode(row.get(2), "run")?),
        Table::Units => Record::Unit {
            tenant: text(0),
            run: RunId(row.get::<_, i64>(1) as u64),
            key: unit_key(row.get(2), row.get(3)),
            record: decode(row.get(4), "unit")?,
        },
        Table::Attempts => Record::Attempt {
            tenant: text(0),
            run: RunId(row.get::<_, i64>(1) as u64),
            key: unit_key(row.get(2), row.get(3)),
            record: decode(row.get(5), "attempt")?,
        },
        Table::Events => Record::Event {
            tenant: text(0),
            run: RunId(row.get::<_, i64>(1) as u64),
            seq: row.get::<_, i32>(2) as u32,
            event: decode(row.get(3), "event")?,
        },
        Table::Kv => Record::Kv {
            tenant: text(0),
            key: text(1),
            value: row.get(2),
        },
        Table::IdempotencyKeys => Record::IdempotencyKey {
            tenant: text(0),
            key: text(1),
            run: RunId(row.get::<_, i64>(2) as u64),
        },
        Table::Secrets => Record::Secret(secret_of(row, 0)),
        Table::Keycheck => Record::Keycheck(Keycheck {
            key_id: text(1),
            nonce: row.get(2),
            ciphertext: row.get(3),
        }),
        Table::Objects => Record::Object(super::objects::object_of(row)?),
    })
}

impl PgStore {
    pub(super) async fn export_page_now(
        &self,
        table: Table,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (name, cols, rest) = layout(table);
        let keys: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let keys = keys.join(", ");
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let filter = match &after {
            Some(Cursor(Value::Array(values))) if values.len() == cols.len() => {
                for (value, (_, col)) in values.iter().zip(cols) {
                    params.push(bind(value, *col)?);
                }
                let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                format!("WHERE ({keys}) > ({})", placeholders.join(", "))
            }
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "a cursor that names no key: {:?}",
                    other.0
                )));
            }
            None => String::new(),
        };
        let limit = limit.max(1);
        let sql = format!("SELECT {keys}, {rest} FROM {name} {filter} ORDER BY {keys} LIMIT {limit}");
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self.query(&sql, &refs).await?;
        let full = rows.len() == limit;
        let mut page = Page::default();
        for row in &rows {
            let key = key_of(row, cols);
            page.records.push(record(table, row).map_err(|e| crate::store::Corrupt {
                table,
                key: key.to_string(),
                error: e.to_string(),
            }));
            page.next = Some(Cursor(key));
        }
        if !full {
            page.next = None;
        }
        Ok(page)
    }

    pub(super) async fn import_now(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut client = self.reader().await?;
        let statements = Statements::prepare(&client).await.map_err(classify)?;
        let txn = client.transaction().await.map_err(classify)?;
        let mut last_run = None;
        let mut changes = Vec::new();
        for record in records {
            match record {
                Record::ModuleVersion { tenant, record } => {
                    put_module_version(&txn, &tenant, &record).await.map_err(classify)?;
                }
                Record::ModuleName { tenant, name, digest } => {
                    txn.execute(
                        "INSERT INTO module_names (tenant, name, digest) VALUES ($1, $2, $3)
                         ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest",
                        &[&tenant, &name, &digest.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(classify)?;
                }
                Record::WorkflowName { tenant, name, digest } => {
                    txn.execute(
                        "INSERT INTO workflow_names (tenant, name, digest) VALUES ($1, $2, $3)
                         ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest",
                        &[&tenant, &name, &digest.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(classify)?;
                }
                Record::Workflow { tenant, digest, source } => {
                    txn.execute(
                        "INSERT INTO workflows (tenant, digest, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&tenant, &digest.as_bytes().as_slice(), &source],
                    )
                    .await
                    .map_err(classify)?;
                }
                Record::WorkflowVersion { tenant, name, version } => {
                    txn.execute(
                        "INSERT INTO workflow_versions (tenant, name, version, digest, created_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (tenant, name, version) DO UPDATE SET digest = excluded.digest,
                             created_at = excluded.created_at",
                        &[
                            &tenant,
                            &name,
                            &(version.version as i32),
                            &version.digest.as_bytes().as_slice(),
                            &millis(version.created_at),
                        ],
                    )
                    .await
                    .map_err(classify)?;
                }
                Record::Secret(secret) => {
                    let on: &tokio_postgres::Transaction = &txn;
                    put_secret_on(on, &secret).await.map_err(classify)?;
                }
                Record::Object(object) => {
                    let on: &tokio_postgres::Transaction = &txn;
                    super::objects::put_verbatim_on(on, &object).await.map_err(classify)?;
                }
                Record::Keycheck(check) => {
                    txn.execute(
                        "INSERT INTO keycheck (id, key_id, nonce, ciphertext) VALUES (1, $1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                             ciphertext = excluded.ciphertext",
                        &[&check.key_id, &check.nonce, &check.ciphertext],
                    )
                    .await
                    .map_err(classify)?;
                }
                Record::Run(run) => {
                    last_run = last_run.max(Some(run.id.0));
                    changes.push(Change::PutRun(Box::new(run)));
                }
                other => changes.push(change_of(other)),
            }
        }
        let mut hot = Hot::default();
        for change in &changes {
            if !hot.take(change) {
                apply_rare(&txn, change).await.map_err(classify)?;
            }
        }
        hot.write(&*txn, &statements).await.map_err(classify)?;
        if let Some(last) = last_run {
            // Run ids the cluster will take from the sequence start past
            // every imported one.
            txn.execute(
                "SELECT setval('run_ids', greatest($1, (SELECT last_value FROM run_ids)))",
                &[&(last as i64)],
            )
            .await
            .map_err(classify)?;
        }
        txn.commit().await.map_err(classify)
    }
}

/// The change that writes `record` as it is (the kinds whose changes are
/// verbatim upserts).
fn change_of(record: Record) -> Change {
    match record {
        Record::Tenant(t) => Change::PutTenant(Box::new(t)),
        Record::Key(k) => Change::PutKey(Box::new(k)),
        Record::ModuleBytes { tenant, digest, bytes } => Change::PutModule {
            tenant,
            digest,
            bytes: std::sync::Arc::new(bytes),
        },
        Record::Run(run) => Change::PutRun(Box::new(run)),
        Record::Unit {
            tenant,
            run,
            key,
            record,
        } => Change::PutUnit {
            tenant,
            run,
            key,
            record,
        },
        Record::Attempt {
            tenant,
            run,
            key,
            record,
        } => Change::PutAttempt {
            tenant,
            run,
            key,
            record: Box::new(record),
        },
        Record::Event {
            tenant,
            run,
            seq,
            event,
        } => Change::AppendEvent {
            tenant,
            run,
            seq,
            event,
        },
        Record::Kv { tenant, key, value } => Change::Kv {
            tenant,
            key,
            value: Some(value),
        },
        Record::IdempotencyKey { tenant, key, run } => Change::PutIdempotencyKey { tenant, key, run },
        Record::ModuleVersion { .. }
        | Record::ModuleName { .. }
        | Record::Workflow { .. }
        | Record::WorkflowVersion { .. }
        | Record::WorkflowName { .. }
        | Record::Secret(_)
        | Record::Keycheck(_)
        | Record::Object(_) => unreachable!("written verbatim by import_now"),
    }
}
