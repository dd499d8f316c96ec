//! The revocation set: every revoked token (by `jti`), API key and deleted client whose
//! tokens could still be unexpired, held in memory so that checking a bearer token reads
//! no database. Each instance applies its own revocations at once and polls the shared
//! log for the others' (see [`POLL_INTERVAL`]), which bounds how stale it can be.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use sesame_storage::{Revocation, RevocationKind, Store};
use time::OffsetDateTime;

/// How often the shared log is read: the longest an instance can go on accepting a token
/// that another instance has revoked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Entries are re-read for this long after they were written, so that one committed late
/// (after a later entry was already seen) is not missed.
const OVERLAP: time::Duration = time::Duration::seconds(30);

#[derive(Default)]
struct Sets {
    tokens: HashMap<String, OffsetDateTime>,
    keys: HashMap<String, OffsetDateTime>,
    clients: HashMap<String, OffsetDateTime>,
}

impl Sets {
    fn of(&mut self, kind: RevocationKind) -> &mut HashMap<String, OffsetDateTime> {
        match kind {
            RevocationKind::Token => &mut self.tokens,
            RevocationKind::Key => &mut self.keys,
            RevocationKind::Client => &mut self.clients,
        }
    }
}

/// What is revoked, as far as this instance knows.
#[derive(Default)]
pub struct RevocationSet {
    sets: RwLock<Sets>,
    /// When the last successful poll started.
    last_poll: RwLock<Option<OffsetDateTime>>,
}

impl RevocationSet {
    /// Records revocations (this instance's own, or read from the log).
    pub fn apply<'a>(&self, revocations: impl IntoIterator<Item = &'a Revocation>) {
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for revocation in revocations {
            sets.of(revocation.kind)
                .insert(revocation.subject.clone(), revocation.expires_at);
        }
    }

    /// Whether a token with these identifiers has been revoked, directly or through its
    /// key or client.
    pub fn is_revoked(&self, jti: &str, key_id: &str, client_id: &str) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.tokens.contains_key(jti) || sets.keys.contains_key(key_id) || sets.clients.contains_key(client_id)
    }

    /// Whether an API key has been revoked, directly or through its client.
    pub fn is_key_revoked(&self, key_id: &str, client_id: &str) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.keys.contains_key(key_id) || sets.clients.contains_key(client_id)
    }

    /// Reads new entries from the shared log and forgets expired ones.
    pub async fn refresh(&self, store: &Store, started: OffsetDateTime) -> Result<(), sesame_storage::StorageError> {
        let since = self
            .last_poll
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map_or(OffsetDateTime::UNIX_EPOCH, |last| last - OVERLAP);
        let entries = store.revocations.revocations_since(since, started).await?;
        self.apply(&entries);
        {
            let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for kind in [RevocationKind::Token, RevocationKind::Key, RevocationKind::Client] {
                sets.of(kind).retain(|_, expires| *expires > started);
            }
        }
        *self
            .last_poll
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started);
        Ok(())
    }
}
