//! `weft check`: reads a whole store, changing nothing, and reports every
//! integrity problem it finds: records that do not decode; references to
//! tenants, modules, workflows or runs that are not there; units,
//! attempts and histories that disagree with their run; histories with
//! gaps.
//!
//! One pass, table by table (the copy order, so what a record refers to
//! has been read before it). What later tables are checked against is
//! kept compactly: per run its tenant, status and history so far, about
//! 40 bytes, so a million runs take tens of MB.

use std::collections::{HashMap, HashSet};

use super::transfer::scan;
use super::{Record, Store, StoreError, Table};
use crate::digest::Digest;
use crate::model::{EventKind, RunStatus, UnitStatus};

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The table of the record at fault.
    pub table: Table,
    /// Its key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.table.name(), self.key, self.problem)
    }
}

/// What the check kept of a run.
struct RunFacts {
    tenant: u32,
    status: RunStatus,
    /// The next event number the history should have.
    next_seq: u32,
    /// The status the history ended the run with, if it ends it.
    ended: Option<RunStatus>,
}

#[derive(Default)]
struct Checker {
    findings: Vec<Finding>,
    tenants: HashSet<String>,
    /// Tenant names, interned for the per-run facts.
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    module_bytes: HashSet<(u32, Digest)>,
    module_versions: HashMap<(u32, String), Vec<Digest>>,
    workflows: HashSet<(u32, Digest)>,
    workflow_versions: HashMap<(u32, String), Vec<(u32, Digest)>>,
    runs: HashMap<u64, RunFacts>,
}

impl Checker {
    fn id(&mut self, tenant: &str) -> u32 {
        if let Some(id) = self.name_ids.get(tenant) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(tenant.to_string());
        self.name_ids.insert(tenant.to_string(), id);
        id
    }

    fn find(&mut self, table: Table, key: impl std::fmt::Display, problem: impl Into<String>) {
        self.findings.push(Finding {
            table,
            key: key.to_string(),
            problem: problem.into(),
        });
    }

    /// The run a record of `table` belongs to, reporting it when missing or
    /// of another tenant.
    fn run_of(&mut self, table: Table, key: &str, tenant: &str, run: u64) -> Option<&mut RunFacts> {
        let tenant_id = self.id(tenant);
        match self.runs.get(&run).map(|facts| facts.tenant) {
            None => {
                self.find(table, key, format!("belongs to run {run}, which does not exist"));
                None
            }
            Some(owner) if owner != tenant_id => {
                let owner = self.names[owner as usize].clone();
                self.find(
                    table,
                    key,
                    format!("is filed under tenant {tenant:?} but run {run} is {owner:?}'s"),
                );
                None
            }
            Some(_) => self.runs.get_mut(&run),
        }
    }

    fn record(&mut self, record: &Record) {
        match record {
            Record::Tenant(t) => {
                self.tenants.insert(t.id.clone());
            }
            Record::Key(k) => {
                if !self.tenants.contains(&k.tenant) {
                    self.find(
                        Table::Keys,
                        &k.key_id,
                        format!("acts as tenant {:?}, which does not exist", k.tenant),
                    );
                }
            }
            Record::ModuleBytes { tenant, digest, bytes } => {
                if Digest::of(bytes) != *digest {
                    self.find(Table::ModuleBytes, digest, "the bytes do not hash to their digest");
                }
                let id = self.id(tenant);
                self.module_bytes.insert((id, *digest));
            }
            Record::ModuleVersion { tenant, record } => {
                let id = self.id(tenant);
                if !self.module_bytes.contains(&(id, record.digest)) {
                    let key = format!("{tenant}/{}@{}", record.name, record.version);
                    self.find(
                        Table::ModuleVersions,
                        key,
                        format!("its bytes {} are missing", record.digest),
                    );
                }
                self.module_versions
                    .entry((id, record.name.clone()))
                    .or_default()
                    .push(record.digest);
            }
            Record::ModuleName { tenant, name, digest } => {
                let id = self.id(tenant);
                let known = self
                    .module_versions
                    .get(&(id, name.clone()))
                    .is_some_and(|digests| digests.contains(digest));
                if !known {
                    let key = format!("{tenant}/{name}");
                    self.find(
                        Table::ModuleNames,
                        key,
                        format!("points at {digest}, which is no version of it"),
                    );
                }
            }
            Record::Workflow { tenant, digest, source } => {
                if Digest::of(source.as_bytes()) != *digest {
                    self.find(
                        Table::Workflows,
                        format!("{tenant}/{digest}"),
                        "the text does not hash to its digest",
                    );
                }
                let id = self.id(tenant);
                self.workflows.insert((id, *digest));
            }
            Record::WorkflowVersion { tenant, name, version } => {
                let id = self.id(tenant);
                let key = format!("{tenant}/{name} v{}", version.version);
                if !self.workflows.contains(&(id, version.digest)) {
                    self.find(
                        Table::WorkflowVersions,
                        &key,
                        format!("its document {} is missing", version.digest),
                    );
                }
                let versions = self.workflow_versions.entry((id, name.clone())).or_default();
                let expected = versions.len() as u32 + 1;
                versions.push((version.version, version.digest));
                if version.version != expected {
                    self.find(
                        Table::WorkflowVersions,
                        key,
                        format!("versions skip from {} to {}", expected - 1, version.version),
                    );
                }
            }
            Record::WorkflowName { tenant, name, digest } => {
                let id = self.id(tenant);
                let newest = self
                    .workflow_versions
                    .get(&(id, name.clone()))
                    .and_then(|v| v.last())
                    .map(|(_, d)| *d);
                if newest != Some(*digest) {
                    self.find(
                        Table::WorkflowNames,
                        format!("{tenant}/{name}"),
                        "does not point at its newest version",
                    );
                }
            }
            Record::Run(run) => {
                let id = self.id(&run.tenant);
                let key = run.id.to_string();
                if !self.workflows.contains(&(id, run.workflow_digest)) {
                    self.find(
                        Table::Runs,
                        &key,
                        format!("runs workflow {}, which is missing", run.workflow_digest),
                    );
                }
                if !run.status.is_final() {
                    for digest in run.modules.iter().filter(|d| !d.is_none()) {
                        if !self.module_bytes.contains(&(id, *digest)) {
                            self.find(
                                Table::Runs,
                                &key,
                                format!("is unfinished and needs module {digest}, which is missing"),
                            );
                        }
                    }
                }
                self.runs.insert(
                    run.id.0,
                    RunFacts {
                        tenant: id,
                        status: run.status,
                        next_seq: 0,
                        ended: None,
                    },
                );
            }
            Record::Unit {
                tenant,
                run,
                key,
                record,
            } => {
                let at = format!(
                    "{run}/{}{}",
                    key.step,
                    key.item.map(|i| format!("[{i}]")).unwrap_or_default()
                );
                let Some(facts) = self.run_of(Table::Units, &at, tenant, run.0) else {
                    return;
                };
                let status = facts.status;
                let live = matches!(
                    record.status,
                    UnitStatus::Ready | UnitStatus::Running | UnitStatus::Retrying | UnitStatus::Waiting
                );
                if status.is_final() && live {
                    self.find(
                        Table::Units,
                        at,
                        format!("is {} but its run has {status}", record.status),
                    );
                }
            }
            Record::Attempt {
                tenant,
                run,
                key,
                record,
            } => {
                let at = format!("{run}/{}#{}", key.step, record.attempt);
                self.run_of(Table::Attempts, &at, tenant, run.0);
            }
            Record::Event {
                tenant,
                run,
                seq,
                event,
            } => {
                let at = format!("{run}#{seq}");
                let Some(facts) = self.run_of(Table::Events, &at, tenant, run.0) else {
                    return;
                };
                let expected = facts.next_seq;
                facts.next_seq = seq + 1;
                match &event.kind {
                    EventKind::RunFinished { status } => facts.ended = Some(*status),
                    EventKind::RunRetried | EventKind::RunReset { .. } => facts.ended = None,
                    _ => {}
                }
                if *seq != expected {
                    self.find(Table::Events, at, format!("the history skips from {expected} to {seq}"));
                }
            }
            Record::Kv { .. } | Record::Secret(_) | Record::Keycheck(_) | Record::Object(_) => {}
            Record::IdempotencyKey { tenant, key, run } => {
                if !self.runs.contains_key(&run.0) {
                    self.find(
                        Table::IdempotencyKeys,
                        format!("{tenant}/{key}"),
                        format!("started run {run}, which does not exist"),
                    );
                }
            }
        }
    }

    /// What only the whole history shows: how each run's history ends.
    fn finish(&mut self) {
        let mut ends = Vec::new();
        for (id, facts) in &self.runs {
            let problem = match (facts.status, facts.ended, facts.next_seq) {
                (_, _, 0) => Some("has no history".to_string()),
                (status, Some(ended), _) if !status.is_final() => {
                    Some(format!("is {status} but its history ended it {ended}"))
                }
                (status, ended, _) if status.is_final() && ended != Some(status) => Some(match ended {
                    Some(ended) => format!("is {status} but its history ended it {ended}"),
                    None => format!("is {status} but its history does not end it"),
                }),
                _ => None,
            };
            if let Some(problem) = problem {
                ends.push((*id, problem));
            }
        }
        ends.sort();
        for (id, problem) in ends {
            self.find(Table::Runs, id, problem);
        }
    }
}

/// What a check read and found.
#[derive(Debug)]
pub struct Report {
    /// Records read per table.
    pub counts: Vec<(Table, u64)>,
    /// Every problem, in the order found.
    pub findings: Vec<Finding>,
}

/// Reads all of `store` and reports what is wrong; `progress` is told the
/// table and records read so far after every page.
pub async fn check(store: &dyn Store, progress: impl FnMut(Table, u64)) -> Result<Report, StoreError> {
    let mut checker = Checker::default();
    let scanned = scan(store, |record| checker.record(record), progress).await?;
    checker.finish();
    let mut findings: Vec<Finding> = scanned
        .corrupt
        .into_iter()
        .map(|c| Finding {
            table: c.table,
            key: c.key,
            problem: format!("does not decode: {}", c.error),
        })
        .collect();
    findings.extend(checker.findings);
    let counts = Table::ALL.iter().map(|t| (*t, scanned.tally.count(*t))).collect();
    Ok(Report { counts, findings })
}
