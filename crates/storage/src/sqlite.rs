//! The SQLite backend: one file, no setup; the default for a single instance.

use std::str::FromStr as _;
use std::time::Duration;

use sesame_domain::ThrottleKey;
use sqlx::migrate::MigrateError;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::shared::{Arg, Dialect, SqlStore, count_and_charge};
use crate::{Backend, Charge, ConnectOptions, RecentFailures, Reservation, Result, StorageError, classify};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Users, sessions, login failures, clients, signing keys and revocations in one SQLite
/// file.
pub type SqliteStore = SqlStore<Sqlite>;

fn err(e: sqlx::Error) -> StorageError {
    classify(e, Backend::Sqlite)
}

/// Timestamps are stored as integer microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(value: i64, column: &'static str) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000).map_err(|_| StorageError::Corrupt(column))
}

/// Ids are stored as hyphenated UUID text.
fn bind<'q>(mut query: Query<'q, Sqlite, SqliteArguments>, args: &[Arg<'_>]) -> Query<'q, Sqlite, SqliteArguments> {
    for arg in args {
        query = match *arg {
            Arg::Id(id) => query.bind(id.to_string()),
            Arg::Time(at) => query.bind(micros(at)),
            Arg::Text(text) => query.bind(text.to_owned()),
            Arg::OptionalText(text) => query.bind(text.map(str::to_owned)),
            Arg::Bytes(bytes) => query.bind(bytes.to_vec()),
            Arg::Int(value) => query.bind(value),
        };
    }
    query
}

impl Dialect for Sqlite {
    const PING: &'static str = "UPDATE readiness SET checked_at = unixepoch() * 1000000 WHERE id = 1";
    const CLOCK: &'static str = "SELECT CAST(unixepoch('subsec') * 1000000 AS INTEGER) AS now";
    const INSERT_SIGNING_KEY: &'static str = "INSERT INTO signing_keys (kid, alg, private_der, created_at, seq, signs_from) \
         VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), \
         CAST(unixepoch('subsec') * 1000000 AS INTEGER) + $5)";

    // No notifications: other instances learn by the poll alone (the trait's defaults).

    fn error(error: sqlx::Error) -> StorageError {
        err(error)
    }

    async fn run_migrations(pool: &SqlitePool) -> Result<(), MigrateError> {
        MIGRATOR.run(pool).await
    }

    async fn execute(conn: &mut SqliteConnection, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        let done = bind(sqlx::query(sql), args).execute(conn).await.map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<SqliteRow>> {
        bind(sqlx::query(sql), args).fetch_optional(conn).await.map_err(err)
    }

    async fn fetch_all(conn: &mut SqliteConnection, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<SqliteRow>> {
        bind(sqlx::query(sql), args).fetch_all(conn).await.map_err(err)
    }

    fn uuid(row: &SqliteRow, column: &str, stored_as: &'static str) -> Result<Uuid> {
        let text: String = row.try_get(column).map_err(err)?;
        Uuid::parse_str(&text).map_err(|_| StorageError::Corrupt(stored_as))
    }

    fn time(row: &SqliteRow, column: &str, stored_as: &'static str) -> Result<OffsetDateTime> {
        from_micros(row.try_get(column).map_err(err)?, stored_as)
    }

    fn optional_time(row: &SqliteRow, column: &str, stored_as: &'static str) -> Result<Option<OffsetDateTime>> {
        let value: Option<i64> = row.try_get(column).map_err(err)?;
        value.map(|v| from_micros(v, stored_as)).transpose()
    }

    crate::shared::plain_columns!(SqliteRow);

    /// One query per key: SQLite has no array parameters, and a login charges two or
    /// three keys.
    async fn recent_failures(pool: &SqlitePool, keys: &[ThrottleKey], since: OffsetDateTime) -> Result<RecentFailures> {
        let mut found = Vec::new();
        for key in keys {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT key, failed_at FROM login_failures WHERE key = $1 AND failed_at > $2")
                    .bind(key.as_str().to_owned())
                    .bind(micros(since))
                    .fetch_all(pool)
                    .await
                    .map_err(err)?;
            for (key, at) in rows {
                found.push((key, from_micros(at, "login_failures.failed_at")?));
            }
        }
        Ok(found)
    }

    /// `BEGIN IMMEDIATE` takes SQLite's one write lock before counting, so no other
    /// connection can charge in between. The transaction is driven by plain statements:
    /// a connection given back inside it (a cancelled request, a failed rollback) is
    /// rolled back and closed by the pool's release check.
    async fn reserve(pool: &SqlitePool, charges: &[Charge], attempt: Uuid, at: OffsetDateTime) -> Result<Reservation> {
        let mut conn = pool.acquire().await.map_err(err)?;
        let outcome = async {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.map_err(err)?;
            let reservation = count_and_charge::<Sqlite>(&mut conn, charges, attempt, at).await?;
            let end = if reservation.charged { "COMMIT" } else { "ROLLBACK" };
            sqlx::query(end).execute(&mut *conn).await.map_err(err)?;
            Ok(reservation)
        }
        .await;
        if outcome.is_err() {
            // Whatever failed (a read-only file, an I/O error) may have left the
            // connection read-only or inside the transaction: it is closed, which rolls
            // back, rather than trusted again.
            conn.close_on_drop();
        }
        outcome
    }

    async fn record_failure(pool: &SqlitePool, keys: &[ThrottleKey], at: OffsetDateTime) -> Result<()> {
        let mut tx = pool.begin().await.map_err(err)?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, failed_at) VALUES ($1, $2)")
                .bind(key.as_str().to_owned())
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
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
    ///
    /// The file, and the `-wal` and `-shm` files SQLite makes beside it with the same
    /// mode, are readable by their owner only (0600): the database holds password hashes
    /// and signing keys. An existing file readable by others is narrowed to 0600.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url).map_err(StorageError::Other)?;
        owner_only(connect.get_filename())?;
        let connect = connect
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
}

/// Creates the database file readable and writable by its owner only, or narrows an
/// existing one (and its `-wal` and `-shm` files) to that. In-memory databases have no
/// file.
fn owner_only(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let name = path.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file::memory:") {
            return Ok(());
        }
        let io = |e: std::io::Error| StorageError::Other(sqlx::Error::Io(e));
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .or_else(|e| {
                    // Another process made it in between: it is narrowed below.
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        std::fs::File::open(path)
                    } else {
                        Err(e)
                    }
                })
                .map_err(io)?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{name}{suffix}"));
            let Ok(metadata) = std::fs::metadata(&file) else {
                continue;
            };
            if metadata.permissions().mode() & 0o077 != 0 {
                match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                    Ok(()) => {
                        tracing::warn!(file = %file.display(), "narrowed the database file to owner-only access (0600)");
                    }
                    Err(error) => tracing::warn!(
                        file = %file.display(),
                        %error,
                        "the database file is readable by others and cannot be narrowed to 0600"
                    ),
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
