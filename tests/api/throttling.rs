//! Login throttling: once a budget of failures is spent, the next attempt is refused with
//! 429 and `Retry-After` whatever the password; a success resets the (email, IP) count;
//! the counts live in the database, so every instance sees them.

use reqwest::StatusCode;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, header, on_both_backends, set_cookies};

on_both_backends!(
    once_the_account_ip_budget_is_spent_even_the_right_password_is_throttled,
    a_success_before_the_budget_is_spent_resets_the_count,
    instances_on_one_database_share_the_counts,
    the_ip_budget_counts_failures_across_emails,
);

const WRONG: &str = "not the right passphrase";

async fn fail(app: &TestApp, email: &str) {
    let response = app.login_response(email, WRONG).await;
    expect_problem(response, StatusCode::UNAUTHORIZED).await;
}

/// Asserts a 429 problem with a `Retry-After` of whole seconds within the window.
async fn expect_throttled(response: reqwest::Response, window_seconds: u64) {
    assert!(set_cookies(response.headers()).is_empty());
    let retry_after = header(&response, "retry-after").expect("Retry-After");
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is whole seconds: {retry_after:?}"));
    assert!(seconds > 0 && seconds <= window_seconds, "Retry-After: {seconds}");
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
}

async fn once_the_account_ip_budget_is_spent_even_the_right_password_is_throttled(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "3/1m")]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    for _ in 0..3 {
        fail(&app, "ada@example.com").await;
    }
    expect_throttled(app.login_response("ada@example.com", PASSWORD).await, 60).await;
    expect_throttled(app.login_response("ADA@example.com ", WRONG).await, 60).await;
    // Another account from the same address has its own budget.
    app.login("grace@example.com", PASSWORD).await;
    app.stop().await;
}

async fn a_success_before_the_budget_is_spent_resets_the_count(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "3/1m")]).await;
    app.user("ada@example.com").await;
    // Six failures in all, never three in a row: each success starts the count afresh.
    for _ in 0..3 {
        fail(&app, "ada@example.com").await;
        fail(&app, "ada@example.com").await;
        app.login("ada@example.com", PASSWORD).await;
    }
    app.stop().await;
}

async fn instances_on_one_database_share_the_counts(backend: Backend) {
    let settings = [("SESAME_THROTTLE_ACCOUNT_IP", "3/1m")];
    let a = TestApp::spawn(backend, &settings).await;
    let b = TestApp::spawn_on(a.db.clone(), &settings).await;
    a.user("ada@example.com").await;
    fail(&a, "ada@example.com").await;
    fail(&b, "ada@example.com").await;
    fail(&a, "ada@example.com").await;
    expect_throttled(b.login_response("ada@example.com", PASSWORD).await, 60).await;
    expect_throttled(a.login_response("ada@example.com", PASSWORD).await, 60).await;
    b.stop().await;
    a.stop().await;
}

async fn the_ip_budget_counts_failures_across_emails(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_IP", "3/1m")]).await;
    app.user("ada@example.com").await;
    // Spraying: one failure each on three accounts, known or not.
    for email in ["ada@example.com", "grace@example.com", "alan@example.com"] {
        fail(&app, email).await;
    }
    expect_throttled(app.login_response("ada@example.com", PASSWORD).await, 60).await;
    expect_throttled(app.login_response("someone.new@example.com", WRONG).await, 60).await;
    app.stop().await;
}
