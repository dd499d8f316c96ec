//! A short-lived cache of live API-key records and their clients, so that a client
//! exchanging its key many times a second costs one database read a second.
//!
//! Correctness rules, the same as the session cache's:
//! - an entry is trusted for at most [`KEY_CACHE_TTL`]; after that the database is asked
//!   again. Together with the revocation set (polled every second, and applied at once for
//!   this instance's own revocations, which every exchange consults), that bounds how long
//!   a key revoked or a client deleted elsewhere can still be exchanged here: 1 second;
//! - only live keys are cached: a record read as revoked, or a key id that matches
//!   nothing, is never remembered, so random key ids cannot fill the cache;
//! - it holds at most [`MAX_ENTRIES`] keys; when full, new keys are simply not cached.
//!
//! The cache holds the key's hash, never the key.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sesame_domain::ApiKeyId;
use sesame_storage::{ApiKeyRecord, ClientRecord};
use time::OffsetDateTime;

/// The longest a cached key record is trusted without asking the database.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most keys held at once.
const MAX_ENTRIES: usize = 4_096;

struct Entry {
    key: ApiKeyRecord,
    client: ClientRecord,
    fetched: Instant,
}

#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<ApiKeyId, Entry>>,
}

impl KeyCache {
    /// A fresh record for this key id, with its client, if any.
    pub fn get(&self, id: ApiKeyId) -> Option<(ApiKeyRecord, ClientRecord)> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&id)
            .filter(|entry| entry.fetched.elapsed() < KEY_CACHE_TTL)
            .map(|entry| (entry.key.clone(), entry.client.clone()))
    }

    /// Caches a key record just read from the database, if it is live.
    pub fn insert(&self, key: &ApiKeyRecord, client: &ClientRecord) {
        if key.revoked_at.is_some() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.fetched.elapsed() < KEY_CACHE_TTL);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            key.id,
            Entry {
                key: key.clone(),
                client: client.clone(),
                fetched: Instant::now(),
            },
        );
    }

    /// Records a `last_used_at` this instance wrote, so the next exchange does not write
    /// it again.
    pub fn touched(&self, id: ApiKeyId, at: OffsetDateTime) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&id) {
            entry.key.last_used_at = Some(entry.key.last_used_at.map_or(at, |seen| seen.max(at)));
        }
    }

    /// Forgets one key (revoked through this instance).
    pub fn remove(&self, id: ApiKeyId) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    /// Forgets every key of a client (deleted through this instance).
    pub fn remove_client(&self, client: &sesame_domain::ClientId) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, entry| &entry.client.id != client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_domain::{ApiKey, ClientId, Scopes, UserId};

    fn record(client: &ClientId) -> (ApiKeyRecord, ClientRecord) {
        let now = sesame_domain::now();
        let (key, id) = ApiKey::generate();
        let record = ApiKeyRecord {
            id,
            client_id: client.clone(),
            key_hash: key.hash(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let client = ClientRecord {
            id: client.clone(),
            owner_id: UserId::new(),
            name: "c".to_owned(),
            scopes: Scopes::from_list(["a"]).expect("scopes"),
            created_at: now,
        };
        (record, client)
    }

    #[test]
    fn revoked_keys_are_never_cached() {
        let cache = KeyCache::default();
        let (mut key, client) = record(&ClientId::generate());
        key.revoked_at = Some(sesame_domain::now());
        cache.insert(&key, &client);
        assert!(cache.get(key.id).is_none());
    }

    #[test]
    fn removal_by_client_forgets_only_its_keys() {
        let cache = KeyCache::default();
        let ours = ClientId::generate();
        let (k1, c1) = record(&ours);
        let (k2, c2) = record(&ours);
        let (k3, c3) = record(&ClientId::generate());
        for (k, c) in [(&k1, &c1), (&k2, &c2), (&k3, &c3)] {
            cache.insert(k, c);
        }
        cache.remove_client(&ours);
        assert!(cache.get(k1.id).is_none());
        assert!(cache.get(k2.id).is_none());
        assert!(cache.get(k3.id).is_some());
        cache.remove(k3.id);
        assert!(cache.get(k3.id).is_none());
    }

    #[test]
    fn touches_only_move_forward() {
        let cache = KeyCache::default();
        let (key, client) = record(&ClientId::generate());
        cache.insert(&key, &client);
        let later = sesame_domain::now() + time::Duration::minutes(5);
        cache.touched(key.id, later);
        cache.touched(key.id, later - time::Duration::minutes(1));
        assert_eq!(cache.get(key.id).expect("cached").0.last_used_at, Some(later));
    }
}
