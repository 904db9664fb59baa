//! A small map held by an execution environment between requests, bounded by starting afresh
//! when full: the memory of `remembered` and `recent`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries each memory holds (a Lambda execution environment serves one request at a time; this
/// bounds the memory, not the hit rate of a busy one).
pub const CAPACITY: usize = 10_000;

pub(crate) struct BoundedMap<K, V>(Mutex<HashMap<K, V>>);

impl<K: Hash + Eq, V: Clone> BoundedMap<K, V> {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.0.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// Puts `value` unless the entry there is one `keep` says to keep, in one step (no other put
    /// comes between the look and the put); whether it was put.
    pub(crate) fn put_unless(&self, key: K, value: V, keep: impl FnOnce(&V) -> bool) -> bool {
        let Ok(mut map) = self.0.lock() else { return false };
        if map.get(&key).is_some_and(keep) {
            return false;
        }
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, value);
        true
    }

    pub(crate) fn forget(&self, key: &K) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }

    /// Keeps the entries `keep` says to, after it has changed them as it likes.
    pub(crate) fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(keep);
        }
    }
}
