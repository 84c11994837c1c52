//! The PostgreSQL schema is created and upgraded by weft itself, on a real
//! server the harness starts (or `WEFT_TEST_PG`), and a database migrated
//! by a newer weft is refused.

#[path = "common/pg.rs"]
mod pg;

use tokio_postgres::{Client, NoTls};
use weft::store::postgres::{MIGRATIONS, SchemaError, migrate};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    client
}

const TABLES: [&str; 18] = [
    "tenants",
    "api_keys",
    "module_bytes",
    "module_versions",
    "module_names",
    "workflows",
    "workflow_versions",
    "workflow_names",
    "runs",
    "units",
    "attempts",
    "events",
    "kv",
    "idempotency_keys",
    "nodes",
    "secrets",
    "keycheck",
    "objects",
];

#[tokio::test]
async fn an_empty_database_is_migrated_to_the_newest_schema_once() {
    let Some(pg) = pg::Pg::start() else { return };
    let mut client = connect(pg.url()).await;
    let newest = MIGRATIONS.last().unwrap().version;
    assert_eq!(migrate(&mut client).await.unwrap(), newest);
    for table in TABLES {
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(found, 1, "table {table} after migrating");
    }
    // Again: nothing to do, nothing applied twice.
    assert_eq!(migrate(&mut client).await.unwrap(), newest);
    let applied: i64 = client
        .query_one("SELECT count(*) FROM weft_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_weft_is_refused() {
    let Some(pg) = pg::Pg::start() else { return };
    let mut client = connect(pg.url()).await;
    migrate(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO weft_schema_migrations (version, name) VALUES (999, 'from the future')",
            &[],
        )
        .await
        .unwrap();
    let error = migrate(&mut client).await.unwrap_err();
    assert!(matches!(error, SchemaError::Newer { database: 999, .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("999") && message.contains("newer than this weft"),
        "{message}"
    );
}

#[tokio::test]
async fn processes_migrating_at_once_take_turns() {
    let Some(pg) = pg::Pg::start() else { return };
    let mut first = connect(pg.url()).await;
    let mut second = connect(pg.url()).await;
    let (a, b) = tokio::join!(migrate(&mut first), migrate(&mut second));
    let newest = MIGRATIONS.last().unwrap().version;
    assert_eq!((a.unwrap(), b.unwrap()), (newest, newest));
}
