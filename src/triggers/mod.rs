//! What starts runs besides a caller's request: schedules (cron, in a
//! time zone), fired by every node's scheduler loop with exactly one run
//! per instant (docs/architecture.md, "Schedules, inbound hooks and
//! notifications").

pub mod schedule;
pub mod scheduler;
