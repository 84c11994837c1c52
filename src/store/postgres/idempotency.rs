//! Idempotency keys inside the writer's transaction: one run per key,
//! however many nodes start one at once.
//!
//! Each node checks a key before it starts a run for it (one start at a
//! time per process), but two nodes given the same key at the same moment
//! both find it unused and both start a run. The database decides: a
//! group stores its keys before the rest of its batches are written, with
//! an insert that leaves a stored key as it is and returns it (`STORE`).
//! A key another transaction is inserting makes the insert wait on the
//! unique index until that transaction ends, then returns what it left.
//! A batch whose key comes back naming another run is left out of the
//! group, like a fenced one (`fence.rs`), and fails with
//! [`StoreError::Duplicate`] naming the run the key started. The same key
//! with the same run (a group applied again after its `COMMIT` went
//! unanswered) is not a conflict.
//!
//! A run whose start is left out must leave no trace. Its first units'
//! attempts run while the start commits, and their results follow in
//! later batches of the same group or of later ones: every batch that
//! touches such a run is left out too, with the same answer. The writer
//! remembers the last [`REMEMBERED`] such runs for the groups that follow;
//! the engine forgets the run once its start fails, long before.

use std::collections::{HashMap, VecDeque};

use tokio_postgres::{GenericClient, Statement};

use crate::model::RunId;
use crate::store::{Change, StoreError};

/// Stores keys; a key stored already is left as it is (the no-op update
/// makes it come back all the same), so each row returned names the run
/// its key started.
pub(super) const STORE: &str = "INSERT INTO idempotency_keys (tenant, key, run_id)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT (tenant, key) DO UPDATE SET run_id = idempotency_keys.run_id
    RETURNING tenant, key, run_id";

/// Takes back keys this transaction stored for runs left out after all.
const TAKE_BACK: &str = "DELETE FROM idempotency_keys
    WHERE (tenant, key, run_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]))";

/// How many left-out runs the writer remembers.
const REMEMBERED: usize = 4096;

/// What became of one batch of a group (`writer.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Committed (or to be, with the rest of the group).
    Kept,
    /// Left out: its lease moved on.
    Fenced,
    /// Left out: its idempotency key (or its run's) started this run.
    Duplicate(RunId),
}

impl Outcome {
    /// What the batch's caller is told.
    pub(super) fn result(self) -> Result<(), StoreError> {
        match self {
            Outcome::Kept => Ok(()),
            Outcome::Fenced => Err(StoreError::Fenced("the run's lease has moved to another node".into())),
            Outcome::Duplicate(run) => Err(StoreError::Duplicate { run }),
        }
    }
}

/// The keys the kept batches of a group store: each key once, for the
/// first batch that gives it, in key order (two writers never wait on
/// each other in a circle).
pub(super) struct Keys<'a> {
    /// (tenant, key, run, batch)
    keys: Vec<(&'a str, &'a str, u64, usize)>,
    /// Batches that give a key of `keys` (by index) another run.
    clashes: Vec<(usize, usize)>,
}

impl<'a> Keys<'a> {
    /// The keys of the batches of `group` that `outcomes` keeps.
    pub(super) fn of(group: &[&'a Vec<Change>], outcomes: &[Outcome]) -> Keys<'a> {
        let mut first: HashMap<(&str, &str), (u64, usize)> = HashMap::new();
        let mut later = Vec::new();
        for (batch, changes) in group.iter().enumerate() {
            if outcomes[batch] != Outcome::Kept {
                continue;
            }
            for change in changes.iter() {
                if let Change::PutIdempotencyKey { tenant, key, run } = change {
                    let (run_of_key, _) = *first.entry((tenant, key)).or_insert((run.0, batch));
                    if run_of_key != run.0 {
                        later.push((batch, (tenant.as_str(), key.as_str())));
                    }
                }
            }
        }
        let mut keys: Vec<_> = first
            .into_iter()
            .map(|((t, k), (run, batch))| (t, k, run, batch))
            .collect();
        keys.sort_unstable_by_key(|&(tenant, key, ..)| (tenant, key));
        let clashes = later
            .into_iter()
            .map(|(batch, (tenant, key))| {
                let at = keys.binary_search_by_key(&(tenant, key), |&(t, k, ..)| (t, k));
                (batch, at.expect("each key once in `keys`"))
            })
            .collect();
        Keys { keys, clashes }
    }

    /// Whether no two batches of the group give one key different runs.
    pub(super) fn clash_free(&self) -> bool {
        self.clashes.is_empty()
    }

    /// Stores the keys; returns, for each, the run it names now.
    pub(super) async fn store<C: GenericClient + Sync>(
        &self,
        client: &C,
        statement: &Statement,
    ) -> Result<Vec<u64>, tokio_postgres::Error> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, key, run) = self.columns(|_| true);
        let rows = client.query(statement, &[&tenant, &key, &run]).await?;
        let mut named = HashMap::with_capacity(rows.len());
        for row in &rows {
            let (tenant, key, run): (&str, &str, i64) = (row.get(0), row.get(1), row.get(2));
            named.insert((tenant, key), run as u64);
        }
        Ok(self
            .keys
            .iter()
            // Every key comes back, inserted or left as it was.
            .map(|&(tenant, key, run, _)| named.get(&(tenant, key)).copied().unwrap_or(run))
            .collect())
    }

    /// The batches whose key names another run than theirs, once `stored`
    /// (from [`Keys::store`]), with the run it names.
    pub(super) fn taken(&self, stored: &[u64]) -> Vec<(usize, RunId)> {
        let first = self
            .keys
            .iter()
            .zip(stored)
            .filter(|((.., run, _), named)| run != *named)
            .map(|(&(.., batch), &named)| (batch, RunId(named)));
        let later = self.clashes.iter().map(|&(batch, at)| (batch, RunId(stored[at])));
        first.chain(later).collect()
    }

    /// Deletes the keys stored for their batch's own run whose batch
    /// `outcomes` leaves out now (another key of its run was taken).
    pub(super) async fn take_back<C: GenericClient + Sync>(
        &self,
        client: &C,
        stored: &[u64],
        outcomes: &[Outcome],
    ) -> Result<(), tokio_postgres::Error> {
        let ours = |at: usize| {
            let (.., run, batch) = self.keys[at];
            outcomes[batch] != Outcome::Kept && stored[at] == run
        };
        if !(0..self.keys.len()).any(ours) {
            return Ok(());
        }
        let (tenant, key, run) = self.columns(ours);
        client.execute(TAKE_BACK, &[&tenant, &key, &run]).await?;
        Ok(())
    }

    /// The tenant, key and run columns of the keys `which` chooses (by
    /// index).
    fn columns(&self, which: impl Fn(usize) -> bool) -> Columns<'a> {
        let chosen = self.keys.iter().enumerate().filter(|(at, _)| which(*at));
        let mut columns = (Vec::new(), Vec::new(), Vec::new());
        for (_, &(tenant, key, run, _)) in chosen {
            columns.0.push(tenant);
            columns.1.push(key);
            columns.2.push(run as i64);
        }
        columns
    }
}

/// Keys as the statements take them: tenants, keys, runs.
type Columns<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<i64>);

/// The run a change writes to, if any.
fn run_of(change: &Change) -> Option<u64> {
    match change {
        Change::PutRun(run) => Some(run.id.0),
        Change::PutUnit { run, .. }
        | Change::PutAttempt { run, .. }
        | Change::AppendEvent { run, .. }
        | Change::PutIdempotencyKey { run, .. }
        | Change::Hold { run, .. } => Some(run.0),
        _ => None,
    }
}

/// Leaves out, as duplicates, the kept batches that touch a run a
/// duplicate batch touches, until none does.
pub(super) fn spread(group: &[&Vec<Change>], outcomes: &mut [Outcome]) {
    loop {
        let refused: HashMap<u64, RunId> = duplicates(group, outcomes).collect();
        if refused.is_empty() || !leave_out(group, outcomes, &refused) {
            return;
        }
    }
}

/// The runs the batches left out as duplicates touch, with the run their
/// key started.
fn duplicates<'a>(group: &'a [&Vec<Change>], outcomes: &'a [Outcome]) -> impl Iterator<Item = (u64, RunId)> + 'a {
    group.iter().zip(outcomes).flat_map(|(changes, outcome)| {
        let existing = match outcome {
            Outcome::Duplicate(run) => Some(*run),
            _ => None,
        };
        changes
            .iter()
            .filter_map(run_of)
            .filter_map(move |run| existing.map(|existing| (run, existing)))
    })
}

/// Leaves out the kept batches that touch a run of `refused`; returns
/// whether it left out any.
fn leave_out(group: &[&Vec<Change>], outcomes: &mut [Outcome], refused: &HashMap<u64, RunId>) -> bool {
    let mut any = false;
    for (changes, outcome) in group.iter().zip(outcomes.iter_mut()) {
        if *outcome != Outcome::Kept {
            continue;
        }
        if let Some(existing) = changes.iter().filter_map(run_of).find_map(|run| refused.get(&run)) {
            *outcome = Outcome::Duplicate(*existing);
            any = true;
        }
    }
    any
}

/// The runs whose start the writer left out lately, with the run their
/// key started.
#[derive(Default)]
pub(super) struct Refused {
    runs: HashMap<u64, RunId>,
    order: VecDeque<u64>,
}

impl Refused {
    /// Whether a batch of `group` touches a run left out.
    pub(super) fn touches(&self, group: &[&Vec<Change>]) -> bool {
        !self.runs.is_empty()
            && group
                .iter()
                .flat_map(|changes| changes.iter().filter_map(run_of))
                .any(|run| self.runs.contains_key(&run))
    }

    /// Leaves out the kept batches of `group` that touch a run left out.
    pub(super) fn leave_out(&self, group: &[&Vec<Change>], outcomes: &mut [Outcome]) {
        if !self.runs.is_empty() {
            leave_out(group, outcomes, &self.runs);
        }
    }

    /// Remembers the runs of the batches of a committed group left out as
    /// duplicates.
    pub(super) fn remember(&mut self, group: &[&Vec<Change>], outcomes: &[Outcome]) {
        for (run, existing) in duplicates(group, outcomes) {
            if self.runs.insert(run, existing).is_none() {
                self.order.push_back(run);
            }
        }
        while self.order.len() > REMEMBERED {
            let oldest = self.order.pop_front().expect("longer than the limit");
            self.runs.remove(&oldest);
        }
    }
}
