//! What only the embedded store does; what every backend does is held by
//! `tests/store.rs`, on both.

use super::*;

#[test]
fn refuses_another_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    drop(RedbStore::open(&path).unwrap());
    {
        let database = Database::create(&path).unwrap();
        let txn = database.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", 99).unwrap();
        txn.commit().unwrap();
    }
    let error = RedbStore::open(&path).err().unwrap();
    assert_eq!(
        error,
        StoreError::SchemaVersion {
            found: 99,
            expected: SCHEMA_VERSION
        }
    );
}
