//! Compiled components kept on disk, so that a restart does not compile
//! every module again before its first attempt (seconds for a large one,
//! such as a Python task's interpreter).
//!
//! One file per module digest and engine: `DIGEST-ENGINE.cwasm`, where
//! ENGINE is wasmtime's compatibility hash of its version and the
//! configuration that shapes compiled code, so another wasmtime or another
//! configuration never reads this one's files. A file is the magic
//! `weftcwm1`, the SHA-256 of the artifact, then wasmtime's serialized
//! artifact. It is written to a temporary name, synced and renamed, so a
//! reader sees a whole file or none. Reading checks the digest before
//! wasmtime deserializes (which trusts its input), and wasmtime checks its
//! own header: a corrupt or stale file is deleted and the module compiled
//! again, never trusted. The directory is kept under a size: after a write,
//! the least recently used files (by modification time, which a hit
//! renews) are deleted until it fits.
//!
//! Why not wasmtime's own `cache` feature: it deserializes its files
//! without a checksum over them, and evicts in a background worker against
//! soft limits kept in a TOML file; this is a page of code with the checks
//! the engine needs.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::digest::Digest;

const MAGIC: &[u8; 8] = b"weftcwm1";
const HEADER: usize = MAGIC.len() + 32;
const SUFFIX: &str = "cwasm";

/// Counts of what the cache did, for metrics and tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Modules read from disk instead of compiled.
    pub hits: AtomicU64,
    /// Modules not on disk (compiled, then written).
    pub misses: AtomicU64,
    /// Files found corrupt or stale, deleted and compiled again.
    pub rejected: AtomicU64,
    /// Files deleted to keep the directory under its size.
    pub evicted: AtomicU64,
}

/// The directory of compiled components.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    engine_key: String,
    stats: CacheStats,
}

impl DiskCache {
    /// A cache in `dir` (made if missing) for modules compiled by
    /// `engine`, at most `max_bytes` on disk.
    pub fn open(dir: &Path, max_bytes: u64, engine: &Engine) -> std::io::Result<DiskCache> {
        fs::create_dir_all(dir)?;
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = format!("{:016x}", std::hash::Hasher::finish(&hasher));
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            max_bytes,
            engine_key,
            stats: CacheStats::default(),
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The file a module's artifact lives in.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_string();
        let hex = hex.strip_prefix("sha256:").unwrap_or(&hex);
        self.dir.join(format!("{hex}-{}.{SUFFIX}", self.engine_key))
    }

    /// The module compiled before, if its file is there and sound. A file
    /// that is not is deleted (and counted), so the caller compiles again.
    pub fn get(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let started = std::time::Instant::now();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a compiled module; compiling it again");
                }
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let read = started.elapsed();
        let checked = check(&bytes);
        let hashed = started.elapsed();
        let component = match checked {
            Err(why) => Err(why.to_string()),
            Ok(artifact) => deserialize(engine, artifact),
        };
        tracing::debug!(
            path = %path.display(),
            bytes = bytes.len(),
            read = ?read,
            checked = ?(hashed - read),
            deserialized = ?(started.elapsed() - hashed),
            "compiled module read from disk"
        );
        match component {
            Ok(component) => {
                // A hit renews the file's place in the eviction order.
                if let Err(e) = File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()))
                {
                    tracing::debug!(path = %path.display(), error = %e, "cannot renew a compiled module's time");
                }
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(component)
            }
            Err(why) => {
                tracing::warn!(path = %path.display(), reason = %why, "a compiled module on disk is unusable; deleting it and compiling again");
                let _ = fs::remove_file(&path);
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Writes a module's compiled artifact, then keeps the directory under
    /// its size. Failures are logged, not returned: the cache only saves
    /// time.
    pub fn put(&self, digest: &Digest, component: &Component) {
        let path = self.path(digest);
        if let Err(e) = self.write(&path, component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a compiled module on disk");
            return;
        }
        self.evict(&path);
    }

    fn write(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let artifact = component.serialize().map_err(std::io::Error::other)?;
        if artifact.len() as u64 + HEADER as u64 > self.max_bytes {
            return Ok(()); // it would only evict everything else, then itself
        }
        let temporary = path.with_extension(format!("tmp-{}-{:x}", std::process::id(), rand::random::<u32>()));
        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(&artifact))?;
            file.write_all(&artifact)?;
            file.sync_all()?;
            fs::rename(&temporary, path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }

    /// Deletes the least recently used files until the directory fits,
    /// never the one just written.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == SUFFIX))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, size, _)| size).sum();
        files.sort();
        for (_, size, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                total -= size;
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The artifact inside a file, if its magic and digest hold.
fn check(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a compiled module of this cache (wrong magic or too short)");
    }
    let (digest, artifact) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(artifact).as_slice() != digest {
        return Err("its contents do not match their digest (corrupt)");
    }
    Ok(artifact)
}

/// Deserializes an artifact whose digest was checked.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Component, String> {
    // SAFETY: wasmtime trusts serialized artifacts to be ones it wrote.
    // This one was: it is read back from a file this cache wrote (in the
    // server's own data directory) and its SHA-256 was just checked, so it
    // is byte for byte what `Component::serialize` produced; wasmtime then
    // refuses artifacts of another version or configuration itself.
    unsafe { Component::deserialize(engine, artifact) }.map_err(|e| format!("wasmtime refused it (stale?): {e:#}"))
}
