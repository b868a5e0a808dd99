//! One-entry memos for the work every host of a fleet repeats on the same text.
//!
//! A fleet scan sends every host the same tens-of-kilobytes probe line. Each simulated host must
//! still answer it as its own machine would, but decoding the same base64, parsing the same
//! request and keeping one more copy of the same line in each host's command log made the
//! simulator, not hive, the larger half of a 100,000-host scan's CPU. The functions memoised here
//! are pure, so an answer from the memo is the answer a fresh computation gives.

use std::sync::{Arc, Mutex};

/// The last key seen and what was computed from it.
pub(crate) struct LastOne<V> {
    slot: Mutex<Option<(Arc<str>, V)>>,
}

impl<V: Clone> LastOne<V> {
    pub(crate) const fn new() -> Self {
        LastOne {
            slot: Mutex::new(None),
        }
    }

    /// `compute(key)`, or the value kept from the last call whose key was equal; also the key as
    /// a shared string, so callers that keep it (command logs) share one copy.
    pub(crate) fn get(&self, key: &str, compute: impl FnOnce(&str) -> V) -> (Arc<str>, V) {
        let kept = self.lock().clone();
        // The same text (a key handed out by another memo) needs no comparison.
        if let Some((k, v)) = kept
            && (std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len() || *k == *key)
        {
            return (k, v);
        }
        let k: Arc<str> = Arc::from(key);
        let v = compute(key);
        *self.lock() = Some((Arc::clone(&k), v.clone()));
        (k, v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<str>, V)>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_equal_key_shares_the_kept_value_and_key_and_another_recomputes() {
        static M: LastOne<usize> = LastOne::new();
        let mut calls = 0;
        let (k1, v1) = M.get("abc", |k| {
            calls += 1;
            k.len()
        });
        let (k2, v2) = M.get(&String::from("abc"), |_| {
            calls += 1;
            0
        });
        assert_eq!((v1, v2, calls), (3, 3, 1));
        assert!(Arc::ptr_eq(&k1, &k2));
        let (k3, v3) = M.get("abcd", |k| {
            calls += 1;
            k.len()
        });
        assert_eq!((&*k3, v3, calls), ("abcd", 4, 2));
    }
}
