//! The one short-lived cache behind every "trusted for at most a second" rule: live
//! sessions, live API keys, clean throttle checks and verified tokens.
//!
//! Its rules, which each user relies on:
//! - an entry is returned only while it is younger than the cache's time to live, by the
//!   clock the caller passes in (an entry dated in the future, after the clock was set
//!   back, is not trusted either);
//! - an entry may carry a deadline of its own (a verified token's expiry), after which it
//!   is neither returned nor kept when room is needed;
//! - it holds at most `capacity` entries: when full, stale entries are dropped first (one
//!   sweep a second at most, so an insert into a cache full of fresh entries scans
//!   nothing), and if it is still full the new entry is simply not kept (so callers never
//!   depend on an entry being there, and a flood of new keys cannot grow memory);
//! - removal is immediate, by key or by predicate.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

struct Entry<V> {
    value: V,
    stored: OffsetDateTime,
    /// A deadline of the entry's own, before the cache's time to live (a verified token's
    /// expiry).
    until: Option<OffsetDateTime>,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    /// When a full cache was last swept of stale entries.
    last_sweep: Option<OffsetDateTime>,
    sweeps: u64,
}

/// A bounded map whose entries expire after a fixed time (or their own deadline).
pub struct TtlCache<K, V> {
    entries: RwLock<Inner<K, V>>,
    ttl: time::Duration,
    capacity: usize,
}

/// A [`TtlCache`] that must not keep what an invalidation overtook: a reader notes the
/// [`generation`](Self::generation) before it reads the source, and what it read is kept
/// only if nothing was invalidated since, even when the invalidation races the insert.
pub struct GuardedCache<K, V> {
    entries: TtlCache<K, V>,
    generation: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> GuardedCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: TtlCache::new(ttl, capacity),
            generation: AtomicU64::new(0),
        }
    }

    /// How many invalidations there have been.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks everything read before now as overtaken.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Keeps a value read at generation `read_at`, unless an invalidation came since.
    pub fn insert_if_unchanged(&self, key: K, value: V, read_at: u64, now: OffsetDateTime) {
        if self.generation() == read_at {
            self.entries.insert(key.clone(), value, now);
            // An invalidation that raced the insert removes what it may not have seen.
            if self.generation() != read_at {
                self.entries.remove(&key);
            }
        }
    }
}

impl<K, V> Deref for GuardedCache<K, V> {
    type Target = TtlCache<K, V>;

    fn deref(&self) -> &TtlCache<K, V> {
        &self.entries
    }
}

/// A full cache is swept of stale entries at most this often: an insert into a cache
/// full of fresh entries costs no scan.
const SWEEP_INTERVAL: time::Duration = time::Duration::SECOND;

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: RwLock::new(Inner {
                map: HashMap::new(),
                last_sweep: None,
                sweeps: 0,
            }),
            ttl: time::Duration::try_from(ttl).unwrap_or(time::Duration::SECOND),
            capacity,
        }
    }

    fn fresh(&self, entry: &Entry<V>, now: OffsetDateTime) -> bool {
        let age = now - entry.stored;
        age >= time::Duration::ZERO && age < self.ttl && entry.until.is_none_or(|until| now < until)
    }

    /// The value under `key`, if it is still fresh at `now`.
    pub fn get<Q>(&self, key: &Q, now: OffsetDateTime) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .map
            .get(key)
            .filter(|entry| self.fresh(entry, now))
            .map(|entry| entry.value.clone())
    }

    /// Keeps `value` under `key` from `now`, unless the cache is full of fresh entries.
    pub fn insert(&self, key: K, value: V, now: OffsetDateTime) {
        self.insert_entry(key, value, now, None);
    }

    /// Like [`insert`](Self::insert), for an entry that must not be trusted at or after
    /// `until` (nor kept past it when room is needed).
    pub fn insert_until(&self, key: K, value: V, now: OffsetDateTime, until: OffsetDateTime) {
        self.insert_entry(key, value, now, Some(until));
    }

    fn insert_entry(&self, key: K, value: V, now: OffsetDateTime, until: Option<OffsetDateTime>) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let inner = &mut *entries;
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            let due = inner
                .last_sweep
                .is_none_or(|last| now - last >= SWEEP_INTERVAL || now < last);
            if due {
                inner.last_sweep = Some(now);
                inner.sweeps += 1;
                inner.map.retain(|_, entry| {
                    let age = now - entry.stored;
                    age >= time::Duration::ZERO && age < self.ttl && entry.until.is_none_or(|until| now < until)
                });
            }
            if inner.map.len() >= self.capacity {
                return;
            }
        }
        inner.map.insert(
            key,
            Entry {
                value,
                stored: now,
                until,
            },
        );
    }

    /// Changes the value under `key` in place, if there is one (its age is kept).
    pub fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.map.get_mut(key) {
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
            .map
            .remove(key);
    }

    /// Drops every entry whose value matches.
    pub fn remove_where(&self, matches: impl Fn(&V) -> bool) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .retain(|_, entry| !matches(&entry.value));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .clear();
    }

    /// Entries held, fresh or not.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .len()
    }

    /// How many times a full cache was swept (for tests of the sweep's rate).
    pub fn sweeps(&self) -> u64 {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sweeps
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
    fn an_entry_with_a_deadline_of_its_own_ends_there() {
        let cache = TtlCache::new(Duration::from_secs(3_600), 8);
        cache.insert_until("token", 1, at(0), at(10));
        assert_eq!(cache.get("token", at(9)), Some(1));
        assert_eq!(cache.get("token", at(10)), None);
    }

    #[test]
    fn a_cache_full_of_fresh_entries_is_swept_at_most_once_a_second() {
        let cache = TtlCache::new(Duration::from_secs(3_600), 100);
        for key in 0..100 {
            cache.insert(key, key, at(0));
        }
        for key in 100..10_000 {
            cache.insert(key, key, at(0));
        }
        assert_eq!(cache.sweeps(), 1, "one scan, not one per insert");
        assert_eq!(cache.len(), 100);
        // Entries whose own deadline passed make room at the next sweep.
        let cache = TtlCache::new(Duration::from_secs(3_600), 2);
        cache.insert_until(1, 1, at(0), at(5));
        cache.insert_until(2, 2, at(0), at(5));
        cache.insert(3, 3, at(6));
        assert_eq!(cache.get(&3, at(6)), Some(3));
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
