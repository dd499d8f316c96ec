//! The Postgres backend: for production and for several instances sharing one database.

use async_trait::async_trait;
use sesame_domain::{CsrfToken, Email, SessionHandleHash, SessionId, ThrottleKey, User, UserId};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ConnectOptions, Database, Result, SessionRecord, SessionStore, StorageError, ThrottleStore,
    USERS_EMAIL_KEY, UserRecord, UserStore, classify, corrupt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Users, sessions and login failures in Postgres.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn err(e: sqlx::Error) -> StorageError {
    // A database that does not exist (dropped, or not yet restored) refuses every new
    // connection with 3D000: an outage to wait out (503), not a bug (500).
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("3D000")
    {
        return StorageError::Unavailable(e);
    }
    classify(e, &[USERS_EMAIL_KEY])
}

// Column lists as macros so that every query stays a `&'static str` (sqlx's guard against
// SQL built from runtime strings).
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

fn user_from_row(row: &PgRow) -> Result<UserRecord> {
    let email: String = row.try_get("email").map_err(err)?;
    Ok(UserRecord {
        user: User {
            id: UserId(row.try_get("id").map_err(err)?),
            email: Email::parse(&email).map_err(corrupt("users.email"))?,
            created_at: row.try_get("created_at").map_err(err)?,
        },
        password_hash: row.try_get("password_hash").map_err(err)?,
        disabled_at: row.try_get("disabled_at").map_err(err)?,
    })
}

fn session_from_row(row: &PgRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(row.try_get("s_id").map_err(err)?),
        user_id: UserId(row.try_get("user_id").map_err(err)?),
        csrf_token: CsrfToken::from_stored(row.try_get("csrf_token").map_err(err)?),
        created_at: row.try_get("s_created_at").map_err(err)?,
        last_seen_at: row.try_get("last_seen_at").map_err(err)?,
        user_agent: row.try_get("user_agent").map_err(err)?,
        ip: row.try_get("ip").map_err(err)?,
    })
}

impl PostgresStore {
    /// A lazily connecting pool: nothing is dialled until the first query, so the server
    /// starts (and says it is not ready) while the database is down.
    pub fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy(url)
            .map_err(StorageError::Other)?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn delete_sessions_of(
        conn: &mut PgConnection,
        id: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)",
        )
        .bind(id.0)
        .bind(keep.map(|k| k.0))
        .execute(conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Database for PostgresStore {
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
impl UserStore for PostgresStore {
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user.id.0)
        .bind(user.email.as_str())
        .bind(password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.email = $1"
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
            " FROM users u WHERE u.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id.0)
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
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id.0)
            .bind(password_hash)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        Self::delete_sessions_of(&mut tx, id, Some(keep)).await?;
        tx.commit().await.map_err(err)
    }

    async fn disable_user(&self, email: &Email, at: OffsetDateTime) -> Result<Option<UserId>> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let id: Option<Uuid> =
            sqlx::query_scalar("UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE email = $1 RETURNING id")
                .bind(email.as_str())
                .bind(at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
        let Some(id) = id.map(UserId) else {
            return Ok(None);
        };
        Self::delete_sessions_of(&mut tx, id, None).await?;
        tx.commit().await.map_err(err)?;
        Ok(Some(id))
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: &crate::NewSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, handle_hash, csrf_token, created_at, last_seen_at, user_agent, ip) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
        )
        .bind(session.id.0)
        .bind(session.user_id.0)
        .bind(session.handle_hash.as_bytes().as_slice())
        .bind(session.csrf_token.expose())
        .bind(session.created_at)
        .bind(session.user_agent.as_deref())
        .bind(session.ip.as_deref())
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
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.handle_hash = $1"
        ))
        .bind(handle_hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|row| Ok((session_from_row(&row)?, user_from_row(&row)?)))
            .transpose()
    }

    async fn touch_session(&self, id: SessionId, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $1")
            .bind(id.0)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete_session_by_hash(&self, handle_hash: &SessionHandleHash) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE handle_hash = $1")
            .bind(handle_hash.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id.0)
            .bind(id.0)
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
            " FROM sessions s WHERE s.user_id = $1 AND s.last_seen_at > $2 AND s.created_at > $3 \
             ORDER BY s.created_at DESC, s.id DESC"
        ))
        .bind(user_id.0)
        .bind(seen_after)
        .bind(created_after)
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
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen_at <= $1 OR created_at <= $2")
            .bind(seen_before)
            .bind(created_before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn recent_failures(
        &self,
        keys: &[ThrottleKey],
        since: OffsetDateTime,
    ) -> Result<Vec<(String, OffsetDateTime)>> {
        let keys: Vec<&str> = keys.iter().map(ThrottleKey::as_str).collect();
        sqlx::query_as(
            "SELECT key, failed_at FROM login_failures WHERE key = ANY($1) AND failed_at > $2",
        )
        .bind(&keys)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }

    async fn record_failure(&self, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        let keys: Vec<&str> = keys.iter().map(ThrottleKey::as_str).collect();
        sqlx::query(
            "INSERT INTO login_failures (key, failed_at) SELECT k, $2 FROM unnest($1::text[]) AS k",
        )
        .bind(&keys)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn prune_failures(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM login_failures WHERE failed_at <= $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}
