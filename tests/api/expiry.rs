//! Session lifetimes: the idle deadline slides with use, the absolute one does not, and
//! an ended session is answered with 401 and a cookie-clearing `Set-Cookie`.
//!
//! The server reads time from a manual clock that each test moves: no sleeping.

use std::time::Duration;

use reqwest::StatusCode;
use sesame_core::{Clock as _, ManualClock};
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
    let clock = ManualClock::new();
    let app = TestApp::spawn_with_clock(backend, &[("SESAME_SESSION_IDLE", "2s")], clock.clone()).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let expires = OffsetDateTime::parse(session.body["session"]["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let remaining = expires - clock.now();
    assert!(
        remaining <= time::Duration::seconds(2),
        "expires_at honours the idle lifetime: {remaining}"
    );

    clock.advance(Duration::from_millis(1_900));
    assert_eq!(
        app.me(&session).await.status(),
        StatusCode::OK,
        "alive just before the deadline"
    );
    // Used at 1.9 s, so its deadline is now 3.9 s; 2.1 s of silence ends it.
    clock.advance(Duration::from_millis(2_100));
    expect_ended(&app, &session).await;
    // Ended for good: it does not come back.
    expect_problem(app.me(&session).await, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn using_a_session_keeps_pushing_its_idle_deadline_back(backend: Backend) {
    let clock = ManualClock::new();
    let app = TestApp::spawn_with_clock(backend, &[("SESAME_SESSION_IDLE", "3s")], clock.clone()).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    // Five uses two seconds apart: 10 s in all, far past the 3 s idle lifetime.
    for step in 1..=5 {
        clock.advance(Duration::from_secs(2));
        let response = app.me(&session).await;
        assert_eq!(response.status(), StatusCode::OK, "alive after {} s", step * 2);
    }
    app.stop().await;
}

async fn a_session_in_constant_use_still_ends_at_its_absolute_lifetime(backend: Backend) {
    let clock = ManualClock::new();
    let app = TestApp::spawn_with_clock(
        backend,
        &[("SESAME_SESSION_ABSOLUTE", "3s"), ("SESAME_SESSION_IDLE", "1h")],
        clock.clone(),
    )
    .await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let expires = OffsetDateTime::parse(session.body["session"]["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(
        expires - clock.now() <= time::Duration::seconds(3),
        "expires_at honours the absolute lifetime"
    );
    // Used every 200 ms right up to the deadline; the uses must not extend it.
    for step in 1..=14 {
        clock.advance(Duration::from_millis(200));
        assert_eq!(
            app.me(&session).await.status(),
            StatusCode::OK,
            "alive after {} ms",
            step * 200
        );
    }
    clock.advance(Duration::from_millis(400));
    expect_ended(&app, &session).await;
    app.stop().await;
}
