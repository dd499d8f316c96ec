//! Secrets never leak: every flow runs with logs captured at debug level, and no
//! password, session handle, CSRF token, API key or access token may appear in the logs,
//! in any response body, or in the `Debug` output of the types that hold them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp, set_cookies};

/// Everything logged by this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    })
}

fn assert_absent(haystack: &str, secrets: &[(&str, &str)], place: &str) {
    for (what, secret) in secrets {
        assert!(!secret.is_empty());
        assert!(!haystack.contains(secret), "{what} leaked into {place}");
    }
}

async fn every_flow_keeps_its_secrets(backend: Backend) {
    let logs = logs();
    let app = TestApp::spawn(backend, &[]).await;
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let new_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let mut bodies = String::new();
    let mut record = |body: &str| bodies.push_str(body);

    let created = app.register("leak@example.com", &password).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    record(&created.text().await.unwrap());
    // Failures too: a wrong password, and a password typed into the email field.
    for (email, pw) in [
        ("leak@example.com", "wrong-password-1"),
        (password.as_str(), password.as_str()),
    ] {
        let response = app.login_response(email, pw).await;
        assert!(response.status().is_client_error());
        record(&response.text().await.unwrap());
    }
    let session = app.login("leak@example.com", &password).await;
    let handle = session.cookie.split_once('=').unwrap().1.to_owned();
    let me = app.me(&session).await.text().await.unwrap();
    record(&me);
    let sessions = app
        .with_session(reqwest::Method::GET, "/sessions", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    record(&sessions);
    // A client, its key, a token, and every OAuth endpoint with good and bad input.
    let client: Value = app
        .with_session(reqwest::Method::POST, "/clients", &session)
        .json(&json!({"name": "leaky", "scopes": ["notes:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let api_key = client["api_key"]["key"].as_str().unwrap().to_owned();
    let token: Value = app
        .http()
        .post(app.url("/login"))
        .basic_auth(&client_id, Some(&api_key))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    let bad_key = format!("{}x", &api_key[..api_key.len() - 1]);
    for secret in [api_key.as_str(), bad_key.as_str()] {
        let response = app
            .http()
            .post(app.url("/login"))
            .json(&json!({"api_key": secret}))
            .send()
            .await
            .unwrap();
        record(&response.text().await.unwrap());
    }
    let bearer_me = app
        .http()
        .get(app.url("/me"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    record(&bearer_me);
    let forged = app
        .http()
        .get(app.url("/me"))
        .bearer_auth(format!("{access_token}x"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    record(&forged);
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let response = app
            .http()
            .post(app.url(path))
            .basic_auth(&client_id, Some(&api_key))
            .form(&[("token", access_token.as_str())])
            .send()
            .await
            .unwrap();
        record(&response.text().await.unwrap());
    }
    let changed = app
        .with_session(reqwest::Method::PUT, "/me/password", &session)
        .json(&json!({"current_password": password, "new_password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let logout = app
        .with_session(reqwest::Method::POST, "/logout", &session)
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(logout.headers()).join("\n");
    record(&logout.text().await.unwrap());
    let replay = app.me(&session).await.text().await.unwrap();
    record(&replay);
    app.stop().await;

    let secrets = [
        ("the password", password.as_str()),
        ("the new password", new_password.as_str()),
        ("the session handle", handle.as_str()),
        ("the API key", api_key.as_str()),
        ("the API key's secret part", &api_key[36..]),
        ("the access token", access_token.as_str()),
    ];
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logged.contains("login"), "logs were captured: {}", logged.len());
    assert_absent(&logged, &secrets, "the logs");
    assert_absent(&logged, &[("the CSRF token", session.csrf.as_str())], "the logs");
    // Bodies: the CSRF token and the key are meant to be shown (once, to their owner);
    // nothing else is.
    assert_absent(&bodies, &secrets[..3], "a response body");
    assert_absent(&bodies, &secrets[5..], "a response body");
    assert!(!cleared.contains(&handle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_keeps_its_secrets_on_sqlite() {
    every_flow_keeps_its_secrets(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_keeps_its_secrets_on_postgres() {
    every_flow_keeps_its_secrets(Backend::Postgres).await;
}

#[test]
fn debug_output_hides_every_secret() {
    use sesame_domain::{ApiKey, CsrfToken, Password, SessionHandle};
    let handle = SessionHandle::generate();
    let csrf = CsrfToken::generate();
    let (key, _) = ApiKey::generate();
    let password = Password::for_login("hunter2-hunter2".into()).unwrap();
    let printed = format!(
        "{handle:?} {:?} {csrf:?} {key:?} {:?} {password:?}",
        handle.hash(),
        key.hash()
    );
    for secret in [handle.expose(), csrf.expose(), &key.expose()[36..], "hunter2"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}
