//! The service on a real (temporary) redb store.

use std::sync::Arc;

use super::*;
use crate::store::redb::RedbStore;

fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap())
}

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; KEY_LEN], KeyOrigin::Env)
}

#[tokio::test]
async fn set_list_reveal_delete() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(store(&dir), key(1)).await.unwrap();
    assert!(secrets.set("acme", "token", "hunter2").await.unwrap());
    assert!(!secrets.set("acme", "token", "hunter3").await.unwrap());
    let list = secrets.list("acme").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "token");
    assert_eq!(list[0].key_id, secrets.key_id());
    assert!(list[0].created_at <= list[0].updated_at);
    assert!(secrets.list("globex").await.unwrap().is_empty());

    let values = secrets.reveal("acme", &["token".into()]).await.unwrap();
    assert_eq!(values["token"], "hunter3");
    let missing = secrets
        .reveal("acme", &["token".into(), "nope".into()])
        .await
        .unwrap_err();
    assert_eq!(missing, SecretsError::Missing("nope".into()));
    assert!(missing.to_string().contains("\"nope\""));
    // Another tenant's secret is not there at all.
    assert_eq!(
        secrets.reveal("globex", &["token".into()]).await.unwrap_err(),
        SecretsError::Missing("token".into())
    );

    assert!(secrets.delete("acme", "token").await.unwrap());
    assert!(!secrets.delete("acme", "token").await.unwrap());
    assert!(secrets.list("acme").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_tenant_or_name_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let secrets = Secrets::open(store.clone(), key(1)).await.unwrap();
    secrets.set("acme", "token", "hunter2").await.unwrap();
    let sealed = store.secret("acme", "token").await.unwrap().unwrap();
    for (tenant, name) in [("globex", "token"), ("acme", "other")] {
        let moved = SecretRecord {
            tenant: tenant.into(),
            name: name.into(),
            ..sealed.clone()
        };
        store.put_secret(moved).await.unwrap();
        let error = secrets.reveal(tenant, &[name.to_string()]).await.unwrap_err();
        assert!(
            matches!(&error, SecretsError::Unreadable { name: n, .. } if n == name),
            "{tenant}/{name}: {error}"
        );
        assert!(!error.to_string().contains("hunter2"));
    }
    // The original still opens.
    assert_eq!(
        secrets.reveal("acme", &["token".into()]).await.unwrap()["token"],
        "hunter2"
    );
}

#[tokio::test]
async fn another_key_is_refused_naming_both_ids_and_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let first = Secrets::open(store.clone(), key(1)).await.unwrap();
    // A store with no secret yet takes any key: nothing is recorded.
    assert_eq!(store.keycheck().await.unwrap(), None);
    Secrets::require_no_keycheck(&*store).await.unwrap();
    let early = Secrets::open(store.clone(), key(2)).await.unwrap();
    first.set("acme", "token", "hunter2").await.unwrap();
    // A node that started with another key before the first secret
    // cannot seal one under it.
    assert!(matches!(
        early.set("acme", "other", "v").await,
        Err(SecretsError::WrongKey(_))
    ));
    // The same key opens again.
    Secrets::open(store.clone(), key(1)).await.unwrap();
    let error = Secrets::open(store.clone(), key(2)).await.unwrap_err().to_string();
    let wanted = format!(
        "the master key from WEFT_MASTER_KEY does not open this store's secrets (store key id {}, given key id {})",
        first.key_id(),
        key(2).key_id()
    );
    assert!(error.contains(&wanted), "{error}");
    // And a store with a keycheck is refused to a node with no key.
    let error = Secrets::require_no_keycheck(&*store).await.unwrap_err().to_string();
    assert!(
        error.contains(first.key_id()) && error.contains("WEFT_MASTER_KEY"),
        "{error}"
    );
}

#[tokio::test]
async fn names_and_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(store(&dir), key(1)).await.unwrap();
    for bad in ["", "1st", "has-dash", "a b", &"x".repeat(65)] {
        assert!(matches!(
            secrets.set("acme", bad, "v").await,
            Err(SecretsError::InvalidName(_))
        ));
    }
    // The limit counts characters, as the schema's maxLength does.
    let at_limit = "é".repeat(MAX_VALUE_CHARS);
    secrets.set("acme", "big", &at_limit).await.unwrap();
    let over = "x".repeat(MAX_VALUE_CHARS + 1);
    assert!(matches!(
        secrets.set("acme", "big", &over).await,
        Err(SecretsError::TooLarge { .. })
    ));
}

#[test]
fn the_name_pattern_is_the_workflow_rule() {
    let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
    let long = "a".repeat(64);
    let too_long = "a".repeat(65);
    for name in [
        "a", "_", "A_1", "token", "1a", "", "a-b", "a.b", "é", &long, &too_long, "a\0", " a",
    ] {
        assert_eq!(pattern.is_match(name), is_secret_name(name), "{name:?}");
    }
}
