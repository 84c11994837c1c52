//! Sealing: authenticated encryption of small values under one 32-byte
//! key, XChaCha20-Poly1305 with a random 24-byte nonce per value.
//!
//! A [`Sealer`] knows nothing of what it seals or where the result goes:
//! the master key seals secrets with it today, and the same type can seal
//! per-payload data keys (envelope encryption) later. The associated data
//! binds a sealed value to where it belongs; opening it with other
//! associated data fails, so a sealed value copied to another record does
//! not open there.
//!
//! The nonce is random, not a counter: 24 bytes make a collision
//! negligible however many values are sealed, and no state has to be
//! kept or shared between nodes.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Bytes in a nonce.
pub const NONCE_LEN: usize = 24;

/// A value sealed by a [`Sealer`], with what is needed to open it again.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it ([`Sealer::key_id`]).
    pub key_id: String,
    /// The nonce it was sealed with.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Another key sealed it.
    #[error("it was sealed by key {sealed_by}, not by this key ({key})")]
    OtherKey {
        /// The key id recorded with the value.
        sealed_by: String,
        /// This key's id.
        key: String,
    },
    /// The tag does not match: the value, its nonce or its associated
    /// data (where it is stored) is not what was sealed.
    #[error("it does not authenticate: altered, or moved from where it was sealed")]
    Forged,
}

/// Seals and opens values under one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("Sealer").field("key_id", &self.key_id).finish()
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
            key_id: key_id(key),
        }
    }

    /// The key's id: the first 8 bytes of its SHA-256, hex. It names the
    /// key in records and messages without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 seals any value that fits in memory");
        Sealed {
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens `sealed`, which must have been sealed by this key with the
    /// same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        if sealed.key_id != self.key_id {
            return Err(OpenError::OtherKey {
                sealed_by: sealed.key_id.clone(),
                key: self.key_id.clone(),
            });
        }
        if sealed.nonce.len() != NONCE_LEN {
            return Err(OpenError::Forged);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Forged)
    }
}

/// The id of `key`: the first 8 bytes of its SHA-256, hex.
pub fn key_id(key: &[u8; KEY_LEN]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_associated_data_only() {
        let sealer = Sealer::new(&[7; KEY_LEN]);
        let sealed = sealer.seal(b"acme\0token", b"s3cr3t");
        assert_eq!(sealer.open(b"acme\0token", &sealed).unwrap(), b"s3cr3t");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(sealer.open(b"acme\0other", &sealed), Err(OpenError::Forged));

        let other = Sealer::new(&[8; KEY_LEN]);
        assert!(matches!(
            other.open(b"acme\0token", &sealed),
            Err(OpenError::OtherKey { .. })
        ));
        // Even claiming to be the other key's, it does not authenticate.
        let relabelled = Sealed {
            key_id: other.key_id().to_string(),
            ..sealed.clone()
        };
        assert_eq!(other.open(b"acme\0token", &relabelled), Err(OpenError::Forged));
    }

    #[test]
    fn every_seal_takes_a_fresh_nonce() {
        let sealer = Sealer::new(&[1; KEY_LEN]);
        let (a, b) = (sealer.seal(b"", b"same"), sealer.seal(b"", b"same"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_key_id_is_eight_bytes_of_its_sha256() {
        let id = key_id(&[0; KEY_LEN]);
        assert_eq!(id.len(), 16);
        // sha256 of 32 zero bytes begins 66687aadf862bd77.
        assert_eq!(id, "66687aadf862bd77");
    }
}
