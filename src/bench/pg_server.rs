//! A throwaway PostgreSQL server for the postgres and fairness sections,
//! when no `--store` names one: a fresh cluster in a temporary directory,
//! on a free port on 127.0.0.1, as PostgreSQL ships it but for where it
//! listens (`fsync` and `synchronous_commit` on, stated anyway).
//!
//! The binaries are the newest under `/usr/lib/postgresql/*/bin` (the
//! Debian layout), else those beside the `initdb` on `PATH`; nothing is
//! installed. PostgreSQL refuses to run as root, so as root every program
//! runs as the `postgres` user (`runuser`), in a directory under `/tmp`
//! handed to that user. The server is stopped (`pg_ctl stop -m immediate`:
//! its data is thrown away, so nothing needs a checkpoint) and its
//! directory removed on drop; should the bench die without dropping it
//! (Ctrl-C, a kill), a watchdog process that notices the pipe from us
//! close does the same.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// How long `pg_ctl start` waits for the server to accept connections.
const START_TIMEOUT_S: &str = "20";
/// Free ports tried before giving up (another process may take the port
/// between our probe and the server's bind).
const PORT_ATTEMPTS: u32 = 5;

/// Why no server could be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin or on PATH \
         (install PostgreSQL, or pass --store postgres://...)"
    )]
    NoBinaries,
    /// We are root, and there is no user to run the server as.
    #[error("we are root and there is no `postgres` user to run the server as (PostgreSQL refuses root)")]
    NoPostgresUser,
    /// The directory, its owner or the configuration could not be set up.
    #[error("{0}")]
    Setup(String),
    /// `initdb` failed.
    #[error("initdb failed: {0}")]
    Initdb(String),
    /// The server did not start.
    #[error("the PostgreSQL server did not start: {0}")]
    Start(String),
}

/// A running throwaway server.
pub struct PgServer {
    /// The directory of `initdb`, `pg_ctl`, `postgres`.
    bin: PathBuf,
    /// Whether its programs run as the `postgres` user (we are root).
    as_postgres: bool,
    /// Holds `data/`, `server.log` and the unix socket.
    dir: tempfile::TempDir,
    port: u16,
    /// Stops the server and removes `dir` once the pipe from us closes.
    watchdog: Option<(Child, ChildStdin)>,
}

impl PgServer {
    /// Initialises a cluster and starts it, waiting until it accepts
    /// connections. Blocking: a few seconds.
    pub fn start() -> Result<PgServer, StartError> {
        let bin = find_bin().ok_or(StartError::NoBinaries)?;
        let owner = if is_root() {
            Some(postgres_user().ok_or(StartError::NoPostgresUser)?)
        } else {
            None
        };
        // The `postgres` user must reach the directory: /tmp, not a TMPDIR
        // that may be private to root.
        let parent = if owner.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("weft-bench-pg-")
            .tempdir_in(&parent)
            .map_err(|e| StartError::Setup(format!("no temporary directory in {}: {e}", parent.display())))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                StartError::Setup(format!("{} cannot be handed to postgres: {e}", dir.path().display()))
            })?;
        }
        let mut server = PgServer {
            bin,
            as_postgres: owner.is_some(),
            dir,
            port: 0,
            watchdog: None,
        };
        // From here on, dropping `server` on an error stops what started.
        server.initdb()?;
        server.watchdog = server.spawn_watchdog();
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(_) if attempt < PORT_ATTEMPTS && server.log().contains("Address already in use") => {}
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Its `postgres` database, as the superuser `postgres` (trusted on
    /// 127.0.0.1, no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A PostgreSQL program, run as the server's user, in its directory
    /// (not ours, which `postgres` may not enter).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        command.current_dir(self.dir.path());
        command
    }

    fn initdb(&self) -> Result<(), StartError> {
        // --no-sync skips only initdb's own flush of the fresh cluster; the
        // server itself runs with fsync on.
        let data = self.data();
        run(self.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))
        .map_err(StartError::Initdb)?;
        let socket = self.dir.path().display().to_string().replace('\'', "''");
        let settings = format!(
            "\n# weft bench\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\n\
             fsync = on\n\
             synchronous_commit = on\n"
        );
        let conf = data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| StartError::Setup(format!("{} cannot be written: {e}", conf.display())))
    }

    fn pg_ctl_start(&self) -> Result<(), StartError> {
        run(self
            .command("pg_ctl")
            .args(["start", "-s", "-w", "-t", START_TIMEOUT_S, "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-o", &format!("-p {}", self.port)]))
        .map(drop)
        .map_err(|out| StartError::Start(format!("{out}\nits log ends:\n{}", self.log_tail())))
    }

    fn stop(&self) -> Result<String, String> {
        run(self
            .command("pg_ctl")
            .args(["stop", "-s", "-w", "-m", "immediate", "-D"])
            .arg(self.data()))
    }

    /// A `sh` in a process group of its own (so that a Ctrl-C meant for
    /// the bench does not reach it) that waits for EOF on its stdin, then
    /// stops the server and removes the directory. `None` when it cannot
    /// be started: the drop still cleans up when it runs.
    fn spawn_watchdog(&self) -> Option<(Child, ChildStdin)> {
        const SCRIPT: &str = r#"trap '' HUP INT TERM
read -r _
if [ "$3" = postgres ]; then runuser -u postgres -- "$4" stop -s -w -m immediate -D "$1"
else "$4" stop -s -w -m immediate -D "$1"; fi
rm -rf "$2""#;
        let mut child = Command::new("sh")
            .args(["-c", SCRIPT, "weft-bench-pg-watchdog"])
            .arg(self.data())
            .arg(self.dir.path())
            .arg(if self.as_postgres { "postgres" } else { "self" })
            .arg(self.bin.join("pg_ctl"))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        Some((child, stdin))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        if tail.is_empty() { "(nothing)".into() } else { tail }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Our own cleanup first; the watchdog must not run it again.
        if let Some((mut child, stdin)) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
        }
        if self.data().join("postmaster.pid").exists()
            && let Err(e) = self.stop()
        {
            eprintln!(
                "the bench's PostgreSQL server in {} did not stop: {e}",
                self.dir.path().display()
            );
        }
        // `dir` (a TempDir) is removed after this.
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with a server in it, else
/// the directory of the `initdb` on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let complete = |bin: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|p| bin.join(p).is_file());
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version: Option<Vec<u32>> = name.to_str()?.split('.').map(|part| part.parse().ok()).collect();
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version?, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        // Through symlinks, e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/16/bin/initdb.
        let initdb = dir.join("initdb").canonicalize().ok()?;
        let bin = initdb.parent()?;
        complete(bin).then(|| bin.to_owned())
    })
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Option<(u32, u32)> {
    let id = |flag: &str| {
        run(Command::new("id").args([flag, "postgres"]))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, StartError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| StartError::Setup(format!("no free port on 127.0.0.1: {e}")))
}

/// Runs a command to its end: its stdout, or else its exit status and
/// everything it printed (or why it could not start).
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
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
