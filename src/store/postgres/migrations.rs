//! Versioned migrations: weft creates its schema in an empty database and
//! upgrades an older one, each migration in its own transaction, recorded
//! in `weft_schema_migrations`. A database whose schema is newer than this
//! build knows is refused, with both versions named, instead of misread.
//!
//! Migrations are SQL files beside this one, compiled in, and never edited
//! once released: a change is a new file with the next version.

use tokio_postgres::Client;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, ...: applied in this order, each once.
    pub version: i32,
    /// What it does, as its file is named.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "cluster",
        sql: include_str!("migrations/0002_cluster.sql"),
    },
    Migration {
        version: 3,
        name: "secrets",
        sql: include_str!("migrations/0003_secrets.sql"),
    },
    Migration {
        version: 4,
        name: "objects",
        sql: include_str!("migrations/0004_objects.sql"),
    },
    Migration {
        version: 5,
        name: "attempt_permits",
        sql: include_str!("migrations/0005_attempt_permits.sql"),
    },
];

/// Why the schema could not be brought to this build's version.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database was migrated by a newer weft.
    #[error(
        "the database's schema is at version {database}, newer than this weft knows (up to {known}): \
         run a weft at least as new as the one that migrated it"
    )]
    Newer {
        /// The database's version.
        database: i32,
        /// The newest this build knows.
        known: i32,
    },
    /// The database holds no weft store, or one at an older schema, and
    /// the caller may not change it.
    #[error("{0}")]
    NotCurrent(String),
    /// A statement failed.
    #[error("migrating the schema: {}", super::describe(.0))]
    Sql(#[from] tokio_postgres::Error),
}

/// A key for `pg_advisory_lock`, so that processes migrating the same
/// database at once take turns ("weftmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7765_6674_6d69_6772;

/// Brings the database's schema to the newest version this build knows;
/// returns that version. Safe to call from several processes at once:
/// they take turns on an advisory lock.
pub async fn migrate(client: &mut Client) -> Result<i32, SchemaError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let version = result?;
    unlocked?;
    Ok(version)
}

/// Checks, changing nothing, that the database holds a weft store at
/// this build's schema.
pub async fn require_current(client: &Client) -> Result<(), SchemaError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let exists: bool = client
        .query_one("SELECT to_regclass('weft_schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Err(SchemaError::NotCurrent("this database holds no weft store".into()));
    }
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM weft_schema_migrations", &[])
        .await?
        .get(0);
    match found.cmp(&known) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(SchemaError::Newer { database: found, known }),
        std::cmp::Ordering::Less => Err(SchemaError::NotCurrent(format!(
            "the store's schema is at version {found}, older than this weft's {known}: \
             start `weft serve` on it once to upgrade it"
        ))),
    }
}

async fn apply(client: &mut Client) -> Result<i32, SchemaError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS weft_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM weft_schema_migrations", &[])
        .await?
        .get(0);
    if found > known {
        return Err(SchemaError::Newer { database: found, known });
    }
    let mut current = found;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let transaction = client.transaction().await?;
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO weft_schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        transaction.commit().await?;
        current = migration.version;
        tracing::info!(version = migration.version, name = migration.name, "schema migrated");
    }
    Ok(current)
}
