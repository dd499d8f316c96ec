//! The second review's findings, each closed with a test that fails without its fix:
//! attempts that hang up mid-hash, logins racing password changes, what sesame keeps or
//! prints by the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sesame_core::accounts::Registrar;
use sesame_core::sessions::Origin;
use sesame_core::{Clock as _, Core, CoreError};
use sesame_domain::{Email, User, UserId};
use sesame_storage::{DisabledUser, Store, UserRecord, UserStore};
use sesame_tests::TestDb;
use tokio::sync::Notify;

use reqwest::StatusCode;
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, TestApp, eventually, on_both_backends};
use tokio::io::AsyncWriteExt as _;

on_both_backends!(
    wrong_password_logins_that_hang_up_mid_hash_still_spend_the_budget,
    a_login_racing_a_password_change_on_another_instance_gets_no_session,
    a_hash_upgrade_racing_a_password_change_never_brings_the_old_password_back,
    throttle_records_never_keep_an_account_name_as_typed,
    an_embedder_serving_without_the_peer_address_is_refused_not_given_one_shared_budget,
    a_resource_server_caching_the_jwks_for_its_max_age_never_meets_an_unknown_kid,
);

const WRONG: &str = "not the right passphrase";

async fn wrong_password_logins_that_hang_up_mid_hash_still_spend_the_budget(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "5/15m")]).await;
    app.user("ada@example.com").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = json!({"email": "ada@example.com", "password": WRONG}).to_string();
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: sesame.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Thirty attempts, each hanging up while its password is being hashed (a hash takes
    // tens of milliseconds; the client gives up after ten).
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (addr, request) = (addr.clone(), request.clone());
        set.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(stream);
        });
    }
    set.join_all().await;
    // Every attempt runs to its end though no one waits for the answer...
    assert!(
        eventually(Duration::from_secs(5), || async { logins_answered(&app).await == 30 }).await,
        "attempts that hung up were abandoned: {} answered",
        logins_answered(&app).await
    );
    // ...and their charges stand: even the right password is refused.
    let response = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// Password logins answered so far, by any result, from `/metrics`.
async fn logins_answered(app: &TestApp) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .filter(|line| line.starts_with("sesame_logins_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn the_configuration_never_shows_database_credentials_or_secrets() {
    let env = |name: &str| match name {
        "SESAME_DATABASE_URL" => {
            Some("postgres://sesame:hunter2@db.internal/sesame?password=also-secret&sslmode=require".to_owned())
        }
        "SESAME_SECRET_KEY" => Some("a very secret key that is thirty-two bytes or more".to_owned()),
        _ => None,
    };
    let config = sesame_server::Config::from_sources(None, env).unwrap();
    let shown = format!("{config:?}");
    for secret in ["hunter2", "also-secret", "very secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("db.internal") && shown.contains("sslmode=require"),
        "{shown}"
    );
}

/// A user store that, once armed, holds the next lookup by email after it has read the
/// row and before it answers: a login that has read the user and is about to hash.
struct Gated {
    inner: Arc<dyn UserStore>,
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl UserStore for Gated {
    async fn create_user(&self, user: &User, password_hash: &str) -> sesame_storage::Result<()> {
        self.inner.create_user(user, password_hash).await
    }

    async fn find_user_by_email(&self, email: &Email) -> sesame_storage::Result<Option<UserRecord>> {
        let found = self.inner.find_user_by_email(email).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
        found
    }

    async fn find_user_by_id(&self, id: UserId) -> sesame_storage::Result<Option<UserRecord>> {
        self.inner.find_user_by_id(id).await
    }

    async fn update_password_hash(&self, id: UserId, hash: &str, replacing: &str) -> sesame_storage::Result<bool> {
        self.inner.update_password_hash(id, hash, replacing).await
    }

    async fn change_password(
        &self,
        id: UserId,
        hash: &str,
        keep: sesame_domain::SessionId,
        revocation: sesame_storage::Revocation,
    ) -> sesame_storage::Result<Vec<sesame_storage::Revocation>> {
        self.inner.change_password(id, hash, keep, revocation).await
    }

    async fn disable_user(
        &self,
        email: &Email,
        revocation: sesame_storage::Revocation,
    ) -> sesame_storage::Result<Option<DisabledUser>> {
        self.inner.disable_user(email, revocation).await
    }

    async fn enable_user(&self, email: &Email) -> sesame_storage::Result<Option<UserId>> {
        self.inner.enable_user(email).await
    }

    async fn change_granted_scopes(
        &self,
        change: &sesame_storage::GrantChange<'_>,
    ) -> sesame_storage::Result<sesame_storage::GrantOutcome> {
        self.inner.change_granted_scopes(change).await
    }
}

/// An instance of the application on `db`, as the server builds it, over `store`.
async fn instance(db: &TestDb, store: Store) -> Core {
    instance_with_clock(db, store, Arc::new(sesame_core::SystemClock)).await
}

async fn instance_with_clock(db: &TestDb, store: Store, clock: sesame_core::SharedClock) -> Core {
    let env = |name: &str| (name == "SESAME_DATABASE_URL").then(|| db.url.clone());
    let config = sesame_server::Config::from_sources(None, env).unwrap();
    let issuer = "https://auth.example.com";
    let hashing = sesame_core::HashingPool::new(sesame_server::password_hasher().unwrap(), 2);
    Core::new(sesame_server::core_settings(&config, issuer), store, hashing, clock)
        .await
        .unwrap()
}

/// Two instances on one database; the first's user lookups can be held.
async fn two_instances(backend: Backend) -> (Arc<TestDb>, Core, Arc<Gated>, Core) {
    let db = TestDb::create(backend).await;
    let mut store = db.store().await;
    store.database.migrate().await.unwrap();
    let gate = Arc::new(Gated {
        inner: store.users.clone(),
        armed: AtomicBool::new(false),
        reached: Notify::new(),
        release: Notify::new(),
    });
    store.users = gate.clone();
    let a = instance(&db, store).await;
    let b = instance(&db, db.store().await).await;
    (db, a, gate, b)
}

fn origin() -> Origin {
    Origin {
        ip: "192.0.2.1".into(),
        user_agent: None,
    }
}

const NEW: &str = "a brand new passphrase";

/// A login with the old password on `a`, held after it has read the user while the owner
/// changes the password on `b`, then let go; its outcome.
async fn login_racing_a_password_change(
    a: &Core,
    gate: &Gated,
    b: &Core,
    owner: &sesame_core::sessions::StartedSession,
) -> Result<sesame_core::sessions::StartedSession, CoreError> {
    gate.armed.store(true, Ordering::SeqCst);
    let racing = {
        let a = a.clone();
        tokio::spawn(async move {
            a.sessions()
                .login("ada@example.com", PASSWORD.into(), &origin(), None)
                .await
        })
    };
    gate.reached.notified().await;
    b.accounts()
        .change_password(&owner.session, PASSWORD.into(), NEW.into(), "192.0.2.9")
        .await
        .unwrap();
    gate.release.notify_one();
    racing.await.unwrap()
}

async fn a_login_racing_a_password_change_on_another_instance_gets_no_session(backend: Backend) {
    let (_db, a, gate, b) = two_instances(backend).await;
    b.accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let owner = b
        .sessions()
        .login("ada@example.com", PASSWORD.into(), &origin(), None)
        .await
        .unwrap();

    // Someone who knows the old password logs in on A while the owner changes it on B.
    match login_racing_a_password_change(&a, &gate, &b, &owner).await {
        Err(CoreError::InvalidCredentials) => {}
        Ok(started) => {
            let survives = b.sessions().authenticate(&started.handle.hash()).await.is_ok();
            panic!("the racing login got a session (still live: {survives})");
        }
        Err(other) => panic!("{other:?}"),
    }
    // The owner's own session goes on, and only the new password signs in.
    assert!(b.sessions().authenticate(&owner.handle.hash()).await.is_ok());
    assert!(
        b.sessions()
            .login("ada@example.com", NEW.into(), &origin(), None)
            .await
            .is_ok()
    );
}

async fn a_hash_upgrade_racing_a_password_change_never_brings_the_old_password_back(backend: Backend) {
    let (db, a, gate, b) = two_instances(backend).await;
    b.accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let owner = b
        .sessions()
        .login("ada@example.com", PASSWORD.into(), &origin(), None)
        .await
        .unwrap();
    // The stored hash is made under older, weaker parameters: the next login upgrades it.
    let weak = sesame_domain::password::PasswordHasher::new(sesame_domain::password::HashParams {
        memory_kib: 8_192,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let weak_hash = weak
        .hash(&sesame_domain::Password::for_login(PASSWORD.into()).unwrap())
        .unwrap();
    let store = db.store().await;
    let current = store.users.find_user_by_id(owner.user.id).await.unwrap().unwrap();
    assert!(
        store
            .users
            .update_password_hash(owner.user.id, &weak_hash, &current.password_hash)
            .await
            .unwrap()
    );

    let _ = login_racing_a_password_change(&a, &gate, &b, &owner).await;

    // The upgrade of the old hash did not overwrite the new password.
    let old = b
        .sessions()
        .login("ada@example.com", PASSWORD.into(), &origin(), None)
        .await;
    assert!(
        matches!(old, Err(CoreError::InvalidCredentials)),
        "the old password is back"
    );
    assert!(
        b.sessions()
            .login("ada@example.com", NEW.into(), &origin(), None)
            .await
            .is_ok()
    );
    store.database.close().await;
}

/// Every `key` in the failure log, read straight from the database.
async fn failure_keys(db: &TestDb) -> Vec<String> {
    use sqlx::Connection as _;
    let query = "SELECT key FROM login_failures";
    match db.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(query).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(query).fetch_all(&mut conn).await.unwrap()
        }
    }
}

async fn throttle_records_never_keep_an_account_name_as_typed(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "2/1m")]).await;
    app.user("ada@example.com").await;
    // A password typed into the email field by mistake, and ordinary failures.
    let typed = "Tr0ub4dor&3-secret@example.com";
    for email in [typed, "ada@example.com", "ada@example.com"] {
        let response = app.login_response(email, WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let keys = failure_keys(&app.db).await;
    assert!(keys.len() >= 9, "the failures were recorded: {keys:?}");
    for key in &keys {
        let lower = key.to_lowercase();
        assert!(!lower.contains("tr0ub4dor") && !lower.contains("ada@"), "{key}");
    }
    // The budgets still count per account: ada's is spent, the other's is not.
    let ada = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(ada.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = app.login_response(typed, WRONG).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// sesame's router served by an embedder with plain `axum::serve`, with or without the
/// peer address; the answer to a wrong password.
async fn embedded_login_status(db: &TestDb, with_peer_address: bool) -> StatusCode {
    let env = |name: &str| (name == "SESAME_DATABASE_URL").then(|| db.url.clone());
    let config = sesame_server::Config::from_sources(None, env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let core = sesame_server::open_core(&config, &issuer, Arc::new(sesame_core::SystemClock))
        .await
        .unwrap();
    let state = sesame_http::AppState::new(sesame_server::http_config(&config, &issuer), core);
    let router = sesame_http::router(state);
    let server = if with_peer_address {
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        })
    } else {
        tokio::spawn(async move { axum::serve(listener, router).await })
    };
    let response = reqwest::Client::new()
        .post(format!("{issuer}/login"))
        .json(&json!({"email": "ada@example.com", "password": WRONG}))
        .send()
        .await
        .unwrap();
    server.abort();
    response.status()
}

async fn an_embedder_serving_without_the_peer_address_is_refused_not_given_one_shared_budget(backend: Backend) {
    let db = TestDb::create(backend).await;
    assert_eq!(
        embedded_login_status(&db, false).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(embedded_login_status(&db, true).await, StatusCode::UNAUTHORIZED);
}

/// Sets a Postgres setting for the test database's future sessions and cuts its current
/// ones, so that the server's next connections come up under it.
async fn with_database_setting(app: &TestApp, setting: &str) {
    use sqlx::Connection as _;
    let name = app.db.postgres_name().expect("Postgres").to_owned();
    let mut admin = sqlx::PgConnection::connect(&sesame_tests::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" {setting}")))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
}

/// A failover to a read-only standby (25006) and cancelled statements (57014) are outages:
/// 503 with `Retry-After`, never 500; service resumes when they pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_standby_and_cancelled_statements_answer_503() {
    let app = TestApp::spawn(Backend::Postgres, &[("SESAME_THROTTLE_ACCOUNT_IP", "1000/1m")]).await;
    app.user("ada@example.com").await;
    let mut seen = Vec::new();
    // A failover to a standby: every write is refused with 25006.
    with_database_setting(&app, "SET default_transaction_read_only = on").await;
    for _ in 0..2 {
        let registration = app.register("bob@example.com", PASSWORD).await;
        seen.push((
            "read-only",
            registration.status(),
            registration.headers().contains_key("retry-after"),
        ));
        let login = app.login_response("ada@example.com", WRONG).await;
        seen.push(("read-only", login.status(), login.headers().contains_key("retry-after")));
    }
    with_database_setting(&app, "RESET default_transaction_read_only").await;
    // Statements cancelled by the statement timeout (57014) while a table is locked.
    with_database_setting(&app, "SET statement_timeout = '300ms'").await;
    {
        use sqlx::Connection as _;
        let url = app.db.url.clone();
        let mut locker = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut locker)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
        sqlx::query("LOCK TABLE users, login_failures IN ACCESS EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        for _ in 0..2 {
            let registration = app.register("bob@example.com", PASSWORD).await;
            seen.push((
                "cancelled",
                registration.status(),
                registration.headers().contains_key("retry-after"),
            ));
            let login = app.login_response("ada@example.com", WRONG).await;
            seen.push(("cancelled", login.status(), login.headers().contains_key("retry-after")));
        }
        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
        locker.close().await.ok();
    }
    with_database_setting(&app, "RESET statement_timeout").await;
    for (setting, status, retry_after) in &seen {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{setting}: {seen:?}");
        assert!(retry_after, "{setting}: 503 without Retry-After");
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.register("bob@example.com", PASSWORD).await.status() == StatusCode::CREATED
        })
        .await
    );
    app.stop().await;
}

/// The `kid` in a compact JWT's header.
fn kid_of(token: &str) -> String {
    sesame_tests::jwt_part(token, 0)["kid"].as_str().unwrap().to_owned()
}

fn kids_in(jwks: &jsonwebtoken::jwk::JwkSet) -> Vec<String> {
    jwks.keys.iter().filter_map(|k| k.common.key_id.clone()).collect()
}

async fn a_resource_server_caching_the_jwks_for_its_max_age_never_meets_an_unknown_kid(backend: Backend) {
    const MAX_AGE: time::Duration = time::Duration::seconds(300);
    let db = TestDb::create(backend).await;
    db.store().await.database.migrate().await.unwrap();
    let clock = sesame_core::ManualClock::new();
    let a = instance_with_clock(&db, db.store().await, Arc::new(clock.clone())).await;
    let b = instance_with_clock(&db, db.store().await, Arc::new(clock.clone())).await;
    let owner = a
        .accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let client = a
        .clients()
        .register(owner.id, "sync", &["notes:read".to_owned()])
        .await
        .unwrap();
    let presented = sesame_core::tokens::PresentedClient {
        client_id: Some(client.client.id.as_str().to_owned()),
        secret: client.key.as_ref().unwrap().key.expose().into(),
    };
    let first_kid = a.tokens().signing_kid();

    // A resource server fetched the JWKS just now and keeps it for its max-age.
    let mut cached = (b.tokens().jwks(), clock.now());
    // The operator rotates; every instance has the new key within its reload interval.
    let rotated = a.tokens().rotate(false).await.unwrap();
    b.tokens().reload_keys().await.unwrap();
    assert!(kids_in(&b.tokens().jwks()).contains(&rotated.kid), "published at once");

    let mut signed_by_new = false;
    for step in 1..=90 {
        clock.advance(std::time::Duration::from_secs(10));
        if step % 3 == 0 {
            // The scheduled reload.
            a.tokens().reload_keys().await.unwrap();
            b.tokens().reload_keys().await.unwrap();
        }
        if clock.now() - cached.1 >= MAX_AGE {
            cached = (a.tokens().jwks(), clock.now());
        }
        for instance in [&a, &b] {
            let token = instance
                .tokens()
                .exchange(&presented, None, "192.0.2.1")
                .await
                .unwrap()
                .token;
            let kid = kid_of(&token);
            assert!(
                kids_in(&cached.0).contains(&kid),
                "at +{}s a token signed by {kid}, unknown to a JWKS fetched {}s ago",
                step * 10,
                (clock.now() - cached.1).whole_seconds()
            );
            signed_by_new |= kid == rotated.kid;
        }
    }
    assert!(signed_by_new, "the new key never started signing");
    assert_ne!(first_kid, rotated.kid);
    // `--now` (a compromised key) signs at once.
    let urgent = b.tokens().rotate(true).await.unwrap();
    assert_eq!(b.tokens().signing_kid(), urgent.kid);
}

/// Runs `sql` on the test database as its owner.
async fn run_sql(app: &TestApp, statements: &[&str]) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.ok();
}

/// A serialization failure (40001) is retried once: one that passes the second time is
/// never seen; one that keeps failing is an outage (503 with `Retry-After`), never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serialization_failure_is_retried_once_then_answered_503() {
    let app = TestApp::spawn(Backend::Postgres, &[]).await;
    // Every other insert into users fails as a serializable transaction that lost a race.
    run_sql(
        &app,
        &[
            "CREATE SEQUENCE conflicts",
            "CREATE FUNCTION conflict_every_other() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF nextval('conflicts') % 2 = 1 THEN \
             RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER conflict BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION conflict_every_other()",
        ],
    )
    .await;
    for email in ["ada@example.com", "bob@example.com"] {
        let response = app.register(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{email}: retried once");
    }
    // Now every insert fails: the second try fails too, and the answer is an outage.
    run_sql(
        &app,
        &[
            "CREATE OR REPLACE FUNCTION conflict_every_other() RETURNS trigger LANGUAGE plpgsql AS $$ \
           BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$",
        ],
    )
    .await;
    let response = app.register("alan@example.com", PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
}
