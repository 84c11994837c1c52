//! Every record out, a page at a time, and back in verbatim: what `weft
//! migrate` and `weft check` read, and what retention looks for.
//!
//! redb keeps module bytes and workflow documents once per digest for all
//! tenants; they are exported once per tenant that names them (a module
//! version or an unfinished run; a workflow version), as the PostgreSQL
//! backend keeps them. Bytes nothing names are not exported: retention
//! would collect them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};
use serde_json::{Value, json};

use super::tables::*;
use super::{RedbStore, digest_from, unit_key};
use crate::digest::Digest;
use crate::model::{Millis, ModuleRecord, RunId, RunRecord, WorkflowVersion};
use crate::store::{Corrupt, Cursor, Page, Record, StoreError, Table, storage};

/// The most runs one retention pass looks at per tenant.
const MAX_RETENTION_SCAN: usize = 100_000;

fn cursor_str(cursor: &Option<Cursor>, at: usize) -> Option<String> {
    cursor.as_ref().and_then(|c| match &c.0 {
        Value::Array(parts) => parts.get(at).and_then(Value::as_str).map(str::to_string),
        Value::String(s) if at == 0 => Some(s.clone()),
        _ => None,
    })
}

fn cursor_u64(cursor: &Option<Cursor>, at: usize) -> Option<u64> {
    cursor.as_ref().and_then(|c| match &c.0 {
        Value::Array(parts) => parts.get(at).and_then(Value::as_u64),
        Value::Number(n) if at == 0 => n.as_u64(),
        _ => None,
    })
}

/// Collects a page: `limit` decoded entries, the cursor after the last.
struct Collector {
    table: Table,
    limit: usize,
    page: Page,
    seen: usize,
}

impl Collector {
    fn new(table: Table, limit: usize) -> Collector {
        Collector {
            table,
            limit: limit.max(1),
            page: Page::default(),
            seen: 0,
        }
    }

    fn full(&self) -> bool {
        self.seen >= self.limit
    }

    /// Counts one key read; `record` is what it holds (none, several for
    /// shared bytes).
    fn push(&mut self, key: Value, records: Vec<Result<Record, String>>) {
        self.seen += 1;
        for record in records {
            self.page.records.push(record.map_err(|error| Corrupt {
                table: self.table,
                key: key.to_string(),
                error,
            }));
        }
        self.page.next = Some(Cursor(key));
    }

    fn finish(mut self) -> Page {
        if !self.full() {
            self.page.next = None;
        }
        self.page
    }
}

fn decoded<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    decode(bytes, what).map_err(|e| e.to_string())
}

impl RedbStore {
    pub(super) fn export_page_now(
        &self,
        table: Table,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let mut out = Collector::new(table, limit);
        macro_rules! scan {
            ($def:expr, $kr:ty, $lower:expr, |$k:ident, $v:ident| $body:expr) => {{
                let t = txn.open_table($def).map_err(storage)?;
                for entry in t.range::<$kr>(($lower, Bound::Unbounded)).map_err(storage)? {
                    if out.full() {
                        break;
                    }
                    let ($k, $v) = entry.map_err(storage)?;
                    let ($k, $v) = ($k.value(), $v.value());
                    let (key, records) = $body;
                    out.push(key, records);
                }
            }};
        }
        let s0 = cursor_str(&after, 0);
        let s1 = cursor_str(&after, 1);
        let s2 = cursor_str(&after, 2);
        match table {
            Table::Tenants => {
                let lower = s0.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                scan!(TENANTS, &str, lower, |k, v| (
                    json!(k),
                    vec![decoded(v, "tenant").map(Record::Tenant)]
                ))
            }
            Table::Keys => {
                let lower = s0.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                scan!(API_KEYS, &str, lower, |k, v| (
                    json!(k),
                    vec![decoded(v, "api key").map(Record::Key)]
                ))
            }
            Table::ModuleBytes => {
                let named = self.module_owners(&txn)?;
                let after = s0.as_deref().and_then(|h| hex::decode(h).ok());
                let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                scan!(MODULES, &[u8], lower, |k, v| {
                    let records = match Digest::from_slice(k) {
                        Some(digest) => named
                            .get(&digest)
                            .into_iter()
                            .flatten()
                            .map(|tenant| {
                                Ok(Record::ModuleBytes {
                                    tenant: tenant.clone(),
                                    digest,
                                    bytes: v.to_vec(),
                                })
                            })
                            .collect(),
                        None => vec![Err(format!("a digest of {} bytes", k.len()))],
                    };
                    (json!(hex::encode(k)), records)
                })
            }
            Table::ModuleVersions => {
                let key = s0
                    .as_deref()
                    .zip(s1.as_deref())
                    .zip(s2.as_deref())
                    .map(|((a, b), c)| (a, b, c));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                scan!(MODULE_VERSIONS, (&str, &str, &str), lower, |k, v| {
                    let record = decoded::<ModuleRecord>(v, "module version").map(|record| Record::ModuleVersion {
                        tenant: k.0.to_string(),
                        record,
                    });
                    (json!([k.0, k.1, k.2]), vec![record])
                })
            }
            Table::ModuleNames | Table::WorkflowNames => {
                let key = s0.as_deref().zip(s1.as_deref());
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let def = if table == Table::ModuleNames {
                    MODULE_NAMES
                } else {
                    WORKFLOW_NAMES
                };
                scan!(def, (&str, &str), lower, |k, v| {
                    let record = digest_from(v).map_err(|e| e.to_string()).map(|digest| {
                        let (tenant, name) = (k.0.to_string(), k.1.to_string());
                        if table == Table::ModuleNames {
                            Record::ModuleName { tenant, name, digest }
                        } else {
                            Record::WorkflowName { tenant, name, digest }
                        }
                    });
                    (json!([k.0, k.1]), vec![record])
                })
            }
            Table::Workflows | Table::WorkflowVersions => {
                let version = cursor_u64(&after, 2).map(|v| v as u32);
                let key = s0
                    .as_deref()
                    .zip(s1.as_deref())
                    .zip(version)
                    .map(|((a, b), c)| (a, b, c));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let documents = txn.open_table(WORKFLOWS).map_err(storage)?;
                let versions = txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
                scan!(WORKFLOW_VERSIONS, (&str, &str, u32), lower, |k, v| {
                    let (tenant, name, number) = k;
                    let parsed = decoded::<WorkflowVersion>(v, "workflow version");
                    let records = match (table, parsed) {
                        (_, Err(e)) => vec![Err(e)],
                        (Table::WorkflowVersions, Ok(version)) => vec![Ok(Record::WorkflowVersion {
                            tenant: tenant.to_string(),
                            name: name.to_string(),
                            version,
                        })],
                        (_, Ok(version)) => {
                            // A document once per tenant: at the first version
                            // that has it.
                            let earlier = versions
                                .range((tenant, name, 0)..(tenant, name, number))
                                .map_err(storage)?
                                .filter_map(Result::ok)
                                .filter_map(|(_, e)| decode::<WorkflowVersion>(e.value(), "").ok())
                                .any(|e| e.digest == version.digest);
                            if earlier {
                                Vec::new()
                            } else {
                                let source = documents.get(version.digest.as_bytes().as_slice()).map_err(storage)?;
                                vec![
                                    source
                                        .map(|s| s.value().to_string())
                                        .ok_or_else(|| {
                                            format!(
                                                "version {number} names document {}, which is missing",
                                                version.digest
                                            )
                                        })
                                        .map(|source| Record::Workflow {
                                            tenant: tenant.to_string(),
                                            digest: version.digest,
                                            source,
                                        }),
                                ]
                            }
                        }
                    };
                    (json!([tenant, name, number]), records)
                })
            }
            Table::Runs => {
                let lower = cursor_u64(&after, 0).map_or(Bound::Unbounded, Bound::Excluded);
                scan!(RUNS, u64, lower, |k, v| (
                    json!(k),
                    vec![decoded(v, "run").map(Record::Run)]
                ))
            }
            Table::Units => {
                let key = cursor_u64(&after, 0)
                    .zip(cursor_u64(&after, 1))
                    .zip(cursor_u64(&after, 2))
                    .map(|((r, s), i)| (r, s as u32, i as u32));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let mut tenants = RunTenants::new(&txn)?;
                scan!(UNITS, (u64, u32, u32), lower, |k, v| {
                    let (run, step, item) = k;
                    let record = tenants.of(run).and_then(|tenant| {
                        decoded(v, "unit").map(|record| Record::Unit {
                            tenant,
                            run: RunId(run),
                            key: unit_key(step, item),
                            record,
                        })
                    });
                    (json!([run, step, item]), vec![record])
                })
            }
            Table::Attempts => {
                let key = cursor_u64(&after, 0)
                    .zip(cursor_u64(&after, 1))
                    .zip(cursor_u64(&after, 2))
                    .zip(cursor_u64(&after, 3))
                    .map(|(((r, s), i), a)| (r, s as u32, i as u32, a as u32));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let mut tenants = RunTenants::new(&txn)?;
                scan!(ATTEMPTS, (u64, u32, u32, u32), lower, |k, v| {
                    let (run, step, item, attempt) = k;
                    let record = tenants.of(run).and_then(|tenant| {
                        decoded(v, "attempt").map(|record| Record::Attempt {
                            tenant,
                            run: RunId(run),
                            key: unit_key(step, item),
                            record,
                        })
                    });
                    (json!([run, step, item, attempt]), vec![record])
                })
            }
            Table::Events => {
                let key = cursor_u64(&after, 0)
                    .zip(cursor_u64(&after, 1))
                    .map(|(r, s)| (r, s as u32));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let mut tenants = RunTenants::new(&txn)?;
                scan!(EVENTS, (u64, u32), lower, |k, v| {
                    let (run, seq) = k;
                    let record = tenants.of(run).and_then(|tenant| {
                        decoded(v, "event").map(|event| Record::Event {
                            tenant,
                            run: RunId(run),
                            seq,
                            event,
                        })
                    });
                    (json!([run, seq]), vec![record])
                })
            }
            Table::Kv => {
                let key = s0.as_deref().zip(s1.as_deref());
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                scan!(KV, (&str, &str), lower, |k, v| {
                    let record = Record::Kv {
                        tenant: k.0.to_string(),
                        key: k.1.to_string(),
                        value: v.to_vec(),
                    };
                    (json!([k.0, k.1]), vec![Ok(record)])
                })
            }
            Table::IdempotencyKeys => {
                let key = s0.as_deref().zip(s1.as_deref());
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                let t = txn.open_table(IDEMPOTENCY).map_err(storage)?;
                for entry in t.range::<(&str, &str)>((lower, Bound::Unbounded)).map_err(storage)? {
                    if out.full() {
                        break;
                    }
                    let (k, v) = entry.map_err(storage)?;
                    let (tenant, key) = k.value();
                    let record = Record::IdempotencyKey {
                        tenant: tenant.to_string(),
                        key: key.to_string(),
                        run: RunId(v.value()),
                    };
                    out.push(json!([tenant, key]), vec![Ok(record)]);
                }
            }
            Table::Secrets => {
                let key = s0.as_deref().zip(s1.as_deref());
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                scan!(SECRETS, (&str, &str), lower, |k, v| (
                    json!([k.0, k.1]),
                    vec![decoded(v, "secret").map(Record::Secret)]
                ))
            }
            Table::Objects => {
                let key = s0
                    .as_deref()
                    .zip(s1.as_deref())
                    .zip(s2.as_deref())
                    .map(|((a, b), c)| (a, b, c));
                let lower = key.map_or(Bound::Unbounded, Bound::Excluded);
                scan!(OBJECTS, (&str, &str, &str), lower, |k, v| (
                    json!([k.0, k.1, k.2]),
                    vec![
                        super::objects::object_of(k.0, k.1, k.2, v)
                            .map(Record::Object)
                            .map_err(|e| e.to_string())
                    ]
                ))
            }
            Table::Keycheck => {
                let lower = s0.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                scan!(KEYCHECK, &str, lower, |k, v| (
                    json!(k),
                    vec![decoded(v, "keycheck").map(Record::Keycheck)]
                ))
            }
        }
        Ok(out.finish())
    }

    /// Which tenants name each digest: their module versions, and their
    /// unfinished runs.
    fn module_owners(&self, txn: &redb::ReadTransaction) -> Result<HashMap<Digest, BTreeSet<String>>, StoreError> {
        let mut named: HashMap<Digest, BTreeSet<String>> = HashMap::new();
        let versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
        for entry in versions.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if let Ok(record) = decode::<ModuleRecord>(v.value(), "module version") {
                named.entry(record.digest).or_default().insert(k.value().0.to_string());
            }
        }
        let active = txn.open_table(ACTIVE).map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        for entry in active.iter().map_err(storage)? {
            let id = entry.map_err(storage)?.0.value();
            let Some(bytes) = runs.get(id).map_err(storage)? else {
                continue;
            };
            if let Ok(run) = decode::<RunRecord>(bytes.value(), "run") {
                for digest in run.modules {
                    named.entry(digest).or_default().insert(run.tenant.clone());
                }
            }
        }
        Ok(named)
    }

    pub(super) fn import_now(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let txn = self.database.begin_write().map_err(storage)?;
        {
            let mut tenants = txn.open_table(TENANTS).map_err(storage)?;
            let mut keys = txn.open_table(API_KEYS).map_err(storage)?;
            let mut modules = txn.open_table(MODULES).map_err(storage)?;
            let mut module_versions = txn.open_table(MODULE_VERSIONS).map_err(storage)?;
            let mut module_names = txn.open_table(MODULE_NAMES).map_err(storage)?;
            let mut workflows = txn.open_table(WORKFLOWS).map_err(storage)?;
            let mut workflow_versions = txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
            let mut workflow_names = txn.open_table(WORKFLOW_NAMES).map_err(storage)?;
            let mut runs = txn.open_table(RUNS).map_err(storage)?;
            let mut active = txn.open_table(ACTIVE).map_err(storage)?;
            let mut tenant_runs = txn.open_table(TENANT_RUNS).map_err(storage)?;
            let mut units = txn.open_table(UNITS).map_err(storage)?;
            let mut attempts = txn.open_table(ATTEMPTS).map_err(storage)?;
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let mut kv = txn.open_table(KV).map_err(storage)?;
            let mut idempotency = txn.open_table(IDEMPOTENCY).map_err(storage)?;
            let mut secrets = txn.open_table(SECRETS).map_err(storage)?;
            let mut keycheck = txn.open_table(KEYCHECK).map_err(storage)?;
            let mut objects = txn.open_table(OBJECTS).map_err(storage)?;
            for record in &records {
                match record {
                    Record::Tenant(t) => tenants.insert(t.id.as_str(), encode(t).as_slice()).map(drop),
                    Record::Key(k) => keys.insert(k.key_id.as_str(), encode(k).as_slice()).map(drop),
                    Record::ModuleBytes { digest, bytes, .. } => {
                        modules.insert(digest.as_bytes().as_slice(), bytes.as_slice()).map(drop)
                    }
                    Record::ModuleVersion { tenant, record } => module_versions
                        .insert(
                            (tenant.as_str(), record.name.as_str(), record.version.as_str()),
                            encode(record).as_slice(),
                        )
                        .map(drop),
                    Record::ModuleName { tenant, name, digest } => module_names
                        .insert((tenant.as_str(), name.as_str()), digest.as_bytes().as_slice())
                        .map(drop),
                    Record::Workflow { digest, source, .. } => workflows
                        .insert(digest.as_bytes().as_slice(), source.as_str())
                        .map(drop),
                    Record::WorkflowVersion { tenant, name, version } => workflow_versions
                        .insert(
                            (tenant.as_str(), name.as_str(), version.version),
                            encode(version).as_slice(),
                        )
                        .map(drop),
                    Record::WorkflowName { tenant, name, digest } => workflow_names
                        .insert((tenant.as_str(), name.as_str()), digest.as_bytes().as_slice())
                        .map(drop),
                    Record::Run(run) => {
                        runs.insert(run.id.0, encode(run).as_slice()).map_err(storage)?;
                        tenant_runs
                            .insert((run.tenant.as_str(), run.id.0), ())
                            .map_err(storage)?;
                        if run.status.is_final() {
                            active.remove(run.id.0).map(drop)
                        } else {
                            active.insert(run.id.0, ()).map(drop)
                        }
                    }
                    Record::Unit { run, key, record, .. } => units
                        .insert(
                            (run.0, key.step, key.item.unwrap_or(NO_ITEM)),
                            encode(record).as_slice(),
                        )
                        .map(drop),
                    Record::Attempt { run, key, record, .. } => attempts
                        .insert(
                            (run.0, key.step, key.item.unwrap_or(NO_ITEM), record.attempt),
                            encode(record).as_slice(),
                        )
                        .map(drop),
                    Record::Event { run, seq, event, .. } => {
                        events.insert((run.0, *seq), encode(event).as_slice()).map(drop)
                    }
                    Record::Kv { tenant, key, value } => {
                        kv.insert((tenant.as_str(), key.as_str()), value.as_slice()).map(drop)
                    }
                    Record::IdempotencyKey { tenant, key, run } => {
                        idempotency.insert((tenant.as_str(), key.as_str()), run.0).map(drop)
                    }
                    Record::Secret(secret) => secrets
                        .insert(
                            (secret.tenant.as_str(), secret.name.as_str()),
                            encode(secret).as_slice(),
                        )
                        .map(drop),
                    Record::Keycheck(check) => keycheck.insert(KEYCHECK_KEY, encode(check).as_slice()).map(drop),
                    Record::Object(object) => {
                        let body = super::objects::Body {
                            revision: object.revision,
                            value: object.value.clone(),
                        };
                        objects
                            .insert(
                                (object.kind.name(), object.tenant.as_str(), object.name.as_str()),
                                encode(&body).as_slice(),
                            )
                            .map(drop)
                    }
                }
                .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)
    }

    pub(super) fn expired_runs_now(
        &self,
        tenant: &str,
        before: Millis,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let txn = self.database.begin_read().map_err(storage)?;
        let index = txn.open_table(TENANT_RUNS).map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;
        // Oldest first: run ids grow with time, so expired runs lead.
        let mut found = BTreeMap::new();
        for entry in index
            .range((tenant, 0)..=(tenant, u64::MAX))
            .map_err(storage)?
            .take(MAX_RETENTION_SCAN)
        {
            let id = entry.map_err(storage)?.0.value().1;
            let Some(bytes) = runs.get(id).map_err(storage)? else {
                continue;
            };
            let run: RunRecord = decode(bytes.value(), "run")?;
            if run.status.is_final() && run.updated_at < before {
                found.insert((run.updated_at, id), ());
            }
        }
        Ok(found.into_keys().take(limit).map(|(_, id)| RunId(id)).collect())
    }
}

/// The tenant of each run, read once per page.
struct RunTenants {
    runs: redb::ReadOnlyTable<u64, &'static [u8]>,
    known: HashMap<u64, String>,
}

impl RunTenants {
    fn new(txn: &redb::ReadTransaction) -> Result<RunTenants, StoreError> {
        Ok(RunTenants {
            runs: txn.open_table(RUNS).map_err(storage)?,
            known: HashMap::new(),
        })
    }

    /// The tenant of `run`; empty when the run is missing or does not
    /// decode (the record is exported all the same, for `weft check` to
    /// report as belonging to no run).
    fn of(&mut self, run: u64) -> Result<String, String> {
        if let Some(tenant) = self.known.get(&run) {
            return Ok(tenant.clone());
        }
        let bytes = self.runs.get(run).map_err(|e| e.to_string())?;
        let tenant = bytes
            .and_then(|b| decode::<RunRecord>(b.value(), "run").ok())
            .map(|r| r.tenant)
            .unwrap_or_default();
        self.known.insert(run, tenant.clone());
        Ok(tenant)
    }
}
