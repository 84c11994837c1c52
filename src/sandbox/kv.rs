//! The guest's view of tenant-scoped kv state: committed reads plus the
//! attempt's own buffered writes.
//!
//! The sandbox never writes to the store. An attempt's writes are kept in a
//! [`KvBuffer`] and handed back in its report; the caller commits them
//! together with the attempt's result, or drops them with its failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::limits::KvLimits;

/// Read access to committed kv state.
#[async_trait::async_trait]
pub trait KvRead: Send + Sync {
    /// The committed value of `key` in `tenant`'s namespace. An `Err` is a
    /// store failure, reported to the guest as `unavailable`.
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
}

/// The final effect of an attempt on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The new value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// Why a kv call was refused (mirrors the WIT `kv-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KvRefusal {
    InvalidKey(u32),
    ValueTooLarge(u32),
    TooManyWrites(u32),
    Unavailable(String),
}

/// One attempt's kv: reads fall through to the store, writes stay here.
pub(crate) struct KvBuffer {
    store: Arc<dyn KvRead>,
    tenant: String,
    limits: KvLimits,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    write_count: u32,
}

impl KvBuffer {
    pub(crate) fn new(store: Arc<dyn KvRead>, tenant: String, limits: KvLimits) -> KvBuffer {
        KvBuffer {
            store,
            tenant,
            limits,
            writes: BTreeMap::new(),
            write_count: 0,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvRefusal> {
        self.check_key(key)?;
        match self.writes.get(key) {
            Some(buffered) => Ok(buffered.clone()),
            None => self.store.get(&self.tenant, key).await.map_err(KvRefusal::Unavailable),
        }
    }

    pub(crate) fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvRefusal> {
        if value.len() > self.limits.max_value as usize {
            return Err(KvRefusal::ValueTooLarge(self.limits.max_value));
        }
        self.write(key, Some(value))
    }

    pub(crate) fn delete(&mut self, key: String) -> Result<(), KvRefusal> {
        self.write(key, None)
    }

    /// The attempt's writes, one per key, in key order.
    pub(crate) fn into_writes(self) -> Vec<KvWrite> {
        self.writes
            .into_iter()
            .map(|(key, value)| KvWrite { key, value })
            .collect()
    }

    fn write(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), KvRefusal> {
        self.check_key(&key)?;
        if self.write_count >= self.limits.max_writes {
            return Err(KvRefusal::TooManyWrites(self.limits.max_writes));
        }
        self.write_count += 1;
        self.writes.insert(key, value);
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), KvRefusal> {
        if key.is_empty() || key.len() > self.limits.max_key as usize {
            return Err(KvRefusal::InvalidKey(self.limits.max_key));
        }
        Ok(())
    }
}

/// kv state held in memory: for `weft task run` and tests.
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: RwLock<HashMap<(String, String), Vec<u8>>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }

    /// Applies an attempt's writes, as a successful attempt's commit would.
    pub fn apply(&self, tenant: &str, writes: &[KvWrite]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for write in writes {
            let key = (tenant.to_string(), write.key.clone());
            match &write.value {
                Some(value) => entries.insert(key, value.clone()),
                None => entries.remove(&key),
            };
        }
    }
}

#[async_trait::async_trait]
impl KvRead for MemoryKv {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        Ok(entries.get(&(tenant.to_string(), key.to_string())).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(store: Arc<MemoryKv>, limits: KvLimits) -> KvBuffer {
        KvBuffer::new(store, "acme".into(), limits)
    }

    #[tokio::test]
    async fn reads_see_own_writes_then_the_store() {
        let store = Arc::new(MemoryKv::new());
        store.apply(
            "acme",
            &[KvWrite {
                key: "a".into(),
                value: Some(b"1".to_vec()),
            }],
        );
        let mut kv = buffer(store, KvLimits::default());
        assert_eq!(kv.get("a").await, Ok(Some(b"1".to_vec())));
        kv.set("a".into(), b"2".to_vec()).unwrap();
        kv.delete("b".into()).unwrap();
        assert_eq!(kv.get("a").await, Ok(Some(b"2".to_vec())));
        assert_eq!(kv.get("b").await, Ok(None));
        assert_eq!(
            kv.into_writes(),
            vec![
                KvWrite {
                    key: "a".into(),
                    value: Some(b"2".to_vec())
                },
                KvWrite {
                    key: "b".into(),
                    value: None
                },
            ]
        );
    }

    #[tokio::test]
    async fn tenants_do_not_share_keys() {
        let store = Arc::new(MemoryKv::new());
        store.apply(
            "other",
            &[KvWrite {
                key: "a".into(),
                value: Some(b"x".to_vec()),
            }],
        );
        assert_eq!(buffer(store, KvLimits::default()).get("a").await, Ok(None));
    }

    #[tokio::test]
    async fn enforces_the_caps() {
        let limits = KvLimits {
            max_key: 4,
            max_value: 2,
            max_writes: 1,
        };
        let mut kv = buffer(Arc::new(MemoryKv::new()), limits);
        assert_eq!(kv.get("").await, Err(KvRefusal::InvalidKey(4)));
        assert_eq!(kv.set("toolong".into(), vec![]), Err(KvRefusal::InvalidKey(4)));
        assert_eq!(kv.set("k".into(), vec![0; 3]), Err(KvRefusal::ValueTooLarge(2)));
        assert_eq!(kv.set("k".into(), vec![0; 2]), Ok(()));
        assert_eq!(kv.delete("k".into()), Err(KvRefusal::TooManyWrites(1)));
    }
}
