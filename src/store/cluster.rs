//! Many nodes on one store (docs/architecture.md, "The cluster"): the
//! registry of nodes and their heartbeats, leases on runs with the claims
//! that hand them out, and the notices nodes get from the database.
//!
//! A backend that can be shared by several processes (PostgreSQL) offers a
//! [`Cluster`] through [`super::Store::cluster`]; one that a single process
//! owns (redb) offers none, and its one node owns every run.
//!
//! A node leases whole runs. A lease lives as long as its node's
//! heartbeat, and carries an epoch that every claim of the run increases;
//! a batch that holds a lease ([`super::Change::Hold`]) commits only while
//! the run is still leased to that node at that epoch, checked in the same
//! transaction, else it fails with [`StoreError::Fenced`].

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::broadcast;

use super::StoreError;
use crate::model::{Millis, RunId};

/// One process's membership of the cluster: a new one on every start and
/// every time the node is declared dead and comes back. Leases name it.
pub type Incarnation = i64;

/// What a node says about itself when it joins.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The operator's name for the node (`--node-id`).
    pub node_id: String,
    /// Where its API listens, as others should reach it.
    pub address: String,
    /// The weft version it runs.
    pub version: String,
    /// Attempts it runs at once.
    pub capacity: u32,
}

/// How often a node heartbeats, and how long a silent node lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between two heartbeats.
    pub heartbeat: Duration,
    /// A node whose last heartbeat is older is declared dead and its runs
    /// are claimed by others.
    pub timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(250),
            timeout: Duration::from_millis(1500),
        }
    }
}

/// What a node reports with each heartbeat; the engine keeps it current.
#[derive(Debug, Default)]
pub struct Load {
    /// Attempts running now.
    pub running: AtomicU32,
    /// Runs claimed since the node started.
    pub claims: AtomicU64,
    /// Set when the node drains: it claims nothing more.
    pub draining: AtomicBool,
    /// When its last heartbeat succeeded (ms since the epoch).
    pub heartbeat_at: AtomicU64,
    /// Other nodes this node declared dead.
    pub declared_dead: AtomicU64,
    /// Attempt slots free on the other live nodes, as of the last
    /// heartbeat: while there are some, a full node leaves new runs, and
    /// sheds waiting ones, for them to claim.
    pub free_elsewhere: AtomicU32,
}

/// A node's state in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Heartbeating and taking work.
    Alive,
    /// Shutting down: finishing its attempts, claiming nothing.
    Draining,
    /// Stopped heartbeating; its runs went to others.
    Dead,
    /// Shut down and handed its runs back.
    Left,
}

impl NodeState {
    /// The state stored as a number.
    pub fn from_code(code: i16) -> NodeState {
        match code {
            0 => NodeState::Alive,
            1 => NodeState::Draining,
            2 => NodeState::Dead,
            _ => NodeState::Left,
        }
    }
}

/// A node as the registry shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeRecord {
    /// The operator's name for it.
    pub node_id: String,
    /// This process's membership (a node that restarts gets a new one).
    pub incarnation: i64,
    /// Where its API listens.
    pub address: String,
    /// The weft version it runs.
    pub version: String,
    /// Attempts it runs at once.
    pub capacity: u32,
    /// Attempts it was running at its last heartbeat.
    pub running: u32,
    /// Its state.
    pub state: NodeState,
    /// When it joined (ms since the epoch).
    pub started_at: Millis,
    /// Its last heartbeat (ms since the epoch, the database's clock).
    pub heartbeat_at: Millis,
    /// How long ago its last heartbeat was, by the database's clock.
    pub heartbeat_age_ms: u64,
    /// Runs it claimed per second, over its last ten seconds.
    pub claims_per_s: f64,
    /// Runs it claimed since it joined.
    pub claims: u64,
}

/// A run leased to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run's tenant.
    pub tenant: String,
    /// The run.
    pub run: RunId,
    /// The lease's epoch: what the node's commits for the run must carry.
    pub epoch: u64,
}

/// What one claim took.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// The runs now leased to the claiming node.
    pub leases: Vec<Lease>,
    /// How many of them were leased to a dead node before.
    pub reassigned: usize,
}

/// Something the database told every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Runs may be waiting for a node (one left, one was declared dead,
    /// one was started unleased): claim, if there is room.
    Work,
    /// Runs advanced, each to (at least) this event.
    Advanced(Vec<(RunId, u32)>),
    /// Tenants, keys, or what a workflow or module name means changed:
    /// forget cached lookups.
    Names,
    /// `by` took a run over (to cancel or retry it): anyone else holding
    /// it lets go.
    Moved {
        /// The run.
        run: RunId,
        /// The node that holds it now.
        by: Incarnation,
    },
    /// This node had been declared dead (it was paused or cut off) and has
    /// joined again under a new incarnation: every run it held is someone
    /// else's now.
    Rejoined(Incarnation),
    /// Notices may have been missed (the listening connection dropped):
    /// whoever waits on one should look at the store again.
    Missed,
}

/// Coordination of many nodes through the shared store.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Registers this process as a node, and heartbeats for it (with
    /// `load`) until [`Cluster::leave`]. Waits, up to the timeout, for an
    /// earlier process with the same node id to be gone; refuses the id
    /// while that one still heartbeats.
    async fn join(&self, info: NodeInfo, timing: Timing, load: Arc<Load>) -> Result<Incarnation, StoreError>;

    /// The database's notices, from the moment of the call.
    fn notices(&self) -> broadcast::Receiver<Notice>;

    /// Leases up to `limit` unfinished runs that no live node holds, fairly
    /// across tenants (round robin, priority within a tenant).
    async fn claim(&self, me: Incarnation, limit: usize) -> Result<Claimed, StoreError>;

    /// Leases one run to `me`, whoever held it, and tells its holder.
    /// Returns the new epoch.
    async fn take_over(&self, me: Incarnation, tenant: &str, run: RunId) -> Result<u64, StoreError>;

    /// Hands every run `me` holds back (unleased, for others to claim) and
    /// marks the node as left; heartbeats stop.
    async fn leave(&self, me: Incarnation) -> Result<(), StoreError>;

    /// Hands `runs` back, unleased, for other nodes to claim (a draining
    /// node's runs that have nothing running).
    async fn release(&self, me: Incarnation, runs: &[(String, RunId)]) -> Result<(), StoreError>;

    /// Marks `me` as draining: it claims nothing more.
    async fn drain(&self, me: Incarnation) -> Result<(), StoreError>;

    /// Every node the registry knows, live or recently gone.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// A block of run ids no other node will use.
    async fn reserve_run_ids(&self) -> Result<Range<u64>, StoreError>;

    /// Takes up to `wanted` more permits to run attempts of `tenant`, as
    /// many as keep the permits the live nodes hold within `cap` (the
    /// tenant's `max_concurrent_attempts`); returns how many. A node runs
    /// an attempt of a capped tenant only with a permit, so the cap holds
    /// across the cluster.
    async fn take_permits(&self, me: Incarnation, tenant: &str, wanted: u32, cap: u32) -> Result<u32, StoreError>;

    /// Gives back `count` permits of `tenant` (attempts that ended). One
    /// not given back (the call failed) only leaves the cap under-used
    /// until the node leaves or is declared dead.
    async fn give_back_permits(&self, me: Incarnation, tenant: &str, count: u32) -> Result<(), StoreError>;
}
