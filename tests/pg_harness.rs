//! The PostgreSQL test harness (`tests/common/pg.rs`) gives each test a
//! real, working server and cleans up after it, however the test ends.

#[path = "common/pg.rs"]
mod pg;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pg::Pg;

/// The port of a harness-started server, from its URL.
fn port(pg: &Pg) -> u16 {
    let (_, rest) = pg
        .url()
        .split_once("@127.0.0.1:")
        .expect("a harness-started server's URL");
    rest.split('/').next().unwrap().parse().expect("a port in the URL")
}

fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits (bounded) until the directory is gone and nothing listens on the port.
fn assert_cleaned_up(dir: &Path, port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while (dir.exists() || accepts(port)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(!accepts(port), "something still listens on port {port}");
}

#[test]
fn a_fresh_server_answers_with_fsync_on() {
    let began = Instant::now();
    let Some(pg) = Pg::start() else { return };
    eprintln!("a server with a fresh database in {:?}: {}", began.elapsed(), pg.url());
    assert_eq!(pg.psql("select 1"), "1");
    if pg.dir().is_some() {
        // (A WEFT_TEST_PG server is as its owner set it up.)
        assert_eq!(pg.psql("show fsync"), "on");
    }
    let database = pg.psql("select current_database()");
    let path = pg.url().rsplit_once('/').unwrap().1;
    assert_eq!(path.split('?').next(), Some(database.as_str()), "{}", pg.url());
    // Several statements, several rows, columns joined by `|`, no command tags.
    let out =
        pg.psql("create table t (a int, b text); insert into t values (1, 'x'), (2, 'y'); select * from t order by a");
    assert_eq!(out, "1|x\n2|y");
}

#[test]
fn a_committed_row_survives_an_immediate_stop() {
    let Some(pg) = Pg::start_local() else { return };
    pg.psql("create table runs (id text primary key); insert into runs values ('r1')");
    pg.stop_immediate();
    assert!(
        !accepts(port(&pg)),
        "the server still accepts connections after stop_immediate"
    );
    let began = Instant::now();
    pg.restart();
    eprintln!("restarted (with crash recovery) in {:?}", began.elapsed());
    assert_eq!(pg.psql("select id from runs"), "r1");
    let log = std::fs::read_to_string(pg.dir().unwrap().join("server.log")).unwrap();
    assert!(
        log.contains("database system was interrupted"),
        "the restart did not recover from a crash:\n{log}"
    );
}

#[test]
fn two_servers_at_once_are_apart() {
    let Some(a) = Pg::start() else { return };
    let Some(b) = Pg::start() else { return };
    assert_ne!(a.url(), b.url());
    a.psql("create table only_in_a (x int)");
    assert_eq!(
        a.psql("select count(*) from pg_tables where tablename = 'only_in_a'"),
        "1"
    );
    assert_eq!(
        b.psql("select count(*) from pg_tables where tablename = 'only_in_a'"),
        "0"
    );
}

#[test]
fn a_panicking_test_leaves_no_server_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let test = std::thread::Builder::new()
        .name("a_panicking_test_leaves_no_server_behind".into())
        .spawn(move || {
            let Some(pg) = Pg::start_local() else {
                return;
            };
            tx.send((pg.dir().unwrap().to_owned(), port(&pg))).unwrap();
            panic!("this panic is deliberate: the server must still be stopped");
        })
        .unwrap();
    let joined = test.join();
    match rx.recv() {
        Ok((dir, port)) => {
            assert!(joined.is_err(), "the test thread was meant to panic");
            assert_cleaned_up(&dir, port, Duration::ZERO);
        }
        // Skipped, or (under CI=true) the harness's panic: pass that on.
        Err(_) => {
            if let Err(panic) = joined {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Run as a child process by the test below: starts a server, prints where,
/// and exits without dropping it.
const CHILD: &str = "WEFT_PG_HARNESS_CHILD";

#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    if std::env::var_os(CHILD).is_some() {
        let Some(pg) = Pg::start_local() else {
            std::process::exit(3);
        };
        println!("DIR={}", pg.dir().unwrap().display());
        println!("PORT={}", port(&pg));
        std::process::exit(0); // no unwinding, no drop: the watchdog must clean up
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_test_process_leaves_no_server_behind",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        // Pass the child's SKIPPED line on, past the test's output capture.
        let _ = std::io::stderr().write_all(stderr.as_bytes());
        return;
    }
    assert!(
        output.status.success(),
        "the child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in the child's output:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    let dir = PathBuf::from(field("DIR="));
    let port: u16 = field("PORT=").parse().unwrap();
    assert_cleaned_up(&dir, port, Duration::from_secs(10));
}
