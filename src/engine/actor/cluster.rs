//! The scheduler's side of the cluster (docs/architecture.md, "The
//! cluster"): which runs this node holds and at which epoch, claiming
//! runs no live node holds, taking one over to cancel or retry it, and
//! letting go of runs that moved.
//!
//! With a store one process owns there is no [`Node`] and none of this
//! runs: the node holds every run.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::{Actor, Msg};
use crate::engine::run_state::{ActiveRun, StoredRun};
use crate::engine::{EngineError, EngineStats, Workflows};
use crate::model::{RunId, RunRecord};
use crate::store::cluster::{Cluster, Incarnation, Lease, Load, Notice};
use crate::store::{Change, Store, StoreError};

/// This node's membership, as the scheduler sees it.
pub(crate) struct Node {
    pub cluster: Arc<dyn Cluster>,
    pub me: Incarnation,
    /// Its name (`--node-id`), recorded with each attempt it runs.
    pub node_id: Arc<str>,
    pub load: Arc<Load>,
    /// The epoch of each run this node holds.
    leases: HashMap<RunId, u64>,
    /// Run ids reserved for this node's starts.
    ids: Range<u64>,
    /// A claim is on its way.
    claiming: bool,
    /// Runs may be waiting for a node: claim when there is room.
    wanted: bool,
    /// Runs started here without a lease, for any node to claim: they
    /// leave this node's memory once their start is durable.
    handed_off: std::collections::HashSet<RunId>,
    /// Capped tenants whose request for attempt permits is on its way.
    pub(super) asking_permits: std::collections::HashSet<Arc<str>>,
}

impl Node {
    pub fn new(cluster: Arc<dyn Cluster>, me: Incarnation, node_id: &str, load: Arc<Load>) -> Node {
        Node {
            cluster,
            me,
            node_id: node_id.into(),
            load,
            leases: HashMap::new(),
            ids: 0..0,
            claiming: false,
            wanted: true,
            handed_off: Default::default(),
            asking_permits: Default::default(),
        }
    }

    /// Forgets the lease of a run that ended or moved.
    pub fn forget(&mut self, run: RunId) {
        self.leases.remove(&run);
    }
}

impl Actor {
    /// The change that fences a batch of `run`'s to this node's lease.
    pub(super) fn hold(&self, run: RunId) -> Option<Change> {
        let node = self.node.as_ref()?;
        let epoch = node.leases.get(&run)?;
        let tenant = self.runs.get(&run)?.record.tenant.clone();
        Some(Change::Hold {
            tenant,
            run,
            node: node.me,
            epoch: *epoch,
        })
    }

    /// The id of a run this node starts, and its lease: leased to this
    /// node at epoch 1, unless this node is full and others have room,
    /// in which case it is stored unleased for whichever claims it first.
    pub(super) async fn new_run_id(&mut self) -> Result<RunId, EngineError> {
        let busy = self.tasks.len() + self.queue.len() >= self.shared.config.max_concurrent;
        let Some(node) = &mut self.node else {
            self.next_id += 1;
            return Ok(RunId(self.next_id - 1));
        };
        if node.ids.is_empty() {
            node.ids = node.cluster.reserve_run_ids().await?;
        }
        let id = RunId(node.ids.start);
        node.ids.start += 1;
        if busy && node.load.free_elsewhere.load(Relaxed) > 0 {
            node.handed_off.insert(id);
        } else {
            node.leases.insert(id, 1);
        }
        Ok(id)
    }

    /// Whether `run` is being started here for another node to claim.
    pub(super) fn is_handed_off(&self, run: RunId) -> bool {
        self.node.as_ref().is_some_and(|node| node.handed_off.contains(&run))
    }

    /// Whether `run` was started here for another node to claim: once its
    /// start is durable, it leaves this node.
    pub(super) fn handed_off(&mut self, run: RunId) -> bool {
        self.node.as_mut().is_some_and(|node| node.handed_off.remove(&run))
    }

    /// While this node has units waiting for a slot and other nodes have
    /// slots free, hands them waiting runs (parked ones first, then runs
    /// with nothing running), as many as they have room for.
    pub(super) fn shed(&mut self) {
        let Some(node) = &self.node else { return };
        let free = node.load.free_elsewhere.load(Relaxed) as usize;
        if free == 0 || self.queue.is_empty() || self.draining.is_some() {
            return;
        }
        let limit = free.min(self.queue.len());
        let mut shed: Vec<RunId> = self.parked.iter().copied().take(limit).collect();
        let waiting = self.queue.runs().filter(|run| {
            self.runs
                .get(run)
                .is_some_and(|active| active.running == 0 && active.commits == 0)
        });
        for run in waiting {
            if shed.len() >= limit {
                break;
            }
            if !shed.contains(&run) {
                shed.push(run);
            }
        }
        if shed.is_empty() {
            return;
        }
        let tenants: HashMap<RunId, String> = shed
            .iter()
            .filter_map(|run| self.runs.get(run).map(|active| (*run, active.record.tenant.clone())))
            .collect();
        let (cluster, me) = (node.cluster.clone(), node.me);
        let store = self.shared.store.clone();
        for run in &shed {
            self.lose(*run);
        }
        tokio::spawn(async move {
            let mut runs = Vec::with_capacity(shed.len());
            for run in shed {
                let tenant = match tenants.get(&run) {
                    Some(tenant) => tenant.clone(),
                    None => match store.run(run).await {
                        Ok(Some(record)) => record.tenant,
                        _ => continue,
                    },
                };
                runs.push((tenant, run));
            }
            match cluster.release(me, &runs).await {
                Ok(()) => tracing::info!(runs = runs.len(), "handed waiting runs to nodes with free slots"),
                Err(e) => tracing::warn!(error = %e, "cannot hand waiting runs over; they stay leased to this node"),
            }
        });
    }

    /// Starts a claim if runs may be waiting and there is room for them.
    pub(super) fn claim_if_room(&mut self) {
        let room = self
            .shared
            .config
            .max_concurrent
            .saturating_sub(self.tasks.len() + self.queue.len());
        let draining = self.draining.is_some();
        let Some(node) = &mut self.node else { return };
        if node.claiming || !node.wanted || draining || room == 0 {
            return;
        }
        node.claiming = true;
        node.wanted = false;
        let (cluster, me) = (node.cluster.clone(), node.me);
        let store = self.shared.store.clone();
        let workflows = self.shared.workflows.clone();
        let inbox = self.shared.inbox.clone();
        let stats = self.shared.stats.clone();
        tokio::spawn(async move {
            let adopted = claim(&*cluster, &*store, &workflows, &stats, me, room).await;
            let _ = inbox.send(Msg::Adopt { adopted, room });
        });
    }

    /// Claims runs now, up to this node's capacity, and takes them in;
    /// how many. For a node's start.
    pub(super) async fn claim_now(&mut self) -> usize {
        let Some(node) = &mut self.node else { return 0 };
        let room = self.shared.config.max_concurrent.max(1);
        let (cluster, me) = (node.cluster.clone(), node.me);
        node.claiming = true;
        let adopted = claim(
            &*cluster,
            &*self.shared.store,
            &self.shared.workflows,
            &self.shared.stats,
            me,
            room,
        )
        .await;
        let count = adopted.as_ref().map_or(0, Vec::len);
        self.adopt(adopted, room);
        count
    }

    /// Takes the runs a claim leased to this node into the scheduler.
    pub(super) fn adopt(&mut self, adopted: Result<Vec<(StoredRun, Lease)>, StoreError>, room: usize) {
        let now = self.shared.clock.now();
        let Some(node) = &mut self.node else { return };
        node.claiming = false;
        let runs = match adopted {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim runs");
                return;
            }
        };
        // A full claim may have left more behind.
        node.wanted |= runs.len() >= room;
        for (stored, lease) in runs {
            let Some(node) = &mut self.node else { return };
            if lease.tenant != stored.record.tenant || self.runs.contains_key(&lease.run) {
                continue;
            }
            node.leases.insert(lease.run, lease.epoch);
            let (run, fx) = ActiveRun::restore(stored, now);
            self.insert(run);
            self.commit_as(lease.run, fx, None, true);
        }
    }

    /// Makes sure this node holds `run`, if it is unfinished: reads it
    /// back if parked, and in a cluster takes it over from whoever holds
    /// it. A finished run stays where it is (the caller finds it absent).
    pub(super) async fn bring_here(&mut self, run: RunId, now: crate::model::Millis) -> Result<(), EngineError> {
        self.unpark(run).await;
        if self.runs.contains_key(&run) {
            return Ok(());
        }
        if let Some(stored) = self.take_over(run).await?
            && !stored.record.status.is_final()
        {
            let (active, fx) = ActiveRun::restore(stored, now);
            self.insert(active);
            self.commit_as(run, fx, None, true);
        }
        Ok(())
    }

    /// Takes a run this node does not hold over from whoever holds it (to
    /// cancel or retry it here), and returns it as stored now. `None`
    /// without a cluster.
    pub(super) async fn take_over(&mut self, id: RunId) -> Result<Option<StoredRun>, EngineError> {
        let Some(node) = &self.node else { return Ok(None) };
        let (cluster, me) = (node.cluster.clone(), node.me);
        let record = self.shared.store.run(id).await?.ok_or(EngineError::UnknownRun(id))?;
        let epoch = cluster.take_over(me, &record.tenant, id).await?;
        // Read after the take-over: its holder can commit nothing more.
        let record = self.shared.store.run(id).await?.ok_or(EngineError::UnknownRun(id))?;
        let stored = read_stored(&*self.shared.store, &self.shared.workflows, record).await?;
        if let Some(node) = &mut self.node {
            node.leases.insert(id, epoch);
        }
        Ok(Some(stored))
    }

    /// Lets go of a run that moved to another node: whatever it was doing
    /// here is abandoned, and nothing more is committed for it.
    pub(super) fn lose(&mut self, run: RunId) {
        let running: Vec<_> = self.tasks.keys().filter(|(r, _)| *r == run).copied().collect();
        for task in running {
            if let Some(handle) = self.tasks.remove(&task) {
                handle.abort();
                self.attempt_ended(task.0, task.1, std::time::Duration::ZERO);
            }
        }
        self.remove(run);
    }

    /// What the database told this node.
    pub(super) fn notice(&mut self, notice: Notice) {
        let Some(node) = &mut self.node else { return };
        match notice {
            Notice::Work | Notice::Missed => {
                node.wanted = true;
                self.shed();
            }
            Notice::Moved { run, by } => {
                if by != node.me && node.leases.contains_key(&run) {
                    tracing::info!(run = %run, "a run was taken over by another node");
                    self.lose(run);
                }
            }
            Notice::Rejoined(me) => {
                tracing::warn!(
                    runs = node.leases.len(),
                    "this node was declared dead: its runs belong to others now"
                );
                node.me = me;
                node.wanted = true;
                // The permits were the old incarnation's, void now: the
                // attempts lost below give none back.
                self.queue.forget_permits();
                let held: Vec<RunId> = node.leases.keys().chain(self.parked.iter()).copied().collect();
                for run in held {
                    self.lose(run);
                }
            }
            Notice::Advanced(_) | Notice::Names => {}
        }
    }

    /// A commit of `run` was fenced: the run is someone else's now.
    pub(super) fn fenced(&mut self, run: RunId) {
        self.shared.stats.fenced_commits.fetch_add(1, Relaxed);
        tracing::warn!(run = %run, "a commit was refused: the run moved to another node; letting it go");
        self.lose(run);
    }

    /// On drain: stops claiming, and hands back at once every run with
    /// nothing running or on its way to the store, so that other nodes
    /// carry on with them while this one finishes its attempts.
    pub(super) fn hand_back_idle(&mut self) {
        let Some(node) = &self.node else { return };
        node.load.draining.store(true, Relaxed);
        let idle: Vec<(String, RunId)> = self
            .runs
            .values()
            .filter(|run| run.running == 0 && run.commits == 0)
            .map(|run| (run.record.tenant.clone(), run.record.id))
            .collect();
        let parked: Vec<RunId> = self.parked.iter().copied().collect();
        let (cluster, me) = (node.cluster.clone(), node.me);
        let store = self.shared.store.clone();
        for run in idle.iter().map(|(_, run)| *run).chain(parked.iter().copied()) {
            self.lose(run);
        }
        tokio::spawn(async move {
            if let Err(e) = cluster.drain(me).await {
                tracing::warn!(error = %e, "cannot mark this node as draining");
            }
            let mut runs = idle;
            for run in parked {
                // A parked run's tenant is in the store only.
                if let Ok(Some(record)) = store.run(run).await {
                    runs.push((record.tenant, run));
                }
            }
            match cluster.release(me, &runs).await {
                Ok(()) => tracing::info!(runs = runs.len(), "draining: handed back the runs with nothing running"),
                Err(e) => tracing::warn!(error = %e, "cannot hand runs back; they go when this node leaves"),
            }
        });
    }

    /// Hands back every run this node holds, for others to claim.
    pub(super) async fn leave(&mut self) {
        let Some(node) = &self.node else { return };
        if let Err(e) = node.cluster.leave(node.me).await {
            tracing::warn!(error = %e, "cannot hand the runs back; other nodes take them once this one is declared dead");
        }
    }

    /// Keeps the load the heartbeat reports current.
    pub(super) fn publish_load(&self) {
        if let Some(node) = &self.node {
            node.load.running.store(self.tasks.len() as u32, Relaxed);
        }
    }
}

/// Claims up to `room` runs and reads each one back.
async fn claim(
    cluster: &dyn Cluster,
    store: &dyn Store,
    workflows: &Workflows,
    stats: &EngineStats,
    me: Incarnation,
    room: usize,
) -> Result<Vec<(StoredRun, Lease)>, StoreError> {
    let started = Instant::now();
    let claimed = cluster.claim(me, room).await?;
    stats.claim_queries.fetch_add(1, Relaxed);
    stats
        .claim_micros
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    stats.claimed_runs.fetch_add(claimed.leases.len() as u64, Relaxed);
    stats.reassigned_runs.fetch_add(claimed.reassigned as u64, Relaxed);
    if claimed.reassigned > 0 {
        tracing::info!(runs = claimed.reassigned, "took over runs of a node that stopped");
    }
    let mut adopted = Vec::with_capacity(claimed.leases.len());
    for lease in claimed.leases {
        // Read until it works: the lease is this node's now, and a run it
        // holds but never loads would wait until the node stops.
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            let read = async {
                let record = store
                    .run(lease.run)
                    .await?
                    .ok_or_else(|| StoreError::Storage(format!("run {} vanished", lease.run)))?;
                read_stored(store, workflows, record).await.map_err(|e| match e {
                    EngineError::Store(e) => e,
                    other => StoreError::Storage(other.to_string()),
                })
            };
            match read.await {
                Ok(stored) => {
                    adopted.push((stored, lease));
                    break;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(run = %lease.run, error = %e, "cannot read a claimed run yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(run = %lease.run, error = %e, "cannot read a claimed run; it is left unfinished");
                    break;
                }
            }
        }
    }
    Ok(adopted)
}

/// Reads the rest of a stored run: its definition, units and event count.
pub(super) async fn read_stored(
    store: &dyn Store,
    workflows: &Workflows,
    record: RunRecord,
) -> Result<StoredRun, EngineError> {
    let (tenant, id) = (record.tenant.as_str(), record.id);
    Ok(StoredRun {
        workflow: workflows.load(store, tenant, &record.workflow_digest).await?,
        units: store.units(tenant, id).await?,
        next_event: store.next_event_seq(tenant, id).await?,
        record,
    })
}
