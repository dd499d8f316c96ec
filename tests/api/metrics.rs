//! `GET /metrics`: Prometheus text that counts what happened.

use reqwest::StatusCode;
use sesame_tests::{Backend, PASSWORD, TestApp, on_both_backends};

on_both_backends!(metrics_count_logins_by_result_and_time_requests_by_route);

async fn metrics_count_logins_by_result_and_time_requests_by_route(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.login("ada@example.com", PASSWORD).await;
    let wrong = app.login_response("ada@example.com", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_again = app.login_response("nobody@example.com", "not the password").await;
    assert_eq!(wrong_again.status(), StatusCode::UNAUTHORIZED);
    app.http().get(app.url("/healthz")).send().await.unwrap();
    app.http()
        .get(app.url("/no/such/path/secret-123"))
        .send()
        .await
        .unwrap();

    let response = app.http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("sesame_logins_total{result=\"success\"} 1"), "{text}");
    assert!(
        text.contains("sesame_logins_total{result=\"invalid_credentials\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("sesame_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sesame_http_request_duration_seconds_count{method=\"POST\",route=\"/login\",status=\"401\"} 2"),
        "{text}"
    );
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(!text.contains("secret-123"), "raw paths never become labels");
    assert!(text.contains("sesame_hashing_jobs 0"), "{text}");
    app.stop().await;
}
