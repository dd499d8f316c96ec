//! The SQLite backend: one file, no setup; the default for a single instance.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sesame_domain::{
    ApiKeyHash, ApiKeyId, ClientId, CsrfToken, Email, Scopes, SessionHandleHash, SessionId, ThrottleKey, User, UserId,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ApiKeyRecord, ClientRecord, ClientStore, ClientWithKeys, ConnectOptions, Database, NewSession, Result, Revocation,
    RevocationKind, RevocationStore, SessionRecord, SessionStore, SigningKeyRecord, SigningKeyStore, StorageError,
    ThrottleStore, UserRecord, UserStore, classify, corrupt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Users, sessions and login failures in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn err(e: sqlx::Error) -> StorageError {
    classify(e)
}

/// Timestamps are stored as integer microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(value: i64, column: &'static str) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000).map_err(|_| StorageError::Corrupt(column))
}

fn uuid(text: &str, column: &'static str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| StorageError::Corrupt(column))
}

macro_rules! user_columns {
    () => {
        "u.id, u.email, u.password_hash, u.created_at, u.disabled_at"
    };
}
macro_rules! session_columns {
    () => {
        "s.id AS s_id, s.user_id, s.csrf_token, s.created_at AS s_created_at, s.last_seen_at, s.user_agent, s.ip"
    };
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord> {
    let id: String = row.try_get("id").map_err(err)?;
    let email: String = row.try_get("email").map_err(err)?;
    let disabled_at: Option<i64> = row.try_get("disabled_at").map_err(err)?;
    Ok(UserRecord {
        user: User {
            id: UserId(uuid(&id, "users.id")?),
            email: Email::parse(&email).map_err(corrupt("users.email"))?,
            created_at: from_micros(row.try_get("created_at").map_err(err)?, "users.created_at")?,
        },
        password_hash: row.try_get("password_hash").map_err(err)?,
        disabled_at: disabled_at.map(|v| from_micros(v, "users.disabled_at")).transpose()?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord> {
    let id: String = row.try_get("s_id").map_err(err)?;
    let user_id: String = row.try_get("user_id").map_err(err)?;
    Ok(SessionRecord {
        id: SessionId(uuid(&id, "sessions.id")?),
        user_id: UserId(uuid(&user_id, "sessions.user_id")?),
        csrf_token: CsrfToken::from_stored(row.try_get("csrf_token").map_err(err)?),
        created_at: from_micros(row.try_get("s_created_at").map_err(err)?, "sessions.created_at")?,
        last_seen_at: from_micros(row.try_get("last_seen_at").map_err(err)?, "sessions.last_seen_at")?,
        user_agent: row.try_get("user_agent").map_err(err)?,
        ip: row.try_get("ip").map_err(err)?,
    })
}

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Fails if the connection can only read. `BEGIN IMMEDIATE` checks the file's mode before
/// it waits for any lock, so it is asked without a busy timeout: `SQLITE_BUSY` means
/// another connection is writing, which a read-only connection could not be refused for.
async fn refuse_read_only(conn: &mut SqliteConnection) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("PRAGMA busy_timeout = 0").execute(&mut *conn).await?;
    let outcome = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await;
    if outcome.is_ok() {
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    )))
    .execute(&mut *conn)
    .await?;
    match outcome {
        Err(sqlx::Error::Database(e)) if primary_code(e.code().as_deref()) == Some(SQLITE_READONLY) => {
            Err(sqlx::Error::Database(e))
        }
        _ => Ok(()),
    }
}

/// Whether a connection going back to the pool may be used again. Closed instead
/// (closing rolls back for sure):
/// - one left inside a transaction: its rollback failed (an I/O error, a read-only file)
///   and it would go on holding the write lock, stalling every writer after the fault;
/// - one whose last failure was an I/O error or a read-only file: SQLite may have
///   reopened what it could not write read-only, for good.
async fn reusable(conn: &mut SqliteConnection) -> std::result::Result<bool, sqlx::Error> {
    let last_failure = conn.lock_handle().await?.last_error();
    if let Some(failure) = last_failure
        && let Some(code) = primary_code(sqlx::error::DatabaseError::code(&failure).as_deref())
        && [SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN].contains(&code)
    {
        tracing::warn!(code, "closing a database connection after an I/O fault");
        return Ok(false);
    }
    match sqlx::query("ROLLBACK").execute(&mut *conn).await {
        Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => Ok(true),
        Ok(_) => {
            tracing::warn!("closing a database connection left inside a transaction");
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

// SQLite's primary result codes (https://sqlite.org/rescode.html).
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CANTOPEN: i32 = 14;

/// The primary result code of an extended one (its low byte).
fn primary_code(code: Option<&str>) -> Option<i32> {
    code.and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file, in WAL mode so readers never wait
    /// for the writer.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(StorageError::Other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // 1 MiB of page cache per connection (SQLite's default is 2 MiB): point
            // lookups by index need little, and the OS caches the file anyway.
            .pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            // Readers run in parallel in WAL mode, writers one at a time: a few
            // connections are enough for a machine's cores.
            .max_connections(options.max_connections.clamp(1, 4))
            .acquire_timeout(options.acquire_timeout)
            // SQLite silently opens a file it may not write read-only, and such a
            // connection stays read-only once the file is writable again: one opened
            // during such a fault is refused, so that the pool opens another later.
            .after_connect(|conn, _meta| Box::pin(async move { refuse_read_only(conn).await }))
            .after_release(|conn, _meta| Box::pin(async move { reusable(conn).await }))
            .connect_with(connect)
            .await
            .map_err(err)?;
        Ok(Self { pool })
    }

    async fn delete_sessions_of(conn: &mut SqliteConnection, id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)")
            .bind(id.0.to_string())
            .bind(keep.map(|k| k.0.to_string()))
            .execute(conn)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => err(inner),
            other => StorageError::Migration(other),
        })
    }

    async fn ping(&self) -> Result<()> {
        // A write, so that a database that can only be read is not "ready".
        sqlx::query("UPDATE readiness SET checked_at = unixepoch() * 1000000 WHERE id = 1")
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(user.id.0.to_string())
            .bind(user.email.as_str())
            .bind(password_hash)
            .bind(micros(user.created_at))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = ?1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?1"))
            .bind(id.0.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.0.to_string())
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn change_password(&self, id: UserId, password_hash: &str, keep: SessionId) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.0.to_string())
            .bind(password_hash)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        Self::delete_sessions_of(&mut tx, id, Some(keep)).await?;
        tx.commit().await.map_err(err)
    }

    async fn disable_user(&self, email: &Email, at: OffsetDateTime) -> Result<Option<UserId>> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2) WHERE email = ?1 RETURNING id",
        )
        .bind(email.as_str())
        .bind(micros(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some(id) = id else {
            return Ok(None);
        };
        let id = UserId(uuid(&id, "users.id")?);
        Self::delete_sessions_of(&mut tx, id, None).await?;
        tx.commit().await.map_err(err)?;
        Ok(Some(id))
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &NewSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, handle_hash, csrf_token, created_at, last_seen_at, user_agent, ip) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
        )
        .bind(session.id.0.to_string())
        .bind(session.user_id.0.to_string())
        .bind(session.handle_hash.as_bytes().to_vec())
        .bind(session.csrf_token.expose().to_owned())
        .bind(micros(session.created_at))
        .bind(session.user_agent.clone())
        .bind(session.ip.clone())
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn find_session(&self, handle_hash: &SessionHandleHash) -> Result<Option<(SessionRecord, UserRecord)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.handle_hash = ?1"
        ))
        .bind(handle_hash.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|row| Ok((session_from_row(&row)?, user_from_row(&row)?)))
            .transpose()
    }

    async fn touch_session(&self, id: SessionId, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?2) WHERE id = ?1")
            .bind(id.0.to_string())
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete_session_by_hash(&self, handle_hash: &SessionHandleHash) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE handle_hash = ?1")
            .bind(handle_hash.as_bytes().to_vec())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND id = ?2")
            .bind(user_id.0.to_string())
            .bind(id.0.to_string())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_sessions(&self, user_id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        Self::delete_sessions_of(&mut conn, user_id, keep).await
    }

    async fn list_user_sessions(
        &self,
        user_id: UserId,
        seen_after: OffsetDateTime,
        created_after: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.user_id = ?1 AND s.last_seen_at > ?2 AND s.created_at > ?3 \
             ORDER BY s.created_at DESC, s.id DESC"
        ))
        .bind(user_id.0.to_string())
        .bind(micros(seen_after))
        .bind(micros(created_after))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn delete_expired_sessions(
        &self,
        seen_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen_at <= ?1 OR created_at <= ?2")
            .bind(micros(seen_before))
            .bind(micros(created_before))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn recent_failures(
        &self,
        keys: &[ThrottleKey],
        since: OffsetDateTime,
    ) -> Result<Vec<(String, OffsetDateTime)>> {
        let mut found = Vec::new();
        for key in keys {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT key, failed_at FROM login_failures WHERE key = ?1 AND failed_at > ?2")
                    .bind(key.as_str().to_owned())
                    .bind(micros(since))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
            for (key, at) in rows {
                found.push((key, from_micros(at, "login_failures.failed_at")?));
            }
        }
        Ok(found)
    }

    async fn record_failure(&self, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, failed_at) VALUES (?1, ?2)")
                .bind(key.as_str().to_owned())
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?1")
            .bind(key.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn prune_failures(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM login_failures WHERE failed_at <= ?1")
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}

fn client_from_row(row: &SqliteRow) -> Result<ClientRecord> {
    let id: String = row.try_get("c_id").map_err(err)?;
    let owner: String = row.try_get("owner_id").map_err(err)?;
    let scopes: String = row.try_get("scopes").map_err(err)?;
    Ok(ClientRecord {
        id: ClientId::parse(&id).ok_or(StorageError::Corrupt("clients.id"))?,
        owner_id: UserId(uuid(&owner, "clients.owner_id")?),
        name: row.try_get("name").map_err(err)?,
        scopes: Scopes::parse_space_separated(&scopes).map_err(|_| StorageError::Corrupt("clients.scopes"))?,
        created_at: from_micros(row.try_get("c_created_at").map_err(err)?, "clients.created_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord> {
    let id: String = row.try_get("k_id").map_err(err)?;
    let client_id: String = row.try_get("client_id").map_err(err)?;
    let hash: Vec<u8> = row.try_get("key_hash").map_err(err)?;
    let last_used_at: Option<i64> = row.try_get("last_used_at").map_err(err)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(err)?;
    Ok(ApiKeyRecord {
        id: ApiKeyId(uuid(&id, "api_keys.id")?),
        client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("api_keys.client_id"))?,
        key_hash: ApiKeyHash::from_bytes(
            hash.try_into()
                .map_err(|_| StorageError::Corrupt("api_keys.key_hash"))?,
        ),
        created_at: from_micros(row.try_get("k_created_at").map_err(err)?, "api_keys.created_at")?,
        last_used_at: last_used_at
            .map(|v| from_micros(v, "api_keys.last_used_at"))
            .transpose()?,
        revoked_at: revoked_at.map(|v| from_micros(v, "api_keys.revoked_at")).transpose()?,
    })
}

macro_rules! client_columns {
    () => {
        "c.id AS c_id, c.owner_id, c.name, c.scopes, c.created_at AS c_created_at"
    };
}
macro_rules! key_columns {
    () => {
        "k.id AS k_id, k.client_id, k.key_hash, k.created_at AS k_created_at, k.last_used_at, k.revoked_at"
    };
}

impl SqliteStore {
    async fn with_keys(&self, client: ClientRecord) -> Result<ClientWithKeys> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.client_id = ?1 ORDER BY k.created_at, k.id"
        ))
        .bind(client.id.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        Ok(ClientWithKeys { client, keys })
    }

    async fn insert_key(conn: &mut SqliteConnection, key: &ApiKeyRecord) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (id, client_id, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(key.id.0.to_string())
            .bind(key.client_id.as_str().to_owned())
            .bind(key.key_hash.as_bytes().to_vec())
            .bind(micros(key.created_at))
            .execute(conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_revocation(conn: &mut SqliteConnection, revocation: &Revocation) -> Result<()> {
        sqlx::query("INSERT INTO revocations (kind, subject, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(revocation.kind.as_str())
            .bind(revocation.subject.clone())
            .bind(micros(revocation.created_at))
            .bind(micros(revocation.expires_at))
            .execute(conn)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(&self, client: &ClientRecord, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("INSERT INTO clients (id, owner_id, name, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(client.id.as_str().to_owned())
            .bind(client.owner_id.0.to_string())
            .bind(client.name.clone())
            .bind(client.scopes.to_text())
            .bind(micros(client.created_at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        Self::insert_key(&mut tx, first_key).await?;
        tx.commit().await.map_err(err)
    }

    async fn list_clients(&self, owner: UserId) -> Result<Vec<ClientWithKeys>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients c WHERE c.owner_id = ?1 ORDER BY c.created_at, c.id"
        ))
        .bind(owner.0.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut clients = Vec::with_capacity(rows.len());
        for row in &rows {
            clients.push(self.with_keys(client_from_row(row)?).await?);
        }
        Ok(clients)
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<ClientWithKeys>> {
        let row = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients c WHERE c.id = ?1"))
            .bind(id.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        match row.as_ref().map(client_from_row).transpose()? {
            Some(client) => Ok(Some(self.with_keys(client).await?)),
            None => Ok(None),
        }
    }

    async fn delete_client(&self, owner: UserId, id: &ClientId, revocation: &Revocation) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let done = sqlx::query("DELETE FROM clients WHERE id = ?1 AND owner_id = ?2")
            .bind(id.as_str().to_owned())
            .bind(owner.0.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Self::insert_revocation(&mut tx, revocation).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn add_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        Self::insert_key(&mut conn, key).await
    }

    async fn revoke_key(&self, client: &ClientId, key: ApiKeyId, revocation: &Revocation) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND client_id = ?2")
                .bind(key.0.to_string())
                .bind(client.as_str().to_owned())
                .bind(micros(revocation.created_at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Self::insert_revocation(&mut tx, revocation).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn find_key(&self, id: ApiKeyId) -> Result<Option<(ApiKeyRecord, ClientRecord)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            ", ",
            client_columns!(),
            " FROM api_keys k JOIN clients c ON c.id = k.client_id WHERE k.id = ?1"
        ))
        .bind(id.0.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|row| Ok((key_from_row(&row)?, client_from_row(&row)?)))
            .transpose()
    }

    async fn registered_scopes(&self) -> Result<Vec<String>> {
        let lists: Vec<String> = sqlx::query_scalar("SELECT DISTINCT scopes FROM clients")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        Ok(crate::merge_scopes(lists))
    }

    async fn touch_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, ?2), ?2) WHERE id = ?1")
            .bind(id.0.to_string())
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<(String, String, Vec<u8>, i64)> =
            sqlx::query_as("SELECT kid, alg, private_der, created_at FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter()
            .map(|(kid, alg, private_der, created_at)| {
                Ok(SigningKeyRecord {
                    kid,
                    alg,
                    private_der,
                    created_at: from_micros(created_at, "signing_keys.created_at")?,
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_der, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(key.kid.clone())
            .bind(key.alg.clone())
            .bind(key.private_der.clone())
            .bind(micros(key.created_at))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke(&self, revocation: &Revocation) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        Self::insert_revocation(&mut conn, revocation).await
    }

    async fn revocations_since(&self, since: OffsetDateTime, now: OffsetDateTime) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT kind, subject, created_at, expires_at FROM revocations WHERE created_at > ?1 AND expires_at > ?2",
        )
        .bind(micros(since))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter()
            .map(|(kind, subject, created_at, expires_at)| {
                Ok(Revocation {
                    kind: RevocationKind::parse(&kind).ok_or(StorageError::Corrupt("revocations.kind"))?,
                    subject,
                    created_at: from_micros(created_at, "revocations.created_at")?,
                    expires_at: from_micros(expires_at, "revocations.expires_at")?,
                })
            })
            .collect()
    }

    async fn prune_revocations(&self, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at <= ?1")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}
