//! sesame's persistence. One trait per aggregate (users, sessions, login failures,
//! clients, signing keys, revocations), each implemented once by [`SqlStore`] for both
//! Postgres and SQLite: the statements the dialects agree on are written once (`sql`), and
//! each backend's module keeps only what differs. [`Store`] bundles them behind
//! `Arc<dyn …>` so the HTTP layer never knows which database it runs on.
//!
//! Stores keep facts (when a session was created and last seen, when a login failed);
//! the policies in `sesame-domain` decide what those facts mean, so a changed setting
//! takes effect on existing rows at once.

mod postgres;
mod shared;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sesame_domain::{
    ApiKeyHash, ApiKeyId, ClientId, CodeChallenge, CodeHash, CsrfToken, Email, RefreshTokenHash, Scopes,
    SessionHandleHash, SessionId, SessionOrigin, SessionPolicy, StaticClaims, ThrottleKey, User, UserId,
};
use time::OffsetDateTime;
use uuid::Uuid;

pub use postgres::PostgresStore;
pub use shared::SqlStore;
pub use sqlite::SqliteStore;

/// What went wrong in the database, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is not answering in time. Callers answer 503
    /// and try again later; nothing about the request was wrong.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A user with this email already exists.
    #[error("the email is taken")]
    EmailTaken,
    /// Anything else: a bug or a corrupt row.
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("invalid stored value in {0}")]
    Corrupt(&'static str),
    /// A compare-and-swap lost to concurrent changes of the same row too many times in a
    /// row: try again later.
    #[error("too many concurrent changes to {0}")]
    Contended(&'static str),
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// A serialization failure or a deadlock (Postgres `40001`, `40P01`): the statement
    /// lost a race and may simply be run again.
    pub fn is_retryable_conflict(&self) -> bool {
        match self {
            Self::Unavailable(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// Maps a driver error, translating broken uniqueness rules callers answer for into their
/// own variants.
pub(crate) fn classify(error: sqlx::Error, backend: Backend) -> StorageError {
    use sqlx::Error as E;
    match &error {
        E::Database(db) if db.is_unique_violation() => {
            // Postgres names the constraint; SQLite only says "UNIQUE constraint failed:
            // users.email", naming the columns.
            let rule = db
                .constraint()
                .or_else(|| db.message().strip_prefix("UNIQUE constraint failed: "));
            match rule {
                Some("users_email_key" | "users.email") => StorageError::EmailTaken,
                _ => StorageError::Other(error),
            }
        }
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => StorageError::Unavailable(error),
        E::Database(db) if is_unavailable_code(db.code().as_deref(), backend) => StorageError::Unavailable(error),
        _ => StorageError::Other(error),
    }
}

/// Database error codes that mean "not now" rather than "never":
/// - Postgres shutting down, out of connections or resources, or in recovery (classes
///   08, 53, 57P); refusing connections (`55000`: `ALLOW_CONNECTIONS false`; `28000` and
///   `28P01`: a failed authentication, e.g. a rotated password); a read-only standby
///   after a failover (`25006`); a serialization failure or deadlock (`40001`, `40P01`);
///   a cancelled statement (`57014`);
/// - SQLite busy, locked, read-only, I/O error, disk full or cannot open (primary codes,
///   whatever the extended code).
///
/// A permission error (`42501`) is not among them: it is a misconfiguration, a 500.
fn is_unavailable_code(code: Option<&str>, backend: Backend) -> bool {
    let Some(code) = code else {
        return false;
    };
    match backend {
        Backend::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || ["55000", "28000", "28P01", "25006", "40001", "40P01", "57014"].contains(&code)
        }
        Backend::Sqlite => code
            .parse::<u32>()
            .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 8 | 10 | 13 | 14)),
    }
}

/// A user with what only the server may see. `Debug` leaves out the password hash.
#[derive(Clone)]
pub struct UserRecord {
    pub user: User,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled_at: Option<OffsetDateTime>,
    /// Bumped by every change that ends what the credentials made before it.
    pub credential_version: i64,
    /// The restricted scopes the operator granted (§9).
    pub granted_scopes: Scopes,
    /// The version of the user's clients' tokens: bumped by a disable or a scope taken
    /// away, each logging an owner revocation of every token issued under an older one.
    pub token_version: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .field("disabled_at", &self.disabled_at)
            .field("credential_version", &self.credential_version)
            .field("granted_scopes", &self.granted_scopes)
            .field("token_version", &self.token_version)
            .finish()
    }
}

/// A user just disabled, and the revocation of their clients' earlier tokens.
#[derive(Debug, Clone)]
pub struct DisabledUser {
    pub id: UserId,
    pub revocation: Revocation,
}

impl UserRecord {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; a taken email is [`StorageError::EmailTaken`].
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()>;
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>>;
    async fn find_user_by_id(&self, id: UserId) -> Result<Option<UserRecord>>;
    /// Replaces a hash after a rehash-on-login, only if the stored hash is still
    /// `replacing` (false otherwise: the password changed meanwhile); does not touch
    /// sessions.
    async fn update_password_hash(&self, id: UserId, password_hash: &str, replacing: &str) -> Result<bool>;
    /// Sets a new password, bumps the credential version and ends every session of the
    /// user except `keep` (moved to the new version); ends the user's refresh
    /// families, and the access tokens delegated under their grants (each live grant's
    /// version bumped, its scopes kept), logging one `revocation` per grant (the subject
    /// filled in here), atomically; the revocations logged.
    async fn change_password(
        &self,
        id: UserId,
        password_hash: &str,
        keep: SessionId,
        revocation: Revocation,
    ) -> Result<Vec<Revocation>>;
    /// Disables the user as of the revocation's `created_at`, ends all their sessions,
    /// grants and refresh families, and logs `revocation` (an owner revocation: its
    /// subject, the user's new token version, filled in here), atomically. `None` if no
    /// such user.
    async fn disable_user(&self, email: &Email, revocation: Revocation) -> Result<Option<DisabledUser>>;
    /// Lifts a disable. `None` if no such user.
    async fn enable_user(&self, email: &Email) -> Result<Option<UserId>>;
    /// Changes a user's granted scopes if they are still what the change read, and, when it
    /// takes scopes away, revokes the user's clients' earlier tokens in the same step.
    async fn change_granted_scopes(&self, change: &GrantChange<'_>) -> Result<GrantOutcome>;
}

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub handle_hash: SessionHandleHash,
    pub csrf_token: CsrfToken,
    pub created_at: OffsetDateTime,
    pub origin: SessionOrigin,
    /// The user's credential version the login verified against.
    pub credential_version: i64,
    /// The cookie profile (§11) the session was started through; `None`: the default.
    pub frontend: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_token: CsrfToken,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub origin: SessionOrigin,
    /// The user's credential version it was made under (or moved to).
    pub credential_version: i64,
    /// The cookie profile (§11) it belongs to; `None`: the default.
    pub frontend: Option<String>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session if the user's credential version is still the session's and the
    /// user is not disabled (one statement); false if not.
    async fn create_session(&self, session: &NewSession) -> Result<bool>;
    /// The session with this handle hash and its user, whether or not still live; the
    /// caller applies the lifetime policy and the disabled flag.
    async fn find_session(&self, handle_hash: &SessionHandleHash) -> Result<Option<(SessionRecord, UserRecord)>>;
    /// Records use of a session (coalesced by the caller).
    async fn touch_session(&self, id: SessionId, at: OffsetDateTime) -> Result<()>;
    /// Deletes the session with this handle hash; true if there was one.
    async fn delete_session_by_hash(&self, handle_hash: &SessionHandleHash) -> Result<bool>;
    /// Deletes one of a user's sessions; false if the user has no such session.
    async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> Result<bool>;
    /// Deletes all a user's sessions except `keep` ("log out everywhere"), bumping the
    /// credential version and moving `keep` to it, atomically; returns how many ended.
    async fn delete_user_sessions(&self, user_id: UserId, keep: Option<SessionId>) -> Result<u64>;
    /// A user's sessions still live by `cutoffs`, newest first.
    async fn list_user_sessions(&self, user_id: UserId, cutoffs: SessionCutoffs) -> Result<Vec<SessionRecord>>;
    /// Deletes the sessions ended by `cutoffs` (either of them); returns how many.
    async fn delete_expired_sessions(&self, cutoffs: SessionCutoffs) -> Result<u64>;
}

/// Where live sessions end: a session is live while it was last seen after `seen` and
/// created after `created`, and ended from either on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCutoffs {
    pub seen: OffsetDateTime,
    pub created: OffsetDateTime,
}

impl SessionCutoffs {
    /// The cutoffs of a session policy at `now`: its idle and absolute lifetimes back.
    pub fn of(policy: &SessionPolicy, now: OffsetDateTime) -> Self {
        Self {
            seen: now - policy.idle,
            created: now - policy.absolute,
        }
    }
}

/// One budget an attempt is charged to: at most `limit` failures under `key` after `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub key: ThrottleKey,
    pub limit: u32,
    pub since: OffsetDateTime,
}

/// What [`ThrottleStore::reserve`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Whether the attempt was charged (every budget had room).
    pub charged: bool,
    /// The failures (reservations included) found under each charge's key, in order,
    /// not counting this attempt.
    pub counts: Vec<u64>,
}

/// Failures recorded under throttle keys: each key's text and when it failed.
pub type RecentFailures = Vec<(String, OffsetDateTime)>;

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Charges `attempt` to every key at `at` if each has fewer than its `limit` failures
    /// after its `since`, else charges nothing. Exact under concurrency, across
    /// connections and instances: the count and the charge are one step under a per-key
    /// lock (Postgres advisory locks; SQLite's write lock), so with a budget of N at most
    /// N attempts are ever charged in a window. A charge counts as a failure until
    /// [`release`](Self::release)d or [`settle`](Self::settle)d.
    async fn reserve(&self, charges: &[Charge], attempt: Uuid, at: OffsetDateTime) -> Result<Reservation>;
    /// Takes back an attempt's charges (it succeeded).
    async fn release(&self, attempt: Uuid) -> Result<()>;
    /// Keeps an attempt's charges as plain failures (it failed), which a success may
    /// clear with [`clear_failures`](Self::clear_failures).
    async fn settle(&self, attempt: Uuid) -> Result<()>;
    /// Times of failures recorded under each key since `since`.
    async fn recent_failures(&self, keys: &[ThrottleKey], since: OffsetDateTime) -> Result<RecentFailures>;
    async fn record_failure(&self, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()>;
    /// Forgets the settled failures under one key (a successful login clears its
    /// (account, IP)); attempts still in flight keep their reservations.
    async fn clear_failures(&self, key: &ThrottleKey) -> Result<()>;
    /// Deletes failures older than any window.
    async fn prune_failures(&self, before: OffsetDateTime) -> Result<u64>;
}

/// An authorization code as stored: its hash, never the code, and everything it is bound
/// to (§10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub hash: CodeHash,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub challenge: CodeChallenge,
    pub scopes: Scopes,
    /// RFC 8707 resources, in the order asked.
    pub resources: Vec<String>,
    /// When the user last signed in (the token's `auth_time`).
    pub auth_time: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The version of the user's grant to the client when the code was issued.
    pub grant_version: i64,
}

/// A user's grant to a client: the scopes consented to, and the grant's version (bumped
/// each time it is ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub scopes: Scopes,
    pub version: i64,
}

/// A live grant, as its user lists it: the domain's own type.
pub use sesame_domain::GrantView;

/// What presenting a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The first presentation: the code is now spent.
    Redeemed(CodeRecord),
    /// Spent before: the token it was exchanged for and the refresh family it started
    /// (if any) must be revoked.
    Replayed {
        record: CodeRecord,
        issued_jti: Option<String>,
        family: Option<Uuid>,
    },
    /// No such code (or one swept after expiring).
    Unknown,
}

#[async_trait]
pub trait AuthorizationStore: Send + Sync {
    async fn insert_code(&self, code: &CodeRecord) -> Result<()>;
    /// Spends a code: the first presentation redeems it, every later one is a replay.
    async fn redeem_code(&self, hash: &CodeHash, at: OffsetDateTime) -> Result<Redemption>;
    /// Starts a refresh family with its first token, and records on the redeemed code
    /// the `jti` of the access token and the family it was exchanged for, atomically.
    async fn start_family(
        &self,
        code: &CodeHash,
        jti: &str,
        family: &FamilyRecord,
        first: &RefreshTokenHash,
    ) -> Result<()>;
    /// Deletes codes that expired at or before `before`.
    async fn delete_expired_codes(&self, before: OffsetDateTime) -> Result<u64>;
    /// A user's live grant to a client, if any (an ended one is none).
    async fn grant(&self, user: UserId, client: &ClientId) -> Result<Option<GrantRecord>>;
    /// Adds `scopes` to a user's grant to a client (creating it), exactly, however many
    /// approvals run at once; the grant now.
    async fn widen_grant(
        &self,
        user: UserId,
        client: &ClientId,
        scopes: &Scopes,
        at: OffsetDateTime,
    ) -> Result<GrantRecord>;
    /// A user's live grants, oldest first.
    async fn list_grants(&self, user: UserId) -> Result<Vec<GrantView>>;
    /// Ends a live grant and records the revocation of every token issued under it
    /// (`revocation` with the subject filled in here), atomically; `None` if there was
    /// no live grant.
    async fn end_grant(&self, user: UserId, client: &ClientId, revocation: Revocation) -> Result<Option<Revocation>>;
    /// A refresh token, its family, and whether the grant the family was issued under is
    /// still the user's live one; `None` for a token of no live family.
    async fn find_refresh(&self, hash: &RefreshTokenHash) -> Result<Option<FoundRefresh>>;
    /// Rotates a refresh token in one transaction: spends it (the statement decides,
    /// whatever runs concurrently) or finds it spent no earlier than `grace_since`, then
    /// adds `next` to its family and marks the family used. Nothing changes unless the
    /// answer is [`Rotation::Rotated`].
    async fn rotate_refresh(&self, rotation: &RefreshRotation<'_>) -> Result<Rotation>;
    /// Ends a family (its tokens go with it) and logs `revocation` (its subject filled in
    /// here: the family id) for the access tokens issued from it, atomically; `None` if it
    /// had already ended.
    async fn end_family(&self, family: Uuid, revocation: Revocation) -> Result<Option<Revocation>>;
    /// Deletes what the sweep names; how many rows went.
    async fn sweep_authorizations(&self, sweep: &AuthorizationSweep) -> Result<u64>;
}

/// A refresh token presented for rotation ([`AuthorizationStore::rotate_refresh`]).
#[derive(Debug, Clone, Copy)]
pub struct RefreshRotation<'a> {
    /// The token presented.
    pub hash: &'a RefreshTokenHash,
    /// The family it belongs to.
    pub family: Uuid,
    /// The token that takes its place.
    pub next: &'a RefreshTokenHash,
    pub at: OffsetDateTime,
    /// A token spent no earlier than this is rotated again (an answer lost on the way).
    pub grace_since: OffsetDateTime,
}

/// What [`AuthorizationStore::sweep_authorizations`] deletes: refresh families unused
/// since `idle_before` or started before `created_before`, and codes that expired before
/// `codes_before`.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationSweep {
    pub idle_before: OffsetDateTime,
    pub created_before: OffsetDateTime,
    pub codes_before: OffsetDateTime,
}

/// What became of a refresh token presented for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Spent now (or within the grace), and its successor added.
    Rotated,
    /// Spent before the grace began (`None`: gone with its family meanwhile).
    SpentBefore(Option<OffsetDateTime>),
    /// Its family has ended.
    Ended,
}

/// A refresh-token family (§10): what every token of it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    pub id: Uuid,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The scopes of the code that started it: a refresh may only narrow them.
    pub scopes: Scopes,
    /// RFC 8707 resources, in the order asked.
    pub resources: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub grant_version: i64,
    /// When the family's code was issued (its absolute lifetime counts from here).
    pub created_at: OffsetDateTime,
    /// When a token of it was last used (its idle lifetime counts from here).
    pub last_used_at: OffsetDateTime,
}

/// A refresh token as found.
#[derive(Debug, Clone)]
pub struct FoundRefresh {
    pub family: FamilyRecord,
    /// Whether the user's grant to the client is live and the one the family was issued
    /// under.
    pub grant_live: bool,
    /// When this token was spent (rotated), if it was.
    pub spent_at: Option<OffsetDateTime>,
}

/// A registered third-party client, as stored: the domain's own type.
pub use sesame_domain::Client as ClientRecord;

/// An API key's record; the key itself is never stored.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub client_id: ClientId,
    pub key_hash: ApiKeyHash,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What an exchange needs to know of a client's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerState {
    pub disabled: bool,
    /// The owner's token version: what the token records as `owner_version`.
    pub token_version: i64,
    /// The restricted scopes granted to the owner.
    pub granted_scopes: Scopes,
}

/// A change of the restricted scopes granted to a user, made only if they are still
/// `from`.
#[derive(Debug, Clone)]
pub struct GrantChange<'a> {
    pub user: UserId,
    pub from: &'a Scopes,
    pub to: &'a Scopes,
    /// When scopes are taken away: revoke the user's clients' earlier tokens by logging
    /// this owner revocation (its subject, the user's new token version, filled in here).
    pub revoke: Option<Revocation>,
}

/// What a [`GrantChange`] did.
#[derive(Debug, Clone)]
pub enum GrantOutcome {
    /// The granted scopes were no longer `from` (another change won): read and retry.
    Stale,
    Changed {
        revocation: Option<Revocation>,
    },
}

/// A client with all its keys (live and revoked), oldest key first.
#[derive(Debug, Clone)]
pub struct ClientWithKeys {
    pub client: ClientRecord,
    pub keys: Vec<ApiKeyRecord>,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a client and its first key (a public client has none), atomically.
    async fn create_client(&self, client: &ClientRecord, first_key: Option<&ApiKeyRecord>) -> Result<()>;
    /// An owner's clients, oldest first.
    async fn list_clients(&self, owner: UserId) -> Result<Vec<ClientWithKeys>>;
    async fn find_client(&self, id: &ClientId) -> Result<Option<ClientWithKeys>>;
    /// Deletes an owner's client and its keys and records the revocation, atomically.
    /// False if the owner has no such client.
    async fn delete_client(&self, owner: UserId, id: &ClientId, revocation: &Revocation) -> Result<bool>;
    /// Replaces a client's static claims if they are still `from`; false otherwise (or
    /// for no such client).
    async fn set_client_claims(&self, id: &ClientId, from: &StaticClaims, to: &StaticClaims) -> Result<bool>;
    async fn add_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Marks a client's key revoked and records the revocation, atomically. False if the
    /// client has no such key. Revoking a revoked key changes nothing but succeeds.
    async fn revoke_key(&self, client: &ClientId, key: ApiKeyId, revocation: &Revocation) -> Result<bool>;
    /// A key, its client and the client's owner's state, for an exchange.
    async fn find_key(&self, id: ApiKeyId) -> Result<Option<(ApiKeyRecord, ClientRecord, OwnerState)>>;
    /// Every client with its keys, oldest first (the operator's list).
    async fn list_all_clients(&self) -> Result<Vec<ClientWithKeys>>;
    /// Records use of a key (coalesced by the caller).
    async fn touch_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<()>;
}

/// A token-signing key. `Debug` hides the private part.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// PKCS#8 DER, or that DER sealed under the operator's secret.
    pub private_der: Vec<u8>,
    pub created_at: OffsetDateTime,
    /// When it starts signing, by the database's clock (`None`: at once; keys made
    /// before two-phase rotation).
    pub signs_from: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every signing key, in the order they were added (by the database's sequence).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Adds a key that signs from the database's clock plus `publish_for` (published
    /// meanwhile, so resource servers fetch it before they meet it).
    async fn add_signing_key(&self, key: &SigningKeyRecord, publish_for: std::time::Duration) -> Result<()>;
    /// Replaces a key's stored private part (sealed again under another secret); false
    /// if there is no such key.
    async fn replace_signing_key(&self, kid: &str, private_der: &[u8]) -> Result<bool>;
}

/// What a revocation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// One token, by `jti`.
    Token,
    /// Every token minted with one API key, by key id.
    Key,
    /// Every token of a deleted client, by client id.
    Client,
    /// Every token of a user's clients issued under an older credential version, by
    /// `<user id>:<version>` (a disable).
    Owner,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Key => "key",
            Self::Client => "client",
            Self::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "token" => Some(Self::Token),
            "key" => Some(Self::Key),
            "client" => Some(Self::Client),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// One entry in the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub subject: String,
    pub created_at: OffsetDateTime,
    /// After this, no token it concerns can still be valid, so it can be forgotten.
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait RevocationStore: Send + Sync {
    async fn revoke(&self, revocation: &Revocation) -> Result<()>;
    /// Entries created after `since` that have not expired by `now`.
    async fn revocations_since(&self, since: OffsetDateTime, now: OffsetDateTime) -> Result<Vec<Revocation>>;
    /// The database's clock, then the entries it logged (by that clock) after `since`
    /// that have not expired by `now`. Pollers pass back the clock (less an overlap for
    /// transactions committed late) as their next `since`, so no instance's clock decides
    /// what is seen.
    async fn logged_since(
        &self,
        since: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(Vec<Revocation>, OffsetDateTime)>;
    async fn prune_revocations(&self, now: OffsetDateTime) -> Result<u64>;
}

/// Administrative operations on the database itself.
#[async_trait]
pub trait Database: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Answers whether the database takes a write right now.
    async fn ping(&self) -> Result<()>;
    /// The installation's secret under `name`: `candidate` if none was stored yet, else
    /// the one stored first (every instance ends up with the same).
    async fn install_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>>;
    async fn close(&self);
    /// Wakes `revocations` each time a revocation is logged by any connection, and calls
    /// `sessions` with the user whose sessions ended (`None`: possibly anyone's, after a
    /// lost connection) (Postgres `LISTEN`), until the connection fails; returns `Ok` at
    /// once where the database cannot tell (SQLite: one file, polled and cached briefly).
    async fn follow_changes(&self, revocations: Arc<tokio::sync::Notify>, sessions: SessionsEnded) -> Result<()>;
}

/// Called with the user whose sessions ended on another connection (`None`: anyone's).
pub type SessionsEnded = Arc<dyn Fn(Option<UserId>) + Send + Sync>;

/// Every store, behind trait objects so both backends plug in.
#[derive(Clone)]
pub struct Store {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub clients: Arc<dyn ClientStore>,
    pub signing_keys: Arc<dyn SigningKeyStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub authorizations: Arc<dyn AuthorizationStore>,
    pub database: Arc<dyn Database>,
    pub backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Longest wait for a pooled connection before answering "unavailable".
    pub acquire_timeout: Duration,
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_secs(3),
            max_connections: 10,
        }
    }
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. The connection is lazy for Postgres so a
    /// server can start, and report itself unready, while its database is down.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let store = Arc::new(SqliteStore::connect(url, options).await?);
            Ok(Self::from_parts(store, Backend::Sqlite))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let store = Arc::new(PostgresStore::connect(url, options)?);
            Ok(Self::from_parts(store, Backend::Postgres))
        } else {
            Err(StorageError::Other(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            )))
        }
    }

    fn from_parts<S>(store: Arc<S>, backend: Backend) -> Self
    where
        S: UserStore
            + SessionStore
            + ThrottleStore
            + ClientStore
            + SigningKeyStore
            + RevocationStore
            + AuthorizationStore
            + Database
            + 'static,
    {
        Self {
            users: store.clone(),
            sessions: store.clone(),
            throttle: store.clone(),
            clients: store.clone(),
            signing_keys: store.clone(),
            revocations: store.clone(),
            authorizations: store.clone(),
            database: store,
            backend,
        }
    }
}

/// Whether a database URL names a supported backend, for configuration checks.
pub fn is_supported_url(url: &str) -> bool {
    ["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|p| url.starts_with(p))
}

pub(crate) fn corrupt(what: &'static str) -> impl FnOnce(sesame_domain::EmailError) -> StorageError {
    move |_| StorageError::Corrupt(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_database_errors_are_unavailable() {
        for code in [
            "57P01", "53300", "08006", "55000", "28P01", "28000", "25006", "40001", "40P01", "57014",
        ] {
            assert!(is_unavailable_code(Some(code), Backend::Postgres), "{code}");
        }
        // A permission error is a misconfiguration, whatever its digits say to SQLite.
        for code in ["23505", "42P01", "42501"] {
            assert!(!is_unavailable_code(Some(code), Backend::Postgres), "{code}");
        }
        for code in ["5", "517", "8", "1032", "778", "13", "14"] {
            assert!(is_unavailable_code(Some(code), Backend::Sqlite), "{code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!is_unavailable_code(Some(code), Backend::Sqlite), "{code}");
        }
        assert!(!is_unavailable_code(None, Backend::Sqlite));
        assert!(!is_unavailable_code(None, Backend::Postgres));
    }
}
