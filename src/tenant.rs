//! Tenants, their API keys and their quotas.
//!
//! A tenant's id is its name (a short slug chosen by the admin), and it is
//! the string every other table is keyed by, so a tenant's modules,
//! workflows, runs and kv can only be reached through it.
//!
//! An API key is `wk_<key id>_<secret>`. Only the SHA-256 of the secret is
//! stored, under the key id; a key is shown once, when it is made, and a
//! lookup compares hashes in constant time.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::Millis;

/// What one tenant may use. Every field has a server-wide default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Runs that may be unfinished at once.
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub max_concurrent_runs: u32,
    /// Attempts that may run at once, across every node of a cluster; 0
    /// for no cap but each node's slots (less those it keeps for other
    /// tenants).
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub max_concurrent_attempts: u32,
    /// The most fuel one attempt may burn.
    pub max_fuel: u64,
    /// The most linear memory one attempt may use, in bytes.
    pub max_memory: u64,
    /// The largest module upload, in bytes.
    pub max_module_size: u64,
    /// Module versions the tenant may store.
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub max_modules: u32,
    /// Runs the tenant may start per second (the burst is one second's
    /// worth, at least one).
    pub start_rate: f64,
    /// Days a finished run is kept (with its steps, attempts, logs,
    /// history and idempotency keys) before it is deleted.
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub retention_days: u32,
    /// Where the tenant's tasks may send HTTP requests: URL patterns
    /// (`https://api.example.com`, `https://*.example.org:8443/v1`) and
    /// private addresses or ranges (`10.0.0.0/8`) they may resolve to. A
    /// step's `http.allow` must lie inside it. Empty (the default): nowhere.
    pub http_allow: Vec<String>,
    /// The most HTTP requests one attempt may make.
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub max_http_requests: u32,
    /// The most request body bytes one attempt may send.
    pub max_http_sent: u64,
    /// The most response body bytes one attempt may receive.
    pub max_http_received: u64,
    /// Whether the tenant's payloads (run inputs and outputs, step
    /// outputs, error messages, logs, kv values) are stored sealed under
    /// a data key of its own, itself sealed by the server's master key.
    /// Values written before it was turned on stay as they were.
    pub encrypt_payloads: bool,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_concurrent_runs: 100,
            max_concurrent_attempts: 0,
            max_fuel: 10_000_000_000,
            max_memory: 256 << 20,
            max_module_size: 32 << 20,
            max_modules: 200,
            start_rate: 100.0,
            retention_days: 30,
            http_allow: Vec::new(),
            max_http_requests: 100,
            max_http_sent: 10 << 20,
            max_http_received: 32 << 20,
            encrypt_payloads: false,
        }
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantRecord {
    /// The tenant's id, which is its name.
    pub id: String,
    /// What it may use.
    pub quotas: Quotas,
    /// A disabled tenant's keys are refused with 403.
    pub disabled: bool,
    /// When it was made (ms since the epoch).
    #[schema(value_type = u64)]
    pub created_at: Millis,
}

/// An API key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The public part of the key, its id.
    pub key_id: String,
    /// The tenant it acts as.
    pub tenant: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was made.
    pub created_at: Millis,
    /// What it may do; keys made before roles existed are admins.
    #[serde(default)]
    pub role: crate::roles::Role,
}

/// A key just made: the only time its full text exists.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// What to store.
    pub record: KeyRecord,
    /// The bearer token to hand to the user.
    pub token: String,
}

const KEY_PREFIX: &str = "wk_";

/// Makes a new random key for `tenant` with `role`.
pub fn new_key(tenant: &str, role: crate::roles::Role, now: Millis) -> NewKey {
    let key_id = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 24]>());
    NewKey {
        token: format!("{KEY_PREFIX}{key_id}_{secret}"),
        record: KeyRecord {
            key_id,
            tenant: tenant.into(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_at: now,
            role,
        },
    }
}

/// Splits a bearer token into key id and secret, if it has the shape of
/// an API key.
pub fn split_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Whether `secret` is the one `record` was made with.
pub fn key_matches(record: &KeyRecord, secret: &str) -> bool {
    constant_time_eq(
        sha256_hex(secret.as_bytes()).as_bytes(),
        record.secret_sha256.as_bytes(),
    )
}

/// Whether `given` is the admin token `expected`, compared by hash in
/// constant time so neither length nor prefix leaks.
pub fn admin_matches(expected: &str, given: &str) -> bool {
    constant_time_eq(
        sha256_hex(expected.as_bytes()).as_bytes(),
        sha256_hex(given.as_bytes()).as_bytes(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is not a valid name: {reason}")]
pub struct NameError {
    /// What was being named.
    pub what: &'static str,
    /// The name given (escaped when shown).
    pub name: String,
    /// Why it is refused.
    pub reason: &'static str,
}

/// The rule [`check_name`] enforces, as the OpenAPI document declares it.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// Checks the name of a tenant, module or workflow: 1 to 64 ASCII letters,
/// digits, `.`, `_` or `-`, starting with a letter or digit. This keeps
/// names safe in paths, URLs, logs and terminals.
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            what,
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > 64 {
        return fail("it is longer than 64 characters");
    }
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return fail("it must start with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return fail("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

/// Per-tenant token buckets for the start rate.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

impl RateLimiter {
    /// Takes one start from `tenant`'s bucket, refilled at `rate` per
    /// second. `Err` carries how long until one is free, in ms.
    pub fn take(&self, tenant: &str, rate: f64, now: Millis) -> Result<(), u64> {
        if rate <= 0.0 {
            return Err(u64::MAX);
        }
        let burst = rate.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry(tenant.to_string())
            .or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_sub(bucket.at) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate * 1000.0).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_name_and_the_declared_pattern_agree() {
        let schema = serde_json::json!({"type": "string", "pattern": NAME_PATTERN});
        let pattern = jsonschema::validator_for(&schema).unwrap();
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        for name in [
            "a",
            "A9",
            "0",
            "order",
            "my-flow.v2_x",
            &long,
            &too_long,
            "",
            "-a",
            ".a",
            "_a",
            "a b",
            "a/b",
            "a\nb",
            "é",
            "a:b",
            "a%2F",
            "..",
            "a..b",
        ] {
            assert_eq!(
                check_name("module", name).is_ok(),
                pattern.is_valid(&serde_json::json!(name)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_key_matches_only_its_own_secret() {
        let key = new_key("acme", crate::roles::Role::Admin, 1);
        let (id, secret) = split_key(&key.token).unwrap();
        assert_eq!(id, key.record.key_id);
        assert!(key_matches(&key.record, secret));
        assert!(!key_matches(&key.record, "nope"));
        assert!(!key.record.secret_sha256.contains(secret));
        assert_eq!(split_key("Bearer x"), None);
        assert_eq!(split_key("wk__x"), None);
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in ["", "../etc", "a/b", "a\nb", "a b", ".hidden", "é", &"x".repeat(65)] {
            assert!(check_name("module", bad).is_err(), "{bad:?}");
        }
        for good in ["order", "v1.2", "a-b_c", "0x"] {
            assert!(check_name("module", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn the_rate_limiter_refills_over_time() {
        let limiter = RateLimiter::default();
        assert!(limiter.take("a", 2.0, 0).is_ok());
        assert!(limiter.take("a", 2.0, 0).is_ok());
        assert_eq!(limiter.take("a", 2.0, 0), Err(500));
        assert!(limiter.take("b", 2.0, 0).is_ok(), "buckets are per tenant");
        assert!(limiter.take("a", 2.0, 500).is_ok());
    }
}
