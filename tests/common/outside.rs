//! What a test needs from outside the crate (Python, PostgreSQL): running
//! the commands that get it, installing Debian packages when it is missing,
//! and skipping loudly when it cannot be had, or failing instead under
//! `CI=true`, where nothing may be skipped.
//!
//! Included with `#[path]` by the harnesses that need it
//! (`tests/api/python.rs`, `tests/common/pg.rs`).

#![allow(dead_code)] // each harness uses its own subset

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// Reports the current test as skipped because of `reason`, on the
/// process's stderr so that it shows without `--nocapture`; panics instead
/// under `CI=true`.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test} cannot be skipped under CI=true, but {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} because {reason}");
}

/// Runs a command to its end: its stdout if it succeeded, or else its
/// exit status and everything it printed (or why it could not start).
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("{:?} cannot be started: {e}", command.get_program()))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(format!(
            "{}\n{}{}",
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        ))
    }
}

/// `apt-get install -y --no-install-recommends PACKAGES` after an update,
/// only as root. Test processes take turns on a lock file; `done` is
/// asked once the lock is held, so what another process installed
/// meanwhile is not installed again.
pub fn apt_install(packages: &[&str], done: impl Fn() -> bool) -> Result<(), String> {
    let uid = run(Command::new("id").arg("-u")).map_err(|e| format!("`id -u` failed: {e}"))?;
    if uid.trim() != "0" {
        return Err(format!(
            "we are not root, so apt-get cannot install {}",
            packages.join(" ")
        ));
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).map_err(|e| format!("{} cannot be created: {e}", root.display()))?;
    let lock =
        std::fs::File::create(root.join("apt.lock")).map_err(|e| format!("no lock file in {}: {e}", root.display()))?;
    lock.lock().map_err(|e| format!("the apt lock cannot be taken: {e}"))?;
    if done() {
        return Ok(());
    }
    let _ = writeln!(
        std::io::stderr(),
        "installing {} with apt-get for the tests",
        packages.join(" ")
    );
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .map_err(|out| format!("`apt-get {}` failed:\n{out}", args.join(" ")))
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(packages);
    apt(&install).map(drop)
}
