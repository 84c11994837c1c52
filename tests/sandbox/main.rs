//! The sandbox against real components built from `example-tasks/`: every
//! limit holds, nothing leaks out, bad components are refused, and the
//! host keeps serving after each misbehaving guest.

#[path = "../common/mod.rs"]
mod common;

mod compiled;
mod fuel;
mod http;
mod isolation;
mod kv;
mod limits;
mod load;
mod order_tasks;
