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
    /// By owner (user id): the oldest credential version still good, and until when
    /// that matters.
    owners: HashMap<String, (i64, OffsetDateTime)>,
}

impl Sets {
    fn insert(&mut self, revocation: &Revocation) {
        let set = match revocation.kind {
            RevocationKind::Token => &mut self.tokens,
            RevocationKind::Key => &mut self.keys,
            RevocationKind::Client => &mut self.clients,
            RevocationKind::Owner => {
                let Some((owner, version)) = parse_owner(&revocation.subject) else {
                    tracing::warn!("ignoring a malformed owner revocation");
                    return;
                };
                let entry = self
                    .owners
                    .entry(owner.to_owned())
                    .or_insert((version, revocation.expires_at));
                *entry = (entry.0.max(version), entry.1.max(revocation.expires_at));
                return;
            }
        };
        set.insert(revocation.subject.clone(), revocation.expires_at);
    }

    fn forget_expired(&mut self, now: OffsetDateTime) {
        self.tokens.retain(|_, expires| *expires > now);
        self.keys.retain(|_, expires| *expires > now);
        self.clients.retain(|_, expires| *expires > now);
        self.owners.retain(|_, (_, expires)| *expires > now);
    }
}

/// `<user id>:<version>`.
fn parse_owner(subject: &str) -> Option<(&str, i64)> {
    let (owner, version) = subject.rsplit_once(':')?;
    Some((owner, version.parse().ok()?))
}

/// What a token says of itself that a revocation can concern.
#[derive(Debug, Clone, Copy)]
pub struct TokenIds<'a> {
    pub jti: &'a str,
    pub key_id: &'a str,
    pub client_id: &'a str,
    /// The owning user and the credential version the token was issued under.
    pub owner: Option<(&'a str, i64)>,
    /// For a delegated token: the user it acts for and their token version (a disable,
    /// or a scope taken away, revokes it as it does the user's own clients' tokens).
    pub user: Option<(&'a str, i64)>,
    /// For a delegated token: the user, the client, and the version of the user's grant
    /// it was issued under (ending the grant revokes it).
    pub grant: Option<(&'a str, &'a str, i64)>,
    /// For a delegated token: the refresh-token family it was issued from (ended by id,
    /// like a token by `jti`).
    pub family: Option<&'a str>,
}

/// What is revoked, as far as this instance knows.
#[derive(Default)]
pub struct RevocationSet {
    sets: RwLock<Sets>,
    /// The database's clock when the last successful poll began.
    last_poll: RwLock<Option<OffsetDateTime>>,
}

impl RevocationSet {
    /// Records revocations (this instance's own, or read from the log).
    pub fn apply<'a>(&self, revocations: impl IntoIterator<Item = &'a Revocation>) {
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for revocation in revocations {
            sets.insert(revocation);
        }
    }

    /// Whether a token has been revoked, directly or through its key, its client or its
    /// owner's disable.
    pub fn is_revoked(&self, token: TokenIds<'_>) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.tokens.contains_key(token.jti)
            || token.family.is_some_and(|family| sets.tokens.contains_key(family))
            || sets.keys.contains_key(token.key_id)
            || sets.clients.contains_key(token.client_id)
            || [token.owner, token.user].into_iter().flatten().any(|(user, version)| {
                sets.owners
                    .get(user)
                    .is_some_and(|(oldest_good, _)| version < *oldest_good)
            })
            || token.grant.is_some_and(|(user, client, version)| {
                sets.owners
                    .get(&format!("{user}/{client}"))
                    .is_some_and(|(oldest_good, _)| version < *oldest_good)
            })
    }

    /// Whether credentials issued under `version` of `owner`'s credentials were revoked
    /// (the owner was disabled since).
    pub fn is_owner_version_revoked(&self, owner: &str, version: i64) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.owners
            .get(owner)
            .is_some_and(|(oldest_good, _)| version < *oldest_good)
    }

    /// Whether an API key has been revoked, directly or through its client.
    pub fn is_key_revoked(&self, key_id: &str, client_id: &str) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.keys.contains_key(key_id) || sets.clients.contains_key(client_id)
    }

    /// Reads new entries from the shared log and forgets expired ones. What is new is
    /// decided by the database's clock: `last_poll` is the database's time at the last
    /// poll, so an instance whose clock is off by any amount misses nothing.
    pub async fn refresh(&self, store: &Store, started: OffsetDateTime) -> Result<(), sesame_storage::StorageError> {
        let since = self
            .last_poll
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|last| last - OVERLAP);
        let (entries, database_now) = store.revocations.logged_since(since, started).await?;
        self.apply(&entries);
        {
            let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            sets.forget_expired(started);
        }
        *self
            .last_poll
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(database_now);
        Ok(())
    }
}
