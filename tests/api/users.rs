//! Registration.

use reqwest::StatusCode;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, on_both_backends};

on_both_backends!(a_taken_email_is_a_conflict_not_a_server_error);

async fn a_taken_email_is_a_conflict_not_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    for again in ["ada@example.com", " ADA@Example.com "] {
        let problem = expect_problem(app.register(again, PASSWORD).await, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:sesame:problem:email-taken");
    }
    app.stop().await;
}
