//! Compiled components kept on disk, so that a restart does not compile
//! every module again before its first attempt (seconds for a large one,
//! such as a Python task's interpreter).
//!
//! Two files per module digest and engine, named `DIGEST-ENGINE`, where
//! ENGINE is wasmtime's compatibility hash of its version and the
//! configuration that shapes compiled code, so another wasmtime or another
//! configuration never reads this one's files:
//! - `.cwasm`, exactly wasmtime's serialized artifact, so that wasmtime can
//!   map it into memory instead of reading and copying it (for a Python
//!   task's 40 MB artifact that is most of the cost of a hit);
//! - `.sum`, the artifact's BLAKE3 and length, in one line.
//!
//! Each is written to a temporary name, synced and renamed, so a reader
//! sees a whole file or none; the sum goes first, so an artifact never
//! stands without the sum that vouches for it. Reading checks the length
//! and the BLAKE3 over the mapped file before wasmtime deserializes (which
//! trusts its input), and wasmtime checks its own header: a corrupt, stale
//! or unvouched file is deleted and the module compiled again, never
//! trusted. Files are only ever replaced whole by a rename, and for one
//! name always by the same bytes, so the file hashed is the file mapped.
//! The directory is kept under a size: after a write, the least recently
//! used artifacts (by modification time, which a hit renews) are deleted
//! with their sums until it fits.
//!
//! Why BLAKE3 rather than the SHA-256 used for module digests: it hashes
//! that 40 MB artifact in a few milliseconds on the machine's cores, where
//! SHA-256 took 35 ms. Why not wasmtime's own `cache` feature: it
//! deserializes its files without a checksum over them, and evicts in a
//! background worker against soft limits kept in a TOML file; this is a
//! page of code with the checks the engine needs.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::digest::Digest;

/// The first word of a sum file, naming its format.
const MAGIC: &str = "weftcwm2";
const ARTIFACT: &str = "cwasm";
const SUM: &str = "sum";

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

    /// The file a module's artifact lives in; its sum is beside it, with
    /// the extension `sum`.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_string();
        let hex = hex.strip_prefix("sha256:").unwrap_or(&hex);
        self.dir.join(format!("{hex}-{}.{ARTIFACT}", self.engine_key))
    }

    /// The module compiled before, if its files are there and sound. Files
    /// that are not are deleted (and counted), so the caller compiles again.
    pub fn get(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let sum_path = path.with_extension(SUM);
        let started = std::time::Instant::now();
        let sum = match fs::read_to_string(&sum_path) {
            Ok(sum) => sum,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.reject(
                    &path,
                    "no sum vouches for it (a write cut short, or an older weft's file)",
                );
            }
            Err(e) => return self.reject(&path, &format!("its sum cannot be read: {e}")),
        };
        let checked = match check(&path, &sum) {
            Ok(true) => started.elapsed(),
            Ok(false) => {
                // The sum was written, the artifact not yet (or never).
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(why) => return self.reject(&path, &why),
        };
        let component = match deserialize(engine, &path) {
            Ok(component) => component,
            Err(why) => return self.reject(&path, &why),
        };
        tracing::debug!(
            path = %path.display(),
            checked = ?checked,
            mapped = ?(started.elapsed() - checked),
            "compiled module read from disk"
        );
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

    /// Deletes an unusable artifact and its sum; counts it.
    fn reject(&self, path: &Path, why: &str) -> Option<Component> {
        tracing::warn!(path = %path.display(), reason = %why, "a compiled module on disk is unusable; deleting it and compiling again");
        let _ = fs::remove_file(path);
        let _ = fs::remove_file(path.with_extension(SUM));
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        None
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
        let hash = blake3::Hasher::new().update_rayon(&artifact).finalize();
        let sum = format!("{MAGIC} {} {}\n", hash.to_hex(), artifact.len());
        if (artifact.len() + sum.len()) as u64 > self.max_bytes {
            return Ok(()); // it would only evict everything else, then itself
        }
        write_whole(&path.with_extension(SUM), sum.as_bytes())?;
        write_whole(path, &artifact)
    }

    /// Deletes the least recently used artifacts, with their sums, until
    /// the directory fits; never the one just written.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut total = 0;
        let mut artifacts: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let (path, Ok(meta)) = (entry.path(), entry.metadata()) else {
                continue;
            };
            match path.extension().and_then(|x| x.to_str()) {
                Some(SUM) => total += meta.len(),
                Some(ARTIFACT) => {
                    total += meta.len();
                    if let Ok(modified) = meta.modified() {
                        artifacts.push((modified, meta.len(), path));
                    }
                }
                _ => {}
            }
        }
        artifacts.sort();
        for (_, size, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                let sum = path.with_extension(SUM);
                total -= size + fs::metadata(&sum).map_or(0, |m| m.len());
                let _ = fs::remove_file(sum);
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let extension = path.extension().and_then(|x| x.to_str()).unwrap_or("");
    let temporary = path.with_extension(format!(
        "{extension}-tmp-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Whether the artifact at `path` is the one `sum` vouches for: `Ok(false)`
/// when there is no artifact, an error saying why when it is not.
fn check(path: &Path, sum: &str) -> Result<bool, String> {
    let mut words = sum.split_whitespace();
    let (Some(MAGIC), Some(hex), Some(length), None) = (words.next(), words.next(), words.next(), words.next()) else {
        return Err("its sum is not one this cache wrote".into());
    };
    let (Ok(expected), Ok(length)) = (blake3::Hash::from_hex(hex), length.parse::<u64>()) else {
        return Err("its sum is not one this cache wrote".into());
    };
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("it cannot be read: {e}")),
        Ok(meta) if meta.len() != length => {
            return Err(format!(
                "it is {} bytes, its sum says {length} (cut short?)",
                meta.len()
            ));
        }
        Ok(_) => {}
    }
    let actual = blake3::Hasher::new()
        .update_mmap_rayon(path)
        .map_err(|e| format!("it cannot be read: {e}"))?
        .finalize();
    if actual != expected {
        return Err("its contents do not match their sum (corrupt)".into());
    }
    Ok(true)
}

/// Maps an artifact whose sum was checked.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Result<Component, String> {
    // SAFETY: wasmtime trusts serialized artifacts to be ones it wrote.
    // This one was: it is a file this cache wrote (in the server's own data
    // directory), only ever replaced whole by a rename with the same bytes,
    // and its length and BLAKE3 were just checked against the sum written
    // with it, so it is byte for byte what `Component::serialize` produced;
    // wasmtime then refuses artifacts of another version or configuration
    // itself.
    unsafe { Component::deserialize_file(engine, path) }.map_err(|e| format!("wasmtime refused it (stale?): {e:#}"))
}
