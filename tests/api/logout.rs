//! `POST /logout`: the session ends on the server, the cookie is cleared the way it was
//! set, and the request is CSRF-protected like every unsafe cookie request.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sesame_tests::{Backend, PASSWORD, TestApp, assert_clears_cookie, expect_problem, on_both_backends, set_cookies};

on_both_backends!(
    logging_out_ends_only_that_session_and_clears_its_cookie,
    a_secure_cookie_is_cleared_with_its_prefix_and_secure_attribute,
    logging_out_without_a_session_is_still_no_content,
    a_logout_without_the_csrf_token_is_refused_and_the_session_lives_on,
);

async fn logging_out_ends_only_that_session_and_clears_its_cookie(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let other = app.login("ada@example.com", PASSWORD).await;
    let me = app.me(&session).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["kind"], "user");

    let logout = app
        .with_session(Method::POST, "/logout", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cleared = assert_clears_cookie(logout.headers(), "sesame_session");
    assert!(!cleared.contains("Secure"), "{cleared}");
    assert!(logout.bytes().await.unwrap().is_empty());

    let replay = app.me(&session).await;
    expect_problem(replay, StatusCode::UNAUTHORIZED).await;
    // Only that session ended.
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    app.stop().await;
}

async fn a_secure_cookie_is_cleared_with_its_prefix_and_secure_attribute(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_COOKIE_SECURE", "true")]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    assert!(session.cookie.starts_with("__Host-sesame_session="));
    let logout = app
        .with_session(Method::POST, "/logout", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cleared = assert_clears_cookie(logout.headers(), "__Host-sesame_session");
    assert!(cleared.split(';').any(|a| a.trim() == "Secure"), "{cleared}");
    expect_problem(app.me(&session).await, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn logging_out_without_a_session_is_still_no_content(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let response = app.http().post(app.url("/logout")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(set_cookies(response.headers()).is_empty(), "nothing to clear");

    // A stale cookie is cleared too.
    let response = app
        .http()
        .post(app.url("/logout"))
        .header("cookie", "sesame_session=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_clears_cookie(response.headers(), "sesame_session");
    app.stop().await;
}

async fn a_logout_without_the_csrf_token_is_refused_and_the_session_lives_on(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let response = app
        .http()
        .post(app.url("/logout"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(response.headers()).is_empty(), "the cookie is not cleared");
    expect_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    app.stop().await;
}
