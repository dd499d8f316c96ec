//! Three instances on one database, no sticky sessions: a session made on one works on
//! the others, and whatever ends it on one ends it on all within the documented bound
//! (1 s: how long an instance trusts a session it has read).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, Session, TestApp, on_both_backends, on_postgres_polling_only};

/// The documented bound, plus slack for a loaded machine.
const BOUND: Duration = Duration::from_millis(2_500);

on_both_backends!(
    a_session_made_on_one_instance_works_on_the_others,
    logout_on_one_instance_ends_the_session_on_all,
    revoking_a_session_on_one_instance_ends_it_on_all,
    a_password_change_on_one_instance_ends_other_sessions_on_all,
    disabling_a_user_ends_their_sessions_on_every_instance,
);

// What one instance ends, the others refuse within the bound without notifications too.
on_postgres_polling_only!(
    logout_on_one_instance_ends_the_session_on_all,
    revoking_a_session_on_one_instance_ends_it_on_all,
    a_password_change_on_one_instance_ends_other_sessions_on_all,
    disabling_a_user_ends_their_sessions_on_every_instance,
);

async fn three(backend: Backend) -> [TestApp; 3] {
    let a = TestApp::spawn(backend, &[]).await;
    let b = TestApp::spawn_on(a.db.clone(), &[]).await;
    let c = TestApp::spawn_on(a.db.clone(), &[]).await;
    [a, b, c]
}

/// Waits until `/me` with this session answers `status` on `app`, up to the bound.
async fn eventually_me(app: &TestApp, session: &Session, status: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        if app.me(session).await.status() == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < BOUND,
            "{} did not answer {status} within {BOUND:?}",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_session_made_on_one_instance_works_on_the_others(backend: Backend) {
    let [a, b, c] = three(backend).await;
    a.user("ada@example.com").await;
    let session = a.login("ada@example.com", PASSWORD).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&session).await.status(), StatusCode::OK, "{}", app.base);
    }
    // Unsafe requests too: the CSRF token is the session's, not the instance's.
    let listed = c
        .with_session(Method::DELETE, "/sessions", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::NO_CONTENT);
}

async fn logout_on_one_instance_ends_the_session_on_all(backend: Backend) {
    let [a, b, c] = three(backend).await;
    a.user("ada@example.com").await;
    let session = a.login("ada@example.com", PASSWORD).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    }
    let logout = b.with_session(Method::POST, "/logout", &session).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // At once on the instance that did it, within the bound on the others.
    assert_eq!(b.me(&session).await.status(), StatusCode::UNAUTHORIZED);
    eventually_me(&a, &session, StatusCode::UNAUTHORIZED).await;
    eventually_me(&c, &session, StatusCode::UNAUTHORIZED).await;
}

async fn revoking_a_session_on_one_instance_ends_it_on_all(backend: Backend) {
    let [a, b, c] = three(backend).await;
    a.user("ada@example.com").await;
    let laptop = a.login("ada@example.com", PASSWORD).await;
    let phone = b.login("ada@example.com", PASSWORD).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&phone).await.status(), StatusCode::OK);
    }
    let phone_id = phone.body["session"]["id"].as_str().unwrap();
    let revoked = c
        .with_session(Method::DELETE, &format!("/sessions/{phone_id}"), &laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.me(&phone).await.status(), StatusCode::UNAUTHORIZED);
    eventually_me(&a, &phone, StatusCode::UNAUTHORIZED).await;
    eventually_me(&b, &phone, StatusCode::UNAUTHORIZED).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&laptop).await.status(), StatusCode::OK);
    }
}

async fn a_password_change_on_one_instance_ends_other_sessions_on_all(backend: Backend) {
    let [a, b, c] = three(backend).await;
    a.user("ada@example.com").await;
    let kept = a.login("ada@example.com", PASSWORD).await;
    let other = b.login("ada@example.com", PASSWORD).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    }
    let changed = c
        .with_session(Method::PUT, "/me/password", &kept)
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    for app in [&a, &b, &c] {
        eventually_me(app, &other, StatusCode::UNAUTHORIZED).await;
        assert_eq!(app.me(&kept).await.status(), StatusCode::OK);
    }
    // The new password works everywhere, the old one nowhere.
    for app in [&a, &b, &c] {
        assert_eq!(
            app.login_response("ada@example.com", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    b.login("ada@example.com", "a brand new passphrase").await;
}

async fn disabling_a_user_ends_their_sessions_on_every_instance(backend: Backend) {
    let [a, b, c] = three(backend).await;
    a.user("ada@example.com").await;
    let session = a.login("ada@example.com", PASSWORD).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    }
    // `sesame user disable`, from outside every instance.
    a.disable_user("ada@example.com").await;
    for app in [&a, &b, &c] {
        eventually_me(app, &session, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            app.login_response("ada@example.com", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
