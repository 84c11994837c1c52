//! A scratch Python virtual environment for tests that drive the API with
//! Python tools, made under `target/` and reused by later test runs.
//!
//! Like every test that needs something from outside the crate, it gets
//! what it needs itself (`python3` with `venv`, then packages from PyPI)
//! and skips loudly when it cannot, or fails instead under `CI=true`.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::backend::pg::outside::{apt_install, run, skip};

/// A virtual environment with some packages installed.
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// A program the packages installed, e.g. `bin("schemathesis")`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// The environment's interpreter.
    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }
}

/// A virtual environment with `packages` (pinned, `name==version`)
/// installed, or `None` when Python or PyPI cannot be had: then the calling
/// test has been reported as skipped and should return (under `CI=true` this
/// panics instead).
pub fn venv(packages: &[&str]) -> Option<Venv> {
    // Threads of this process wait here; other test processes on the lock file.
    static CREATING: Mutex<()> = Mutex::new(());
    let _guard = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
    match create(packages) {
        Ok(venv) => Some(venv),
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

fn create(packages: &[&str]) -> Result<Venv, String> {
    // One directory per package list, e.g. `schemathesis-4.32.5+openapi-python-client-0.29.1`.
    let name: Vec<String> = packages.iter().map(|p| p.replace("==", "-")).collect();
    let name = name.join("+");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venvs");
    let dir = root.join(&name);
    let marker = dir.join("installed"); // written last, once everything is in
    fs::create_dir_all(&root).map_err(|e| format!("{} cannot be created: {e}", root.display()))?;
    let lock = File::create(root.join(format!("{name}.lock")))
        .map_err(|e| format!("no lock file in {}: {e}", root.display()))?;
    lock.lock().map_err(|e| format!("the venv lock cannot be taken: {e}"))?;

    let venv = Venv { dir: dir.clone() };
    if marker.exists() && run(Command::new(venv.python()).arg("--version")).is_ok() {
        return Ok(venv);
    }
    let _ = fs::remove_dir_all(&dir); // what an interrupted run left
    let python = python3()?;
    let _ = writeln!(
        std::io::stderr(),
        "creating a Python venv in {} with {}",
        dir.display(),
        packages.join(" ")
    );
    run(Command::new(&python).args(["-m", "venv"]).arg(&dir))
        .map_err(|out| format!("`{python} -m venv` failed:\n{out}"))?;
    run(Command::new(venv.python())
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
        .args(packages))
    .map_err(|out| {
        format!(
            "`pip install {}` failed (is PyPI reachable?):\n{out}",
            packages.join(" ")
        )
    })?;
    fs::write(&marker, packages.join("\n")).map_err(|e| format!("{} cannot be written: {e}", marker.display()))?;
    Ok(venv)
}

/// `python3` from PATH with a working `venv` module, installing both with
/// apt-get (once per process) when they are missing and we are root.
fn python3() -> Result<String, String> {
    let works = || run(Command::new("python3").args(["-c", "import venv, ensurepip"])).is_ok();
    if works() {
        return Ok("python3".into());
    }
    static APT: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = APT.get_or_init(|| apt_install(&["python3", "python3-venv"], works));
    match installed {
        Ok(()) if works() => Ok("python3".into()),
        Ok(()) => Err("python3 with its venv module is still missing after apt-get installed them".into()),
        Err(why) => Err(format!("python3 with its venv module is not on PATH, and {why}")),
    }
}
