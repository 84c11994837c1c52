//! The engine's clock: wall-clock milliseconds, advanced by tokio's
//! monotonic time. Under `tokio::time::pause()` it stands still until the
//! runtime advances it, so tests of retries and timers never sleep.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Millis;

/// Tells the time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// Wall time at creation plus tokio time elapsed since.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Millis,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the system's wall-clock time.
    pub fn system() -> TokioClock {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        TokioClock::starting_at(base)
    }

    /// Starts at `base` (for tests that need a known time).
    pub fn starting_at(base: Millis) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Millis {
        self.base + self.start.elapsed().as_millis() as u64
    }
}
