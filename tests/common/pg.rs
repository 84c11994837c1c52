//! A real PostgreSQL server for the tests that need one.
//!
//! [`Pg::start`] gives a test its own database on a real server:
//!
//! - With `WEFT_TEST_PG=postgres://USER[:PASSWORD]@HOST:PORT/DB` set, on that
//!   server: the harness creates a fresh database for the test there (so that
//!   tests do not collide) and drops it when the test ends. Nothing is started.
//! - Otherwise on a server the harness starts once per test process and
//!   shares between the process's tests, each with a fresh database: `initdb
//!   --auth=trust` in a fresh temporary directory, listening on 127.0.0.1 only
//!   on a free port (its unix socket in that directory), `fsync` on, with a
//!   database `weft` and superuser `postgres`. The binaries are the newest
//!   under `/usr/lib/postgresql/*/bin` (else the `initdb` on `PATH`); when
//!   there are none and we are root, `apt-get install -y postgresql` is tried
//!   once per process. PostgreSQL refuses to run as root, so as root the
//!   server runs as the `postgres` user (through `runuser`) and the directory
//!   is handed to that user. [`Pg::start_local`] always starts one of the
//!   test's own, for the fault tests that stop and restart it, and
//!   [`Pg::start_local_tls`] one with TLS on, for the TLS tests.
//!
//! Every server the harness starts is stopped (`pg_ctl stop -m immediate`)
//! and its directory removed when the [`Pg`] drops, also when the test
//! panics; should the test process die without unwinding (killed, or
//! `process::exit`), a small watchdog process, which notices when the pipe
//! from the test process closes, does the same.
//!
//! Where no server can be had (no binaries and none installable, no
//! `postgres` user, a server that does not start), the test is reported as
//! skipped on stderr (`SKIPPED: <test> because <reason>`) and `start`
//! returns `None`, except under `CI=true`, where it panics with the reason.
//! A server named by `WEFT_TEST_PG` that cannot be used is an error, never a
//! skip: someone asked for it.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

#[path = "outside.rs"]
pub mod outside;

use outside::{apt_install, run, skip};

/// How long a starting server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports a start tries before it gives up (another process may
/// take the port between our probe and the server's bind).
const PORT_ATTEMPTS: u32 = 5;

/// A PostgreSQL server for one test, started by the harness (or the one
/// `WEFT_TEST_PG` names), with a fresh database for the test.
pub struct Pg {
    url: String,
    psql: PathBuf,
    server: Server,
}

enum Server {
    /// Started by the harness; stopped and removed on drop.
    Local(Local),
    /// The process's shared server: `database` is dropped on drop; the
    /// server itself is stopped by its watchdog when the process ends.
    Shared { local: &'static Local, database: String },
    /// The `WEFT_TEST_PG` server: `database` is dropped through `admin_url`.
    External { admin_url: String, database: String },
}

impl Pg {
    /// A server with a fresh database for the calling test: the one
    /// `WEFT_TEST_PG` names, else one the harness starts. `None` when no
    /// server can be had: the test has then been reported as skipped and
    /// should return (under `CI=true` this panics instead).
    pub fn start() -> Option<Pg> {
        match std::env::var("WEFT_TEST_PG") {
            Ok(url) if !url.is_empty() => Self::external(&url),
            _ => Self::shared(),
        }
    }

    /// A fresh database on the server this process shares between its
    /// tests, started on first use.
    fn shared() -> Option<Pg> {
        static SHARED: OnceLock<Result<Local, String>> = OnceLock::new();
        let local = SHARED.get_or_init(|| tools().clone().and_then(Local::start));
        let local = match local {
            Ok(local) => local,
            Err(reason) => {
                skip(reason);
                return None;
            }
        };
        let psql = local.tools.bin.join("psql");
        let database = fresh_name();
        if let Err(e) = run_psql(&psql, &local.url("postgres"), &format!("CREATE DATABASE {database}")) {
            panic!("the shared test server cannot create database {database}: {e}");
        }
        Some(Pg {
            url: local.url(&database),
            psql,
            server: Server::Shared { local, database },
        })
    }

    /// A server the harness starts itself even when `WEFT_TEST_PG` is set:
    /// for the tests that need [`Pg::stop_immediate`] and [`Pg::restart`].
    /// `None` (reported as skipped) or a panic under `CI=true` as for
    /// [`Pg::start`].
    pub fn start_local() -> Option<Pg> {
        Self::start_local_with(|_| Ok(()))
    }

    /// A server of the test's own, as [`Pg::start_local`], with TLS on
    /// (`ssl = on`): `cert_pem` (the server's certificate, then any
    /// intermediates) and `key_pem` are its certificate and key, and it
    /// takes TCP connections over TLS only (`hostssl` in `pg_hba.conf`; the
    /// unix socket as before). The harness's `psql` and `pg_isready` use TLS
    /// then, as libpq's default `sslmode=prefer` does.
    pub fn start_local_tls(cert_pem: &str, key_pem: &str) -> Option<Pg> {
        Self::start_local_with(|local| local.enable_tls(cert_pem, key_pem))
    }

    /// A server of the test's own, `configure`d between `initdb` and its
    /// first start.
    fn start_local_with(configure: impl FnOnce(&Local) -> Result<(), String>) -> Option<Pg> {
        let started = tools().clone().and_then(|tools| {
            let psql = tools.bin.join("psql");
            Local::start_with(tools, configure).map(|local| (local, psql))
        });
        match started {
            Ok((local, psql)) => Some(Pg {
                url: local.url("weft"),
                psql,
                server: Server::Local(local),
            }),
            Err(reason) => {
                skip(&reason);
                None
            }
        }
    }

    fn external(admin_url: &str) -> Option<Pg> {
        let psql = match psql_program() {
            Ok(psql) => psql,
            Err(reason) => {
                skip(&format!(
                    "WEFT_TEST_PG is set but there is no psql to use it with: {reason}"
                ));
                return None;
            }
        };
        let database = fresh_name();
        let url = with_database(admin_url, &database).unwrap_or_else(|e| panic!("WEFT_TEST_PG: {e}"));
        if let Err(e) = run_psql(&psql, admin_url, &format!("CREATE DATABASE {database}")) {
            panic!("WEFT_TEST_PG names a server where database {database} cannot be created: {e}");
        }
        Some(Pg {
            url,
            psql,
            server: Server::External {
                admin_url: admin_url.to_owned(),
                database,
            },
        })
    }

    /// The test's database, e.g. `postgres://postgres@127.0.0.1:PORT/weft`
    /// (for `WEFT_TEST_PG`: its URL, password and parameters included, with
    /// the database replaced by the test's).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory of a server the harness started (`data/`,
    /// `server.log`, the unix socket); `None` for `WEFT_TEST_PG`.
    pub fn dir(&self) -> Option<&Path> {
        match &self.server {
            Server::Local(local) => Some(local.dir.path()),
            Server::Shared { local, .. } => Some(local.dir.path()),
            Server::External { .. } => None,
        }
    }

    /// Stops the server abruptly (`pg_ctl stop -m immediate`: every process
    /// ends at once, with no checkpoint; the next start recovers from the
    /// WAL), for fault tests. Panics for a `WEFT_TEST_PG` server (use
    /// [`Pg::start_local`]) or when the server cannot be stopped.
    pub fn stop_immediate(&self) {
        self.local("stop_immediate").stop().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server again after [`Pg::stop_immediate`], on the same
    /// port and data directory, and waits until it accepts connections.
    /// Panics (with the server log's tail) when it does not come back.
    pub fn restart(&self) {
        let local = self.local("restart");
        local
            .pg_ctl_start()
            .and_then(|()| local.wait_ready())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `sql` (one or more statements) through `psql` on the test's
    /// database and returns what it printed: rows one a line, columns
    /// separated by `|`, no headers or command tags, without the final
    /// newline; e.g. `pg.psql("select count(*) from runs")` is `"3"`.
    /// Panics when any statement fails, with psql's message.
    pub fn psql(&self, sql: &str) -> String {
        run_psql(&self.psql, &self.url, sql).unwrap_or_else(|e| panic!("psql failed on {sql:?}: {e}"))
    }

    fn local(&self, what: &str) -> &Local {
        match &self.server {
            Server::Local(local) => local,
            Server::External { .. } | Server::Shared { .. } => panic!(
                "Pg::{what} needs a server of the test's own, not a shared one: use Pg::start_local() in this test"
            ),
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // A harness-started server is stopped and removed by `Local`'s drop.
        let (admin_url, database) = match &self.server {
            Server::Local(_) => return,
            Server::External { admin_url, database } => (admin_url.clone(), database),
            Server::Shared { local, database } => (local.url("postgres"), database),
        };
        // Connections the test left open (a pool) would block a plain DROP.
        let force = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        if run_psql(&self.psql, &admin_url, &force).is_err() {
            let _ = run_psql(&self.psql, &admin_url, &format!("DROP DATABASE IF EXISTS {database}"));
        }
    }
}

/// A database name no other test of any process uses.
fn fresh_name() -> String {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    format!(
        "weft_test_{}_{}_{:x}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed),
        random()
    )
}

/// The PostgreSQL binaries, and whose they are to run.
#[derive(Clone)]
struct Tools {
    /// The directory of `initdb`, `pg_ctl`, `postgres`, `pg_isready`, `psql`.
    bin: PathBuf,
    /// The `postgres` user's uid and gid when we are root (the server then
    /// runs as that user); `None` when the server runs as we do.
    owner: Option<(u32, u32)>,
}

/// The binaries, found (or installed) once per process.
fn tools() -> &'static Result<Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let root = run(Command::new("id").arg("-u"))
            .map_err(|e| format!("`id -u` failed: {e}"))?
            .trim()
            == "0";
        let find = || {
            let bin = find_bin().ok_or("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin or on PATH")?;
            let owner = if root { Some(postgres_user()?) } else { None };
            Ok::<_, String>(Tools { bin, owner })
        };
        find().or_else(|missing| {
            install().map_err(|why| format!("{missing}, and {why}"))?;
            find().map_err(|still| format!("{still}, even after apt-get installed postgresql"))
        })
    })
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with a server in it (the
/// Debian layout), else the directory of the `initdb` on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let complete = |bin: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|program| bin.join(program).is_file())
    };
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
        // Through symlinks, e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb.
        let initdb = dir.join("initdb").canonicalize().ok()?;
        let bin = initdb.parent()?;
        complete(bin).then(|| bin.to_owned())
    })
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| {
        run(Command::new("id").args([flag, "postgres"]))
            .ok()
            .and_then(|out| out.trim().parse().ok())
            .ok_or("we are root and there is no `postgres` user to run the server as (PostgreSQL refuses root)")
    };
    Ok((id("-u")?, id("-g")?))
}

/// A `psql` for a `WEFT_TEST_PG` server: the one beside the server binaries,
/// else the one on `PATH`, else one apt-get installs.
fn psql_program() -> Result<PathBuf, String> {
    static PSQL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PSQL.get_or_init(|| {
        let find = || {
            if let Some(bin) = find_bin() {
                return Some(bin.join("psql"));
            }
            run(Command::new("psql").arg("--version"))
                .ok()
                .map(|_| PathBuf::from("psql"))
        };
        find().map(Ok).unwrap_or_else(|| {
            install().map_err(|why| format!("psql is not on PATH, and {why}"))?;
            find().ok_or_else(|| "psql is still missing after apt-get installed postgresql".to_owned())
        })
    })
    .clone()
}

/// `apt-get install -y postgresql`, tried once per process when we are
/// root.
fn install() -> Result<(), String> {
    static APT: OnceLock<Result<(), String>> = OnceLock::new();
    APT.get_or_init(|| apt_install(&["postgresql"], || find_bin().is_some() && postgres_user().is_ok()))
        .clone()
}

/// A server the harness started, in its own temporary directory.
struct Local {
    tools: Tools,
    /// Holds `data/` (the cluster), `server.log` and the unix socket;
    /// removed on drop, after the server stopped.
    dir: tempfile::TempDir,
    /// Set once a start succeeded; restarts use it again.
    port: u16,
    /// Stops the server and removes `dir` once the pipe from this process
    /// closes, i.e. when the process dies without dropping us.
    watchdog: Option<(Child, ChildStdin)>,
}

impl Local {
    fn start(tools: Tools) -> Result<Local, String> {
        Self::start_with(tools, |_| Ok(()))
    }

    /// Starts a server, `configure`d between `initdb` and its first start.
    fn start_with(tools: Tools, configure: impl FnOnce(&Local) -> Result<(), String>) -> Result<Local, String> {
        // As root the server runs as `postgres`, who must be able to reach the
        // directory: /tmp, not a TMPDIR that may be private to root.
        let parent = if tools.owner.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("weft-pg-")
            .tempdir_in(&parent)
            .map_err(|e| format!("no temporary directory in {}: {e}", parent.display()))?;
        if let Some((uid, gid)) = tools.owner {
            // Created by root with mode 0700: hand it to the server's user.
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("{} cannot be handed to postgres: {e}", dir.path().display()))?;
        }
        let mut local = Local {
            tools,
            dir,
            port: 0,
            watchdog: None,
        };
        // From here on, dropping `local` on an error stops whatever started.
        local.initdb()?;
        configure(&local)?;
        local.watchdog = local.spawn_watchdog();
        for attempt in 1..=PORT_ATTEMPTS {
            local.port = free_port()?;
            match local.pg_ctl_start() {
                Ok(()) => break,
                Err(_) if attempt < PORT_ATTEMPTS && local.log().contains("Address already in use") => {}
                Err(e) => return Err(e),
            }
        }
        local.wait_ready()?;
        run_psql(
            &local.tools.bin.join("psql"),
            &local.url("postgres"),
            "CREATE DATABASE weft",
        )
        .map_err(|e| format!("the database weft cannot be created: {e}"))?;
        Ok(local)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A PostgreSQL program run as the server's user, in its directory.
    fn command(&self, program: &str) -> Command {
        let path = self.tools.bin.join(program);
        let mut command = if self.tools.owner.is_some() {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        // Not the test's working directory, which `postgres` may not enter.
        command.current_dir(self.dir.path());
        command
    }

    fn initdb(&self) -> Result<(), String> {
        let data = self.data();
        // --no-sync only skips initdb's own final flush of the fresh cluster
        // (power loss is no concern in a test); the server runs with fsync on.
        run(self.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))
        .map_err(|out| format!("initdb failed:\n{out}"))?;
        let socket = self.dir.path().display().to_string().replace('\'', "''");
        let mut settings = format!(
            "\n# weft test harness\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             shared_buffers = 16MB\n"
        );
        let major: u32 = fs::read_to_string(data.join("PG_VERSION"))
            .ok()
            .and_then(|version| version.trim().parse().ok())
            .unwrap_or(0);
        if major >= 14 {
            // Recovery after `stop_immediate` first syncs the data directory:
            // one syncfs() instead of an fsync() per file (about a thousand)
            // takes a restart here from about 3.4 s to about 1 s.
            settings.push_str("recovery_init_sync_method = syncfs\n");
        }
        let conf = data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| format!("{} cannot be written: {e}", conf.display()))
    }

    /// Turns TLS on with this certificate and key, and lets TCP connections
    /// in over TLS only: `host` lines of `pg_hba.conf` become `hostssl`.
    fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let data = self.data();
        // The server refuses a key that others may read or that is not its
        // user's (or root's).
        for (name, pem, mode) in [("server.crt", cert_pem, 0o644), ("server.key", key_pem, 0o600)] {
            let path = data.join(name);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut file| file.write_all(pem.as_bytes()))
                .and_then(|()| match self.tools.owner {
                    Some((uid, gid)) => std::os::unix::fs::chown(&path, Some(uid), Some(gid)),
                    None => Ok(()),
                })
                .map_err(|e| format!("{} cannot be written: {e}", path.display()))?;
        }
        let hba = data.join("pg_hba.conf");
        let rules = fs::read_to_string(&hba).map_err(|e| format!("{} cannot be read: {e}", hba.display()))?;
        let rules: String = rules
            .lines()
            .map(|line| match line.strip_prefix("host") {
                Some(rest) if rest.starts_with([' ', '\t']) => format!("hostssl{rest}\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        fs::write(&hba, rules).map_err(|e| format!("{} cannot be written: {e}", hba.display()))?;
        let conf = data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(b"ssl = on\n"))
            .map_err(|e| format!("{} cannot be written: {e}", conf.display()))
    }

    /// `pg_ctl start`, waiting (bounded) until the server is up.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let timeout = READY_TIMEOUT.as_secs().to_string();
        run(self
            .command("pg_ctl")
            .args(["start", "-s", "-w", "-t", &timeout, "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-o", &format!("-p {}", self.port)]))
        .map(drop)
        .map_err(|out| {
            format!(
                "the PostgreSQL server in {} did not start on port {}: {out}\nits log ends:\n{}",
                self.data().display(),
                self.port,
                self.log_tail()
            )
        })
    }

    /// Polls `pg_isready` until the server accepts connections (bounded).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = Command::new(self.tools.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "1",
                    "-p",
                ])
                .arg(self.port.to_string())
                .status()
                .map_err(|e| format!("pg_isready cannot be run: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the PostgreSQL server on port {} did not accept connections within {READY_TIMEOUT:?}; its log ends:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&self) -> Result<(), String> {
        run(self
            .command("pg_ctl")
            .args(["stop", "-s", "-w", "-m", "immediate", "-D"])
            .arg(self.data()))
        .map(drop)
        .map_err(|out| format!("pg_ctl stop failed: {out}\nthe server log ends:\n{}", self.log_tail()))
    }

    /// A `sh` in a process group of its own (so that neither Ctrl-C nor a
    /// test runner killing our group reaches it) that waits for EOF on its
    /// stdin, then stops the server and removes the directory. `None` when
    /// it cannot be started: the drop still cleans up when it runs.
    fn spawn_watchdog(&self) -> Option<(Child, ChildStdin)> {
        const SCRIPT: &str = r#"trap '' HUP INT TERM
read -r _
if [ "$3" = root ]; then runuser -u postgres -- "$4" stop -s -w -m immediate -D "$1"
else "$4" stop -s -w -m immediate -D "$1"; fi
rm -rf "$2""#;
        let mut child = Command::new("sh")
            .args(["-c", SCRIPT, "weft-pg-watchdog"])
            .arg(self.data())
            .arg(self.dir.path())
            .arg(if self.tools.owner.is_some() { "root" } else { "user" })
            .arg(self.tools.bin.join("pg_ctl"))
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

    /// The last lines of the server log, for error messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log_path()) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() { "(nothing)".into() } else { tail }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Our own cleanup first; the watchdog must not run it a second time
        // (its `rm -rf` could then meet a later test's directory of that name).
        if let Some((mut child, stdin)) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
        }
        if self.data().join("postmaster.pid").exists()
            && let Err(e) = self.stop()
        {
            // What `pg_ctl stop -m immediate` does, by hand: SIGQUIT to the
            // postmaster named in its pid file, lest it outlive its directory.
            let pid = fs::read_to_string(self.data().join("postmaster.pid")).unwrap_or_default();
            let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
            let killed = !pid.is_empty() && run(Command::new("kill").args(["-QUIT", &pid])).is_ok();
            let _ = writeln!(
                std::io::stderr(),
                "the test's PostgreSQL server did not stop ({}): {e}",
                if killed {
                    "sent SIGQUIT to its postmaster"
                } else {
                    "and could not be signalled"
                }
            );
        }
        // `dir` (a TempDir) removes the directory after this.
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, String> {
    // Threads of one process ask in turn, so two of them are not handed the
    // same port that the first has released already.
    static PROBING: Mutex<()> = Mutex::new(());
    let _guard = PROBING.lock().unwrap_or_else(PoisonError::into_inner);
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// `url` (`postgres://` or `postgresql://`) naming `database` instead.
fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "postgres" | "postgresql"))
        .ok_or_else(|| format!("{url:?} is not a postgres:// URL"))?;
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(authority, _)| authority);
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

/// Runs `sql` through `psql` on `url`: tuples only, unaligned, stopping at
/// the first error, never prompting for a password.
fn run_psql(psql: &Path, url: &str, sql: &str) -> Result<String, String> {
    let mut child = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-f",
            "-",
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} cannot be started: {e}", psql.display()))?;
    let mut stdin = child.stdin.take().expect("psql's stdin is piped");
    let written = stdin.write_all(sql.as_bytes());
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| format!("psql did not finish: {e}"))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() && written.is_ok() {
        let mut out = text(&output.stdout);
        out.truncate(out.trim_end_matches('\n').len());
        Ok(out)
    } else {
        Err(format!("{}\n{}", output.status, text(&output.stderr)))
    }
}

/// A random number, different in every process and call.
fn random() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(Instant::now())
}
