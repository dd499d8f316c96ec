//! Timing: an unknown email costs the same time as a wrong password (a dummy argon2
//! verification), so response times reveal nothing about who has an account.
//!
//! A test binary of its own: cargo runs test binaries one after another, so no other
//! test's load skews these measurements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sesame_tests::{Backend, TestApp, on_both_backends};

on_both_backends!(unknown_emails_and_wrong_passwords_take_the_same_time);

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Without the dummy verification an unknown email answers tens of times faster than a
/// wrong password; with it, the medians agree within 10%. Each unknown-email attempt is
/// sent together with a wrong-password one, so that load from other tests falls on both
/// alike; a noisy round may be retried.
async fn unknown_emails_and_wrong_passwords_take_the_same_time(backend: Backend) {
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
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let body = json!({"email": email, "password": "not the right passphrase"});
            let started = Instant::now();
            let response = app.post_json("/login", &body).await;
            let status = response.status();
            let _ = response.bytes().await.unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    // Warm up connections and caches.
    tokio::join!(attempt("nobody@example.com"), attempt("ada@example.com"));

    let mut rounds = Vec::new();
    for _ in 0..3 {
        let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
        for i in 0..15 {
            let (u, w) = if i % 2 == 0 {
                tokio::join!(attempt("nobody@example.com"), attempt("ada@example.com"))
            } else {
                let (w, u) = tokio::join!(attempt("ada@example.com"), attempt("nobody@example.com"));
                (u, w)
            };
            unknown.push(u);
            wrong.push(w);
        }
        let (unknown, wrong) = (median(&mut unknown), median(&mut wrong));
        let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
        rounds.push((unknown, wrong, ratio));
        if (0.9..=1.1).contains(&ratio) {
            app.stop().await;
            return;
        }
    }
    panic!("medians (unknown email, wrong password, ratio) differ by more than 10% in every round: {rounds:?}");
}
