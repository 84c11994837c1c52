//! The HTTP API through the real `weft serve` binary on 127.0.0.1:0, with
//! a temporary data directory and components built from `example-tasks/`.

// The Python guest harness brings its own copy of `outside.rs`.
#![allow(clippy::duplicate_mod)]

#[path = "../common/backend.rs"]
mod backend;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/python_guest.rs"]
mod python_guest;

mod audit;
mod bad_input;
mod browser;
mod client;
mod conformance;
mod console;
mod docs;
mod flow;
mod hooks;
mod http;
mod isolation;
mod migrate;
mod notifications;
mod outage;
mod python;
mod restart;
mod roles;
mod schedules;
mod server;
mod waits;
