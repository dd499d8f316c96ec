//! Test support: a fresh database per test (SQLite file or Postgres database, dropped
//! afterwards), the real server started on port 0 through the same path as the binary,
//! and small helpers for the requests every test makes.
//!
//! Postgres comes from `SESAME_TEST_DATABASE_URL` (an admin connection able to create
//! databases), defaulting to `postgres://postgres@127.0.0.1:5432/postgres`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sesame_server::{Config, RunningServer};
use sqlx::Connection as _;

pub use reqwest;
pub use serde_json;

mod clients;
pub use clients::*;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A password that satisfies the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// The admin URL for creating per-test Postgres databases.
pub fn postgres_admin_url() -> String {
    std::env::var("SESAME_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Replaces the database name in a Postgres URL.
fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let root = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// A database that exists for one test and is removed when dropped (also on panic).
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
    None,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Arc<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
                Arc::new(Self {
                    url,
                    backend,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("sesame_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "cannot reach Postgres at {admin_url}: {e}\n\
                         Start one (e.g. `pg_ctlcluster 15 main start`), or point \
                         SESAME_TEST_DATABASE_URL at a server where this user may create databases."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                Arc::new(Self {
                    url: with_database(&admin_url, &name),
                    backend,
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

impl TestDb {
    /// Runs the `sesame` binary on this database with these extra settings, whatever its
    /// outcome; it is killed if it runs for more than 30 s.
    pub async fn sesame(&self, args: &[&str], settings: &[(&str, &str)]) -> std::process::Output {
        let mut command = std::process::Command::new(sesame_binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SESAME_DATABASE_URL", &self.url)
            .env("SESAME_LOG", "warn")
            .envs(settings.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("run the sesame binary");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while child.try_wait().expect("wait").is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            child.wait_with_output().expect("output")
        })
        .await
        .expect("join")
    }

    /// The Postgres database's name (`None` on SQLite), e.g. to drop it under a running
    /// server.
    pub fn postgres_name(&self) -> Option<&str> {
        if let Cleanup::Postgres { name, .. } = &self.cleanup {
            Some(name)
        } else {
            None
        }
    }

    /// A storage handle on this database, as the CLI opens one (e.g. `sesame user disable`).
    pub async fn store(&self) -> sesame_storage::Store {
        sesame_storage::Store::connect(&self.url, &sesame_storage::ConnectOptions::default())
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop may run inside a runtime; do the async work on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                    admin.close().await.ok()
                })
            })
            .join();
        }
    }
}

/// A setting name in `TestApp::spawn`'s list that carries the text of a TOML
/// configuration file rather than an environment variable.
pub const CONFIG_FILE: &str = "config.toml";

/// One running sesame, on its own port.
pub struct TestApp {
    pub base: String,
    pub db: Arc<TestDb>,
    pub config: Config,
    /// The settings it was started with, for the CLI runs that share its configuration.
    settings: Vec<(String, String)>,
    server: Option<RunningServer>,
    http: Client,
}

/// A signed-in session as a browser would hold it.
#[derive(Debug, Clone)]
pub struct Session {
    /// `name=value`, ready for a `Cookie` header.
    pub cookie: String,
    pub csrf: String,
    pub body: Value,
}

impl TestApp {
    /// Starts sesame on a fresh database with extra settings (`SESAME_*` names).
    pub async fn spawn(backend: Backend, settings: &[(&str, &str)]) -> Self {
        Self::spawn_on(TestDb::create(backend).await, settings).await
    }

    /// Starts another sesame on an existing database (several instances, one database).
    pub async fn spawn_on(db: Arc<TestDb>, settings: &[(&str, &str)]) -> Self {
        Self::spawn_with(db, settings, axum::Router::new()).await
    }

    /// Starts sesame on a fresh database, reading time from `clock`: the test moves it
    /// instead of sleeping past deadlines.
    pub async fn spawn_with_clock(
        backend: Backend,
        settings: &[(&str, &str)],
        clock: sesame_core::ManualClock,
    ) -> Self {
        Self::spawn_inner(
            TestDb::create(backend).await,
            settings,
            axum::Router::new(),
            Arc::new(clock),
        )
        .await
    }

    /// Starts another sesame on an existing database, reading time from `clock` (an
    /// instance whose clock is off).
    pub async fn spawn_on_with_clock(
        db: Arc<TestDb>,
        settings: &[(&str, &str)],
        clock: sesame_core::ManualClock,
    ) -> Self {
        Self::spawn_inner(db, settings, axum::Router::new(), Arc::new(clock)).await
    }

    /// Starts sesame with routes of the test's own merged in (an embedding service).
    pub async fn spawn_with(
        db: Arc<TestDb>,
        settings: &[(&str, &str)],
        extra: axum::Router<sesame_http::AppState>,
    ) -> Self {
        Self::spawn_inner(db, settings, extra, Arc::new(sesame_core::SystemClock)).await
    }

    async fn spawn_inner(
        db: Arc<TestDb>,
        settings: &[(&str, &str)],
        extra: axum::Router<sesame_http::AppState>,
        clock: sesame_core::SharedClock,
    ) -> Self {
        let mut env: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.insert("SESAME_DATABASE_URL".into(), db.url.clone());
        env.entry("SESAME_LISTEN".into())
            .or_insert_with(|| "127.0.0.1:0".into());
        // Every test registers its users from 127.0.0.1; the registration budget is
        // tested where a test sets it.
        env.entry("SESAME_THROTTLE_REGISTRATION".into())
            .or_insert_with(|| "100000/1h".into());
        if POLLING_ONLY.try_with(|on| *on).unwrap_or(false) {
            env.insert("SESAME_DATABASE_NOTIFY".into(), "false".into());
        }
        // A configuration file's text, for what only a file can say (tables).
        let file = env.remove(CONFIG_FILE);
        let config =
            Config::from_sources(file.as_deref(), |name| env.get(name).cloned()).expect("valid test configuration");
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
        let server = sesame_server::start_with_clock(&config, listener, extra, clock)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            base,
            db,
            config,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            server: Some(server),
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A plain client: no cookie store, so each test says exactly which cookie it sends.
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json("/users", &json!({"email": email, "password": password}))
            .await
    }

    /// Registers a user with [`PASSWORD`] and asserts it worked.
    pub async fn user(&self, email: &str) -> Value {
        let response = self.register(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED, "registering {email}");
        response.json().await.expect("user body")
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.post_json("/login", &json!({"email": email, "password": password}))
            .await
    }

    /// Logs in and asserts success.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let response = self.login_response(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {email}");
        session_from(response).await
    }

    /// A request carrying a session's cookie (and its CSRF token on unsafe methods).
    pub fn with_session(&self, method: reqwest::Method, path: &str, session: &Session) -> reqwest::RequestBuilder {
        let unsafe_method = !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
        let builder = self
            .http
            .request(method, self.url(path))
            .header("cookie", &session.cookie);
        if unsafe_method {
            builder.header("x-csrf-token", &session.csrf)
        } else {
            builder
        }
    }

    /// Runs the `sesame` binary on this app's database (an operator at the command line,
    /// in a process of its own); its output, after asserting it succeeded.
    pub async fn sesame(&self, args: &[&str]) -> String {
        let output = self.sesame_output(args).await;
        assert!(
            output.status.success(),
            "sesame {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs the `sesame` binary on this app's database and with its settings, whatever its
    /// outcome.
    pub async fn sesame_output(&self, args: &[&str]) -> std::process::Output {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .filter(|(k, _)| k != "SESAME_LISTEN" && k != CONFIG_FILE)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.db.sesame(args, &settings).await
    }

    /// Disables a user with `sesame user disable`.
    pub async fn disable_user(&self, email: &str) {
        self.sesame(&["user", "disable", email]).await;
    }

    /// The `/metrics` exposition text.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.expect("request");
        response.text().await.expect("metrics text")
    }

    pub async fn me(&self, session: &Session) -> Response {
        self.with_session(reqwest::Method::GET, "/me", session)
            .send()
            .await
            .expect("request")
    }
}

/// The `sesame` binary cargo built beside this test binary (`target/<profile>/sesame`).
pub fn sesame_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(format!("sesame{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p sesame-server --bin sesame` (`make test` does)",
        binary.display()
    );
    binary
}

/// Reads the session cookie and CSRF token out of a successful login response.
pub async fn session_from(response: Response) -> Session {
    let cookie = set_cookies(response.headers())
        .into_iter()
        .next()
        .expect("login sets a cookie");
    let name_value = cookie.split(';').next().expect("name=value").trim().to_owned();
    let body: Value = response.json().await.expect("login body");
    Session {
        cookie: name_value,
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
        body,
    }
}

impl Session {
    /// The cookie's value: the session handle itself.
    pub fn handle(&self) -> &str {
        self.cookie.split_once('=').map_or("", |(_, value)| value)
    }

    /// The session's public id, from the login body.
    pub fn id(&self) -> &str {
        self.body["session"]["id"].as_str().expect("session id")
    }
}

/// A header's value as text, if present (the first one when repeated).
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

/// Asserts the response clears the session cookie `name`: same name, `Path=/`, `Max-Age=0`.
/// Returns that `Set-Cookie` value.
pub fn assert_clears_cookie(headers: &HeaderMap, name: &str) -> String {
    let cookies = set_cookies(headers);
    let cleared = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {cookies:?}"));
    let attributes: Vec<&str> = cleared.split(';').map(str::trim).collect();
    assert_eq!(
        attributes[0],
        format!("{name}="),
        "the cleared value is empty: {cleared}"
    );
    assert!(attributes.contains(&"Max-Age=0"), "{cleared} lacks Max-Age=0");
    assert!(attributes.contains(&"Path=/"), "{cleared} lacks Path=/");
    cleared.clone()
}

/// All `Set-Cookie` header values.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v: &HeaderValue| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// Asserts a problem+json answer with this status, and returns its body.
pub async fn expect_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status.as_u16(), "problem status");
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "problem shape: {body}"
    );
    body
}

tokio::task_local! {
    static POLLING_ONLY: bool;
}

/// Runs `test` with every instance it starts set to `SESAME_DATABASE_NOTIFY=false`: no
/// `LISTEN`, so what one instance ends reaches the others by the 1 s poll and session
/// cache alone.
pub async fn polling_only<F: std::future::Future>(test: F) -> F::Output {
    POLLING_ONLY.scope(true, test).await
}

/// Runs each cross-instance test once more on Postgres with notifications off (module
/// `postgres_polling`): the documented bound must hold without them.
#[macro_export]
macro_rules! on_postgres_polling_only {
    ($($name:ident),* $(,)?) => {
        mod postgres_polling {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::polling_only(super::$name($crate::Backend::Postgres)).await;
                }
            )*
        }
    };
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A Postgres cluster of the test's own, which it may stop and start (fault injection).
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bindir: std::path::PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// initdb and start a throwaway cluster on a free port (as the `postgres` system user
    /// when running as root, since Postgres refuses to run as root).
    pub fn start() -> Self {
        let bindir = pg_bindir().expect(
            "a Postgres server installation (initdb, pg_ctl) is needed for the fault tests: \
             apt-get install postgresql",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let port = free_port();
        let cluster = Self {
            dir,
            bindir,
            port,
            as_postgres,
        };
        cluster.run("initdb", &["-D", &cluster.data(), "-U", "postgres", "-A", "trust"]);
        cluster.resume();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let output = command.args(args).output().expect("run a Postgres tool");
        assert!(
            output.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-w", "-o", &options, "start"],
        );
    }

    /// Stops the server at once, as a crash or a network cut would look to clients.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let program = self.bindir.join("pg_ctl");
        let data = self.data();
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn pg_bindir() -> Option<std::path::PathBuf> {
    if let Ok(output) = std::process::Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut candidates: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop()
}

impl TestDb {
    /// A database on a private cluster (for fault tests); nothing to drop afterwards, the
    /// cluster goes away whole.
    pub fn on_cluster(cluster: &PrivateCluster) -> Arc<Self> {
        Arc::new(Self {
            url: cluster.url(),
            backend: Backend::Postgres,
            cleanup: Cleanup::None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
