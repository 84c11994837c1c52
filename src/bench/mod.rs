//! `weft bench`: the figures that matter to a user of one small machine —
//! sandbox overhead, durable workflows per second, HTTP throughput and
//! latency, memory per pending and per sleeping run, recovery time, a
//! signal's delay, a light tenant's
//! latency while another floods the node (on both stores), the workflow
//! and HTTP figures again on PostgreSQL, and a cluster of nodes on one
//! PostgreSQL (throughput by node count, failover, a new node's start) —
//! each printed next to a baseline measured in the same run, with the
//! ratio and the target.
//!
//! Every figure comes from the real thing: the example `hello` component
//! in the real sandbox, a real redb file in the bench directory, a real
//! PostgreSQL server (given with `--store`, or started by the bench), and
//! the real `weft serve` binary on loopback (killed with SIGKILL to
//! measure recovery). `--quick` runs smaller loads for a first look, with
//! the same keys in the `--json` summary.

mod backlog;
mod cluster;
mod cluster_fairness;
mod compiled;
mod engine;
mod fairness;
mod http;
mod machine;
mod pg_server;
mod postgres;
mod report;
mod sandbox;
mod server;
mod service;
mod waits;

use std::path::PathBuf;

pub use machine::Machine;
pub use report::Report;

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Smaller loads: every key in under a minute.
    pub quick: bool,
    /// The directory of the example tasks' components (`hello.wasm`,
    /// `misbehave.wasm`).
    pub modules: PathBuf,
    /// Where the stores are created (its disk is the one measured).
    pub dir: PathBuf,
    /// The `weft` binary to run as the server.
    pub weft: PathBuf,
    /// The sections to run, in order.
    pub sections: Vec<Section>,
    /// The PostgreSQL server of the postgres, fairness and cluster sections, as a
    /// `postgres://` URL (the bench works in databases of its own there);
    /// `None` starts a throwaway server.
    pub store: Option<String>,
    /// A Python task's component for the compiled section (its `hello`).
    pub python_module: Option<PathBuf>,
}

impl Options {
    /// The bytes of an example task's component, e.g. `module("hello")`.
    fn module(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context as _;
        let path = self.modules.join(format!("{name}.wasm"));
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// A fresh directory for a store, removed when dropped.
    fn scratch(&self) -> anyhow::Result<tempfile::TempDir> {
        use anyhow::Context as _;
        tempfile::tempdir_in(&self.dir)
            .with_context(|| format!("cannot create a directory to bench in under {}", self.dir.display()))
    }
}

/// The context of a bench's own attempts (tenant and workflow `bench`,
/// run 1), as step `step`.
fn context(step: &str, attempt: u32) -> crate::sandbox::AttemptContext {
    crate::sandbox::AttemptContext {
        tenant: "bench".into(),
        workflow: "bench".into(),
        run_id: "1".into(),
        step_id: step.into(),
        attempt,
        item_index: None,
    }
}

/// The middle of `samples` (the upper one of an even count).
fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The 1-step workflow the engine, service, backlog and fairness sections
/// run.
const ONE_STEP: &str = "name: one\nsteps:\n  - {id: greet, task: hello, input: {name: bench}}\n";

/// A part of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Per-attempt cost of the sandbox against bare wasmtime.
    Sandbox,
    /// A module's first attempt after a restart, with the compiled-module
    /// cache and without.
    Compiled,
    /// One outbound HTTP call from a task against the same call from the
    /// host (reqwest).
    Http,
    /// Durable workflows per second in process against bare redb commits.
    Engine,
    /// Runs per second and latency over HTTP at 1, 16 and 128 clients.
    Service,
    /// Resident memory per pending run, with a large backlog queued.
    Memory,
    /// Time from process start to every interrupted run resumed.
    Recovery,
    /// Resident memory per sleeping run, and a signal's delay from its
    /// answer to its step's completion on the run's event stream.
    Waits,
    /// A light tenant's 1-step run while another tenant floods the node,
    /// against the same run idle, on redb and on PostgreSQL.
    Fairness,
    /// Durable workflows per second and HTTP latency on PostgreSQL,
    /// against bare INSERT transactions and `GET /healthz`.
    Postgres,
    /// Durable workflows per second with 1, 2 and 3 nodes on one
    /// PostgreSQL, failover after a SIGKILL, and a new node's first claim.
    Cluster,
}

impl Section {
    /// Every section, in the order they run.
    pub const ALL: [Section; 11] = [
        Section::Sandbox,
        Section::Compiled,
        Section::Http,
        Section::Engine,
        Section::Service,
        Section::Memory,
        Section::Recovery,
        Section::Waits,
        Section::Fairness,
        Section::Postgres,
        Section::Cluster,
    ];
}

/// Runs the chosen sections, printing each figure as it is measured, and
/// returns the summary.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new(Machine::describe(&options.dir), options.quick);
    report.header();
    for section in &options.sections {
        match section {
            Section::Sandbox => sandbox::measure(options, &mut report).await?,
            Section::Compiled => compiled::measure(options, &mut report).await?,
            Section::Http => http::measure(options, &mut report).await?,
            Section::Engine => engine::measure(options, &mut report).await?,
            Section::Service => service::measure(options, &mut report).await?,
            Section::Memory => backlog::memory(options, &mut report).await?,
            Section::Recovery => backlog::recovery(options, &mut report).await?,
            Section::Waits => waits::measure(options, &mut report).await?,
            Section::Fairness => fairness::measure(options, &mut report).await?,
            Section::Postgres => postgres::measure(options, &mut report).await?,
            Section::Cluster => cluster::measure(options, &mut report).await?,
        }
    }
    Ok(report)
}
