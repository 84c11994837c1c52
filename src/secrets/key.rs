//! The master key: where it comes from and how it is written down.
//!
//! In order: `WEFT_MASTER_KEY` (32 bytes as 64 hex digits, or as base64,
//! 44 characters with padding), else the file `master.key` in the data
//! directory (the same two forms). On the embedded store the file is made
//! on first start, readable by its owner only, as the admin token is. On
//! PostgreSQL it is not: nodes share the store, so they must share one
//! key, which the operator gives each of them; a node without one keeps
//! no secrets (and refuses to start if the store already has some).
//!
//! The key itself is never logged nor put in an error message: only its
//! id ([`super::seal::key_id`]) and where it came from.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::SecretsError;
use super::seal::{KEY_LEN, Sealer};

/// The environment variable that gives the master key.
pub const MASTER_KEY_ENV: &str = "WEFT_MASTER_KEY";
/// The master key's file in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Where a master key came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `WEFT_MASTER_KEY`.
    Env,
    /// A `master.key` file that existed.
    File(PathBuf),
    /// A `master.key` file made on this start.
    Generated(PathBuf),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Env => write!(f, "the master key from {MASTER_KEY_ENV}"),
            KeyOrigin::File(path) => write!(f, "the master key in {}", path.display()),
            KeyOrigin::Generated(path) => write!(f, "the master key just generated in {}", path.display()),
        }
    }
}

/// The master key: a [`Sealer`] and where its key came from.
#[derive(Debug, Clone)]
pub struct MasterKey {
    sealer: Sealer,
    origin: KeyOrigin,
}

impl std::ops::Deref for MasterKey {
    type Target = Sealer;

    fn deref(&self) -> &Sealer {
        &self.sealer
    }
}

impl MasterKey {
    /// A master key from its bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN], origin: KeyOrigin) -> MasterKey {
        MasterKey {
            sealer: Sealer::new(key),
            origin,
        }
    }

    /// Reads a key written as 64 hex digits or as base64 (with or without
    /// padding); surrounding whitespace is ignored.
    pub fn parse(text: &str, origin: KeyOrigin) -> Result<MasterKey, SecretsError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            STANDARD.decode(text).or_else(|_| STANDARD_NO_PAD.decode(text)).ok()
        };
        let key: [u8; KEY_LEN] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            SecretsError::Key(format!(
                "{origin} is not a key: give 32 bytes as 64 hex digits or as base64 (44 characters), \
                 e.g. the output of `openssl rand -hex 32`"
            ))
        })?;
        Ok(MasterKey::from_bytes(&key, origin))
    }

    /// Where the key came from.
    pub fn origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// The key `WEFT_MASTER_KEY` or `data/master.key` gives, if either
    /// does; nothing is created.
    pub fn find(data: &Path) -> Result<Option<MasterKey>, SecretsError> {
        if let Some(key) = MasterKey::from_env()? {
            return Ok(Some(key));
        }
        let path = data.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKey::parse(&text, KeyOrigin::File(path)).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretsError::Key(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// The key `WEFT_MASTER_KEY` gives, if it is set.
    pub fn from_env() -> Result<Option<MasterKey>, SecretsError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => MasterKey::parse(&text, KeyOrigin::Env).map(Some),
            _ => Ok(None),
        }
    }

    /// [`MasterKey::find`], else a new random key written to
    /// `data/master.key`, readable by its owner only.
    pub fn find_or_create(data: &Path) -> Result<MasterKey, SecretsError> {
        if let Some(key) = MasterKey::from_env()? {
            return Ok(key);
        }
        MasterKey::file_or_create(&data.join(MASTER_KEY_FILE))
    }

    /// The key in the file `path`, or a new random key written there,
    /// readable by its owner only, if there is no such file.
    pub fn file_or_create(path: &Path) -> Result<MasterKey, SecretsError> {
        let read = |path: &Path| match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::parse(&text, KeyOrigin::File(path.to_path_buf())).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretsError::Key(format!("cannot read {}: {e}", path.display()))),
        };
        if let Some(key) = read(path)? {
            return Ok(key);
        }
        let key: [u8; KEY_LEN] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        // `create_new`: never overwrite a key another process just wrote.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let written = options.open(path).and_then(|mut file| {
            file.write_all(hex::encode(key).as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
        match written {
            Ok(()) => Ok(MasterKey::from_bytes(&key, KeyOrigin::Generated(path.to_path_buf()))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                read(path)?.ok_or_else(|| SecretsError::Key(format!("{} vanished as it was made", path.display())))
            }
            Err(e) => Err(SecretsError::Key(format!("cannot write {}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_as_hex_or_base64_and_nothing_else() {
        let key = [0xab; KEY_LEN];
        let hex = MasterKey::parse(&hex::encode(key), KeyOrigin::Env).unwrap();
        let b64 = MasterKey::parse(&STANDARD.encode(key), KeyOrigin::Env).unwrap();
        let bare = MasterKey::parse(&STANDARD_NO_PAD.encode(key), KeyOrigin::Env).unwrap();
        assert_eq!(hex.key_id(), b64.key_id());
        assert_eq!(hex.key_id(), bare.key_id());
        for bad in ["", "abcd", &hex::encode([1u8; 31]), &STANDARD.encode([1u8; 33])] {
            let error = MasterKey::parse(bad, KeyOrigin::Env).unwrap_err().to_string();
            assert!(
                error.contains("WEFT_MASTER_KEY") && error.contains("64 hex digits"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_generated_key_is_kept_owner_only_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let made = MasterKey::find_or_create(dir.path()).unwrap();
        assert!(matches!(made.origin(), KeyOrigin::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let found = MasterKey::find_or_create(dir.path()).unwrap();
        assert!(matches!(found.origin(), KeyOrigin::File(_)));
        assert_eq!(found.key_id(), made.key_id());
    }
}
