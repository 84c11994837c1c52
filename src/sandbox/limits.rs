//! Per-attempt limits and their defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one attempt may consume. Every field is enforced by the sandbox;
/// exceeding one ends the attempt with the matching outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel: roughly one unit per WebAssembly instruction executed.
    /// Exhausting it ends the attempt `out_of_fuel`.
    pub fuel: u64,
    /// The most linear memory (bytes) the task may grow to. A denied
    /// growth that ends the attempt makes it `memory_limit`.
    pub memory: u64,
    /// Wall-clock time for the attempt, including instantiation; past it
    /// the attempt ends `timeout`.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// The largest output (bytes of JSON text) the task may return; more
    /// is `invalid_output`.
    pub max_output: u64,
    /// The most bytes of stdout, stderr and log lines kept; the rest is
    /// dropped and the logs are marked truncated.
    pub max_log: u64,
}

/// A billion units: from tens of milliseconds of CPU for a tight loop to
/// about a second for code that calls the host often.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Enough for ordinary tasks written in Rust.
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// The default wall-clock budget of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default output cap.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 20;
/// The default cap on captured logs.
pub const DEFAULT_MAX_LOG: u64 = 256 << 10;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory: DEFAULT_MEMORY,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            max_log: DEFAULT_MAX_LOG,
        }
    }
}

/// Caps on a task's use of kv within one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// The longest key, in bytes.
    pub max_key: u32,
    /// The largest value, in bytes.
    pub max_value: u32,
    /// The most `set`/`delete` calls one attempt may make.
    pub max_writes: u32,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key: 512,
            max_value: 1 << 20,
            max_writes: 1_000,
        }
    }
}

/// Parses a byte size such as `64MiB`, `512 KiB` or `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{text:?} is not a size (e.g. 64MiB, 512KiB, 1048576)"))
}

/// Parses a duration such as `2s`, `250ms` or `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration (e.g. 2s, 250ms, 1m 30s): {e}"))
}

/// Durations in serialised limits are written the way people write them.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_people_write() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("lots").unwrap_err().contains("\"lots\" is not a size"));
    }

    #[test]
    fn parses_durations_people_write() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
    }
}
