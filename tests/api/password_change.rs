//! `PUT /me/password`: proves the current password, applies the policy to the new one,
//! and ends every other session of the user.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, Session, TestApp, expect_problem, on_both_backends};

on_both_backends!(
    a_password_change_ends_the_other_sessions_and_replaces_the_password,
    a_wrong_current_password_is_forbidden_and_changes_nothing,
    a_new_password_outside_the_policy_is_a_validation_error_naming_new_password,
    a_password_change_without_the_csrf_token_is_forbidden,
);

const NEW_PASSWORD: &str = "a brand new and rather long passphrase";

async fn change(app: &TestApp, session: &Session, current: &str, new: &str) -> reqwest::Response {
    app.with_session(Method::PUT, "/me/password", session)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn a_password_change_ends_the_other_sessions_and_replaces_the_password(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let current = app.login("ada@example.com", PASSWORD).await;
    let other = app.login("ada@example.com", PASSWORD).await;
    let grace = app.login("grace@example.com", PASSWORD).await;

    let response = change(&app, &current, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    expect_problem(app.me(&other).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.me(&current).await.status(),
        StatusCode::OK,
        "the current session survives"
    );
    assert_eq!(
        app.me(&grace).await.status(),
        StatusCode::OK,
        "other users are untouched"
    );

    expect_problem(
        app.login_response("ada@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.login("ada@example.com", NEW_PASSWORD).await;
    app.stop().await;
}

async fn a_wrong_current_password_is_forbidden_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let current = app.login("ada@example.com", PASSWORD).await;
    let other = app.login("ada@example.com", PASSWORD).await;

    let response = change(&app, &current, "not the current passphrase", NEW_PASSWORD).await;
    let problem = expect_problem(response, StatusCode::FORBIDDEN).await;
    assert!(!problem.to_string().contains(NEW_PASSWORD));

    assert_eq!(app.me(&other).await.status(), StatusCode::OK, "no session ended");
    expect_problem(
        app.login_response("ada@example.com", NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.login("ada@example.com", PASSWORD).await;
    app.stop().await;
}

async fn a_new_password_outside_the_policy_is_a_validation_error_naming_new_password(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let current = app.login("ada@example.com", PASSWORD).await;
    let too_long = "x".repeat(1025);
    for new in ["short", "password123", too_long.as_str()] {
        let response = change(&app, &current, PASSWORD, new).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["new_password"], "{problem}");
    }
    // The old password still works.
    app.login("ada@example.com", PASSWORD).await;
    app.stop().await;
}

async fn a_password_change_without_the_csrf_token_is_forbidden(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let other = app.login("ada@example.com", PASSWORD).await;
    let response = app
        .http()
        .put(app.url("/me/password"))
        .header("cookie", &session.cookie)
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    app.login("ada@example.com", PASSWORD).await;
    app.stop().await;
}
