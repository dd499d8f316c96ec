//! First-party login: the session cookie's whole life.

use reqwest::StatusCode;
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, on_both_backends, set_cookies};

on_both_backends!(
    a_login_sets_an_httponly_session_cookie_and_returns_a_csrf_token,
    a_replayed_cookie_after_logout_is_rejected,
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
