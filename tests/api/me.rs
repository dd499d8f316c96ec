//! `GET /me`: who the caller is; without a credential, a Bearer challenge.

use reqwest::StatusCode;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, header, on_both_backends};

on_both_backends!(
    me_without_a_credential_is_a_bearer_challenge,
    me_describes_the_signed_in_user_and_is_never_cached
);

async fn me_without_a_credential_is_a_bearer_challenge(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let response = app.http().get(app.url("/me")).send().await.unwrap();
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer realm="sesame""#)
    );
    assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
    expect_problem(response, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn me_describes_the_signed_in_user_and_is_never_cached(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let user = app.user("ada@example.com").await;
    let login = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(header(&login, "cache-control").as_deref(), Some("no-store"));
    let session = sesame_tests::session_from(login).await;

    let response = app.me(&session).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(me["kind"], "user");
    assert_eq!(me["user"], user);
    assert_eq!(me["session"]["id"], session.id());
    assert_eq!(me["csrf_token"], session.csrf.as_str());
    assert!(
        !me.to_string().contains(session.handle()),
        "the handle is never in a body"
    );
    app.stop().await;
}
