//! The first-party session lifecycle: a password login starts a session, a handle
//! authenticates it, and a user ends one, the others, or all of them.
//!
//! A short-lived cache of live sessions makes a busy session cost one database read a
//! second rather than one per request. Its rules:
//! - an entry is trusted for at most [`SESSION_CACHE_TTL`]; after that the database is
//!   asked again. That is the bound on how long a session ended by another process (a
//!   second instance, `sesame user disable`) can still be used here;
//! - every session this instance ends is removed from its cache at once, so logout,
//!   revocation and password changes made through an instance take effect on it
//!   immediately;
//! - the cache only ever says "live": a cached session that looks ended is re-read from
//!   the database before anything is decided (another instance may have extended it).

use std::time::Duration;

use sesame_domain::password::Verification;
use sesame_domain::principal::UserSession;
use sesame_domain::{
    CsrfToken, Email, Held, Password, SessionHandle, SessionHandleHash, SessionId, SessionOrigin, User, UserId,
};
use sesame_storage::{NewSession, SessionCutoffs, SessionRecord};
use time::OffsetDateTime;

use crate::Context;
use crate::cache::GuardedCache;
use crate::error::{CoreError, Result};

/// The longest a cached session is trusted without asking the database.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most sessions held at once (a few MiB).
const MAX_CACHED: usize = 16_384;

/// The longest `User-Agent` kept with a session.
pub const MAX_USER_AGENT: usize = 512;

/// A live session and its user, as last read.
#[derive(Debug, Clone)]
pub(crate) struct CachedSession {
    session: SessionRecord,
    user: User,
    held: Held,
}

/// The live-session cache. Every session this instance ends bumps `ended`, and a session
/// read from the database is cached only if no end happened since the read began: a
/// request that read a session just before a logout cannot put it back afterwards.
pub(crate) struct SessionCache(GuardedCache<SessionHandleHash, CachedSession>);

impl Default for SessionCache {
    fn default() -> Self {
        Self(GuardedCache::new(SESSION_CACHE_TTL, MAX_CACHED))
    }
}

impl SessionCache {
    fn ended(&self) {
        self.0.invalidate();
    }

    /// Forgets every session of a user, except `keep`.
    pub(crate) fn remove_user(&self, user: UserId, keep: Option<SessionId>) {
        self.ended();
        self.0
            .remove_where(|entry| entry.user.id == user && Some(entry.session.id) != keep);
    }

    /// Forgets a user's cached sessions (they stay live; the next request reads them
    /// again).
    pub(crate) fn forget_user(&self, user: UserId) {
        self.remove_user(user, None);
    }

    /// Forgets every cached session (some may have ended elsewhere).
    pub(crate) fn forget_all(&self) {
        self.ended();
        self.0.clear();
    }

    fn remove_session(&self, id: SessionId) {
        self.ended();
        self.0.remove_where(|entry| entry.session.id == id);
    }

    fn remove(&self, hash: &SessionHandleHash) {
        self.ended();
        self.0.remove(hash);
    }
}

/// Where a login comes from, as the log and the session list show it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// A session just started. The handle goes to the client (in a cookie) and nowhere else.
#[derive(Debug)]
pub struct StartedSession {
    pub handle: SessionHandle,
    pub user: User,
    pub session: UserSession,
}

/// One of a user's live sessions, as listed.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: SessionId,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub origin: SessionOrigin,
    /// The cookie profile it belongs to (§11); `None`: the default.
    pub frontend: Option<String>,
}

/// The session service.
pub struct Sessions<'a>(pub(crate) &'a Context);

impl Sessions<'_> {
    /// Email and password to a new session. Every failure (unknown email, wrong password,
    /// disabled account) is the same [`CoreError::InvalidCredentials`] after the same
    /// work; throttled attempts are refused before any hashing, whatever the password.
    ///
    /// `previous` is the session the client arrived with, if any: it ends here, and the
    /// new session gets a handle of our own making (no session fixation).
    pub async fn login(
        &self,
        email: &str,
        password: String,
        origin: &Origin,
        previous: Option<&SessionHandleHash>,
    ) -> Result<StartedSession> {
        self.login_for(email, password, origin, previous, None).await
    }

    /// [`Sessions::login`] for a cookie profile (§11): the session belongs to `frontend`
    /// (`None`: the default profile), lives by its lifetimes, and answers only through
    /// its cookie.
    pub async fn login_for(
        &self,
        email: &str,
        password: String,
        origin: &Origin,
        previous: Option<&SessionHandleHash>,
        frontend: Option<&str>,
    ) -> Result<StartedSession> {
        let cx = self.0;
        let email = Email::parse(email).map_err(|e| CoreError::validation("email", e.to_string()))?;
        let password = Password::for_login(password).map_err(|e| CoreError::validation("password", e.to_string()))?;
        let attempt = cx.throttle.password(email.as_str(), &origin.ip);
        attempt.reserve().await?;

        let record = cx.store.users.find_user_by_email(&email).await?;
        // Unknown emails are verified against a dummy hash, so every failure costs the same.
        let stored = record
            .as_ref()
            .map_or_else(|| cx.dummy_hash.to_string(), |r| r.password_hash.clone());
        let verification = cx.hashing.run(move |h| h.verify(&password, &stored)).await?;
        let record = match (record, &verification) {
            (Some(record), Verification::Match | Verification::MatchRehashed(_)) if !record.is_disabled() => {
                if let Verification::MatchRehashed(new_hash) = verification {
                    // Only over the hash just verified: never over a password changed
                    // while this login was hashing.
                    match cx
                        .store
                        .users
                        .update_password_hash(record.user.id, &new_hash, &record.password_hash)
                        .await
                    {
                        Ok(true) => tracing::info!(user_id = %record.user.id, "password hash upgraded"),
                        Ok(false) => {}
                        Err(error) => tracing::warn!(%error, "could not upgrade a password hash"),
                    }
                }
                record
            }
            _ => {
                attempt.failed().await;
                tracing::info!(ip = %origin.ip, outcome = "invalid_credentials", "login failed");
                return Err(CoreError::InvalidCredentials);
            }
        };
        attempt.succeeded().await;

        if let Some(previous) = previous {
            cx.store.sessions.delete_session_by_hash(previous).await?;
            cx.sessions.remove(previous);
        }
        let handle = SessionHandle::generate();
        let now = cx.clock.now();
        let session = NewSession {
            id: SessionId::new(),
            user_id: record.user.id,
            handle_hash: handle.hash(),
            csrf_token: CsrfToken::generate(),
            created_at: now,
            origin: SessionOrigin {
                user_agent: origin
                    .user_agent
                    .as_ref()
                    .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
                ip: Some(origin.ip.clone()),
            },
            credential_version: record.credential_version,
            frontend: frontend.map(str::to_owned),
        };
        // Created only if the credential verified is still current: a password change,
        // disable or "log out everywhere" committed while this login was hashing wins.
        if !cx.store.sessions.create_session(&session).await? {
            tracing::info!(ip = %origin.ip, user_id = %record.user.id, outcome = "credential_changed", "login failed");
            return Err(CoreError::InvalidCredentials);
        }
        tracing::info!(ip = %origin.ip, user_id = %record.user.id, session_id = %session.id, outcome = "success", "login");
        Ok(StartedSession {
            handle,
            session: UserSession {
                user: record.user.clone(),
                session_id: session.id,
                expires_at: cx.settings.session_policy(frontend).expires_at(now, now),
                csrf_token: session.csrf_token,
                held: cx.settings.scopes.held(&record.granted_scopes),
                signed_in_at: now,
            },
            user: record.user,
        })
    }

    /// The live session behind a handle, its last-seen time refreshed when the
    /// coalescing interval has passed. Unknown, expired or a disabled user's →
    /// [`CoreError::SessionEnded`] (and an ended session is deleted at once).
    pub async fn authenticate(&self, hash: &SessionHandleHash) -> Result<UserSession> {
        self.authenticate_for(hash, None).await
    }

    /// [`Sessions::authenticate`] through a cookie profile's cookie: a session of another
    /// profile is [`CoreError::SessionEnded`] here (and left alone: it is live through its
    /// own cookie).
    pub async fn authenticate_for(&self, hash: &SessionHandleHash, frontend: Option<&str>) -> Result<UserSession> {
        let cx = self.0;
        let policy = cx.settings.session_policy(frontend);
        let now = cx.clock.now();
        let cached = cx
            .sessions
            .0
            .get(hash, now)
            .filter(|c| policy.is_live(c.session.created_at, c.session.last_seen_at, now));
        if let Some(cached) = &cached
            && cached.session.frontend.as_deref() != frontend
        {
            return Err(CoreError::SessionEnded);
        }
        let (session, user, held) = match cached {
            Some(cached) => (cached.session, cached.user, cached.held),
            None => {
                let read_at = cx.sessions.0.generation();
                let Some((session, user)) = cx.store.sessions.find_session(hash).await? else {
                    return Err(CoreError::SessionEnded);
                };
                if session.frontend.as_deref() != frontend {
                    return Err(CoreError::SessionEnded);
                }
                let outdated = session.credential_version < user.credential_version;
                if user.is_disabled() || outdated || !policy.is_live(session.created_at, session.last_seen_at, now) {
                    // Ended sessions are removed eagerly; the periodic sweep catches the rest.
                    cx.sessions.remove(hash);
                    if let Err(error) = cx.store.sessions.delete_session_by_hash(hash).await {
                        tracing::warn!(%error, "could not delete an ended session");
                    }
                    return Err(CoreError::SessionEnded);
                }
                let held = cx.settings.scopes.held(&user.granted_scopes);
                cx.sessions.0.insert_if_unchanged(
                    *hash,
                    CachedSession {
                        session: session.clone(),
                        user: user.user.clone(),
                        held: held.clone(),
                    },
                    read_at,
                    now,
                );
                (session, user.user, held)
            }
        };
        let mut last_seen = session.last_seen_at;
        if policy.needs_touch(last_seen, now) {
            match cx.store.sessions.touch_session(session.id, now).await {
                Ok(()) => {
                    last_seen = now;
                    cx.sessions.0.update(hash, |entry| {
                        entry.session.last_seen_at = entry.session.last_seen_at.max(now);
                    });
                }
                Err(error) => tracing::warn!(%error, "could not record session use"),
            }
        }
        Ok(UserSession {
            user,
            session_id: session.id,
            expires_at: policy.expires_at(session.created_at, last_seen),
            csrf_token: session.csrf_token,
            held,
            signed_in_at: session.created_at,
        })
    }

    /// Ends the caller's own session (logout).
    pub async fn logout(&self, session: &UserSession, ip: &str) -> Result<()> {
        self.end(session.user.id, session.session_id).await?;
        tracing::info!(ip = %ip, user_id = %session.user.id, session_id = %session.session_id, "logout");
        Ok(())
    }

    /// Ends one of a user's sessions; another user's session is [`CoreError::NotFound`].
    pub async fn end(&self, user: UserId, id: SessionId) -> Result<()> {
        let cx = self.0;
        let deleted = cx.store.sessions.delete_user_session(user, id).await?;
        cx.sessions.remove_session(id);
        if !deleted {
            return Err(CoreError::NotFound);
        }
        Ok(())
    }

    /// Ends one of the caller's sessions by id (`DELETE /sessions/{id}`).
    pub async fn revoke(&self, caller: &UserSession, id: SessionId) -> Result<()> {
        self.end(caller.user.id, id).await?;
        tracing::info!(user_id = %caller.user.id, session_id = %id, "session revoked");
        Ok(())
    }

    /// Ends every session of a user except `keep` (all of them without one).
    pub async fn end_others(&self, user: UserId, keep: Option<SessionId>) -> Result<u64> {
        let cx = self.0;
        let ended = cx.store.sessions.delete_user_sessions(user, keep).await?;
        cx.sessions.remove_user(user, keep);
        tracing::info!(user_id = %user, ended, "other sessions revoked");
        Ok(ended)
    }

    /// A user's live sessions, newest first.
    pub async fn list(&self, user: UserId) -> Result<Vec<SessionView>> {
        let cx = self.0;
        let longest = cx.settings.longest_session_policy();
        let now = cx.clock.now();
        let sessions = cx
            .store
            .sessions
            .list_user_sessions(user, SessionCutoffs::of(&longest, now))
            .await?;
        Ok(sessions
            .into_iter()
            .filter_map(|s| {
                let policy = cx.settings.session_policy(s.frontend.as_deref());
                policy.is_live(s.created_at, s.last_seen_at, now).then(|| SessionView {
                    id: s.id,
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    expires_at: policy.expires_at(s.created_at, s.last_seen_at),
                    origin: s.origin,
                    frontend: s.frontend,
                })
            })
            .collect())
    }

    /// Ends the session behind a handle, if there is one (a stale cookie at login).
    pub async fn end_by_handle(&self, hash: &SessionHandleHash) -> Result<()> {
        self.0.store.sessions.delete_session_by_hash(hash).await?;
        self.0.sessions.remove(hash);
        Ok(())
    }
}
