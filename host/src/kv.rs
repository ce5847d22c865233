//! Spin's `fermyon:spin/key-value@2.0.0` for guests: one process-wide in-memory store, labelled
//! `default`, shared by every request and component of the app (as Spin shares an app's stores).
//! The edge keeps provider results, circuit breakers and retry budgets there, since each request
//! runs in a fresh instance.
//!
//! Bounded: at most [`KvLimits::max_keys`] keys and [`KvLimits::max_bytes`] bytes (least
//! recently used entries are evicted), values up to [`KvLimits::max_value`], keys up to
//! [`KvLimits::max_key`] bytes, and [`MAX_OPEN`] open handles per request. A component may open
//! only the labels in its `key_value_stores`: others get `access-denied`; a listed label other
//! than `default` gets `no-such-store` (dubhost has no other store).

use crate::bindings::kv::fermyon::spin::key_value::{self as wit, Error};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use wasmtime::component::{HasData, Resource, ResourceTable};

/// The one label dubhost provides.
pub const DEFAULT_LABEL: &str = "default";
/// Most store handles one request may hold open at once.
pub const MAX_OPEN: usize = 16;

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Most keys held.
    pub max_keys: usize,
    /// Most bytes held, keys plus values.
    pub max_bytes: usize,
    /// Largest value accepted.
    pub max_value: usize,
    /// Longest key accepted.
    pub max_key: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_keys: 100_000,
            max_bytes: 256 << 20,
            max_value: 8 << 20,
            max_key: 1024,
        }
    }
}

struct Entry {
    value: Vec<u8>,
    tick: u64,
}

#[derive(Default)]
struct Lru {
    map: HashMap<String, Entry>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

impl Lru {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= key.len() + e.value.len();
        }
    }
}

/// The bounded, thread-safe LRU store behind the `default` label.
#[derive(Default)]
pub struct KvStore {
    limits: KvLimits,
    inner: Mutex<Lru>,
}

impl KvStore {
    /// An empty store.
    pub fn new(limits: KvLimits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // Every update below is whole before it can panic, so a poisoned map is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` (counts as a use).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut l = self.lock();
        l.tick += 1;
        let tick = l.tick;
        let e = l.map.get_mut(key)?;
        let old = std::mem::replace(&mut e.tick, tick);
        let value = e.value.clone();
        l.order.remove(&old);
        l.order.insert(tick, key.to_string());
        Some(value)
    }

    /// Store `value` under `key`, evicting the least recently used entries to stay in bounds.
    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        let lim = self.limits;
        if key.len() > lim.max_key {
            return Err(format!("key longer than {} bytes", lim.max_key));
        }
        let size = key.len() + value.len();
        if value.len() > lim.max_value || size > lim.max_bytes {
            return Err(format!("value larger than {} bytes", lim.max_value));
        }
        let mut l = self.lock();
        l.remove(key);
        while l.map.len() >= lim.max_keys.max(1) || l.bytes + size > lim.max_bytes {
            let Some((_, oldest)) = l.order.pop_first() else {
                break;
            };
            if let Some(e) = l.map.remove(&oldest) {
                l.bytes -= oldest.len() + e.value.len();
            }
        }
        l.tick += 1;
        let tick = l.tick;
        l.order.insert(tick, key.to_string());
        l.bytes += size;
        l.map.insert(key.to_string(), Entry { value, tick });
        Ok(())
    }

    /// Remove `key` if present.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Whether `key` is present (not a use).
    pub fn exists(&self, key: &str) -> bool {
        self.lock().map.contains_key(key)
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.lock().map.keys().cloned().collect()
    }

    /// Keys and bytes held.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let l = self.lock();
        (l.map.len(), l.bytes)
    }
}

/// The guest's handle to an open store (dubhost has one store, so it carries nothing).
pub struct StoreHandle;

/// What the key-value host functions see of a request's state.
pub struct KvView<'a> {
    /// The request's resource table.
    pub table: &'a mut ResourceTable,
    /// The process-wide store.
    pub store: &'a KvStore,
    /// Labels the component may open (`key_value_stores`).
    pub labels: &'a [String],
    /// Handles open now.
    pub open: &'a mut usize,
}

/// `HasData` marker for `add_to_linker`.
pub struct KvData;

impl HasData for KvData {
    type Data<'a> = KvView<'a>;
}

impl wit::Host for KvView<'_> {}

impl wit::HostStore for KvView<'_> {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<StoreHandle>, Error>> {
        if !self.labels.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != DEFAULT_LABEL {
            return Ok(Err(Error::NoSuchStore));
        }
        if *self.open >= MAX_OPEN {
            return Ok(Err(Error::StoreTableFull));
        }
        let handle = self.table.push(StoreHandle)?;
        *self.open += 1;
        Ok(Ok(handle))
    }

    fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        self.table.get(&store)?;
        Ok(Ok(self.store.get(&key)))
    }

    fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get(&store)?;
        Ok(self.store.set(&key, value).map_err(Error::Other))
    }

    fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get(&store)?;
        self.store.delete(&key);
        Ok(Ok(()))
    }

    fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.table.get(&store)?;
        Ok(Ok(self.store.exists(&key)))
    }

    fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.table.get(&store)?;
        Ok(Ok(self.store.keys()))
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        *self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::HostStore as _;

    #[test]
    fn store_is_bounded_and_evicts_the_least_recently_used() {
        let s = KvStore::new(KvLimits {
            max_keys: 3,
            max_bytes: 40,
            max_value: 10,
            max_key: 8,
        });
        for k in ["a", "b", "c"] {
            s.set(k, b"12345".to_vec()).unwrap();
        }
        assert!(s.get("a").is_some()); // a is now the newest
        s.set("d", b"x".to_vec()).unwrap(); // evicts b, the oldest
        assert_eq!(s.get("b"), None);
        assert!(s.exists("a") && s.exists("c") && s.exists("d"));
        assert_eq!(s.usage(), (3, 6 + 6 + 2));
        s.set("e", vec![1; 10]).unwrap();
        s.set("f", vec![2; 10]).unwrap();
        let (keys, bytes) = s.usage();
        assert!(keys <= 3 && bytes <= 40, "{keys} {bytes}");
        assert_eq!(s.get("f"), Some(vec![2; 10]));
        assert!(s.set("g", vec![0; 11]).is_err(), "value cap");
        assert!(s.set("123456789", vec![0]).is_err(), "key cap");
        s.set("f", b"1".to_vec()).unwrap();
        let sum: usize = s
            .keys()
            .iter()
            .map(|k| k.len() + s.get(k).unwrap().len())
            .sum();
        assert_eq!(s.usage().1, sum, "replacing keeps the byte count exact");
        s.delete("f");
        s.delete("f");
        assert!(!s.exists("f"));
    }

    #[test]
    fn guests_open_only_their_labels_and_share_one_store() {
        let store = KvStore::default();
        let labels = vec!["default".to_string(), "other".to_string()];
        let mut table = ResourceTable::new();
        let mut open = 0;
        let mut view = KvView {
            table: &mut table,
            store: &store,
            labels: &labels,
            open: &mut open,
        };
        assert!(matches!(
            view.open("secret".into()).unwrap(),
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            view.open("other".into()).unwrap(),
            Err(Error::NoSuchStore)
        ));
        let h = view.open("default".into()).unwrap().unwrap();
        let h2 = Resource::<StoreHandle>::new_borrow(h.rep());
        view.set(h2, "k".into(), b"v".to_vec()).unwrap().unwrap();
        let h3 = Resource::<StoreHandle>::new_borrow(h.rep());
        assert_eq!(
            view.get(h3, "k".into()).unwrap().unwrap(),
            Some(b"v".to_vec())
        );
        view.drop(h).unwrap();
        assert_eq!(*view.open, 0);
        // Another request (a fresh table) sees what the first stored.
        let mut table2 = ResourceTable::new();
        let mut open2 = 0;
        let mut view2 = KvView {
            table: &mut table2,
            store: &store,
            labels: &labels,
            open: &mut open2,
        };
        let h = view2.open("default".into()).unwrap().unwrap();
        let hb = Resource::<StoreHandle>::new_borrow(h.rep());
        assert!(view2.exists(hb, "k".into()).unwrap().unwrap());
        let hb = Resource::<StoreHandle>::new_borrow(h.rep());
        assert!(
            view2
                .set(hb, "big".into(), vec![0; 9 << 20])
                .unwrap()
                .is_err()
        );
        // Handles are capped per request.
        let mut held = vec![h];
        for _ in 1..MAX_OPEN {
            held.push(view2.open("default".into()).unwrap().unwrap());
        }
        assert!(matches!(
            view2.open("default".into()).unwrap(),
            Err(Error::StoreTableFull)
        ));
        for h in held {
            view2.drop(h).unwrap();
        }
        assert!(view2.open("default".into()).unwrap().is_ok());
    }
}
