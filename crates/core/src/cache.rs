//! The one short-lived cache behind every "trusted for at most a second" rule: live
//! sessions, live API keys, clean throttle checks and verified tokens.
//!
//! Its rules, which each user relies on:
//! - an entry is returned only while it is younger than the cache's time to live, by the
//!   clock the caller passes in (an entry dated in the future, after the clock was set
//!   back, is not trusted either);
//! - it holds at most `capacity` entries: when full, stale entries are dropped first, and
//!   if it is still full the new entry is simply not kept (so callers never depend on an
//!   entry being there, and a flood of new keys cannot grow memory);
//! - removal is immediate, by key or by predicate.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::Duration;

use time::OffsetDateTime;

struct Entry<V> {
    value: V,
    stored: OffsetDateTime,
}

/// A bounded map whose entries expire after a fixed time.
pub struct TtlCache<K, V> {
    entries: RwLock<HashMap<K, Entry<V>>>,
    ttl: time::Duration,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            ttl: time::Duration::try_from(ttl).unwrap_or(time::Duration::SECOND),
            capacity,
        }
    }

    fn fresh(&self, stored: OffsetDateTime, now: OffsetDateTime) -> bool {
        let age = now - stored;
        age >= time::Duration::ZERO && age < self.ttl
    }

    /// The value under `key`, if it is still fresh at `now`.
    pub fn get<Q>(&self, key: &Q, now: OffsetDateTime) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|entry| self.fresh(entry.stored, now))
            .map(|entry| entry.value.clone())
    }

    /// Keeps `value` under `key` from `now`, unless the cache is full of fresh entries.
    pub fn insert(&self, key: K, value: V, now: OffsetDateTime) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| self.fresh(entry.stored, now));
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(key, Entry { value, stored: now });
    }

    /// Changes the value under `key` in place, if there is one (its age is kept).
    pub fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(key) {
            change(&mut entry.value);
        }
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Drops every entry whose value matches.
    pub fn remove_where(&self, matches: impl Fn(&V) -> bool) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, entry| !matches(&entry.value));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Entries held, fresh or not.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_800_000_000 + seconds)
    }

    #[test]
    fn entries_expire_after_the_ttl_and_not_before() {
        let cache = TtlCache::new(Duration::from_secs(1), 8);
        cache.insert("a", 1, at(0));
        assert_eq!(cache.get("a", at(0)), Some(1));
        assert_eq!(cache.get("a", at(0) + time::Duration::milliseconds(999)), Some(1));
        assert_eq!(cache.get("a", at(1)), None);
        // Set back before it was stored: not trusted either.
        assert_eq!(cache.get("a", at(-1)), None);
    }

    #[test]
    fn a_full_cache_drops_stale_entries_then_refuses_new_ones() {
        let cache = TtlCache::new(Duration::from_secs(1), 2);
        cache.insert(1, "one", at(0));
        cache.insert(2, "two", at(0));
        cache.insert(3, "three", at(0));
        assert_eq!(cache.get(&3, at(0)), None, "full of fresh entries");
        assert_eq!(cache.len(), 2);
        // Replacing a held key is always allowed.
        cache.insert(2, "deux", at(0));
        assert_eq!(cache.get(&2, at(0)), Some("deux"));
        // Once the others are stale, they make room.
        cache.insert(3, "three", at(5));
        assert_eq!(cache.get(&3, at(5)), Some("three"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn removal_by_key_and_by_predicate_is_immediate() {
        let cache = TtlCache::new(Duration::from_secs(60), 8);
        for n in 0..6 {
            cache.insert(n, n * 10, at(0));
        }
        cache.remove(&0);
        cache.remove_where(|v| *v >= 40);
        let left: Vec<_> = (0..6).filter(|n| cache.get(n, at(1)).is_some()).collect();
        assert_eq!(left, vec![1, 2, 3]);
        cache.update(&1, |v| *v += 1);
        assert_eq!(cache.get(&1, at(1)), Some(11));
        cache.clear();
        assert!(cache.is_empty());
    }
}
