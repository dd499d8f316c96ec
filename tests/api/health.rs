//! Liveness and readiness, and what requests get while the database is gone.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, header, on_both_backends};

on_both_backends!(liveness_answers_ok, readiness_answers_ok_while_the_database_answers);

async fn liveness_answers_ok(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let response = app.http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    app.stop().await;
}

async fn readiness_answers_ok_while_the_database_answers(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let response = app.http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

/// Asserts a 503 problem with a `Retry-After` of whole seconds.
async fn expect_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let retry_after = header(&response, "retry-after").unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s > 0),
        "{what}: Retry-After {retry_after:?}"
    );
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
}

mod postgres_only {
    use super::*;
    use sqlx::Connection as _;

    /// Drops the database from under the running server (as an outage or an operator
    /// mistake would), and checks that every request that needs it answers 503 promptly,
    /// while liveness stays up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_needing_a_dropped_database_answer_503_with_retry_after() {
        let app = TestApp::spawn(Backend::Postgres, &[]).await;
        app.user("ada@example.com").await;
        let session = app.login("ada@example.com", PASSWORD).await;
        assert_eq!(app.me(&session).await.status(), StatusCode::OK);

        let name = app.db.postgres_name().expect("a Postgres database").to_owned();
        let mut admin = sqlx::PgConnection::connect(&sesame_tests::postgres_admin_url())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();

        let patience = Duration::from_secs(8);
        let ready = app
            .http()
            .get(app.url("/readyz"))
            .timeout(patience)
            .send()
            .await
            .expect("/readyz answers in time");
        expect_unavailable(ready, "/readyz").await;

        // An instance may answer from a session it read a moment ago (for a short, bounded
        // time); past that, the session needs the database.
        let deadline = Instant::now() + Duration::from_secs(3);
        let me = loop {
            let me = app
                .http()
                .get(app.url("/me"))
                .header("cookie", &session.cookie)
                .timeout(patience)
                .send()
                .await
                .expect("/me answers in time");
            if me.status() != StatusCode::OK || Instant::now() > deadline {
                break me;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        expect_unavailable(me, "/me").await;

        let login = app
            .http()
            .post(app.url("/login"))
            .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
            .timeout(patience)
            .send()
            .await
            .expect("/login answers in time");
        expect_unavailable(login, "/login").await;

        let live = app
            .http()
            .get(app.url("/healthz"))
            .timeout(patience)
            .send()
            .await
            .unwrap();
        assert_eq!(
            live.status(),
            StatusCode::OK,
            "liveness does not depend on the database"
        );
        app.stop().await;
    }
}
