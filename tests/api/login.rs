//! First-party login: the session cookie's whole life, one answer for every kind of
//! failure (with the same timing), and what disabling an account does.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, TestApp, assert_clears_cookie, expect_problem, on_both_backends, set_cookies};

on_both_backends!(
    a_login_sets_an_httponly_session_cookie_and_returns_a_csrf_token,
    a_replayed_cookie_after_logout_is_rejected,
    a_secure_cookie_is_host_prefixed_and_marked_secure,
    unknown_email_wrong_password_and_disabled_account_get_the_same_answer,
    disabling_a_user_ends_their_sessions_and_blocks_login,
);

async fn a_login_sets_an_httponly_session_cookie_and_returns_a_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let user = app.user("Ada@Example.com").await;
    assert_eq!(user["email"], "ada@example.com");

    let response = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookies = set_cookies(response.headers());
    assert_eq!(cookies.len(), 1);
    let cookie = &cookies[0];
    assert!(cookie.starts_with("sesame_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    for absent in ["Domain", "Max-Age", "Expires", "Secure"] {
        assert!(!cookie.contains(absent), "{cookie} has {absent}");
    }
    let handle = cookie.split(';').next().unwrap().trim_start_matches("sesame_session=");
    assert_eq!(handle.len(), 43, "256 bits in base64url");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(!body.to_string().contains(handle), "the handle is never in a body");
    assert_eq!(body["user"]["id"], user["id"]);
    assert!(body["csrf_token"].as_str().unwrap().len() >= 32);
    assert!(body["session"]["id"].is_string() && body["session"]["expires_at"].is_string());
    app.stop().await;
}

async fn a_replayed_cookie_after_logout_is_rejected(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let me = app.me(&session).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["kind"], "user");

    let logout = app
        .with_session(reqwest::Method::POST, "/logout", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(logout.headers());
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("sesame_session=;") && c.contains("Max-Age=0") && c.contains("Path=/")),
        "{cleared:?}"
    );

    let replay = app.me(&session).await;
    let problem = expect_problem(replay, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["status"], 401);
    let _ = json!({});
    app.stop().await;
}

async fn a_secure_cookie_is_host_prefixed_and_marked_secure(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_COOKIE_SECURE", "true")]).await;
    app.user("ada@example.com").await;
    let response = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(response.headers());
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let attributes: Vec<&str> = cookies[0].split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("__Host-sesame_session="), "{cookies:?}");
    for attribute in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
        assert!(attributes.contains(&attribute), "{cookies:?} lacks {attribute}");
    }
    assert!(!cookies[0].contains("Domain"), "{cookies:?}");
    app.stop().await;
}

/// Everything a client can compare between two answers, except `Date`.
fn comparable(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, body.to_vec())
}

async fn unknown_email_wrong_password_and_disabled_account_get_the_same_answer(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    app.disable_user("grace@example.com").await;

    let mut answers = Vec::new();
    for (email, password) in [
        ("nobody@example.com", PASSWORD),
        ("ada@example.com", "not the right passphrase"),
        ("grace@example.com", PASSWORD),
    ] {
        let response = app.login_response(email, password).await;
        assert!(
            set_cookies(response.headers()).is_empty(),
            "{email}: no cookie on failure"
        );
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.bytes().await.unwrap();
        answers.push(comparable(status, &headers, &body));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    let problem: serde_json::Value = serde_json::from_slice(&answers[0].2).unwrap();
    assert_eq!(problem["status"], 401);
    assert!(
        answers[0]
            .1
            .contains(&("content-type".to_owned(), "application/problem+json".to_owned()))
    );
    assert_eq!(answers[0], answers[1], "unknown email vs wrong password");
    assert_eq!(answers[0], answers[2], "unknown email vs disabled account");
    app.stop().await;
}

async fn disabling_a_user_ends_their_sessions_and_blocks_login(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let first = app.login("ada@example.com", PASSWORD).await;
    let second = app.login("ada@example.com", PASSWORD).await;
    let bystander = app.login("grace@example.com", PASSWORD).await;
    assert_eq!(app.me(&first).await.status(), StatusCode::OK);

    app.disable_user("ada@example.com").await;

    // The CLI is another process: an instance may go on trusting a session it read a
    // moment ago, for a short and bounded time. Two seconds is well past that bound.
    for session in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(2);
        let response = loop {
            let response = app.me(session).await;
            if response.status() != StatusCode::OK || Instant::now() > deadline {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_clears_cookie(response.headers(), "sesame_session");
        expect_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let login = app.login_response("ada@example.com", PASSWORD).await;
    assert!(set_cookies(login.headers()).is_empty());
    expect_problem(login, StatusCode::UNAUTHORIZED).await;
    // Other users are untouched.
    assert_eq!(app.me(&bystander).await.status(), StatusCode::OK);
    app.stop().await;
}
