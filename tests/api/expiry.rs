//! Session lifetimes: the idle deadline slides with use, the absolute one does not, and
//! an ended session is answered with 401 and a cookie-clearing `Set-Cookie`.
//!
//! These tests sleep past deadlines on purpose; the lifetimes are a few seconds so the
//! sleeps stay short.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sesame_tests::{Backend, PASSWORD, Session, TestApp, assert_clears_cookie, expect_problem, on_both_backends};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

on_both_backends!(
    a_session_unused_for_the_idle_lifetime_ends_and_its_cookie_is_cleared,
    using_a_session_keeps_pushing_its_idle_deadline_back,
    a_session_in_constant_use_still_ends_at_its_absolute_lifetime,
);

async fn expect_ended(app: &TestApp, session: &Session) {
    let response = app.me(session).await;
    assert_clears_cookie(response.headers(), "sesame_session");
    expect_problem(response, StatusCode::UNAUTHORIZED).await;
}

async fn a_session_unused_for_the_idle_lifetime_ends_and_its_cookie_is_cleared(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_SESSION_IDLE", "2s")]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let expires = OffsetDateTime::parse(session.body["session"]["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let remaining = expires - OffsetDateTime::now_utc();
    assert!(
        remaining <= time::Duration::seconds(2),
        "expires_at honours the idle lifetime: {remaining}"
    );

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    expect_ended(&app, &session).await;
    // Ended for good: it does not come back.
    expect_problem(app.me(&session).await, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn using_a_session_keeps_pushing_its_idle_deadline_back(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_SESSION_IDLE", "3s")]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let started = Instant::now();
    // Five uses a second apart: well past the 3 s idle lifetime in total.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let response = app.me(&session).await;
        assert_eq!(response.status(), StatusCode::OK, "alive after {:?}", started.elapsed());
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    app.stop().await;
}

async fn a_session_in_constant_use_still_ends_at_its_absolute_lifetime(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        &[("SESAME_SESSION_ABSOLUTE", "3s"), ("SESAME_SESSION_IDLE", "1h")],
    )
    .await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let logged_in = Instant::now();
    let expires = OffsetDateTime::parse(session.body["session"]["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(
        expires - OffsetDateTime::now_utc() <= time::Duration::seconds(3),
        "expires_at honours the absolute lifetime"
    );

    while logged_in.elapsed() < Duration::from_millis(2_000) {
        assert_eq!(
            app.me(&session).await.status(),
            StatusCode::OK,
            "alive after {:?}",
            logged_in.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    while logged_in.elapsed() < Duration::from_millis(3_200) {
        // Keep using it right up to the deadline; the uses must not extend it.
        let _ = app.me(&session).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    expect_ended(&app, &session).await;
    app.stop().await;
}
