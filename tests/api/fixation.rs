//! Session fixation: a login always starts a new session with a handle of the server's
//! own making; a session cookie sent along with the login is ended, and a planted value
//! is never adopted.

use reqwest::StatusCode;
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, Session, TestApp, expect_problem, on_both_backends, session_from};

on_both_backends!(
    a_login_ends_the_session_it_arrived_with_and_issues_a_new_handle,
    a_planted_cookie_value_is_never_adopted_by_a_login,
);

/// Logs in while sending `cookie` (a `name=value` pair), as a browser holding it would.
async fn login_carrying(app: &TestApp, cookie: &str) -> Session {
    let response = app
        .http()
        .post(app.url("/login"))
        .header("cookie", cookie)
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    session_from(response).await
}

async fn a_login_ends_the_session_it_arrived_with_and_issues_a_new_handle(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let old = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(app.me(&old).await.status(), StatusCode::OK);

    let new = login_carrying(&app, &old.cookie).await;
    assert_ne!(new.handle(), old.handle());
    assert_ne!(new.id(), old.id());
    assert_ne!(new.csrf, old.csrf);

    expect_problem(app.me(&old).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.me(&new).await.status(), StatusCode::OK);
    app.stop().await;
}

async fn a_planted_cookie_value_is_never_adopted_by_a_login(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    // A well-formed handle (32 bytes, base64url) the server never issued, and garbage.
    let well_formed = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    assert_eq!(well_formed.len(), 43);
    for planted in [well_formed, "attacker-chosen-value", "not*a*handle"] {
        let cookie = format!("sesame_session={planted}");
        let session = login_carrying(&app, &cookie).await;
        assert_ne!(session.handle(), planted);
        assert_eq!(session.handle().len(), 43);
        assert_eq!(app.me(&session).await.status(), StatusCode::OK);

        // The planted value is still no credential, even with the real session's token.
        let attacker = Session {
            cookie: cookie.clone(),
            csrf: session.csrf.clone(),
            body: session.body.clone(),
        };
        expect_problem(app.me(&attacker).await, StatusCode::UNAUTHORIZED).await;
    }
    app.stop().await;
}
