//! The SQLite backend: one file, no setup; the default for a single instance.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sesame_domain::{CsrfToken, Email, SessionHandleHash, SessionId, ThrottleKey, User, UserId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ConnectOptions, Database, NewSession, Result, SessionRecord, SessionStore, StorageError,
    ThrottleStore, USERS_EMAIL_KEY, UserRecord, UserStore, classify, corrupt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Users, sessions and login failures in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// SQLite reports a broken unique rule by its columns ("UNIQUE constraint failed:
/// users.email"), never by the constraint's name; these are the names for those columns.
const UNIQUE_COLUMNS: &[(&str, &str)] = &[("users.email", USERS_EMAIL_KEY)];

fn err(e: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
        && let Some(columns) = db.message().strip_prefix("UNIQUE constraint failed: ")
        && let Some((_, name)) = UNIQUE_COLUMNS.iter().find(|(c, _)| *c == columns)
    {
        return StorageError::Conflict(name);
    }
    classify(e, &[USERS_EMAIL_KEY])
}

/// Timestamps are stored as integer microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(value: i64, column: &'static str) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|_| StorageError::Corrupt(column))
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
        disabled_at: disabled_at
            .map(|v| from_micros(v, "users.disabled_at"))
            .transpose()?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord> {
    let id: String = row.try_get("s_id").map_err(err)?;
    let user_id: String = row.try_get("user_id").map_err(err)?;
    Ok(SessionRecord {
        id: SessionId(uuid(&id, "sessions.id")?),
        user_id: UserId(uuid(&user_id, "sessions.user_id")?),
        csrf_token: CsrfToken::from_stored(row.try_get("csrf_token").map_err(err)?),
        created_at: from_micros(
            row.try_get("s_created_at").map_err(err)?,
            "sessions.created_at",
        )?,
        last_seen_at: from_micros(
            row.try_get("last_seen_at").map_err(err)?,
            "sessions.last_seen_at",
        )?,
        user_agent: row.try_get("user_agent").map_err(err)?,
        ip: row.try_get("ip").map_err(err)?,
    })
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
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(err)?;
        Ok(Self { pool })
    }

    async fn delete_sessions_of(
        conn: &mut SqliteConnection,
        id: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)")
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
        sqlx::query("SELECT 1")
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
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
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
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.email = ?1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.id = ?1"
        ))
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

    async fn change_password(
        &self,
        id: UserId,
        password_hash: &str,
        keep: SessionId,
    ) -> Result<()> {
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
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET disabled_at = COALESCE(disabled_at, ?2) WHERE email = ?1 RETURNING id")
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

    async fn find_session(
        &self,
        handle_hash: &SessionHandleHash,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
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
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT key, failed_at FROM login_failures WHERE key = ?1 AND failed_at > ?2",
            )
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
