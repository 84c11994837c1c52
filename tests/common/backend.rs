//! One test body, both backends: [`TestStore`] is a fresh store of either
//! kind, and [`on_both_backends!`] turns one `async fn` into a `redb` and a
//! `postgres` test. The PostgreSQL half runs on a real server (see
//! `pg.rs`): skipped loudly where none can be had, failed under `CI=true`.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use weft::store::{self, Store, StoreLocation};

#[path = "pg.rs"]
pub mod pg;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

/// A fresh, empty store for one test, removed when it drops.
pub struct TestStore {
    pub backend: Backend,
    location: StoreLocation,
    /// The store's location as a `--store` argument (a PostgreSQL URL with
    /// its password, unlike the location's display).
    arg: String,
    dir: tempfile::TempDir,
    pg: Option<pg::Pg>,
}

impl TestStore {
    /// An embedded store in a fresh directory.
    pub fn redb() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        TestStore {
            backend: Backend::Redb,
            location: StoreLocation::Redb(store.clone()),
            arg: format!("redb:{}", store.display()),
            dir,
            pg: None,
        }
    }

    /// A fresh database on a real PostgreSQL server; `None` (reported as
    /// skipped) where there is none.
    pub fn postgres() -> Option<TestStore> {
        Self::on(pg::Pg::start()?)
    }

    /// A fresh database on a server of the test's own, which it may stop
    /// and restart.
    pub fn postgres_local() -> Option<TestStore> {
        Self::on(pg::Pg::start_local()?)
    }

    fn on(pg: pg::Pg) -> Option<TestStore> {
        Some(TestStore {
            backend: Backend::Postgres,
            location: pg.url().parse().unwrap(),
            arg: pg.url().to_string(),
            dir: tempfile::tempdir().unwrap(),
            pg: Some(pg),
        })
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// `--store` for a `weft` command.
    pub fn arg(&self) -> &str {
        &self.arg
    }

    /// A scratch directory beside the store (a server's `--data`).
    pub fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The PostgreSQL server, for fault tests.
    pub fn pg(&self) -> Option<&pg::Pg> {
        self.pg.as_ref()
    }

    /// Everything the store holds, as raw bytes: the redb file, or every
    /// row of every table as text.
    pub fn dump(&self) -> Vec<u8> {
        match (&self.pg, &self.location) {
            (Some(pg), _) => {
                let tables = pg.psql("select tablename from pg_tables where schemaname = 'public'");
                let mut out = String::new();
                for table in tables.lines() {
                    out += &pg.psql(&format!("select t::text from {table} t"));
                    out.push('\n');
                }
                out.into_bytes()
            }
            (None, StoreLocation::Redb(dir)) => std::fs::read(dir.join(store::redb::STORE_FILE)).unwrap(),
            (None, other) => panic!("no dump of {other}"),
        }
    }

    /// `pg_dump --data-only` of a PostgreSQL store: what a backup holds.
    pub fn pg_dump(&self) -> Vec<u8> {
        let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin/pg_dump"))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        let binary = versions.pop().unwrap_or_else(|| "pg_dump".into());
        let dump = std::process::Command::new(binary)
            .args(["--data-only", "--dbname", self.arg()])
            .output()
            .expect("running pg_dump");
        assert!(
            dump.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
        dump.stdout
    }

    /// Opens the store (again).
    pub async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.location, store::DEFAULT_CACHE)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.location))
    }
}

/// `on_both_backends! { async fn name(store: TestStore) { ... } }` makes a
/// module `name` with the tests `redb` and `postgres`, each running the
/// body on a fresh store of its kind. Several functions may be given.
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$meta:meta])* async fn $name:ident($store:ident: TestStore) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: TestStore) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redb() {
                body(TestStore::redb()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = TestStore::postgres() {
                    body(store).await
                }
            }
        }
    )*};
}
