//! A service embedding sesame: its own routes beside sesame's, protected by the exported
//! `RequireScope` extractor, for bearer tokens and signed-in users alike. SQLite only: the
//! extractor reads no database of its own, so the backend does not change what is tested.

use axum::Json;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_domain::Principal;
use sesame_http::{AppState, RequireScope, ScopeName};
use sesame_tests::{Backend, TestApp, TestDb, expect_problem, header_text};

struct NotesRead;
impl ScopeName for NotesRead {
    const SCOPE: &'static str = "notes:read";
}

struct NotesWrite;
impl ScopeName for NotesWrite {
    const SCOPE: &'static str = "notes:write";
}

fn caller(principal: &Principal) -> Value {
    match principal {
        Principal::User(session) => json!({"user": session.user.email.as_str()}),
        Principal::Client(token) => json!({"client": token.client_id.as_str()}),
        Principal::Delegated(token) => json!({"client": token.client_id.as_str(), "for": token.user_id.0}),
    }
}

async fn list_notes(allowed: RequireScope<NotesRead>) -> Json<Value> {
    Json(json!({"notes": ["milk"], "caller": caller(&allowed.0)}))
}

async fn add_note(allowed: RequireScope<NotesWrite>) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({"caller": caller(&allowed.0)})))
}

async fn notes_app() -> TestApp {
    let routes = axum::Router::<AppState>::new().route("/notes", get(list_notes).post(add_note));
    TestApp::spawn_with(TestDb::create(Backend::Sqlite).await, &[], routes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_route_admits_tokens_with_its_scope_and_refuses_others_with_403() {
    let app = notes_app().await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "billing:read"]).await;

    let reader = app.token(&client.client_id, &client.key, Some("notes:read")).await;
    let response = app.with_bearer(Method::GET, "/notes", &reader).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["caller"]["client"], client.client_id.as_str());

    let billing_only = app.token(&client.client_id, &client.key, Some("billing:read")).await;
    let response = app
        .with_bearer(Method::GET, "/notes", &billing_only)
        .send()
        .await
        .unwrap();
    let challenge = header_text(&response, "www-authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    expect_problem(response, StatusCode::FORBIDDEN).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_route_wants_a_credential_and_refuses_a_bad_token() {
    let app = notes_app().await;

    let anonymous = app.http().get(app.url("/notes")).send().await.unwrap();
    assert_eq!(header_text(&anonymous, "www-authenticate"), r#"Bearer realm="sesame""#);
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;

    let forged = app
        .with_bearer(Method::GET, "/notes", "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header_text(&forged, "www-authenticate"),
        r#"Bearer realm="sesame", error="invalid_token""#
    );
    expect_problem(forged, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_passes_an_embedded_scope_check_with_the_cookie() {
    let app = notes_app().await;
    let session = app.signed_in("ada@example.com").await;

    let response = app.with_session(Method::GET, "/notes", &session).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["caller"]["user"], "ada@example.com");

    // Unsafe methods with the cookie still need the CSRF token.
    let with_csrf = app
        .with_session(Method::POST, "/notes", &session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_csrf.status(), StatusCode::CREATED);
    let without_csrf = app
        .http()
        .post(app.url("/notes"))
        .header("cookie", &session.cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(without_csrf, StatusCode::FORBIDDEN).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_needs_no_csrf_token_on_an_embedded_unsafe_route() {
    let app = notes_app().await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;
    let writer = app.token(&client.client_id, &client.key, Some("notes:write")).await;

    let response = app
        .with_bearer(Method::POST, "/notes", &writer)
        .json(&json!({"text": "eggs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["caller"]["client"], client.client_id.as_str());

    // notes:write does not imply notes:read.
    let read = app.with_bearer(Method::GET, "/notes", &writer).send().await.unwrap();
    expect_problem(read, StatusCode::FORBIDDEN).await;
    app.stop().await;
}

struct ReportsRead;
impl ScopeName for ReportsRead {
    const SCOPE: &'static str = "reports:read";
}

/// The README's example: a route that requires a scope and reads, from the principal,
/// the user the client acts for (`owner`) and a static claim the operator set.
async fn reports(RequireScope(caller, _): RequireScope<ReportsRead>) -> Result<Json<Value>, StatusCode> {
    match caller {
        Principal::Client(token) => Ok(Json(json!({
            "owner": token.owner.map(|user| user.0.to_string()),
            "tenant": token.claims.get("tenant").cloned(),
        }))),
        Principal::User(session) => Ok(Json(json!({"owner": session.user.id.0.to_string(), "tenant": null}))),
        Principal::Delegated(_) => Err(StatusCode::FORBIDDEN),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_route_reads_the_owner_and_a_static_claim_of_a_scoped_token() {
    let routes = axum::Router::<AppState>::new().route("/reports", get(reports));
    let app = TestApp::spawn_with(TestDb::create(Backend::Sqlite).await, &[], routes).await;
    let session = app.signed_in("ada@example.com").await;
    let ada: Value = app.me(&session).await.json().await.unwrap();
    let client = app.create_client(&session, &["reports:read", "notes:read"]).await;
    app.sesame(&["client", "claims", &client.client_id, "--set", r#"tenant="acme""#])
        .await;

    let token = app.token(&client.client_id, &client.key, Some("reports:read")).await;
    let response = app.with_bearer(Method::GET, "/reports", &token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["owner"], ada["user"]["id"]);
    assert_eq!(body["tenant"], "acme");

    let other = app.token(&client.client_id, &client.key, Some("notes:read")).await;
    let refused = app.with_bearer(Method::GET, "/reports", &other).send().await.unwrap();
    expect_problem(refused, StatusCode::FORBIDDEN).await;
    app.stop().await;
}
