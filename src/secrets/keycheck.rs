//! The keycheck: a known constant sealed by the store's master key and
//! kept in the store, so that a server given another key refuses to
//! start, naming both key ids and where its key came from, instead of
//! starting and failing every step that reads a secret.
//!
//! It is recorded with the store's first secret, not at start: a store
//! that never held a secret moves between servers and backends (`weft
//! migrate`) without anyone having to carry a key along.

use super::SecretsError;
use super::key::{KeyOrigin, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};
use super::seal::Sealed;
use crate::store::{Keycheck, Store};

/// Where `weft admin rotate-key` keeps the embedded store's new key
/// until the store is sealed with it.
pub const NEW_KEY_FILE: &str = "master.key.new";

/// What the keycheck seals.
const CONSTANT: &[u8] = b"weft keycheck v1";
/// Its associated data: no secret's (those hold a tenant and a NUL).
const AAD: &[u8] = b"weft-keycheck";

/// Checks `key` against the store's keycheck, if it has one: at start.
/// A store gets its keycheck with its first secret, so a store that never
/// held one moves between servers (and backends) without a key.
pub async fn verify_existing(store: &dyn Store, key: &MasterKey) -> Result<(), SecretsError> {
    match store.keycheck().await? {
        Some(stored) => check(key, stored),
        None => Ok(()),
    }
}

/// Checks `key` against the store's keycheck, recording one sealed by
/// `key` when the store has none yet: before a secret is sealed.
pub async fn verify(store: &dyn Store, key: &MasterKey) -> Result<(), SecretsError> {
    let stored = store.put_keycheck(sealed(key)).await?;
    check(key, stored)
}

/// A keycheck sealed by `key`.
pub fn sealed(key: &MasterKey) -> Keycheck {
    let mine = key.seal(AAD, CONSTANT);
    Keycheck {
        key_id: mine.key_id,
        nonce: mine.nonce,
        ciphertext: mine.ciphertext,
    }
}

fn check(key: &MasterKey, stored: Keycheck) -> Result<(), SecretsError> {
    let sealed = Sealed {
        key_id: stored.key_id.clone(),
        nonce: stored.nonce,
        ciphertext: stored.ciphertext,
    };
    match key.open(AAD, &sealed) {
        Ok(constant) if constant == CONSTANT => Ok(()),
        _ => Err(wrong_key(key.origin(), &stored.key_id, key.key_id())),
    }
}

/// Checks that a store without a master key here holds no keycheck: its
/// secrets would be unreadable.
pub async fn require_none(store: &dyn Store) -> Result<(), SecretsError> {
    match store.keycheck().await? {
        None => Ok(()),
        Some(check) => Err(SecretsError::WrongKey(format!(
            "this store's secrets are sealed by master key {}, and no master key is given: set {MASTER_KEY_ENV} \
             (or put the key in DATA/{MASTER_KEY_FILE}) on every node",
            check.key_id
        ))),
    }
}

fn wrong_key(origin: &KeyOrigin, store_key: &str, given_key: &str) -> SecretsError {
    let hint = match origin {
        KeyOrigin::Generated(path) => format!(
            "; it was made just now, so the key that sealed them is elsewhere: give it with {MASTER_KEY_ENV}, or \
             put it in {} in place of the new one",
            path.display()
        ),
        KeyOrigin::File(path) if path.with_file_name(NEW_KEY_FILE).exists() => format!(
            "; {} exists: a key rotation may have stopped before it put the new key in place; if so, move that \
             file over {}",
            path.with_file_name(NEW_KEY_FILE).display(),
            path.display()
        ),
        _ => String::new(),
    };
    SecretsError::WrongKey(format!(
        "{origin} does not open this store's secrets (store key id {store_key}, given key id {given_key}){hint}"
    ))
}
