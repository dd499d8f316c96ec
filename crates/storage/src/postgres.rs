//! The Postgres backend: for production and for several instances sharing one database.

use sesame_domain::ThrottleKey;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::shared::{Arg, Dialect, SqlStore, count_and_charge};
use crate::{Backend, Charge, ConnectOptions, RecentFailures, Reservation, Result, StorageError, classify};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Users, sessions, login failures, clients, signing keys and revocations in Postgres.
pub type PostgresStore = SqlStore<Postgres>;

fn err(e: sqlx::Error) -> StorageError {
    // A database that does not exist (dropped, or not yet restored) refuses every new
    // connection with 3D000: an outage to wait out (503), not a bug (500).
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("3D000")
    {
        return StorageError::Unavailable(e);
    }
    classify(e, Backend::Postgres)
}

fn bind<'q>(mut query: Query<'q, Postgres, PgArguments>, args: &[Arg<'_>]) -> Query<'q, Postgres, PgArguments> {
    for arg in args {
        query = match *arg {
            Arg::Id(id) => query.bind(id),
            Arg::Time(at) => query.bind(at),
            Arg::Text(text) => query.bind(text),
            Arg::OptionalText(text) => query.bind(text),
            Arg::Bytes(bytes) => query.bind(bytes),
            Arg::Int(value) => query.bind(value),
        };
    }
    query
}

impl Dialect for Postgres {
    const PING: &'static str = "UPDATE readiness SET checked_at = now() WHERE id = 1";
    const CLOCK: &'static str = "SELECT clock_timestamp() AS now";
    const INSERT_SIGNING_KEY: &'static str = "INSERT INTO signing_keys (kid, alg, private_der, created_at, signs_from) \
         VALUES ($1, $2, $3, $4, clock_timestamp() + $5 * interval '1 microsecond')";

    const NOTIFY_REVOCATION: Option<&'static str> = Some("SELECT pg_notify('sesame_revocations', '')");
    const NOTIFY_SESSIONS: Option<&'static str> = Some("SELECT pg_notify('sesame_sessions', $1)");

    fn error(error: sqlx::Error) -> StorageError {
        err(error)
    }

    async fn follow_changes(
        pool: &PgPool,
        revocations: std::sync::Arc<tokio::sync::Notify>,
        sessions: crate::SessionsEnded,
    ) -> Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.map_err(err)?;
        listener
            .listen_all(["sesame_revocations", "sesame_sessions"])
            .await
            .map_err(err)?;
        // Whatever happened before the listener was up: read the log, forget the cache.
        revocations.notify_one();
        sessions(None);
        loop {
            match listener.try_recv().await.map_err(err)? {
                Some(notice) if notice.channel() == "sesame_sessions" => {
                    sessions(uuid::Uuid::parse_str(notice.payload()).ok().map(sesame_domain::UserId));
                }
                Some(_) => revocations.notify_one(),
                // The connection was lost (and is made again on the next call): anything
                // may have been missed.
                None => {
                    revocations.notify_one();
                    sessions(None);
                }
            }
        }
    }

    async fn run_migrations(pool: &PgPool) -> Result<(), MigrateError> {
        MIGRATOR.run(pool).await
    }

    async fn execute(conn: &mut PgConnection, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        let done = bind(sqlx::query(sql), args).execute(conn).await.map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_optional(conn: &mut PgConnection, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<PgRow>> {
        bind(sqlx::query(sql), args).fetch_optional(conn).await.map_err(err)
    }

    async fn fetch_all(conn: &mut PgConnection, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<PgRow>> {
        bind(sqlx::query(sql), args).fetch_all(conn).await.map_err(err)
    }

    fn uuid(row: &PgRow, column: &str, _stored_as: &'static str) -> Result<Uuid> {
        row.try_get(column).map_err(err)
    }

    fn time(row: &PgRow, column: &str, _stored_as: &'static str) -> Result<OffsetDateTime> {
        row.try_get(column).map_err(err)
    }

    fn optional_time(row: &PgRow, column: &str, _stored_as: &'static str) -> Result<Option<OffsetDateTime>> {
        row.try_get(column).map_err(err)
    }

    crate::shared::plain_columns!(PgRow);

    async fn recent_failures(pool: &PgPool, keys: &[ThrottleKey], since: OffsetDateTime) -> Result<RecentFailures> {
        let keys = key_texts(keys);
        sqlx::query_as("SELECT key, failed_at FROM login_failures WHERE key = ANY($1) AND failed_at > $2")
            .bind(&keys)
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(err)
    }

    /// Transaction-scoped advisory locks on every key, taken in one order so two
    /// attempts never wait on each other crosswise; released at commit or rollback.
    async fn reserve(pool: &PgPool, charges: &[Charge], attempt: Uuid, at: OffsetDateTime) -> Result<Reservation> {
        let mut tx = pool.begin().await.map_err(err)?;
        let mut keys: Vec<&str> = charges.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let reservation = count_and_charge::<Postgres>(&mut tx, charges, attempt, at).await?;
        if reservation.charged {
            tx.commit().await.map_err(err)?;
        } else {
            tx.rollback().await.map_err(err)?;
        }
        Ok(reservation)
    }

    async fn record_failure(pool: &PgPool, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        sqlx::query("INSERT INTO login_failures (key, failed_at) SELECT k, $2 FROM unnest($1::text[]) AS k")
            .bind(key_texts(keys))
            .bind(at)
            .execute(pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The keys' texts, for one array parameter.
fn key_texts(keys: &[ThrottleKey]) -> Vec<&str> {
    keys.iter().map(ThrottleKey::as_str).collect()
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
}
