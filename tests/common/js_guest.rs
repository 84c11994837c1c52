//! JavaScript task components for the tests: the build tools of
//! `guest-sdk/js` installed with `npm ci` into a scratch directory under
//! `target/`, and the tasks of `example-tasks/js/` built with them, once
//! per process and cached on disk by the digest of their sources.
//!
//! Like every test that needs something from outside the crate, it skips
//! loudly when Node.js, npm or the npm registry cannot be had, and fails
//! instead under `CI=true` (see `outside.rs`). Include it with
//! `#[path = "common/js_guest.rs"] mod js_guest;`; it includes
//! `outside.rs` itself.

#![allow(dead_code)] // each test binary uses its own subset

#[path = "outside.rs"]
pub mod outside;

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{DefaultHasher, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use outside::{run, skip};

/// The oldest Node.js major version the SDK supports.
const MIN_NODE: u32 = 20;

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the toolchain and the built components live, under `target/`.
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-sdk")
}

/// The SDK copied next to its installed `node_modules`.
pub struct Sdk {
    dir: PathBuf,
}

impl Sdk {
    /// The SDK's directory (with `build.mjs`, `src/`, `template/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Builds the task file `source` into the component `out` with the
    /// SDK's documented command, `node build.mjs SOURCE OUT`.
    pub fn build(&self, source: &Path, out: &Path) -> Result<(), String> {
        let started = Instant::now();
        let printed = run(Command::new("node")
            .arg(self.dir.join("build.mjs"))
            .arg(source)
            .arg(out)
            .env("WEFT_WIT", root().join("wit")))
        .map_err(|out| format!("`node build.mjs {}` failed:\n{out}", source.display()))?;
        let _ = writeln!(
            std::io::stderr(),
            "built {} in {:.1} s {printed}",
            out.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The SDK with its build tools installed, or `None` when they cannot be
/// had: then the calling test has been reported as skipped and should
/// return (under `CI=true` this panics instead).
pub fn sdk() -> Option<&'static Sdk> {
    static SDK: OnceLock<Result<Sdk, String>> = OnceLock::new();
    match SDK.get_or_init(install) {
        Ok(sdk) => Some(sdk),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}

/// The component of `example-tasks/js/NAME` (its `task.js` or `task.ts`),
/// built on first use and cached under `target/` by the digest of its
/// sources, the SDK and the WIT; `None` when the toolchain cannot be had
/// (the test has been reported as skipped; under `CI=true` this panics).
/// A task that does not build panics with the build's output.
pub fn component(name: &str) -> Option<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let sdk = sdk()?;
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(name) {
        return Some(path.clone());
    }
    let path = build_example(sdk, name).unwrap_or_else(|why| panic!("example-tasks/js/{name}: {why}"));
    built.get_or_insert_with(HashMap::new).insert(name.into(), path.clone());
    Some(path)
}

fn build_example(sdk: &Sdk, name: &str) -> Result<PathBuf, String> {
    let dir = root().join("example-tasks/js").join(name);
    let source = ["task.ts", "task.js"]
        .iter()
        .map(|file| dir.join(file))
        .find(|path| path.exists())
        .ok_or_else(|| format!("{} has no task.ts or task.js", dir.display()))?;
    let mut digest = DefaultHasher::new();
    for input in [
        dir.as_path(),
        &sdk.dir.join("src"),
        &sdk.dir.join("build.mjs"),
        &sdk.dir.join("package-lock.json"),
        &root().join("wit"),
    ] {
        hash_tree(&mut digest, input)?;
    }
    let out_dir = scratch().join("components");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{} cannot be created: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}-{:016x}.wasm", digest.finish()));
    // Test processes take turns building, so none reads a half-written file.
    let lock = lock_file(&out_dir.join(format!("{name}.lock")))?;
    if !out.exists() {
        let partial = out.with_extension("partial.wasm");
        sdk.build(&source, &partial)?;
        fs::rename(&partial, &out).map_err(|e| format!("{} cannot be renamed: {e}", partial.display()))?;
    }
    drop(lock);
    Ok(out)
}

/// Feeds the names and contents of the files under `path` (sorted) to `digest`.
fn hash_tree(digest: &mut DefaultHasher, path: &Path) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| format!("{} cannot be listed: {e}", path.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} cannot be listed: {e}", path.display()))?;
        entries.sort();
        for entry in entries {
            if entry.file_name().is_some_and(|n| n != "node_modules") {
                hash_tree(digest, &entry)?;
            }
        }
    } else {
        let bytes = fs::read(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
        digest.write(path.to_string_lossy().as_bytes());
        digest.write(&bytes);
    }
    Ok(())
}

fn lock_file(path: &Path) -> Result<File, String> {
    let file = File::create(path).map_err(|e| format!("no lock file at {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("{} cannot be locked: {e}", path.display()))?;
    Ok(file)
}

/// Copies the SDK to the scratch directory and installs its pinned build
/// tools there (`npm ci`), unless a previous run did with the same lock file.
fn install() -> Result<Sdk, String> {
    let node = run(Command::new("node").arg("--version"))
        .map_err(|why| format!("Node.js is not on PATH (need {MIN_NODE} or later): {why}"))?;
    let major: Option<u32> = node
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    if major.is_none_or(|m| m < MIN_NODE) {
        return Err(format!(
            "Node.js {} is too old, the SDK needs {MIN_NODE} or later",
            node.trim()
        ));
    }
    run(Command::new("npm").arg("--version")).map_err(|why| format!("npm is not on PATH: {why}"))?;

    let source = root().join("guest-sdk/js");
    let dir = scratch().join("sdk");
    fs::create_dir_all(&dir).map_err(|e| format!("{} cannot be created: {e}", dir.display()))?;
    let _lock = lock_file(&scratch().join("sdk.lock"))?;
    let lockfile = fs::read(source.join("package-lock.json"))
        .map_err(|e| format!("{} cannot be read: {e}", source.join("package-lock.json").display()))?;
    let marker = dir.join("node_modules/.weft-installed");
    let installed = fs::read(&marker).is_ok_and(|previous| previous == lockfile);
    for file in ["package.json", "package-lock.json", "build.mjs", "src", "template"] {
        copy_tree(&source.join(file), &dir.join(file))?;
    }
    if !installed {
        let _ = fs::remove_dir_all(dir.join("node_modules")); // what an interrupted run left
        let _ = writeln!(
            std::io::stderr(),
            "installing the JS SDK's build tools with `npm ci` in {}",
            dir.display()
        );
        let started = Instant::now();
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir))
        .map_err(|out| {
            format!(
                "`npm ci` in {} failed (is the npm registry reachable?):\n{out}",
                dir.display()
            )
        })?;
        let _ = writeln!(
            std::io::stderr(),
            "`npm ci` took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        fs::write(&marker, &lockfile).map_err(|e| format!("{} cannot be written: {e}", marker.display()))?;
    }
    Ok(Sdk { dir })
}

/// Copies a file, or a directory recursively, replacing what is there.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    if from.is_dir() {
        let _ = fs::remove_dir_all(to);
        fs::create_dir_all(to).map_err(|e| format!("{} cannot be created: {e}", to.display()))?;
        let entries = fs::read_dir(from).map_err(|e| format!("{} cannot be listed: {e}", from.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{} cannot be listed: {e}", from.display()))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to)
            .map(drop)
            .map_err(|e| format!("{} cannot be copied to {}: {e}", from.display(), to.display()))
    }
}
