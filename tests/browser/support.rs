//! A headless Chromium behind its chromedriver, and a stand-in for an app's loopback
//! redirect listener.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command};

/// How long a page may take to reach the state a test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// Debian's paths for the browser and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session through
    /// it, at a phone's width.
    pub async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (make test does)"
            );
        }
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--window-size=390,844",
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                // Chromedriver refuses connections until it is listening.
                Err(_) if started.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no Chromium session through chromedriver: {error}"),
            }
        };
        Self { driver, client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until an element matching `locator` is on the page.
    pub async fn wait_for(&self, locator: Locator<'_>) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("never appeared: {e}"))
    }

    /// Waits until the page's URL has `path`; the URL.
    pub async fn wait_for_path(&self, path: &str) -> url::Url {
        let started = Instant::now();
        loop {
            let url = self.client.current_url().await.expect("a current URL");
            if url.path() == path {
                return url;
            }
            if started.elapsed() >= PATIENCE {
                let source = self.client.source().await.unwrap_or_default();
                panic!("never reached {path}; at {url}, showing:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a window other than `current` to open; its handle.
    pub async fn wait_for_new_window(&self, current: &WindowHandle) -> WindowHandle {
        let started = Instant::now();
        loop {
            let windows = self.client.windows().await.expect("the windows");
            if let Some(other) = windows.into_iter().find(|w| w != current) {
                return other;
            }
            assert!(started.elapsed() < PATIENCE, "no popup opened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` windows are open.
    pub async fn wait_for_windows(&self, count: usize) {
        let started = Instant::now();
        loop {
            let open = self.client.windows().await.expect("the windows").len();
            if open == count {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "{open} windows open, not {count}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` returns something other than `null`; that.
    pub async fn wait_for_script(&self, script: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let value = self.client.execute(script, vec![]).await.expect("the script runs");
            if !value.is_null() {
                return value;
            }
            if started.elapsed() >= PATIENCE {
                let source = self.client.source().await.unwrap_or_default();
                panic!("the script never answered; the page shows:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `email` and `password` into a sign-in form (`#email`, `#password`) and
    /// submits it with Enter, as a person does; the password field.
    pub async fn sign_in(&self, email: &str, password: &str) -> Element {
        self.wait_for(Locator::Css("#email"))
            .await
            .send_keys(email)
            .await
            .expect("typing the email");
        let field = self.wait_for(Locator::Css("#password")).await;
        field.send_keys(password).await.expect("typing the password");
        field
            .send_keys(&fantoccini::key::Key::Enter.to_string())
            .await
            .expect("pressing Enter");
        field
    }

    /// Clicks the element `locator` finds, once it is there.
    pub async fn click(&self, locator: Locator<'_>) {
        self.wait_for(locator).await.click().await.expect("a click");
    }

    /// The text of the element `css` finds.
    pub async fn text_of(&self, css: &str) -> String {
        self.wait_for(Locator::Css(css)).await.text().await.expect("its text")
    }

    /// Waits until the element `css` finds shows `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            let shown = self.text_of(css).await;
            if shown.contains(text) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} never said {text:?}; it says {shown:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        self.client.clone().close().await.ok();
    }
}

impl Drop for Browser {
    /// The driver goes with the test, however it ends.
    fn drop(&mut self) {
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

/// An app's redirect listener on a loopback port: answers any path, counting visits to
/// `/callback` and requests that told it where they came from (`Referer`).
pub struct Callback {
    port: u16,
    hits: Arc<AtomicUsize>,
    referers: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Callback {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let referers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counted, with_referer) = (hits.clone(), referers.clone());
        let router = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let (counted, with_referer) = (counted.clone(), with_referer.clone());
            async move {
                // The browser also asks for /favicon.ico.
                if uri.path() == "/callback" {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(referer) = headers.get("referer").and_then(|r| r.to_str().ok()) {
                    with_referer.lock().unwrap().push(referer.to_owned());
                }
                axum::response::Html("<!doctype html><title>App</title><p>Signed in.</p>")
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Self {
            port,
            hits,
            referers,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The `Referer`s requests carried.
    pub fn referers(&self) -> Vec<String> {
        self.referers.lock().unwrap().clone()
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A single-page app on a site of its own: one page that signs in to sesame (at an
/// address given once sesame is up) with `credentials: "include"`, then shows `GET /me`
/// and `GET /sessions`.
pub struct Spa {
    port: u16,
    api: Arc<std::sync::OnceLock<String>>,
    task: tokio::task::JoinHandle<()>,
}

const SPA_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SPA</title></head>
<body>
<form id="signin"><label for="email">Email</label><input id="email">
<label for="password">Password</label><input id="password" type="password">
<button type="submit">Sign in</button></form>
<p id="me"></p><pre id="sessions"></pre>
<script src="/app.js"></script>
</body></html>"#;

const SPA_SCRIPT: &str = r#"
document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const base = await (await fetch("/api")).text();
  const login = await fetch(base + "/login", {
    method: "POST", credentials: "include",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email: document.getElementById("email").value,
                          password: document.getElementById("password").value}),
  });
  if (!login.ok) { document.getElementById("me").textContent = "login " + login.status; return; }
  const me = await fetch(base + "/me", {credentials: "include"});
  document.getElementById("me").textContent = me.ok ? (await me.json()).user.email : "me " + me.status;
  const sessions = await fetch(base + "/sessions", {credentials: "include"});
  document.getElementById("sessions").textContent = JSON.stringify(await sessions.json());
});
"#;

impl Spa {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
        let base = api.clone();
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { axum::response::Html(SPA_PAGE) }))
            .route(
                "/app.js",
                axum::routing::get(|| async { ([("content-type", "text/javascript")], SPA_SCRIPT) }),
            )
            .route(
                "/api",
                axum::routing::get(move || {
                    let base = base.clone();
                    async move { base.get().cloned().unwrap_or_default() }
                }),
            );
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Self { port, api, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the SPA finds sesame.
    pub fn serve_for(&self, base: &str) {
        self.api.set(base.to_owned()).ok();
    }
}

impl Drop for Spa {
    fn drop(&mut self) {
        self.task.abort();
    }
}
