//! Forward auth behind a real nginx and a real Caddy (Debian's packages; `make test`
//! installs them when missing, tests/install-tools.sh): the README's configurations, with
//! only their three addresses replaced, in front of a small application that shows what
//! reached it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp};

const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";

/// A configuration of the README, from `start` to the end of its code block, as an
/// operator copies it.
fn readme_block(start: &str) -> String {
    let readme = include_str!("../../README.md");
    let from = readme.find(start).unwrap_or_else(|| panic!("the README's {start:?}"));
    let block = &readme[from..];
    let end = block.find("```").expect("the end of the configuration");
    block[..end].to_owned()
}

/// The README's three addresses, replaced by the test's.
fn with_addresses(config: &str, sesame: &str, app: &str, port: u16) -> String {
    config
        .replace("127.0.0.1:8080", sesame)
        .replace("127.0.0.1:3000", app)
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
}

async fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what} never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A proxy in the foreground, with its files in a directory of its own.
struct Proxy {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Proxy {
    /// nginx, one process, the README's server block inside an `http { }` of ours.
    async fn nginx(sesame: &str, app: &str) -> Self {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "{NGINX} is missing: install Debian's nginx (make test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let site = with_addresses(&readme_block("# nginx: forward auth"), sesame, app, port);
        let prefix = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {prefix}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {prefix}/body;\n proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n uwsgi_temp_path {prefix}/uwsgi;\n scgi_temp_path {prefix}/scgi;\n\
             {site}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx starts");
        wait_for_port(port, "nginx").await;
        Self { child, _dir: dir, port }
    }

    /// Caddy, with the README's whole Caddyfile, its data and config under a directory of
    /// its own.
    async fn caddy(sesame: &str, app: &str) -> Self {
        assert!(
            std::path::Path::new(CADDY).exists(),
            "{CADDY} is missing: install Debian's caddy (make test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let caddyfile = readme_block("http://127.0.0.1:8000 {");
        let caddyfile = with_addresses(&caddyfile, sesame, app, port);
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, caddyfile).unwrap();
        let child = Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy starts");
        wait_for_port(port, "caddy").await;
        Self { child, _dir: dir, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The application behind the proxy: answers every request with the `X-Sesame-*` headers
/// it received, and keeps count.
struct Upstream {
    addr: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let router = axum::Router::new().fallback(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let mut sesame = serde_json::Map::new();
                for (name, value) in &headers {
                    if name.as_str().starts_with("x-sesame-") {
                        let previous = sesame.insert(name.as_str().to_owned(), json!(value.to_str().unwrap_or("?")));
                        assert!(previous.is_none(), "{name} reached the application twice");
                    }
                }
                let body = Value::Object(sesame);
                log.lock().unwrap().push(body.clone());
                axum::Json(body)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Self { addr, seen, task }
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the application saw of a request that passed.
async fn passed(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_passes_who_is_calling_and_strips_what_a_client_forged() {
    let sesame = TestApp::spawn(Backend::Sqlite, &[]).await;
    let upstream = Upstream::start().await;
    let sesame_addr = sesame.base.trim_start_matches("http://").to_owned();
    let proxy = Proxy::nginx(&sesame_addr, &upstream.addr).await;
    through(&sesame, &upstream, &proxy).await;
    drop(proxy);
    sesame.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_passes_who_is_calling_and_strips_what_a_client_forged() {
    let sesame = TestApp::spawn(Backend::Sqlite, &[]).await;
    let upstream = Upstream::start().await;
    let sesame_addr = sesame.base.trim_start_matches("http://").to_owned();
    let proxy = Proxy::caddy(&sesame_addr, &upstream.addr).await;
    through(&sesame, &upstream, &proxy).await;
    drop(proxy);
    sesame.stop().await;
}

/// The same requests through either proxy.
async fn through(sesame: &TestApp, upstream: &Upstream, nginx: &Proxy) {
    let http = reqwest::Client::new();
    let forged = [
        ("x-sesame-kind", "user"),
        ("x-sesame-subject", "00000000-0000-0000-0000-000000000000"),
        ("x-sesame-user-email", "root@example.com"),
        ("x-sesame-scopes", "admin"),
        ("x-sesame-client-id", "cli_forged"),
    ];
    let with_forgeries = |mut request: reqwest::RequestBuilder| {
        for (name, value) in forged {
            request = request.header(name, value);
        }
        request
    };

    // No credential: nginx answers 401 and the application never sees the request, forged
    // headers or not.
    let refused = with_forgeries(http.get(nginx.url("/notes"))).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.hits(), 0);

    // A session cookie: the application learns who, from sesame, not from the client.
    let ada = sesame.signed_in("ada@example.com").await;
    let seen = passed(
        with_forgeries(http.get(nginx.url("/notes?page=2")))
            .header("cookie", &ada.cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["x-sesame-kind"], "user");
    assert_eq!(seen["x-sesame-subject"], ada.body["user"]["id"]);
    assert_eq!(seen["x-sesame-user-email"], "ada@example.com");
    assert!(seen.get("x-sesame-scopes").is_none_or(|s| s == ""), "{seen}");
    assert!(seen.get("x-sesame-client-id").is_none_or(|s| s == ""), "{seen}");

    // A bearer token: a client, with nothing of the forged user left.
    let client = sesame.create_client(&ada, &["notes:read"]).await;
    let token = sesame.token(&client.client_id, &client.key, None).await;
    let seen = passed(
        with_forgeries(http.post(nginx.url("/notes")))
            .bearer_auth(&token)
            .json(&json!({"text": "hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["x-sesame-kind"], "client");
    assert_eq!(seen["x-sesame-client-id"], client.client_id.as_str());
    assert_eq!(seen["x-sesame-scopes"], "notes:read");
    assert!(seen.get("x-sesame-user-email").is_none_or(|s| s == ""), "{seen}");

    // An unsafe request by cookie without the CSRF token: 403, not passed on; with it, passed.
    let before = upstream.hits();
    let no_csrf = http
        .post(nginx.url("/notes"))
        .header("cookie", &ada.cookie)
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    assert_eq!(upstream.hits(), before);
    let with_csrf = http
        .post(nginx.url("/notes"))
        .header("cookie", &ada.cookie)
        .header("x-csrf-token", &ada.csrf)
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(passed(with_csrf).await["x-sesame-kind"], "user");
}
