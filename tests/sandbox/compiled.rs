//! Compiled components kept on disk (`weft::sandbox::compiled`): a second
//! sandbox on the same directory reads instead of compiling, a corrupt,
//! stale, cut-short or unvouched artifact is deleted and compiled again,
//! and the directory stays under its size.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use weft::sandbox::{Limits, MemoryKv, Outcome, Sandbox, SandboxConfig};

use crate::common::{guest_bytes, run_module};

fn sandbox(dir: &Path, max_bytes: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        compiled_cache: Some((dir.to_path_buf(), max_bytes)),
        ..SandboxConfig::default()
    })
    .expect("a sandbox with a compiled-module cache")
}

/// (hits, misses, rejected, evicted) of a sandbox's cache.
fn stats(sandbox: &Sandbox) -> (u64, u64, u64, u64) {
    let s = sandbox.compiled_cache().expect("a cache");
    [&s.hits, &s.misses, &s.rejected, &s.evicted]
        .map(|c| c.load(Ordering::Relaxed))
        .into()
}

/// The files in the cache directory.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

async fn greets(sandbox: &Sandbox) {
    let module = sandbox.load(&guest_bytes("hello")).expect("hello loads");
    let kv = Arc::new(MemoryKv::new());
    let report = run_module(sandbox, &module, r#"{"name": "cache"}"#, Limits::default(), kv, 1).await;
    assert!(matches!(report.outcome, Outcome::Ok { .. }), "{:?}", report.outcome);
}

#[tokio::test]
async fn a_second_sandbox_reads_the_compiled_module_instead_of_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let first = sandbox(dir.path(), 1 << 30);
    greets(&first).await;
    assert_eq!(stats(&first), (0, 1, 0, 0), "compiled once and written");
    let written = files(dir.path());
    assert_eq!(written.len(), 2, "the artifact and its sum: {written:?}");
    assert!(written[0].extension().unwrap() == "cwasm" && written[1].extension().unwrap() == "sum");
    let sum = std::fs::read_to_string(&written[1]).unwrap();
    let artifact = std::fs::read(&written[0]).unwrap();
    assert!(
        sum.starts_with("weftcwm2 ") && sum.trim_end().ends_with(&format!(" {}", artifact.len())),
        "{sum}"
    );

    // A new engine, as after a restart: read, not compiled, and it runs.
    let second = sandbox(dir.path(), 1 << 30);
    let started = std::time::Instant::now();
    greets(&second).await;
    assert_eq!(
        stats(&second),
        (1, 0, 0, 0),
        "read from disk, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_corrupt_or_stale_file_is_compiled_again_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    greets(&sandbox(dir.path(), 1 << 30)).await;
    let path = files(dir.path()).remove(0);
    let good = std::fs::read(&path).unwrap();

    // One flipped bit in the artifact: its digest no longer holds.
    let mut corrupt = good.clone();
    let last = corrupt.len() - 100;
    corrupt[last] ^= 0x40;
    std::fs::write(&path, &corrupt).unwrap();
    let after_corruption = sandbox(dir.path(), 1 << 30);
    greets(&after_corruption).await;
    assert_eq!(stats(&after_corruption), (0, 0, 1, 0), "refused, compiled again");
    assert_eq!(std::fs::read(&path).unwrap(), good, "the file is written whole again");

    // A file whose sum holds but which wasmtime did not write: stale.
    let junk = b"not an artifact wasmtime knows".to_vec();
    let good_sum = std::fs::read_to_string(path.with_extension("sum")).unwrap();
    let junk_sum = format!("weftcwm2 {} {}\n", blake3::hash(&junk).to_hex(), junk.len());
    std::fs::write(path.with_extension("sum"), junk_sum).unwrap();
    std::fs::write(&path, &junk).unwrap();
    let after_staleness = sandbox(dir.path(), 1 << 30);
    greets(&after_staleness).await;
    assert_eq!(stats(&after_staleness), (0, 0, 1, 0), "refused, compiled again");
    assert_eq!(std::fs::read_to_string(path.with_extension("sum")).unwrap(), good_sum);

    // Cut short, as by a crash mid-write without the rename.
    std::fs::write(&path, &good[..20]).unwrap();
    let after_truncation = sandbox(dir.path(), 1 << 30);
    greets(&after_truncation).await;
    assert_eq!(stats(&after_truncation), (0, 0, 1, 0));

    // An artifact no sum vouches for.
    std::fs::remove_file(path.with_extension("sum")).unwrap();
    let unvouched = sandbox(dir.path(), 1 << 30);
    greets(&unvouched).await;
    assert_eq!(stats(&unvouched), (0, 0, 1, 0));

    // A sum whose artifact was never written (the writer stopped between
    // the two): nothing to reject, compiled as if absent.
    std::fs::remove_file(&path).unwrap();
    let half_written = sandbox(dir.path(), 1 << 30);
    greets(&half_written).await;
    assert_eq!(stats(&half_written), (0, 1, 0, 0));
    let third = sandbox(dir.path(), 1 << 30);
    greets(&third).await;
    assert_eq!(stats(&third), (1, 0, 0, 0), "and read again after");
}

#[tokio::test]
async fn the_least_recently_used_files_go_when_the_directory_is_full() {
    // Each module's file size, measured alone in a scratch directory.
    let names = ["hello", "flaky", "send_confirmation"];
    let size = |name: &str| {
        let scratch = tempfile::tempdir().unwrap();
        sandbox(scratch.path(), 1 << 30).load(&guest_bytes(name)).unwrap();
        files(scratch.path())
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum::<u64>()
    };
    let [hello, _flaky, confirmation] = names.map(size);
    // Room for hello and send_confirmation, not for all three.
    let bound = hello + confirmation + 1024;

    let dir = tempfile::tempdir().unwrap();
    let cache = sandbox(dir.path(), bound);
    cache.load(&guest_bytes("hello")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    cache.load(&guest_bytes("flaky")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // hello is used again (by a new engine, as after a restart): it is now
    // more recent than flaky, which was written after it.
    let restarted = sandbox(dir.path(), bound);
    restarted.load(&guest_bytes("hello")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    restarted.load(&guest_bytes("send_confirmation")).unwrap();
    assert_eq!(
        stats(&restarted),
        (1, 1, 0, 1),
        "hello read, send_confirmation written, one evicted"
    );
    let total: u64 = files(dir.path())
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(total <= bound, "{total} bytes over the bound {bound}");

    let after = sandbox(dir.path(), bound);
    after.load(&guest_bytes("hello")).unwrap();
    after.load(&guest_bytes("send_confirmation")).unwrap();
    after.load(&guest_bytes("flaky")).unwrap();
    let (hits, misses, _, _) = stats(&after);
    assert_eq!(
        (hits, misses),
        (2, 1),
        "flaky, the least recently used, was the one evicted"
    );
}
