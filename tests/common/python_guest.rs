//! Python guests for the tests: `example-tasks/python/NAME/NAME.py` built
//! into components by the SDK's own documented command
//! (`guest-sdk/python/build.sh`), with the pinned componentize-py installed
//! into a virtual environment under `target/`.
//!
//! Each component is built once per test process and cached under
//! `target/` by a digest of everything that goes into it (the task file,
//! the SDK, `wit/` and the pin), so later runs reuse it until one of those
//! changes. When Python or PyPI cannot be had, [`component`] reports the
//! test as skipped and returns `None` (under `CI=true` it panics instead,
//! through `outside::skip`).
//!
//! Include it with `#[path = "common/python_guest.rs"] mod python_guest;`;
//! it brings its own `outside` (`python_guest::outside`).

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

#[path = "outside.rs"]
pub mod outside;

use outside::{apt_install, run, skip};

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The SDK's directory, `guest-sdk/python`.
pub fn sdk_dir() -> PathBuf {
    repo().join("guest-sdk/python")
}

/// The pinned componentize-py, e.g. `componentize-py==0.25.1`, as
/// `guest-sdk/python/build-requirements.txt` has it.
pub fn pin() -> String {
    let path = sdk_dir().join("build-requirements.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let pins: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        pins.len() == 1 && pins[0].starts_with("componentize-py=="),
        "{} must pin exactly componentize-py (`componentize-py==X.Y.Z`), found {pins:?}",
        path.display()
    );
    pins[0].to_string()
}

/// Where components and the toolchain are kept between test runs.
fn cache_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-guests")
}

/// The example task `example-tasks/python/NAME`, built into a component
/// (once per process, reused across runs while its inputs are unchanged);
/// `None` when the toolchain cannot be had, after reporting the calling
/// test as skipped. Panics when the build itself fails.
pub fn component(name: &str) -> Option<PathBuf> {
    let task = repo()
        .join("example-tasks/python")
        .join(name)
        .join(format!("{name}.py"));
    assert!(task.is_file(), "no Python example task at {}", task.display());
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(name) {
        return Some(path.clone());
    }
    let path = build_cached(&task)?;
    built
        .get_or_insert_with(HashMap::new)
        .insert(name.to_string(), path.clone());
    Some(path)
}

/// Builds `task` (a Python file anywhere) into a component under the cache,
/// or returns the one an earlier run built from the same inputs.
pub fn build_cached(task: &Path) -> Option<PathBuf> {
    let venv = toolchain()?;
    let stem = task.file_stem().and_then(|s| s.to_str()).expect("a task file name");
    let digest = inputs_digest(task);
    let out = cache_root().join(format!("{stem}-{digest:016x}.wasm"));
    // Test binaries running at once take turns, so one builds and the rest reuse.
    let lock_path = cache_root().join(format!("{stem}.lock"));
    let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("{} cannot be created: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("{} cannot be locked: {e}", lock_path.display()));
    if !out.exists() {
        // Builds from older inputs are stale now; 19 MB each, they would pile up.
        if let Ok(entries) = fs::read_dir(cache_root()) {
            for entry in entries.filter_map(Result::ok) {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                if file.starts_with(&format!("{stem}-")) && file.ends_with(".wasm") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        build(&venv, task, &out);
    }
    Some(out)
}

/// Builds `task` into `out` with `build.sh`, panicking with its output when
/// it fails. `build.sh` writes to a temporary name and renames, so a
/// concurrent reader never sees half a component.
pub fn build(venv: &Path, task: &Path, out: &Path) {
    let started = std::time::Instant::now();
    let result = run(Command::new(sdk_dir().join("build.sh"))
        .arg(task)
        .arg(out)
        .env("WEFT_PY_VENV", venv));
    if let Err(output) = result {
        panic!("building {} into {} failed: {output}", task.display(), out.display());
    }
    eprintln!(
        "built {} from {} in {:.1?}",
        out.display(),
        task.display(),
        started.elapsed()
    );
}

/// The virtual environment with the pinned componentize-py, made once
/// (under a lock shared with other test processes), or `None` after
/// reporting the test as skipped.
pub fn toolchain() -> Option<PathBuf> {
    static TOOLCHAIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match TOOLCHAIN.get_or_init(install) {
        Ok(venv) => Some(venv.clone()),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}

fn install() -> Result<PathBuf, String> {
    let root = cache_root();
    fs::create_dir_all(&root).map_err(|e| format!("{} cannot be created: {e}", root.display()))?;
    let pin = pin();
    let venv = root.join(format!("venv-{}", pin.replace("==", "-")));
    let lock = File::create(root.join("venv.lock")).map_err(|e| format!("no lock file in {}: {e}", root.display()))?;
    lock.lock().map_err(|e| format!("the venv lock cannot be taken: {e}"))?;
    python3()?;
    // build.sh itself makes the environment, so the tests use the same steps
    // as a person does; `--install` stops before building anything.
    run(Command::new(sdk_dir().join("build.sh"))
        .arg("--install")
        .env("WEFT_PY_VENV", &venv))
    .map_err(|out| format!("installing {pin} failed (is PyPI reachable?): {out}"))?;
    Ok(venv)
}

/// Makes sure `python3` with `venv` and `ensurepip` is on PATH, installing
/// them with apt-get when missing and we are root.
fn python3() -> Result<(), String> {
    let works = || run(Command::new("python3").args(["-c", "import venv, ensurepip"])).is_ok();
    if works() {
        return Ok(());
    }
    apt_install(&["python3", "python3-venv"], works)
        .map_err(|why| format!("python3 with its venv module is not on PATH, and {why}"))?;
    if works() {
        Ok(())
    } else {
        Err("python3 with its venv module is still missing after apt-get installed them".into())
    }
}

/// A digest of everything a component is built from: the task file, the
/// SDK's Python files (its subpackages too), `wit/`, the SDK's own WIT
/// (the `python-task` world and the WASI it imports) and the pinned
/// toolchain.
fn inputs_digest(task: &Path) -> u64 {
    let mut files = vec![
        task.to_path_buf(),
        sdk_dir().join("weft_build.py"),
        sdk_dir().join("build.sh"),
    ];
    for dir in [sdk_dir().join("weft_sdk"), repo().join("wit"), sdk_dir().join("wit")] {
        let mut found = Vec::new();
        sources_under(&dir, &mut found);
        found.sort();
        files.extend(found);
    }
    let mut hash = fnv1a(0xcbf2_9ce4_8422_2325, pin().as_bytes());
    for file in files {
        let bytes = fs::read(&file).unwrap_or_else(|e| panic!("{} cannot be read: {e}", file.display()));
        hash = fnv1a(hash, file.file_name().unwrap_or_default().as_encoded_bytes());
        hash = fnv1a(hash, &(bytes.len() as u64).to_le_bytes());
        hash = fnv1a(hash, &bytes);
    }
    hash
}

/// The `.py` and `.wit` files under `dir`, at any depth.
fn sources_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{} cannot be listed: {e}", dir.display()));
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.is_dir() {
            sources_under(&path, found);
        } else if path.extension().is_some_and(|x| x == "py" || x == "wit") {
            found.push(path);
        }
    }
}

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(seed, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
