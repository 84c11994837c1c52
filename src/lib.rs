//! weft: a durable workflow engine that runs every task as a sandboxed
//! WebAssembly component.
//!
//! Modules, and the path of a run through them:
//!
//! - [`api`]: the HTTP API (`weft serve`): auth, tenants' resources, live
//!   events, metrics, the OpenAPI document, HTTPS with its reload;
//! - [`tenant`]: tenants, API keys (stored hashed) and quotas;
//! - [`roles`]: what each key's role may do, per route;
//! - [`secrets`]: tenants' secrets, sealed by the master key before they
//!   reach the store, revealed to the attempts whose steps name them;
//! - [`spec`]: workflow documents parsed, checked and compiled once;
//! - [`engine`]: the scheduler: queues units, runs attempts, retries,
//!   compensates, recovers after a crash;
//! - [`triggers`]: what starts runs besides a request: schedules and
//!   inbound hooks;
//! - [`notify`]: signed messages to other systems when runs end or
//!   approvals escalate, from an outbox written with the event;
//! - [`store`]: every state change, committed durably in groups, behind
//!   one seam with two backends: embedded redb and PostgreSQL;
//! - [`sandbox`]: loads task components (validated, compiled once, cached
//!   by digest) and runs one attempt in a fresh, capped store, returning a
//!   classified [`Outcome`];
//! - [`model`] and [`digest`]: the records and ids all of them share;
//! - [`bench`]: the benchmark suite (`weft bench`), figures against
//!   baselines measured in the same run;
//! - `cli`: the `weft` command; `main` only calls it.

pub mod api;
pub mod bench;
pub mod cli;
pub mod digest;
pub mod engine;
pub mod model;
pub mod notify;
pub mod roles;
pub mod sandbox;
pub mod secrets;
pub mod spec;
pub mod store;
pub mod tenant;
pub mod triggers;

pub use digest::Digest;
pub use sandbox::{Attempt, AttemptContext, AttemptReport, Limits, Module, Outcome, Sandbox, SandboxConfig};
