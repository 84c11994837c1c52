//! What the store keeps of tenants' secrets: sealed values only (the
//! store never sees a plaintext nor the key), and the one keycheck record
//! that tells which master key sealed them (`crate::secrets`).

use serde::{Deserialize, Serialize};

use crate::model::Millis;

/// One tenant's secret, as sealed by the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The tenant that owns it.
    pub tenant: String,
    /// Its name (`crate::spec::http::is_secret_name`).
    pub name: String,
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The AEAD nonce.
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// The sealed value with its tag.
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
    /// When it was first set (ms since the epoch).
    pub created_at: Millis,
    /// When its value was last set.
    pub updated_at: Millis,
}

/// A known constant sealed by the store's master key: a key that does
/// not open it is not the key the store's secrets were sealed with. One
/// per store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keycheck {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The AEAD nonce.
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// The sealed constant with its tag.
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Bytes as base64 text in JSON: a third of the size of a number array,
/// and the same whichever backend the record comes from.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
