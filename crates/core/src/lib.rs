//! sesame's application: every rule of the account, session, client and token
//! lifecycles, owned end to end — the database write, the cache update, the revocation,
//! the log line — by one service each. The HTTP layer and the CLI both call these
//! services; nothing here knows about HTTP.
//!
//! - [`Accounts`]: register, change password, disable, grant and revoke restricted scopes.
//! - [`Sessions`]: password login, authenticate a handle, end one / the others / all.
//! - [`Clients`]: register, add key, revoke key, delete, list.
//! - [`Authorizations`]: the authorization request, consent and grants, and the
//!   single-use codes redeemed for delegated tokens (§10).
//! - [`Tokens`]: authenticate a client, issue, verify, revoke, introspect; signing keys
//!   and their rotation; the revocation set.
//!
//! Every operation takes the time from the [`Clock`] the [`Core`] was built with.

pub mod accounts;
pub mod authorizations;
pub mod cache;
pub mod clients;
pub mod clock;
pub mod error;
pub mod hashing;
pub mod sealing;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use sesame_domain::{PasswordPolicy, SessionPolicy, ThrottlePolicy};
use sesame_storage::{AuthorizationSweep, SessionCutoffs, Store};

pub use accounts::Accounts;
pub use authorizations::Authorizations;
pub use clients::Clients;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{CoreError, FieldError};
pub use hashing::HashingPool;
pub use sessions::Sessions;
pub use tokens::Tokens;
pub use tokens::{SigningAlg, TokenSettings};

/// The rules the services apply, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sessions: SessionPolicy,
    pub throttle: ThrottlePolicy,
    pub passwords: PasswordPolicy,
    /// Whether anyone may register themselves (operators always may).
    pub registration_open: bool,
    pub tokens: TokenSettings,
    /// The scope catalogue (§9): which scopes exist and who may hold them.
    pub scopes: sesame_domain::Catalogue,
    /// How long an authorization code may be redeemed (`SESAME_AUTH_CODE_TTL`, §10).
    pub auth_code_ttl: std::time::Duration,
    /// Refresh-token family lifetimes (§10).
    pub refresh: RefreshPolicy,
    /// The cookie profiles' own session lifetimes (§11), by profile name; a session of
    /// no profile lives by `sessions`.
    pub frontends: Vec<(String, sesame_domain::SessionPolicy)>,
}

impl Settings {
    /// The lifetimes of a session of `frontend` (the default profile's for `None`, or an
    /// unknown name).
    pub fn session_policy(&self, frontend: Option<&str>) -> sesame_domain::SessionPolicy {
        frontend
            .and_then(|name| self.frontends.iter().find(|(n, _)| n == name))
            .map_or(self.sessions, |(_, policy)| *policy)
    }

    /// The longest lifetimes of any profile: what no session can outlive.
    pub fn longest_session_policy(&self) -> sesame_domain::SessionPolicy {
        self.frontends
            .iter()
            .fold(self.sessions, |longest, (_, policy)| sesame_domain::SessionPolicy {
                idle: longest.idle.max(policy.idle),
                absolute: longest.absolute.max(policy.absolute),
            })
    }
}

/// How long a refresh-token family lives: `idle` unused (`SESAME_REFRESH_IDLE`), and at
/// most `absolute` after its code was issued (`SESAME_REFRESH_ABSOLUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub idle: time::Duration,
    pub absolute: time::Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            idle: time::Duration::days(14),
            absolute: time::Duration::days(90),
        }
    }
}

/// What every service shares.
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) hashing: HashingPool,
    /// A hash of a random password, verified against when the email is unknown so that
    /// unknown and known emails cost the same time.
    pub(crate) dummy_hash: Arc<str>,
    pub(crate) throttle: throttle::Throttle,
    pub(crate) sessions: sessions::SessionCache,
    pub(crate) keys: tokens::KeyCache,
    pub(crate) tokens: tokens::TokenService,
    pub(crate) readiness: Readiness,
}

/// The last readiness probe: when it ran and whether the database took its write. One
/// probe at a time, at most one a second, whatever the call rate.
#[derive(Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(time::OffsetDateTime, bool)>>,
    probes: std::sync::atomic::AtomicU64,
}

/// How long a readiness answer is reused.
pub const READINESS_TTL: time::Duration = time::Duration::SECOND;

/// The application: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Core(Arc<Context>);

impl Core {
    /// Loads the signing keys and the revocation log, and computes the dummy hash.
    pub async fn new(
        settings: Settings,
        store: Store,
        hashing: HashingPool,
        clock: SharedClock,
    ) -> Result<Self, CoreError> {
        let tokens = tokens::TokenService::load(settings.tokens.clone(), store.clone(), clock.clone())
            .await
            .map_err(tokens::load_error)?;
        let dummy = sesame_domain::Password::for_login(sesame_domain::SessionHandle::generate().expose().to_owned())
            .map_err(|e| CoreError::internal(std::io::Error::other(e.to_string())))?;
        let dummy_hash = hashing.hash(dummy).await?;
        let account_key = store
            .database
            .install_secret(throttle::ACCOUNT_KEY_SECRET, &sesame_domain::random::bytes32())
            .await?;
        Ok(Self(Arc::new(Context {
            throttle: throttle::Throttle::new(settings.throttle, store.clone(), clock.clone(), &account_key),
            settings,
            store,
            clock,
            hashing,
            dummy_hash: dummy_hash.into(),
            sessions: sessions::SessionCache::default(),
            keys: tokens::KeyCache::default(),
            tokens,
            readiness: Readiness::default(),
        })))
    }

    pub fn accounts(&self) -> Accounts<'_> {
        Accounts(&self.0)
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(&self.0)
    }

    pub fn clients(&self) -> Clients<'_> {
        Clients(&self.0)
    }

    pub fn authorizations(&self) -> Authorizations<'_> {
        Authorizations(&self.0)
    }

    pub fn tokens(&self) -> Tokens<'_> {
        Tokens(&self.0)
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The database, for health checks.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Closes the database connections (a command that is done).
    pub async fn close(&self) {
        self.0.store.database.close().await;
    }

    pub fn hashing(&self) -> &HashingPool {
        &self.0.hashing
    }

    /// Whether the database answers and takes a write, probed at most once per
    /// [`READINESS_TTL`] (the answer may be that old): an unauthenticated caller cannot
    /// make sesame write, or take SQLite's write lock, at its own rate. Concurrent callers
    /// wait for the one probe in flight.
    pub async fn ready(&self, timeout: std::time::Duration) -> Result<(), CoreError> {
        let readiness = &self.0.readiness;
        let mut last = readiness.last.lock().await;
        let now = self.now();
        if let Some((at, ready)) = *last
            && now >= at
            && now - at < READINESS_TTL
        {
            return if ready {
                Ok(())
            } else {
                Err(CoreError::Unavailable(None))
            };
        }
        readiness.probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = match tokio::time::timeout(timeout, self.0.store.database.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(CoreError::Unavailable(Some(error))),
            Err(_) => Err(CoreError::Unavailable(None)),
        };
        *last = Some((now, outcome.is_ok()));
        outcome
    }

    /// How many readiness probes reached the database.
    pub fn readiness_probes(&self) -> u64 {
        self.0.readiness.probes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.0.clock.now()
    }

    /// Follows what other instances end, for as long as the task runs: revocations (read
    /// from the shared log at once when the database tells, and every second whatever
    /// happens) and sessions (forgotten from this instance's cache as soon as the database
    /// tells; the cache's one second bounds it otherwise).
    pub async fn follow_changes(&self) {
        let cx = self.0.clone();
        let sessions: sesame_storage::SessionsEnded = Arc::new(move |user| match user {
            Some(user) => cx.sessions.forget_user(user),
            None => cx.sessions.forget_all(),
        });
        self.0.tokens.poll_revocations(sessions).await;
    }

    /// Deletes ended sessions, login failures older than every throttle window, and
    /// revocations that no unexpired token can concern.
    pub async fn sweep(&self) {
        let now = self.now();
        let policy = self.0.settings.longest_session_policy();
        match self
            .0
            .store
            .sessions
            .delete_expired_sessions(SessionCutoffs::of(&policy, now))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "swept ended sessions"),
            Err(error) => tracing::warn!(%error, "session sweep failed"),
        }
        if let Err(error) = self.0.throttle.prune().await {
            tracing::warn!(%error, "login failure sweep failed");
        }
        if let Err(error) = self.0.tokens.prune_revocations().await {
            tracing::warn!(%error, "revocation sweep failed");
        }
        let refresh = self.0.settings.refresh;
        // Codes are kept an hour past their expiry, so a late replay still ends what the
        // first redemption started.
        let codes_before = now - time::Duration::HOUR;
        let sweep = AuthorizationSweep {
            idle_before: now - refresh.idle,
            created_before: now - refresh.absolute,
            codes_before,
        };
        match self.0.store.authorizations.sweep_authorizations(&sweep).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "swept ended refresh families and expired codes"),
            Err(error) => tracing::warn!(%error, "authorization sweep failed"),
        }
    }
}
