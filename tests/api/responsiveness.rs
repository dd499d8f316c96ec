//! Password hashing runs off the async workers on a bounded pool: a flood of logins
//! queues up there, and other requests are still answered at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sesame_tests::{Backend, TestApp, on_both_backends};

on_both_backends!(a_login_flood_does_not_stall_other_requests);

/// Enough logins to keep every hashing slot busy for several rounds: at least 30, and
/// 15 per core, since the pool has one slot per core.
fn flood_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (15 * cores).max(30)
}

async fn a_login_flood_does_not_stall_other_requests(backend: Backend) {
    let generous = "100000/1m";
    let app = TestApp::spawn(
        backend,
        &[
            ("SESAME_THROTTLE_ACCOUNT_IP", generous),
            ("SESAME_THROTTLE_ACCOUNT", generous),
            ("SESAME_THROTTLE_IP", generous),
        ],
    )
    .await;
    app.user("ada@example.com").await;
    // Warm the connection pool and the health route.
    assert_eq!(
        app.http().get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let flood = flood_size();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut logins = Vec::new();
    for _ in 0..flood {
        let request = app
            .http()
            .post(app.url("/login"))
            .json(&json!({"email": "ada@example.com", "password": "not the right passphrase"}));
        let finished = finished.clone();
        logins.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            finished.fetch_add(1, Ordering::SeqCst);
            response.status()
        }));
    }
    // Let the flood reach the server and fill the hashing pool.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut samples = Vec::new();
    while samples.len() < 5 {
        let started = Instant::now();
        let response = app.http().get(app.url("/healthz")).send().await.unwrap();
        let took = started.elapsed();
        let outstanding = flood - finished.load(Ordering::SeqCst);
        assert_eq!(response.status(), StatusCode::OK);
        samples.push((took, outstanding));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for status in statuses_of(logins).await {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for (took, outstanding) in &samples {
        assert!(
            *outstanding > 0,
            "the flood was over before /healthz was measured: {samples:?}"
        );
        assert!(
            *took < Duration::from_millis(250),
            "/healthz took {took:?} during the flood: {samples:?}"
        );
    }
    app.stop().await;
}

async fn statuses_of(handles: Vec<tokio::task::JoinHandle<StatusCode>>) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    statuses
}
