//! Content-addressed cache of provider results in the key-value store.
//!
//! The key is the SHA-256 of everything that decides a result: the role, the adapter, its base
//! URL and model, the languages, the voice and format, and the audio bytes or the text. So the
//! same audio in another variant, on another edge node or in a replay finds the transcript, and
//! the same sentence finds its translation and its speech, without a provider call. Values are
//! results only (transcript JSON, translated text, WAV): no request, header or key is stored,
//! and URLs only enter the hash. Values read back are checked like provider answers before use.

use sha2::{Digest, Sha256};

use crate::kv::Kv;
use crate::resilience::Role;

/// Version of the key derivation and value encodings; bump it to orphan old entries.
pub const VERSION: &str = "c1";

/// The cache key for `role` over `parts` (each length-prefixed, so part boundaries matter).
pub fn key(role: Role, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(VERSION.as_bytes());
    h.update(role.as_str().as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("dub/{VERSION}/{}/{hex}", role.as_str())
}

/// The cached value under `key`, if caching is on (`max > 0`), the store answers, and the value
/// is at most `max` bytes.
pub fn get(kv: Option<&dyn Kv>, key: &str, max: usize) -> Option<Vec<u8>> {
    if max == 0 {
        return None;
    }
    match kv?.get(key) {
        Ok(Some(v)) if v.len() <= max => Some(v),
        Ok(_) => None,
        Err(e) => {
            eprintln!("dub-edge: cache read failed: {e}");
            None
        }
    }
}

/// Store `value` under `key` when caching is on and it is at most `max` bytes (larger results,
/// such as long speech, are simply not cached). Failures are logged and ignored.
pub fn put(kv: Option<&dyn Kv>, key: &str, value: &[u8], max: usize) {
    let Some(kv) = kv else { return };
    if max == 0 || value.len() > max {
        return;
    }
    if let Err(e) = kv.set(key, value) {
        eprintln!("dub-edge: cache write failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{MemoryKv, MemoryLimits};

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let a = key(Role::Mt, &[b"deepl", b"en", b"es", b"hello"]);
        assert!(a.starts_with("dub/c1/mt/") && a.len() == "dub/c1/mt/".len() + 64);
        assert_eq!(a, key(Role::Mt, &[b"deepl", b"en", b"es", b"hello"]));
        assert_ne!(a, key(Role::Mt, &[b"deepl", b"en", b"fr", b"hello"]));
        assert_ne!(a, key(Role::Tts, &[b"deepl", b"en", b"es", b"hello"]));
        assert_ne!(a, key(Role::Mt, &[b"deepl", b"en", b"esh", b"ello"]));
    }

    #[test]
    fn values_over_the_cap_are_neither_stored_nor_returned() {
        let kv = MemoryKv::new(MemoryLimits::default());
        let k = key(Role::Tts, &[b"x"]);
        put(Some(&kv), &k, &[1; 10], 9);
        assert_eq!(kv.get(&k).unwrap(), None);
        put(Some(&kv), &k, &[1; 10], 10);
        assert_eq!(get(Some(&kv), &k, 10), Some(vec![1; 10]));
        assert_eq!(get(Some(&kv), &k, 9), None);
        assert_eq!(get(Some(&kv), &k, 0), None, "cache off");
        assert_eq!(get(None, &k, 10), None);
    }
}
