//! The Postgres backend: for production and for several instances sharing one database.

use async_trait::async_trait;
use sesame_domain::{
    ApiKeyHash, ApiKeyId, ClientId, CsrfToken, Email, Scopes, SessionHandleHash, SessionId, ThrottleKey, User, UserId,
};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ApiKeyRecord, ClientRecord, ClientStore, ClientWithKeys, ConnectOptions, Database, Result, Revocation,
    RevocationKind, RevocationStore, SessionRecord, SessionStore, SigningKeyRecord, SigningKeyStore, StorageError,
    ThrottleStore, UserRecord, UserStore, classify, corrupt,
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
    classify(e)
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

    async fn delete_sessions_of(conn: &mut PgConnection, id: UserId, keep: Option<SessionId>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)")
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
        // A write, so that a database that can only be read is not "ready".
        sqlx::query("UPDATE readiness SET checked_at = now() WHERE id = 1")
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
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
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
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
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

    async fn change_password(&self, id: UserId, password_hash: &str, keep: SessionId) -> Result<()> {
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
        let id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE email = $1 RETURNING id",
        )
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

    async fn find_session(&self, handle_hash: &SessionHandleHash) -> Result<Option<(SessionRecord, UserRecord)>> {
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
        sqlx::query_as("SELECT key, failed_at FROM login_failures WHERE key = ANY($1) AND failed_at > $2")
            .bind(&keys)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn record_failure(&self, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        let keys: Vec<&str> = keys.iter().map(ThrottleKey::as_str).collect();
        sqlx::query("INSERT INTO login_failures (key, failed_at) SELECT k, $2 FROM unnest($1::text[]) AS k")
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

fn client_from_row(row: &PgRow) -> Result<ClientRecord> {
    let id: String = row.try_get("c_id").map_err(err)?;
    let scopes: String = row.try_get("scopes").map_err(err)?;
    Ok(ClientRecord {
        id: ClientId::parse(&id).ok_or(StorageError::Corrupt("clients.id"))?,
        owner_id: UserId(row.try_get("owner_id").map_err(err)?),
        name: row.try_get("name").map_err(err)?,
        scopes: Scopes::parse_space_separated(&scopes).map_err(|_| StorageError::Corrupt("clients.scopes"))?,
        created_at: row.try_get("c_created_at").map_err(err)?,
    })
}

fn key_from_row(row: &PgRow) -> Result<ApiKeyRecord> {
    let client_id: String = row.try_get("client_id").map_err(err)?;
    let hash: Vec<u8> = row.try_get("key_hash").map_err(err)?;
    Ok(ApiKeyRecord {
        id: ApiKeyId(row.try_get("k_id").map_err(err)?),
        client_id: ClientId::parse(&client_id).ok_or(StorageError::Corrupt("api_keys.client_id"))?,
        key_hash: ApiKeyHash::from_bytes(
            hash.try_into()
                .map_err(|_| StorageError::Corrupt("api_keys.key_hash"))?,
        ),
        created_at: row.try_get("k_created_at").map_err(err)?,
        last_used_at: row.try_get("last_used_at").map_err(err)?,
        revoked_at: row.try_get("revoked_at").map_err(err)?,
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

impl PostgresStore {
    async fn keys_of(&self, clients: Vec<ClientRecord>) -> Result<Vec<ClientWithKeys>> {
        let ids: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.client_id = ANY($1) ORDER BY k.created_at, k.id"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        Ok(clients
            .into_iter()
            .map(|client| {
                let keys = keys.iter().filter(|k| k.client_id == client.id).cloned().collect();
                ClientWithKeys { client, keys }
            })
            .collect())
    }

    async fn insert_key(conn: &mut PgConnection, key: &ApiKeyRecord) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (id, client_id, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key.id.0)
            .bind(key.client_id.as_str())
            .bind(key.key_hash.as_bytes().as_slice())
            .bind(key.created_at)
            .execute(conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_revocation(conn: &mut PgConnection, revocation: &Revocation) -> Result<()> {
        sqlx::query("INSERT INTO revocations (kind, subject, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(revocation.kind.as_str())
            .bind(&revocation.subject)
            .bind(revocation.created_at)
            .bind(revocation.expires_at)
            .execute(conn)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn create_client(&self, client: &ClientRecord, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("INSERT INTO clients (id, owner_id, name, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(client.id.as_str())
            .bind(client.owner_id.0)
            .bind(&client.name)
            .bind(client.scopes.to_text())
            .bind(client.created_at)
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
            " FROM clients c WHERE c.owner_id = $1 ORDER BY c.created_at, c.id"
        ))
        .bind(owner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let clients = rows.iter().map(client_from_row).collect::<Result<Vec<_>>>()?;
        self.keys_of(clients).await
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<ClientWithKeys>> {
        let row = sqlx::query(concat!("SELECT ", client_columns!(), " FROM clients c WHERE c.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        let Some(client) = row.as_ref().map(client_from_row).transpose()? else {
            return Ok(None);
        };
        Ok(self.keys_of(vec![client]).await?.pop())
    }

    async fn delete_client(&self, owner: UserId, id: &ClientId, revocation: &Revocation) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let done = sqlx::query("DELETE FROM clients WHERE id = $1 AND owner_id = $2")
            .bind(id.as_str())
            .bind(owner.0)
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
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND client_id = $2")
                .bind(key.0)
                .bind(client.as_str())
                .bind(revocation.created_at)
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
            " FROM api_keys k JOIN clients c ON c.id = k.client_id WHERE k.id = $1"
        ))
        .bind(id.0)
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
        sqlx::query("UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, $2), $2) WHERE id = $1")
            .bind(id.0)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<(String, String, Vec<u8>, OffsetDateTime)> =
            sqlx::query_as("SELECT kid, alg, private_der, created_at FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(kid, alg, private_der, created_at)| SigningKeyRecord {
                kid,
                alg,
                private_der,
                created_at,
            })
            .collect())
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_der, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_der)
            .bind(key.created_at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn revoke(&self, revocation: &Revocation) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        Self::insert_revocation(&mut conn, revocation).await
    }

    async fn revocations_since(&self, since: OffsetDateTime, now: OffsetDateTime) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, String, OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
            "SELECT kind, subject, created_at, expires_at FROM revocations WHERE created_at > $1 AND expires_at > $2",
        )
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter()
            .map(|(kind, subject, created_at, expires_at)| {
                Ok(Revocation {
                    kind: RevocationKind::parse(&kind).ok_or(StorageError::Corrupt("revocations.kind"))?,
                    subject,
                    created_at,
                    expires_at,
                })
            })
            .collect()
    }

    async fn prune_revocations(&self, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }
}
