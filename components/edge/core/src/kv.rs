//! The key-value store the edge keeps state in across requests: provider results (see
//! [`crate::cache`]), circuit breakers and retry budgets (see [`crate::resilience`]).
//!
//! Every request runs in a fresh WebAssembly instance, so nothing survives in statics: state
//! lives in the platform's store (Spin key-value in the component, a bounded in-memory store
//! shared by all requests in dubhost). [`MemoryKv`] is the same bounded store in plain Rust, for
//! native use and tests. A store that fails is treated as empty: state is an optimisation,
//! never a reason to fail a segment.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::http::{FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse, Timeouts};

/// Why a key-value operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The store refused or failed (message from the platform, never a value).
    #[error("key-value store: {0}")]
    Store(String),
    /// The value exceeds the store's size cap.
    #[error("value of {0} bytes is larger than the store allows")]
    TooLarge(usize),
}

/// A byte-valued key-value store (Spin's `fermyon:spin/key-value` shape).
pub trait Kv {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Store `value` under `key`, replacing any previous value.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Remove `key` (no error if it is absent).
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Whether the store can be used at all (a platform store that failed to open cannot).
    fn available(&self) -> bool {
        true
    }
}

/// An [`HttpClient`] that also offers a key-value store: what the router and pipeline are given
/// when the platform has one (`HttpClient::kv`).
pub struct WithKv<H, K> {
    /// The outbound client every call goes through.
    pub http: H,
    /// The store.
    pub kv: K,
}

impl<H: HttpClient, K: Kv> HttpClient for WithKv<H, K> {
    fn send(&self, req: &HttpRequest, limits: &FetchLimits) -> Result<HttpResponse, HttpError> {
        self.http.send(req, limits)
    }

    fn send_timed(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        self.http.send_timed(req, limits, timeouts)
    }

    fn kv(&self) -> Option<&dyn Kv> {
        self.kv.available().then_some(&self.kv as &dyn Kv)
    }
}

/// Bounds of a [`MemoryKv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Most keys held; the least recently used go first.
    pub max_keys: usize,
    /// Largest value accepted.
    pub max_value: usize,
    /// Most bytes held (keys + values); the least recently used go first.
    pub max_bytes: usize,
    /// Longest key accepted.
    pub max_key: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_value: 8 << 20,
            max_bytes: 256 << 20,
            max_key: 256,
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
    /// tick → key, oldest first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

impl Lru {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.map.get_mut(key) {
            self.order.remove(&e.tick);
            e.tick = tick;
            self.order.insert(tick, key.to_string());
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= key.len() + e.value.len();
        }
    }
}

/// A bounded in-memory LRU store, safe to share between threads.
#[derive(Default)]
pub struct MemoryKv {
    limits: MemoryLimits,
    inner: Mutex<Lru>,
}

impl MemoryKv {
    /// An empty store with these bounds.
    pub fn new(limits: MemoryLimits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().map.keys().cloned().collect()
    }

    /// Bytes held (keys + values).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock leaves a consistent map (every update is whole).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut l = self.lock();
        let v = l.map.get(key).map(|e| e.value.clone());
        if v.is_some() {
            l.touch(key);
        }
        Ok(v)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let lim = self.limits;
        if key.len() > lim.max_key {
            return Err(KvError::Store(format!(
                "key longer than {} bytes",
                lim.max_key
            )));
        }
        if value.len() > lim.max_value || key.len() + value.len() > lim.max_bytes {
            return Err(KvError::TooLarge(value.len()));
        }
        let mut l = self.lock();
        l.remove(key);
        while l.map.len() >= lim.max_keys.max(1)
            || l.bytes + key.len() + value.len() > lim.max_bytes
        {
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
        l.bytes += key.len() + value.len();
        l.map.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                tick,
            },
        );
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.lock().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A platform store that could not be opened.
    struct Closed;

    impl Kv for Closed {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, KvError> {
            Err(KvError::Store("closed".into()))
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), KvError> {
            Err(KvError::Store("closed".into()))
        }
        fn delete(&self, _: &str) -> Result<(), KvError> {
            Err(KvError::Store("closed".into()))
        }
        fn available(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_store_that_cannot_be_used_is_not_offered() {
        let http = crate::testutil::StdHttpClient;
        assert!(http.kv().is_none());
        let with = WithKv {
            http: crate::testutil::StdHttpClient,
            kv: MemoryKv::default(),
        };
        assert!(with.kv().is_some());
        let closed = WithKv {
            http: crate::testutil::StdHttpClient,
            kv: Closed,
        };
        assert!(closed.kv().is_none());
    }

    #[test]
    fn lru_evicts_the_least_recently_used_within_key_and_byte_caps() {
        let kv = MemoryKv::new(MemoryLimits {
            max_keys: 3,
            max_value: 10,
            max_bytes: 40,
            max_key: 8,
        });
        for k in ["a", "b", "c"] {
            kv.set(k, b"12345").unwrap();
        }
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"12345"[..])); // a is now newest
        kv.set("d", b"x").unwrap(); // evicts b (oldest)
        assert_eq!(kv.get("b").unwrap(), None);
        assert!(kv.get("a").unwrap().is_some() && kv.get("c").unwrap().is_some());
        assert_eq!(kv.bytes(), 6 + 6 + 2);
        // Byte cap: 14 held + 11 + 10 > 40 after the next two, so the oldest go.
        kv.set("e", b"0123456789").unwrap();
        kv.set("f", b"0123456789").unwrap();
        assert!(kv.bytes() <= 40, "{}", kv.bytes());
        assert!(kv.keys().len() <= 3);
        assert_eq!(kv.get("f").unwrap().as_deref(), Some(&b"0123456789"[..]));
        // Over the value cap or the key cap: refused, nothing changes.
        assert_eq!(kv.set("g", &[0; 11]), Err(KvError::TooLarge(11)));
        assert!(matches!(kv.set("123456789", b"x"), Err(KvError::Store(_))));
        // Replacing a key keeps one entry and the byte count right.
        kv.set("f", b"1").unwrap();
        kv.set("f", b"22").unwrap();
        assert_eq!(kv.get("f").unwrap().as_deref(), Some(&b"22"[..]));
        let sum: usize = kv
            .keys()
            .iter()
            .map(|k| k.len() + kv.get(k).unwrap().unwrap().len())
            .sum();
        assert_eq!(kv.bytes(), sum);
        kv.delete("f").unwrap();
        kv.delete("f").unwrap();
        assert_eq!(kv.get("f").unwrap(), None);
    }
}
