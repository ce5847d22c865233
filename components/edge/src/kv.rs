//! [`Kv`] over Spin's key-value store (`fermyon:spin/key-value@2.0.0`, label `default`, listed
//! in `key_value_stores` in `spin.toml`): provider results, circuit breakers and retry budgets
//! outlive the request's instance there. dubhost serves the same interface from one bounded
//! in-memory store shared by all requests.
//!
//! The store is opened on first use, so playlist requests never touch it. If it cannot be opened
//! (logged once per request) the edge runs without one: no cache, no breaker, no retries, never
//! a failed segment.

use std::cell::OnceCell;

use dub_edge_core::http::HttpClient;
use dub_edge_core::kv::{Kv, KvError, WithKv};
use spin_sdk::key_value::Store;

/// The `default` store, opened lazily.
#[derive(Default)]
pub struct SpinKv {
    store: OnceCell<Option<Store>>,
}

impl SpinKv {
    fn store(&self) -> Result<&Store, KvError> {
        self.store
            .get_or_init(|| match Store::open_default() {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("dub-edge: key-value store `default` unavailable: {e:?}");
                    None
                }
            })
            .as_ref()
            .ok_or_else(|| KvError::Store("store unavailable".into()))
    }
}

fn err(e: spin_sdk::key_value::Error) -> KvError {
    KvError::Store(format!("{e:?}"))
}

impl Kv for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store()?.get(key).map_err(err)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store()?.set(key, value).map_err(err)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store()?.delete(key).map_err(err)
    }

    fn available(&self) -> bool {
        self.store().is_ok()
    }
}

/// `http` with the Spin key-value store attached (what the router and pipeline are given).
pub fn with_store<H: HttpClient>(http: H) -> WithKv<H, SpinKv> {
    WithKv {
        http,
        kv: SpinKv::default(),
    }
}
