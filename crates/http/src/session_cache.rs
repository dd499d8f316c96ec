//! A short-lived cache of live sessions, so that a busy session costs one database read
//! a second rather than one per request.
//!
//! Correctness rules:
//! - an entry is trusted for at most [`SESSION_CACHE_TTL`]; after that the database is
//!   asked again. That is the bound on how long a session ended by another process (a
//!   second instance, `sesame user disable`) can still be used here;
//! - every session this instance ends is removed from its cache at once, so logout,
//!   revocation and password changes made through an instance take effect on it
//!   immediately;
//! - the cache only ever says "live": a cached session that looks ended is re-read from
//!   the database before anything is decided (another instance may have extended it).
//! - it holds at most [`MAX_ENTRIES`] sessions; when full, new sessions are simply not
//!   cached.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sesame_domain::{SessionHandleHash, SessionId, User, UserId};
use sesame_storage::SessionRecord;
use time::OffsetDateTime;

/// The longest a cached session is trusted without asking the database.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most sessions held at once (a few MiB).
const MAX_ENTRIES: usize = 16_384;

/// A live session and its user, as last read.
#[derive(Debug, Clone)]
pub struct CachedSession {
    pub session: SessionRecord,
    pub user: User,
    fetched: Instant,
}

#[derive(Default)]
pub struct SessionCache {
    entries: RwLock<HashMap<SessionHandleHash, CachedSession>>,
}

impl SessionCache {
    /// A fresh entry for this handle, if any.
    pub fn get(&self, hash: &SessionHandleHash) -> Option<CachedSession> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(hash)
            .filter(|entry| entry.fetched.elapsed() < SESSION_CACHE_TTL)
            .cloned()
    }

    /// Caches a live session just read from the database.
    pub fn insert(&self, hash: SessionHandleHash, session: SessionRecord, user: User) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.fetched.elapsed() < SESSION_CACHE_TTL);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            hash,
            CachedSession {
                session,
                user,
                fetched: Instant::now(),
            },
        );
    }

    /// Records a `last_seen_at` this instance wrote.
    pub fn touched(&self, hash: &SessionHandleHash, at: OffsetDateTime) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(hash) {
            entry.session.last_seen_at = entry.session.last_seen_at.max(at);
        }
    }

    /// Forgets one session by its handle.
    pub fn remove(&self, hash: &SessionHandleHash) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(hash);
    }

    /// Forgets one session by its id.
    pub fn remove_session(&self, id: SessionId) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, entry| entry.session.id != id);
    }

    /// Forgets every session of a user, except `keep`.
    pub fn remove_user(&self, user: UserId, keep: Option<SessionId>) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, entry| entry.user.id != user || Some(entry.session.id) == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_domain::{CsrfToken, Email, SessionHandle};

    fn entry(user: UserId) -> (SessionHandleHash, SessionRecord, User) {
        let now = sesame_domain::now();
        let session = SessionRecord {
            id: SessionId::new(),
            user_id: user,
            csrf_token: CsrfToken::generate(),
            created_at: now,
            last_seen_at: now,
            user_agent: None,
            ip: None,
        };
        let user = User {
            id: user,
            email: Email::parse("a@b.c").expect("valid"),
            created_at: now,
        };
        (SessionHandle::generate().hash(), session, user)
    }

    #[test]
    fn removal_by_user_keeps_only_the_named_session() {
        let cache = SessionCache::default();
        let ada = UserId::new();
        let (h1, s1, u1) = entry(ada);
        let (h2, s2, u2) = entry(ada);
        let (h3, s3, u3) = entry(UserId::new());
        let keep = s1.id;
        cache.insert(h1, s1, u1);
        cache.insert(h2, s2, u2);
        cache.insert(h3, s3, u3);
        cache.remove_user(ada, Some(keep));
        assert!(cache.get(&h1).is_some());
        assert!(cache.get(&h2).is_none());
        assert!(cache.get(&h3).is_some());
        cache.remove(&h1);
        assert!(cache.get(&h1).is_none());
    }
}
