//! weft: a durable workflow engine that runs every task as a sandboxed
//! WebAssembly component.
//!
//! Modules, and the path of one attempt through them:
//!
//! - [`digest`]: content digests, the identity of a module's bytes;
//! - [`sandbox`]: loads task components (validated, compiled once, cached
//!   by digest) and runs one attempt in a fresh, capped store, returning a
//!   classified [`Outcome`];
//! - `cli`: the `weft` command (`weft task run`, ...); `main` only calls it.

pub mod api;
pub mod cli;
pub mod db;
pub mod digest;
pub mod engine;
pub mod model;
pub mod sandbox;
pub mod spec;
pub mod tenant;

pub use digest::Digest;
pub use sandbox::{Attempt, AttemptContext, AttemptReport, Limits, Module, Outcome, Sandbox, SandboxConfig};
