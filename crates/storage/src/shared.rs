//! The store both backends are: every trait whose statements the dialects agree on is
//! implemented here once, over a [`Dialect`] that says how its database binds and reads
//! ids and times and how it does what the dialects disagree on.

use std::future::Future;

use async_trait::async_trait;
use sesame_domain::{
    ApiKeyHash, ApiKeyId, ClientId, ClientType, CodeChallenge, CodeHash, CsrfToken, Email, RedirectUri,
    RefreshTokenHash, Scopes, SessionHandleHash, SessionId, SessionOrigin, StaticClaims, ThrottleKey, User, UserId,
    parse_redirect_uris,
};
use sqlx::migrate::MigrateError;
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ApiKeyRecord, AuthorizationStore, AuthorizationSweep, Charge, ClientRecord, ClientStore, ClientWithKeys,
    CodeRecord, Database, DisabledUser, FamilyRecord, FoundRefresh, GrantChange, GrantOutcome, GrantRecord, GrantView,
    NewSession, OwnerState, RecentFailures, Redemption, RefreshRotation, Reservation, Result, Revocation,
    RevocationKind, RevocationStore, Rotation, SessionCutoffs, SessionRecord, SessionStore, SigningKeyRecord,
    SigningKeyStore, StorageError, ThrottleStore, UserRecord, UserStore, corrupt, sql,
};

/// A statement parameter. Each backend binds ids and times in its own column types
/// (`uuid`/`timestamptz` on Postgres, text/integer microseconds on SQLite).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Id(Uuid),
    Time(OffsetDateTime),
    Text(&'a str),
    OptionalText(Option<&'a str>),
    Bytes(&'a [u8]),
    Int(i64),
}

/// The [`Dialect`] readers that both drivers implement alike, with `err` translating
/// their errors: text, optional text, bytes and integers.
macro_rules! plain_columns {
    ($row:ty) => {
        fn text(row: &$row, column: &str) -> Result<String> {
            row.try_get(column).map_err(err)
        }

        fn optional_text(row: &$row, column: &str) -> Result<Option<String>> {
            row.try_get(column).map_err(err)
        }

        fn bytes(row: &$row, column: &str) -> Result<Vec<u8>> {
            row.try_get(column).map_err(err)
        }

        fn integer(row: &$row, column: &str) -> Result<i64> {
            row.try_get(column).map_err(err)
        }
    };
}
pub(crate) use plain_columns;

/// What a dialect's database call returns: a future of its result that any thread may
/// await (so the stores built on it stay `Send`).
pub trait Answer<T>: Future<Output = Result<T>> + Send {}

impl<T, F: Future<Output = Result<T>> + Send> Answer<T> for F {}

/// What a backend supplies for the shared statements to run on it. Implemented by
/// `sqlx::Postgres` and `sqlx::Sqlite`; `pub` only because the trait impls of the public
/// [`SqlStore`] are bounded by it (it cannot be named outside this crate).
pub trait Dialect: sqlx::Database {
    /// A write for readiness checks, so that a database that can only be read is not
    /// "ready". It stamps the database's own clock, which each dialect reads its own way.
    const PING: &'static str;

    /// The database's own clock, as one row with one column `now`, read like a stored
    /// time.
    const CLOCK: &'static str;

    /// Adds a signing key (`$1`–`$4`) with the next `seq` and `signs_from` the database's
    /// clock plus `$5` microseconds.
    const INSERT_SIGNING_KEY: &'static str;

    /// Sent in the transaction that logs a revocation, so that other instances learn of
    /// it when it commits (Postgres `NOTIFY`); none where the database cannot.
    const NOTIFY_REVOCATION: Option<&'static str> = None;

    /// Sent when a user's sessions end, with the user's id (`$1`), so that other
    /// instances forget them from their caches at once; none where the database cannot.
    const NOTIFY_SESSIONS: Option<&'static str> = None;

    /// Translates a driver error into the terms callers act on.
    fn error(error: sqlx::Error) -> StorageError;

    /// Wakes `revocations` each time a connection logs a revocation, and calls `sessions`
    /// with the user whose sessions ended (`None`: anyone's, after a lost connection),
    /// until the connection fails (`Err`); `Ok` at once where the database cannot tell.
    fn follow_changes(
        pool: &Pool<Self>,
        revocations: std::sync::Arc<tokio::sync::Notify>,
        sessions: crate::SessionsEnded,
    ) -> impl Answer<()> {
        let _ = (pool, revocations, sessions);
        async { Ok(()) }
    }

    /// Applies this backend's migrations (`migrations/postgres` or `migrations/sqlite`).
    fn run_migrations(pool: &Pool<Self>) -> impl Future<Output = Result<(), MigrateError>> + Send;

    /// Runs a statement; returns how many rows it changed.
    fn execute(conn: &mut Self::Connection, sql: &'static str, args: &[Arg<'_>]) -> impl Answer<u64>;
    fn fetch_optional(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Answer<Option<Self::Row>>;
    fn fetch_all(conn: &mut Self::Connection, sql: &'static str, args: &[Arg<'_>]) -> impl Answer<Vec<Self::Row>>;

    /// Reads an id; `stored_as` names the column in a [`StorageError::Corrupt`].
    fn uuid(row: &Self::Row, column: &str, stored_as: &'static str) -> Result<Uuid>;
    fn time(row: &Self::Row, column: &str, stored_as: &'static str) -> Result<OffsetDateTime>;
    fn optional_time(row: &Self::Row, column: &str, stored_as: &'static str) -> Result<Option<OffsetDateTime>>;
    fn text(row: &Self::Row, column: &str) -> Result<String>;
    fn optional_text(row: &Self::Row, column: &str) -> Result<Option<String>>;
    fn bytes(row: &Self::Row, column: &str) -> Result<Vec<u8>>;
    fn integer(row: &Self::Row, column: &str) -> Result<i64>;

    /// [`ThrottleStore::recent_failures`]: Postgres asks for all keys at once with an array.
    fn recent_failures(pool: &Pool<Self>, keys: &[ThrottleKey], since: OffsetDateTime) -> impl Answer<RecentFailures>;
    /// [`ThrottleStore::reserve`]: each backend takes its own lock.
    fn reserve(pool: &Pool<Self>, charges: &[Charge], attempt: Uuid, at: OffsetDateTime) -> impl Answer<Reservation>;
    /// [`ThrottleStore::record_failure`]: Postgres inserts all keys at once with `unnest`.
    fn record_failure(pool: &Pool<Self>, keys: &[ThrottleKey], at: OffsetDateTime) -> impl Answer<()>;
}

/// Users, sessions, login failures, clients, signing keys and revocations in one
/// database; see [`crate::PostgresStore`] and [`crate::SqliteStore`].
pub struct SqlStore<DB: sqlx::Database> {
    pub(crate) pool: Pool<DB>,
}

impl<DB: sqlx::Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("pool", &self.pool).finish()
    }
}

impl<DB: Dialect> SqlStore<DB> {
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    async fn conn(&self) -> Result<PoolConnection<DB>> {
        self.pool.acquire().await.map_err(DB::error)
    }

    async fn begin(&self) -> Result<Transaction<'static, DB>> {
        self.pool.begin().await.map_err(DB::error)
    }

    /// One statement (its own transaction), tried a second time after a serialization
    /// failure or a deadlock: both mean "try again", and the second try usually passes.
    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        match DB::execute(&mut *self.conn().await?, sql, args).await {
            Err(error) if error.is_retryable_conflict() => DB::execute(&mut *self.conn().await?, sql, args).await,
            outcome => outcome,
        }
    }

    async fn fetch_optional(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<DB::Row>> {
        match DB::fetch_optional(&mut *self.conn().await?, sql, args).await {
            Err(error) if error.is_retryable_conflict() => {
                DB::fetch_optional(&mut *self.conn().await?, sql, args).await
            }
            outcome => outcome,
        }
    }

    async fn fetch_all(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<DB::Row>> {
        match DB::fetch_all(&mut *self.conn().await?, sql, args).await {
            Err(error) if error.is_retryable_conflict() => DB::fetch_all(&mut *self.conn().await?, sql, args).await,
            outcome => outcome,
        }
    }

    /// Bumps the user's credential version, ends every session but `keep`, and moves
    /// `keep` to the new version: what was made from the credential as it was ends, even
    /// a session whose login is being verified right now.
    async fn end_sessions_but(conn: &mut DB::Connection, id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let bumped = DB::fetch_optional(conn, sql::BUMP_CREDENTIAL_VERSION, &[Arg::Id(id.0)]).await?;
        let ended = Self::delete_sessions_of(conn, id, keep).await?;
        if let (Some(row), Some(keep)) = (bumped, keep) {
            let version = DB::integer(&row, "credential_version")?;
            DB::execute(conn, sql::SET_SESSION_VERSION, &[Arg::Id(keep.0), Arg::Int(version)]).await?;
        }
        Ok(ended)
    }

    async fn delete_sessions_of(conn: &mut DB::Connection, id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let ended = match keep {
            Some(keep) => DB::execute(conn, sql::DELETE_USER_SESSIONS_BUT, &[Arg::Id(id.0), Arg::Id(keep.0)]).await?,
            None => DB::execute(conn, sql::DELETE_USER_SESSIONS, &[Arg::Id(id.0)]).await?,
        };
        Self::sessions_ended(conn, id).await?;
        Ok(ended)
    }

    /// Tells other instances that sessions of `user` ended (delivered on commit).
    async fn sessions_ended(conn: &mut DB::Connection, user: UserId) -> Result<()> {
        if let Some(notify) = DB::NOTIFY_SESSIONS {
            DB::execute(conn, notify, &[Arg::Text(&user.0.to_string())]).await?;
        }
        Ok(())
    }

    async fn insert_key(conn: &mut DB::Connection, key: &ApiKeyRecord) -> Result<()> {
        let args = [
            Arg::Id(key.id.0),
            Arg::Text(key.client_id.as_str()),
            Arg::Bytes(key.key_hash.as_bytes()),
            Arg::Time(key.created_at),
        ];
        DB::execute(conn, sql::INSERT_KEY, &args).await?;
        Ok(())
    }

    async fn insert_revocation(conn: &mut DB::Connection, revocation: &Revocation) -> Result<()> {
        let args = [
            Arg::Text(revocation.kind.as_str()),
            Arg::Text(&revocation.subject),
            Arg::Time(revocation.created_at),
            Arg::Time(revocation.expires_at),
        ];
        DB::execute(conn, sql::INSERT_REVOCATION, &args).await?;
        if let Some(notify) = DB::NOTIFY_REVOCATION {
            DB::execute(conn, notify, &[]).await?;
        }
        Ok(())
    }

    /// Pairs clients with their keys (given oldest first), keeping the clients' order.
    fn with_keys(clients: Vec<ClientRecord>, key_rows: &[DB::Row]) -> Result<Vec<ClientWithKeys>> {
        let keys = key_rows.iter().map(key_from_row::<DB>).collect::<Result<Vec<_>>>()?;
        Ok(clients
            .into_iter()
            .map(|client| {
                let keys = keys.iter().filter(|k| k.client_id == client.id).cloned().collect();
                ClientWithKeys { client, keys }
            })
            .collect())
    }
}

/// The counting and charging half of [`ThrottleStore::reserve`], on a connection that
/// already holds the backend's lock on every key.
pub(crate) async fn count_and_charge<DB: Dialect>(
    conn: &mut DB::Connection,
    charges: &[Charge],
    attempt: Uuid,
    at: OffsetDateTime,
) -> Result<Reservation> {
    let mut counts = Vec::with_capacity(charges.len());
    for charge in charges {
        let row = DB::fetch_optional(
            conn,
            sql::COUNT_FAILURES,
            &[Arg::Text(charge.key.as_str()), Arg::Time(charge.since)],
        )
        .await?;
        let n = row.map(|row| DB::integer(&row, "n")).transpose()?.unwrap_or(0);
        counts.push(u64::try_from(n).unwrap_or(0));
    }
    let charged = charges
        .iter()
        .zip(&counts)
        .all(|(charge, n)| *n < u64::from(charge.limit));
    if charged {
        for charge in charges {
            DB::execute(
                conn,
                sql::INSERT_RESERVATION,
                &[Arg::Text(charge.key.as_str()), Arg::Time(at), Arg::Id(attempt)],
            )
            .await?;
        }
    }
    Ok(Reservation { charged, counts })
}

fn revocation_from_row<DB: Dialect>(row: &DB::Row) -> Result<Revocation> {
    let kind = DB::text(row, "kind")?;
    Ok(Revocation {
        kind: RevocationKind::parse(&kind).ok_or(StorageError::Corrupt("revocations.kind"))?,
        subject: DB::text(row, "subject")?,
        created_at: DB::time(row, "created_at", "revocations.created_at")?,
        expires_at: DB::time(row, "expires_at", "revocations.expires_at")?,
    })
}

fn user_from_row<DB: Dialect>(row: &DB::Row) -> Result<UserRecord> {
    let email = DB::text(row, "email")?;
    Ok(UserRecord {
        user: User {
            id: UserId(DB::uuid(row, "id", "users.id")?),
            email: Email::parse(&email).map_err(corrupt("users.email"))?,
            created_at: DB::time(row, "created_at", "users.created_at")?,
        },
        password_hash: DB::text(row, "password_hash")?,
        disabled_at: DB::optional_time(row, "disabled_at", "users.disabled_at")?,
        credential_version: DB::integer(row, "credential_version")?,
        granted_scopes: scopes_of::<DB>(row, "granted_scopes", "users.granted_scopes")?,
        token_version: DB::integer(row, "token_version")?,
    })
}

fn scopes_of<DB: Dialect>(row: &DB::Row, column: &str, what: &'static str) -> Result<Scopes> {
    Scopes::parse_space_separated(&DB::text(row, column)?).map_err(|_| StorageError::Corrupt(what))
}

fn session_from_row<DB: Dialect>(row: &DB::Row) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(DB::uuid(row, "s_id", "sessions.id")?),
        user_id: UserId(DB::uuid(row, "user_id", "sessions.user_id")?),
        csrf_token: CsrfToken::from_stored(DB::text(row, "csrf_token")?),
        created_at: DB::time(row, "s_created_at", "sessions.created_at")?,
        last_seen_at: DB::time(row, "last_seen_at", "sessions.last_seen_at")?,
        origin: SessionOrigin {
            user_agent: DB::optional_text(row, "user_agent")?,
            ip: DB::optional_text(row, "ip")?,
        },
        credential_version: DB::integer(row, "s_credential_version")?,
        frontend: DB::optional_text(row, "frontend")?,
    })
}

fn client_from_row<DB: Dialect>(row: &DB::Row) -> Result<ClientRecord> {
    let id = DB::text(row, "c_id")?;
    Ok(ClientRecord {
        id: ClientId::parse(&id).ok_or(StorageError::Corrupt("clients.id"))?,
        owner_id: UserId(DB::uuid(row, "owner_id", "clients.owner_id")?),
        name: DB::text(row, "name")?,
        scopes: scopes_of::<DB>(row, "scopes", "clients.scopes")?,
        created_at: DB::time(row, "c_created_at", "clients.created_at")?,
        claims: StaticClaims::parse(&DB::text(row, "claims")?).map_err(|_| StorageError::Corrupt("clients.claims"))?,
        client_type: ClientType::parse(&DB::text(row, "client_type")?)
            .ok_or(StorageError::Corrupt("clients.client_type"))?,
        redirect_uris: parse_redirect_uris(DB::text(row, "redirect_uris")?.split(' ').filter(|u| !u.is_empty()))
            .map_err(|_| StorageError::Corrupt("clients.redirect_uris"))?,
    })
}

fn key_from_row<DB: Dialect>(row: &DB::Row) -> Result<ApiKeyRecord> {
    let client_id = DB::text(row, "client_id")?;
    let hash = DB::bytes(row, "key_hash")?;
    Ok(ApiKeyRecord {
        id: ApiKeyId(DB::uuid(row, "k_id", "api_keys.id")?),
        client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("api_keys.client_id"))?,
        key_hash: ApiKeyHash::from_bytes(
            hash.try_into()
                .map_err(|_| StorageError::Corrupt("api_keys.key_hash"))?,
        ),
        created_at: DB::time(row, "k_created_at", "api_keys.created_at")?,
        last_used_at: DB::optional_time(row, "last_used_at", "api_keys.last_used_at")?,
        revoked_at: DB::optional_time(row, "revoked_at", "api_keys.revoked_at")?,
    })
}

#[async_trait]
impl<DB: Dialect> Database for SqlStore<DB> {
    async fn migrate(&self) -> Result<()> {
        DB::run_migrations(&self.pool).await.map_err(|e| match e {
            MigrateError::Execute(inner) => DB::error(inner),
            other => StorageError::Migration(other),
        })
    }

    async fn ping(&self) -> Result<()> {
        self.execute(DB::PING, &[]).await?;
        Ok(())
    }

    async fn install_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        let mut conn = self.conn().await?;
        DB::execute(
            &mut conn,
            sql::INSERT_INSTALL_SECRET,
            &[Arg::Text(name), Arg::Bytes(candidate)],
        )
        .await?;
        let row = DB::fetch_optional(&mut conn, sql::INSTALL_SECRET, &[Arg::Text(name)]).await?;
        let row = row.ok_or(StorageError::Corrupt("install_secrets"))?;
        DB::bytes(&row, "value")
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn follow_changes(
        &self,
        revocations: std::sync::Arc<tokio::sync::Notify>,
        sessions: crate::SessionsEnded,
    ) -> Result<()> {
        DB::follow_changes(&self.pool, revocations, sessions).await
    }
}

#[async_trait]
impl<DB: Dialect> UserStore for SqlStore<DB> {
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()> {
        let args = [
            Arg::Id(user.id.0),
            Arg::Text(user.email.as_str()),
            Arg::Text(password_hash),
            Arg::Time(user.created_at),
        ];
        self.execute(sql::INSERT_USER, &args).await?;
        Ok(())
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        let row = self
            .fetch_optional(sql::USER_BY_EMAIL, &[Arg::Text(email.as_str())])
            .await?;
        row.as_ref().map(user_from_row::<DB>).transpose()
    }

    async fn find_user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = self.fetch_optional(sql::USER_BY_ID, &[Arg::Id(id.0)]).await?;
        row.as_ref().map(user_from_row::<DB>).transpose()
    }

    async fn update_password_hash(&self, id: UserId, password_hash: &str, replacing: &str) -> Result<bool> {
        let changed = self
            .execute(
                sql::REHASH_PASSWORD,
                &[Arg::Id(id.0), Arg::Text(password_hash), Arg::Text(replacing)],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn change_password(
        &self,
        id: UserId,
        password_hash: &str,
        keep: SessionId,
        revocation: Revocation,
    ) -> Result<Vec<Revocation>> {
        let mut tx = self.begin().await?;
        DB::execute(
            &mut tx,
            sql::UPDATE_PASSWORD_HASH,
            &[Arg::Id(id.0), Arg::Text(password_hash)],
        )
        .await?;
        Self::end_sessions_but(&mut tx, id, Some(keep)).await?;
        DB::execute(&mut tx, sql::END_USER_FAMILIES, &[Arg::Id(id.0)]).await?;
        let bumped = DB::fetch_all(&mut tx, sql::BUMP_USER_GRANTS, &[Arg::Id(id.0)]).await?;
        let mut logged = Vec::with_capacity(bumped.len());
        for row in &bumped {
            let entry = Revocation {
                kind: RevocationKind::Owner,
                subject: format!(
                    "{}/{}:{}",
                    id.0,
                    DB::text(row, "client_id")?,
                    DB::integer(row, "version")?
                ),
                ..revocation.clone()
            };
            Self::insert_revocation(&mut tx, &entry).await?;
            logged.push(entry);
        }
        tx.commit().await.map_err(DB::error)?;
        Ok(logged)
    }

    async fn disable_user(&self, email: &Email, revocation: Revocation) -> Result<Option<DisabledUser>> {
        let mut tx = self.begin().await?;
        let args = [Arg::Text(email.as_str()), Arg::Time(revocation.created_at)];
        let row = DB::fetch_optional(&mut tx, sql::DISABLE_USER, &args).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id = UserId(DB::uuid(&row, "id", "users.id")?);
        let version = DB::integer(&row, "token_version")?;
        Self::delete_sessions_of(&mut tx, id, None).await?;
        DB::execute(&mut tx, sql::END_USER_GRANTS, &[Arg::Id(id.0)]).await?;
        DB::execute(&mut tx, sql::END_USER_FAMILIES, &[Arg::Id(id.0)]).await?;
        let revocation = Revocation {
            kind: RevocationKind::Owner,
            subject: format!("{}:{version}", id.0),
            ..revocation
        };
        Self::insert_revocation(&mut tx, &revocation).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(Some(DisabledUser { id, revocation }))
    }

    async fn change_granted_scopes(&self, change: &GrantChange<'_>) -> Result<GrantOutcome> {
        let mut tx = self.begin().await?;
        let (from, to) = (change.from.to_text(), change.to.to_text());
        let args = [
            Arg::Id(change.user.0),
            Arg::Text(&from),
            Arg::Text(&to),
            Arg::Int(i64::from(change.revoke.is_some())),
        ];
        let Some(row) = DB::fetch_optional(&mut tx, sql::SET_GRANTED_SCOPES, &args).await? else {
            return Ok(GrantOutcome::Stale);
        };
        let revocation = match &change.revoke {
            None => None,
            Some(template) => {
                let version = DB::integer(&row, "token_version")?;
                let revocation = Revocation {
                    kind: RevocationKind::Owner,
                    subject: format!("{}:{version}", change.user.0),
                    ..template.clone()
                };
                Self::insert_revocation(&mut tx, &revocation).await?;
                Some(revocation)
            }
        };
        tx.commit().await.map_err(DB::error)?;
        Ok(GrantOutcome::Changed { revocation })
    }

    async fn enable_user(&self, email: &Email) -> Result<Option<UserId>> {
        let row = self
            .fetch_optional(sql::ENABLE_USER, &[Arg::Text(email.as_str())])
            .await?;
        row.map(|row| Ok(UserId(DB::uuid(&row, "id", "users.id")?))).transpose()
    }
}

#[async_trait]
impl<DB: Dialect> SessionStore for SqlStore<DB> {
    async fn create_session(&self, session: &NewSession) -> Result<bool> {
        let args = [
            Arg::Id(session.id.0),
            Arg::Id(session.user_id.0),
            Arg::Bytes(session.handle_hash.as_bytes()),
            Arg::Text(session.csrf_token.expose()),
            Arg::Time(session.created_at),
            Arg::OptionalText(session.origin.user_agent.as_deref()),
            Arg::OptionalText(session.origin.ip.as_deref()),
            Arg::Int(session.credential_version),
            Arg::OptionalText(session.frontend.as_deref()),
        ];
        Ok(self.execute(sql::INSERT_SESSION, &args).await? > 0)
    }

    async fn find_session(&self, handle_hash: &SessionHandleHash) -> Result<Option<(SessionRecord, UserRecord)>> {
        let row = self
            .fetch_optional(sql::SESSION_BY_HASH, &[Arg::Bytes(handle_hash.as_bytes())])
            .await?;
        row.map(|row| Ok((session_from_row::<DB>(&row)?, user_from_row::<DB>(&row)?)))
            .transpose()
    }

    async fn touch_session(&self, id: SessionId, at: OffsetDateTime) -> Result<()> {
        self.execute(sql::TOUCH_SESSION, &[Arg::Id(id.0), Arg::Time(at)])
            .await?;
        Ok(())
    }

    async fn delete_session_by_hash(&self, handle_hash: &SessionHandleHash) -> Result<bool> {
        let mut conn = self.conn().await?;
        let row = DB::fetch_optional(
            &mut conn,
            sql::DELETE_SESSION_BY_HASH,
            &[Arg::Bytes(handle_hash.as_bytes())],
        )
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let user = UserId(DB::uuid(&row, "user_id", "sessions.user_id")?);
        Self::sessions_ended(&mut conn, user).await?;
        Ok(true)
    }

    async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> Result<bool> {
        let mut conn = self.conn().await?;
        let deleted = DB::execute(
            &mut conn,
            sql::DELETE_USER_SESSION,
            &[Arg::Id(user_id.0), Arg::Id(id.0)],
        )
        .await?;
        if deleted > 0 {
            Self::sessions_ended(&mut conn, user_id).await?;
        }
        Ok(deleted > 0)
    }

    async fn delete_user_sessions(&self, user_id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let ended = Self::end_sessions_but(&mut tx, user_id, keep).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(ended)
    }

    async fn list_user_sessions(&self, user_id: UserId, cutoffs: SessionCutoffs) -> Result<Vec<SessionRecord>> {
        let args = [Arg::Id(user_id.0), Arg::Time(cutoffs.seen), Arg::Time(cutoffs.created)];
        let rows = self.fetch_all(sql::LIST_USER_SESSIONS, &args).await?;
        rows.iter().map(session_from_row::<DB>).collect()
    }

    async fn delete_expired_sessions(&self, cutoffs: SessionCutoffs) -> Result<u64> {
        let args = [Arg::Time(cutoffs.seen), Arg::Time(cutoffs.created)];
        self.execute(sql::DELETE_EXPIRED_SESSIONS, &args).await
    }
}

#[async_trait]
impl<DB: Dialect> ThrottleStore for SqlStore<DB> {
    async fn recent_failures(&self, keys: &[ThrottleKey], since: OffsetDateTime) -> Result<RecentFailures> {
        DB::recent_failures(&self.pool, keys, since).await
    }

    async fn record_failure(&self, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        DB::record_failure(&self.pool, keys, at).await
    }

    async fn reserve(&self, charges: &[Charge], attempt: Uuid, at: OffsetDateTime) -> Result<Reservation> {
        DB::reserve(&self.pool, charges, attempt, at).await
    }

    async fn release(&self, attempt: Uuid) -> Result<()> {
        self.execute(sql::RELEASE_ATTEMPT, &[Arg::Id(attempt)]).await?;
        Ok(())
    }

    async fn settle(&self, attempt: Uuid) -> Result<()> {
        self.execute(sql::SETTLE_ATTEMPT, &[Arg::Id(attempt)]).await?;
        Ok(())
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<()> {
        self.execute(sql::CLEAR_FAILURES, &[Arg::Text(key.as_str())]).await?;
        Ok(())
    }

    async fn prune_failures(&self, before: OffsetDateTime) -> Result<u64> {
        self.execute(sql::PRUNE_FAILURES, &[Arg::Time(before)]).await
    }
}

#[async_trait]
impl<DB: Dialect> ClientStore for SqlStore<DB> {
    async fn create_client(&self, client: &ClientRecord, first_key: Option<&ApiKeyRecord>) -> Result<()> {
        let scopes = client.scopes.to_text();
        let claims = client.claims.to_json();
        let redirect_uris = client
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let args = [
            Arg::Text(client.id.as_str()),
            Arg::Id(client.owner_id.0),
            Arg::Text(&client.name),
            Arg::Text(&scopes),
            Arg::Time(client.created_at),
            Arg::Text(&claims),
            Arg::Text(client.client_type.as_str()),
            Arg::Text(&redirect_uris),
        ];
        let mut tx = self.begin().await?;
        DB::execute(&mut tx, sql::INSERT_CLIENT, &args).await?;
        if let Some(first_key) = first_key {
            Self::insert_key(&mut tx, first_key).await?;
        }
        tx.commit().await.map_err(DB::error)
    }

    async fn list_clients(&self, owner: UserId) -> Result<Vec<ClientWithKeys>> {
        let rows = self.fetch_all(sql::LIST_CLIENTS, &[Arg::Id(owner.0)]).await?;
        let clients = rows.iter().map(client_from_row::<DB>).collect::<Result<Vec<_>>>()?;
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let key_rows = self.fetch_all(sql::KEYS_OF_OWNER, &[Arg::Id(owner.0)]).await?;
        Self::with_keys(clients, &key_rows)
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<ClientWithKeys>> {
        let row = self
            .fetch_optional(sql::CLIENT_BY_ID, &[Arg::Text(id.as_str())])
            .await?;
        let Some(client) = row.as_ref().map(client_from_row::<DB>).transpose()? else {
            return Ok(None);
        };
        let key_rows = self.fetch_all(sql::KEYS_OF_CLIENT, &[Arg::Text(id.as_str())]).await?;
        Ok(Self::with_keys(vec![client], &key_rows)?.pop())
    }

    async fn delete_client(&self, owner: UserId, id: &ClientId, revocation: &Revocation) -> Result<bool> {
        let mut tx = self.begin().await?;
        let deleted = DB::execute(&mut tx, sql::DELETE_CLIENT, &[Arg::Text(id.as_str()), Arg::Id(owner.0)]).await?;
        if deleted == 0 {
            return Ok(false);
        }
        Self::insert_revocation(&mut tx, revocation).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(true)
    }

    async fn add_key(&self, key: &ApiKeyRecord) -> Result<()> {
        Self::insert_key(&mut *self.conn().await?, key).await
    }

    async fn revoke_key(&self, client: &ClientId, key: ApiKeyId, revocation: &Revocation) -> Result<bool> {
        let args = [
            Arg::Id(key.0),
            Arg::Text(client.as_str()),
            Arg::Time(revocation.created_at),
        ];
        let mut tx = self.begin().await?;
        if DB::execute(&mut tx, sql::REVOKE_KEY, &args).await? == 0 {
            return Ok(false);
        }
        Self::insert_revocation(&mut tx, revocation).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(true)
    }

    async fn find_key(&self, id: ApiKeyId) -> Result<Option<(ApiKeyRecord, ClientRecord, OwnerState)>> {
        let row = self.fetch_optional(sql::KEY_BY_ID, &[Arg::Id(id.0)]).await?;
        row.map(|row| {
            let owner = OwnerState {
                disabled: DB::optional_time(&row, "owner_disabled_at", "users.disabled_at")?.is_some(),
                token_version: DB::integer(&row, "owner_version")?,
                granted_scopes: scopes_of::<DB>(&row, "owner_granted", "users.granted_scopes")?,
            };
            Ok((key_from_row::<DB>(&row)?, client_from_row::<DB>(&row)?, owner))
        })
        .transpose()
    }

    async fn list_all_clients(&self) -> Result<Vec<ClientWithKeys>> {
        let rows = self.fetch_all(sql::LIST_ALL_CLIENTS, &[]).await?;
        let clients = rows.iter().map(client_from_row::<DB>).collect::<Result<Vec<_>>>()?;
        let key_rows = self.fetch_all(sql::ALL_KEYS, &[]).await?;
        Self::with_keys(clients, &key_rows)
    }

    async fn set_client_claims(&self, id: &ClientId, from: &StaticClaims, to: &StaticClaims) -> Result<bool> {
        let (from, to) = (from.to_json(), to.to_json());
        let args = [Arg::Text(id.as_str()), Arg::Text(&from), Arg::Text(&to)];
        Ok(self.execute(sql::SET_CLIENT_CLAIMS, &args).await? == 1)
    }

    async fn touch_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<()> {
        self.execute(sql::TOUCH_KEY, &[Arg::Id(id.0), Arg::Time(at)]).await?;
        Ok(())
    }
}

#[async_trait]
impl<DB: Dialect> SigningKeyStore for SqlStore<DB> {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = self.fetch_all(sql::SIGNING_KEYS, &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: DB::text(row, "kid")?,
                    alg: DB::text(row, "alg")?,
                    private_der: DB::bytes(row, "private_der")?,
                    created_at: DB::time(row, "created_at", "signing_keys.created_at")?,
                    signs_from: DB::optional_time(row, "signs_from", "signing_keys.signs_from")?,
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord, publish_for: std::time::Duration) -> Result<()> {
        let args = [
            Arg::Text(&key.kid),
            Arg::Text(&key.alg),
            Arg::Bytes(&key.private_der),
            Arg::Time(key.created_at),
            Arg::Int(i64::try_from(publish_for.as_micros()).unwrap_or(i64::MAX)),
        ];
        self.execute(DB::INSERT_SIGNING_KEY, &args).await?;
        Ok(())
    }

    async fn replace_signing_key(&self, kid: &str, private_der: &[u8]) -> Result<bool> {
        let changed = self
            .execute(sql::REPLACE_SIGNING_KEY, &[Arg::Text(kid), Arg::Bytes(private_der)])
            .await?;
        Ok(changed > 0)
    }
}

/// A space-separated list, as stored.
fn words(text: &str) -> Vec<String> {
    text.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn code_from_row<DB: Dialect>(row: &DB::Row) -> Result<CodeRecord> {
    let hash: [u8; 32] = DB::bytes(row, "code_hash")?
        .try_into()
        .map_err(|_| StorageError::Corrupt("authorization_codes.code_hash"))?;
    let client_id = DB::text(row, "client_id")?;
    Ok(CodeRecord {
        hash: CodeHash::from_bytes(hash),
        client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("authorization_codes.client_id"))?,
        user_id: UserId(DB::uuid(row, "user_id", "authorization_codes.user_id")?),
        redirect_uri: DB::text(row, "redirect_uri")?,
        challenge: CodeChallenge::from_stored(DB::text(row, "code_challenge")?),
        scopes: scopes_of::<DB>(row, "scopes", "authorization_codes.scopes")?,
        resources: words(&DB::text(row, "resources")?),
        auth_time: DB::time(row, "auth_time", "authorization_codes.auth_time")?,
        created_at: DB::time(row, "created_at", "authorization_codes.created_at")?,
        expires_at: DB::time(row, "expires_at", "authorization_codes.expires_at")?,
        grant_version: DB::integer(row, "grant_version")?,
    })
}

impl<DB: Dialect> SqlStore<DB> {
    /// A user's grant to a client, live or ended.
    async fn any_grant(&self, user: UserId, client: &ClientId) -> Result<Option<GrantRecord>> {
        let row = self
            .fetch_optional(sql::GRANT_SCOPES, &[Arg::Id(user.0), Arg::Text(client.as_str())])
            .await?;
        row.map(|row| {
            Ok(GrantRecord {
                scopes: scopes_of::<DB>(&row, "scopes", "grants.scopes")?,
                version: DB::integer(&row, "version")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl<DB: Dialect> AuthorizationStore for SqlStore<DB> {
    async fn insert_code(&self, code: &CodeRecord) -> Result<()> {
        let (scopes, resources) = (code.scopes.to_text(), code.resources.join(" "));
        let args = [
            Arg::Bytes(code.hash.as_bytes()),
            Arg::Text(code.client_id.as_str()),
            Arg::Id(code.user_id.0),
            Arg::Text(&code.redirect_uri),
            Arg::Text(code.challenge.as_str()),
            Arg::Text(&scopes),
            Arg::Text(&resources),
            Arg::Time(code.auth_time),
            Arg::Time(code.created_at),
            Arg::Time(code.expires_at),
            Arg::Int(code.grant_version),
        ];
        self.execute(sql::INSERT_CODE, &args).await?;
        Ok(())
    }

    async fn redeem_code(&self, hash: &CodeHash, at: OffsetDateTime) -> Result<Redemption> {
        let key = Arg::Bytes(hash.as_bytes());
        if let Some(row) = self.fetch_optional(sql::REDEEM_CODE, &[key, Arg::Time(at)]).await? {
            return Ok(Redemption::Redeemed(code_from_row::<DB>(&row)?));
        }
        match self
            .fetch_optional(sql::CODE_BY_HASH, &[Arg::Bytes(hash.as_bytes())])
            .await?
        {
            Some(row) => Ok(Redemption::Replayed {
                record: code_from_row::<DB>(&row)?,
                issued_jti: DB::optional_text(&row, "issued_jti")?,
                family: DB::optional_text(&row, "family_id")?
                    .map(|id| Uuid::parse_str(&id).map_err(|_| StorageError::Corrupt("authorization_codes.family_id")))
                    .transpose()?,
            }),
            None => Ok(Redemption::Unknown),
        }
    }

    async fn start_family(
        &self,
        code: &CodeHash,
        jti: &str,
        family: &FamilyRecord,
        first: &RefreshTokenHash,
    ) -> Result<()> {
        let (scopes, resources) = (family.scopes.to_text(), family.resources.join(" "));
        let mut tx = self.begin().await?;
        let args = [
            Arg::Id(family.id),
            Arg::Text(family.client_id.as_str()),
            Arg::Id(family.user_id.0),
            Arg::Time(family.auth_time),
            Arg::Int(family.grant_version),
            Arg::Time(family.created_at),
            Arg::Time(family.last_used_at),
            Arg::Text(&scopes),
            Arg::Text(&resources),
        ];
        DB::execute(&mut tx, sql::INSERT_FAMILY, &args).await?;
        let args = [
            Arg::Bytes(first.as_bytes()),
            Arg::Id(family.id),
            Arg::Time(family.last_used_at),
        ];
        DB::execute(&mut tx, sql::INSERT_REFRESH, &args).await?;
        let args = [Arg::Bytes(code.as_bytes()), Arg::Text(jti), Arg::Id(family.id)];
        DB::execute(&mut tx, sql::SET_CODE_ISSUED, &args).await?;
        tx.commit().await.map_err(DB::error)
    }

    async fn delete_expired_codes(&self, before: OffsetDateTime) -> Result<u64> {
        self.execute(sql::DELETE_EXPIRED_CODES, &[Arg::Time(before)]).await
    }

    async fn grant(&self, user: UserId, client: &ClientId) -> Result<Option<GrantRecord>> {
        Ok(self.any_grant(user, client).await?.filter(|g| !g.scopes.is_empty()))
    }

    async fn widen_grant(
        &self,
        user: UserId,
        client: &ClientId,
        scopes: &Scopes,
        at: OffsetDateTime,
    ) -> Result<GrantRecord> {
        for _ in 0..16 {
            let Some(current) = self.any_grant(user, client).await? else {
                let text = scopes.to_text();
                let args = [
                    Arg::Id(user.0),
                    Arg::Text(client.as_str()),
                    Arg::Text(&text),
                    Arg::Time(at),
                ];
                if self.execute(sql::INSERT_GRANT, &args).await? == 1 {
                    return Ok(GrantRecord {
                        scopes: scopes.clone(),
                        version: 0,
                    });
                }
                continue;
            };
            let widened = Scopes::from_scopes(current.scopes.iter().chain(scopes.iter()).cloned());
            let (from, to) = (current.scopes.to_text(), widened.to_text());
            let args = [
                Arg::Id(user.0),
                Arg::Text(client.as_str()),
                Arg::Text(&from),
                Arg::Text(&to),
                Arg::Time(at),
            ];
            if let Some(row) = self.fetch_optional(sql::WIDEN_GRANT, &args).await? {
                return Ok(GrantRecord {
                    scopes: widened,
                    version: DB::integer(&row, "version")?,
                });
            }
        }
        Err(StorageError::Contended("grants"))
    }

    async fn list_grants(&self, user: UserId) -> Result<Vec<GrantView>> {
        let rows = self.fetch_all(sql::LIST_GRANTS, &[Arg::Id(user.0)]).await?;
        rows.iter()
            .map(|row| {
                let client_id = DB::text(row, "client_id")?;
                Ok(GrantView {
                    client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("grants.client_id"))?,
                    client_name: DB::text(row, "name")?,
                    scopes: scopes_of::<DB>(row, "scopes", "grants.scopes")?,
                    created_at: DB::time(row, "created_at", "grants.created_at")?,
                    last_used_at: DB::optional_time(row, "last_used_at", "grants.last_used_at")?,
                })
            })
            .collect()
    }

    async fn end_grant(&self, user: UserId, client: &ClientId, revocation: Revocation) -> Result<Option<Revocation>> {
        let mut tx = self.begin().await?;
        let args = [Arg::Id(user.0), Arg::Text(client.as_str())];
        let Some(row) = DB::fetch_optional(&mut tx, sql::END_GRANT, &args).await? else {
            return Ok(None);
        };
        let version = DB::integer(&row, "version")?;
        DB::execute(&mut tx, sql::END_GRANT_FAMILIES, &args).await?;
        let revocation = Revocation {
            kind: RevocationKind::Owner,
            subject: format!("{}/{}:{version}", user.0, client.as_str()),
            ..revocation
        };
        Self::insert_revocation(&mut tx, &revocation).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(Some(revocation))
    }

    async fn find_refresh(&self, hash: &RefreshTokenHash) -> Result<Option<FoundRefresh>> {
        let row = self
            .fetch_optional(sql::FIND_REFRESH, &[Arg::Bytes(hash.as_bytes())])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let client_id = DB::text(&row, "client_id")?;
        let family = FamilyRecord {
            id: DB::uuid(&row, "id", "refresh_families.id")?,
            client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("refresh_families.client_id"))?,
            user_id: UserId(DB::uuid(&row, "user_id", "refresh_families.user_id")?),
            scopes: scopes_of::<DB>(&row, "scopes", "refresh_families.scopes")?,
            resources: words(&DB::text(&row, "resources")?),
            auth_time: DB::time(&row, "auth_time", "refresh_families.auth_time")?,
            grant_version: DB::integer(&row, "grant_version")?,
            created_at: DB::time(&row, "created_at", "refresh_families.created_at")?,
            last_used_at: DB::time(&row, "last_used_at", "refresh_families.last_used_at")?,
        };
        Ok(Some(FoundRefresh {
            family,
            grant_live: DB::integer(&row, "grant_live")? == 1,
            spent_at: DB::optional_time(&row, "spent_at", "refresh_tokens.spent_at")?,
        }))
    }

    async fn rotate_refresh(&self, rotation: &RefreshRotation<'_>) -> Result<Rotation> {
        let RefreshRotation {
            hash,
            family,
            next,
            at,
            grace_since,
        } = *rotation;
        let mut tx = self.begin().await?;
        let key = Arg::Bytes(hash.as_bytes());
        if DB::execute(&mut tx, sql::SPEND_REFRESH, &[key, Arg::Time(at)]).await? == 0 {
            let row = DB::fetch_optional(&mut tx, sql::REFRESH_SPENT_AT, &[Arg::Bytes(hash.as_bytes())]).await?;
            let spent = row
                .map(|row| DB::optional_time(&row, "spent_at", "refresh_tokens.spent_at"))
                .transpose()?
                .flatten();
            if spent.is_none_or(|spent| spent < grace_since) {
                return Ok(Rotation::SpentBefore(spent));
            }
        }
        // Locks the family's row: one being ended waits for this, or this for it.
        if DB::execute(&mut tx, sql::TOUCH_FAMILY, &[Arg::Id(family), Arg::Time(at)]).await? == 0 {
            return Ok(Rotation::Ended);
        }
        let args = [Arg::Bytes(next.as_bytes()), Arg::Id(family), Arg::Time(at)];
        DB::execute(&mut tx, sql::INSERT_REFRESH, &args).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(Rotation::Rotated)
    }

    async fn end_family(&self, family: Uuid, revocation: Revocation) -> Result<Option<Revocation>> {
        let mut tx = self.begin().await?;
        if DB::execute(&mut tx, sql::END_FAMILY, &[Arg::Id(family)]).await? == 0 {
            return Ok(None);
        }
        let revocation = Revocation {
            kind: RevocationKind::Token,
            subject: family.to_string(),
            ..revocation
        };
        Self::insert_revocation(&mut tx, &revocation).await?;
        tx.commit().await.map_err(DB::error)?;
        Ok(Some(revocation))
    }

    async fn sweep_authorizations(&self, sweep: &AuthorizationSweep) -> Result<u64> {
        let stale = [Arg::Time(sweep.idle_before), Arg::Time(sweep.created_before)];
        let families = self.execute(sql::DELETE_STALE_FAMILIES, &stale).await?;
        let expired = [Arg::Time(sweep.codes_before)];
        let codes = self.execute(sql::DELETE_EXPIRED_CODES, &expired).await?;
        Ok(families + codes)
    }
}

#[async_trait]
impl<DB: Dialect> RevocationStore for SqlStore<DB> {
    async fn revoke(&self, revocation: &Revocation) -> Result<()> {
        Self::insert_revocation(&mut *self.conn().await?, revocation).await
    }

    async fn revocations_since(&self, since: OffsetDateTime, now: OffsetDateTime) -> Result<Vec<Revocation>> {
        let rows = self
            .fetch_all(sql::REVOCATIONS_SINCE, &[Arg::Time(since), Arg::Time(now)])
            .await?;
        rows.iter().map(revocation_from_row::<DB>).collect()
    }

    async fn logged_since(
        &self,
        since: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(Vec<Revocation>, OffsetDateTime)> {
        let mut conn = self.conn().await?;
        let clock = DB::fetch_optional(&mut conn, DB::CLOCK, &[]).await?;
        let clock = clock
            .map(|row| DB::time(&row, "now", "the database clock"))
            .transpose()?
            .ok_or(StorageError::Corrupt("the database clock"))?;
        let since = since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let rows = DB::fetch_all(
            &mut conn,
            sql::REVOCATIONS_LOGGED_SINCE,
            &[Arg::Time(since), Arg::Time(now)],
        )
        .await?;
        let entries = rows.iter().map(revocation_from_row::<DB>).collect::<Result<_>>()?;
        Ok((entries, clock))
    }

    async fn prune_revocations(&self, now: OffsetDateTime) -> Result<u64> {
        self.execute(sql::PRUNE_REVOCATIONS, &[Arg::Time(now)]).await
    }
}
