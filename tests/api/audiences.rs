//! §9 audiences (RFC 8707): `resource` on token requests, `aud` as a string or an array,
//! `invalid_target`, and verifiers that check the audience they serve.

use axum::Json;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_http::{AppState, Audience, RequireScope, ScopeName};
use sesame_tests::{Backend, TestApp, TestDb, expect_oauth_error, jwt_part, on_both_backends};

const NOTES: &str = "https://notes.example.com";
const BILLING: &str = "https://billing.example.com/api";

fn settings() -> [(&'static str, &'static str); 1] {
    [(
        "SESAME_RESOURCES",
        "https://notes.example.com, https://billing.example.com/api",
    )]
}

async fn token_for(app: &TestApp, client_id: &str, key: &str, resources: &[&str]) -> reqwest::Response {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend(resources.iter().map(|r| ("resource", *r)));
    app.post_form_basic("/login", client_id, key, &pairs)
        .send()
        .await
        .unwrap()
}

async fn access_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn a_resource_becomes_the_audience_and_other_audiences_are_refused_at_me(backend: Backend) {
    let app = TestApp::spawn(backend, &settings()).await;
    let ada = app.signed_in("ada@example.com").await;
    let client = app.create_client(&ada, &["notes:read"]).await;
    let (id, key) = (client.client_id.as_str(), client.key.as_str());

    // None asked: sesame's own audience, which its /me accepts.
    let own = access_token(token_for(&app, id, key, &[]).await).await;
    assert_eq!(jwt_part(&own, 1)["aud"], app.base.as_str());
    assert!(app.accepts(&own).await);
    let asked_own = access_token(token_for(&app, id, key, &[&app.base]).await).await;
    assert_eq!(jwt_part(&asked_own, 1)["aud"], app.base.as_str());

    // One resource: a string; several: an array. Neither is sesame's, so /me refuses them.
    let notes = access_token(token_for(&app, id, key, &[NOTES]).await).await;
    assert_eq!(jwt_part(&notes, 1)["aud"], NOTES);
    let both = access_token(token_for(&app, id, key, &[NOTES, BILLING, NOTES]).await).await;
    assert_eq!(jwt_part(&both, 1)["aud"], json!([NOTES, BILLING]));
    for foreign in [&notes, &both] {
        let response = app.me_bearer(foreign).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    }
    // Introspection speaks for every audience this server mints for.
    let introspected = app.introspect(id, key, &both).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["aud"], json!([NOTES, BILLING]));

    // The JSON exchange takes `resource` too, as a string or an array.
    let response = app
        .post_json("/login", &json!({"api_key": key, "resource": [BILLING]}))
        .await;
    assert_eq!(jwt_part(&access_token(response).await, 1)["aud"], BILLING);

    // Anything else is `invalid_target`, and nothing is issued.
    for wrong in [
        &["https://evil.example.com"][..],
        &[NOTES, "https://evil.example.com"],
        &["notes.example.com"],
        &["https://notes.example.com/"],
    ] {
        let response = token_for(&app, id, key, wrong).await;
        expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
    }
    let response = app
        .post_json(
            "/login",
            &json!({"api_key": key, "resource": "https://evil.example.com"}),
        )
        .await;
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
}

on_both_backends!(a_resource_becomes_the_audience_and_other_audiences_are_refused_at_me);

struct NotesRead;
impl ScopeName for NotesRead {
    const SCOPE: &'static str = "notes:read";
}

struct Notes;
impl Audience for Notes {
    fn audience(_: &AppState) -> String {
        NOTES.to_owned()
    }
}

async fn notes(caller: RequireScope<NotesRead, Notes>) -> Json<Value> {
    let client = match &caller.0 {
        sesame_domain::Principal::Client(token) => token.client_id.as_str().to_owned(),
        sesame_domain::Principal::User(session) => session.user.email.as_str().to_owned(),
        sesame_domain::Principal::Delegated(token) => token.client_id.as_str().to_owned(),
    };
    Json(json!({"caller": client}))
}

/// The library's extractor checks the audience it is given: a route of the notes API
/// admits tokens minted for it and refuses sesame's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_extractor_checks_the_audience_it_is_configured_for() {
    let routes = axum::Router::<AppState>::new().route("/notes", get(notes));
    let app = TestApp::spawn_with(TestDb::create(Backend::Sqlite).await, &settings(), routes).await;
    let ada = app.signed_in("ada@example.com").await;
    let client = app.create_client(&ada, &["notes:read"]).await;
    let (id, key) = (client.client_id.as_str(), client.key.as_str());

    let for_notes = access_token(token_for(&app, id, key, &[NOTES]).await).await;
    let response = app.with_bearer(Method::GET, "/notes", &for_notes).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    for wrong in [
        access_token(token_for(&app, id, key, &[]).await).await,
        access_token(token_for(&app, id, key, &[BILLING]).await).await,
    ] {
        let response = app.with_bearer(Method::GET, "/notes", &wrong).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
