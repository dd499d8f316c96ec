//! §9: the scope catalogue, who holds which scope, and what a token may carry.

use std::time::Duration;

use axum::Json;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_http::{AppState, RequireScope, ScopeName};
use sesame_tests::{Backend, TestApp, TestDb, eventually, expect_oauth_error, expect_problem, on_both_backends};

/// How late an instance may see what the CLI (another process) did, with margin over the
/// contract's 1 s.
const ELSEWHERE: Duration = Duration::from_millis(1_500);

/// A catalogue of two self-service scopes and one restricted one.
const CATALOGUE: &[(&str, &str)] = &[
    ("SESAME_SCOPES", "notes:read, notes:write"),
    ("SESAME_RESTRICTED_SCOPES", "admin"),
];

async fn a_catalogue_refuses_an_unknown_scope_and_is_what_discovery_lists(backend: Backend) {
    let app = TestApp::spawn(backend, CATALOGUE).await;
    let ada = app.signed_in("ada@example.com").await;

    let refused = app
        .create_client_response(&ada, "Reports", &["notes:read", "billing:read"])
        .await;
    let problem = expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    let errors = problem["errors"].to_string();
    assert!(
        errors.contains("scopes") && errors.contains("billing:read"),
        "{problem}"
    );
    app.create_client(&ada, &["notes:read", "notes:write"]).await;

    let metadata = app.metadata().await;
    assert_eq!(
        metadata["scopes_supported"],
        serde_json::json!(["admin", "notes:read", "notes:write"])
    );
    let document = app.get_json("/openapi.json").await;
    let flow = &document["components"]["securitySchemes"]["oauth2_client_credentials"]["flows"]["clientCredentials"];
    let listed: Vec<&String> = flow["scopes"].as_object().expect("scopes").keys().collect();
    assert_eq!(listed, ["admin", "notes:read", "notes:write"], "{flow}");

    // The operator's CLI, under the same configuration, refuses it too.
    let output = app
        .sesame_output(&[
            "client",
            "add",
            "--owner",
            "ada@example.com",
            "--name",
            "Billing",
            "--scope",
            "billing:read",
        ])
        .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("billing:read"));
}

async fn without_a_catalogue_no_scopes_are_published(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    app.create_client(&ada, &["notes:read", "anything:else"]).await;

    let metadata = app.metadata().await;
    assert_eq!(metadata.get("scopes_supported"), None, "{metadata}");
    let committed: Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).expect("committed document");
    assert_eq!(app.get_json("/openapi.json").await, committed);
}

async fn a_restricted_scope_needs_a_grant_and_taking_it_away_revokes_tokens_everywhere(backend: Backend) {
    let settings = [CATALOGUE, &[("SESAME_ISSUER", "https://auth.example.com")]].concat();
    let a = TestApp::spawn(backend, &settings).await;
    let b = TestApp::spawn_on(a.db.clone(), &settings).await;
    let ada = a.signed_in("ada@example.com").await;

    // Not granted: refused, and the session says what the user holds.
    let refused = a.create_client_response(&ada, "Admin tool", &["admin"]).await;
    let problem = expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["errors"].to_string().contains("admin"), "{problem}");
    let me: Value = a.me(&ada).await.json().await.unwrap();
    assert_eq!(me["scopes"], json!(["notes:read", "notes:write"]));

    // Only restricted scopes of the catalogue can be granted.
    for wrong in ["notes:read", "billing:read"] {
        let output = a.sesame_output(&["user", "grant", "ada@example.com", wrong]).await;
        assert!(!output.status.success(), "granting {wrong}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(wrong));
    }
    a.sesame(&["user", "grant", "ada@example.com", "admin"]).await;
    assert!(
        eventually(ELSEWHERE, || async {
            let me: Value = a.me(&ada).await.json().await.unwrap();
            me["scopes"] == json!(["admin", "notes:read", "notes:write"])
        })
        .await
    );
    let client = a.create_client(&ada, &["admin", "notes:read"]).await;
    let token = a.token_body(&client.client_id, &client.key, None).await;
    assert_eq!(token["scope"], "admin notes:read");
    let token = token["access_token"].as_str().unwrap().to_owned();
    let narrow = b.token(&client.client_id, &client.key, Some("notes:read")).await;
    for app in [&a, &b] {
        assert!(app.accepts(&token).await && app.accepts(&narrow).await);
    }

    // Taken away: every earlier token of the user's clients stops working on every
    // instance, and later exchanges never carry the scope.
    a.sesame(&["user", "revoke", "ada@example.com", "admin"]).await;
    for app in [&a, &b] {
        assert!(eventually(ELSEWHERE, || async { app.refuses(&token).await }).await);
        assert!(app.refuses(&narrow).await);
    }
    let later = b.token_body(&client.client_id, &client.key, None).await;
    assert_eq!(later["scope"], "notes:read");
    assert!(a.accepts(later["access_token"].as_str().unwrap()).await);
    let asked = a.token_response(&client.client_id, &client.key, Some("admin")).await;
    expect_oauth_error(asked, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert!(
        eventually(ELSEWHERE, || async {
            let me: Value = a.me(&ada).await.json().await.unwrap();
            me["scopes"] == json!(["notes:read", "notes:write"])
        })
        .await
    );
}

async fn a_client_token_names_its_owner_in_itself_introspection_and_me(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let ada_id = app.me(&ada).await.json::<Value>().await.unwrap()["user"]["id"].clone();
    let client = app.create_client(&ada, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    assert_eq!(sesame_tests::jwt_part(&token, 1)["owner"], ada_id);
    let introspected = app.introspect(&client.client_id, &client.key, &token).await;
    assert_eq!(introspected["owner"], ada_id, "{introspected}");
    let me: Value = app.me_bearer(&token).await.json().await.unwrap();
    assert_eq!(me["kind"], "client");
    assert_eq!(me["owner"], ada_id, "{me}");
}

on_both_backends!(
    a_catalogue_refuses_an_unknown_scope_and_is_what_discovery_lists,
    without_a_catalogue_no_scopes_are_published,
    a_restricted_scope_needs_a_grant_and_taking_it_away_revokes_tokens_everywhere,
    a_client_token_names_its_owner_in_itself_introspection_and_me,
    a_session_passes_require_scope_only_for_scopes_its_user_holds,
);

struct Admin;
impl ScopeName for Admin {
    const SCOPE: &'static str = "admin";
}

async fn admin_only(allowed: RequireScope<Admin>) -> Json<Value> {
    let who = match &allowed.0 {
        sesame_domain::Principal::User(session) => session.user.email.as_str().to_owned(),
        sesame_domain::Principal::Client(token) => token.client_id.as_str().to_owned(),
        sesame_domain::Principal::Delegated(token) => token.client_id.as_str().to_owned(),
    };
    Json(json!({"caller": who}))
}

/// A session is no blanket pass: `RequireScope` admits it only for a scope its user holds.
async fn a_session_passes_require_scope_only_for_scopes_its_user_holds(backend: Backend) {
    let routes = axum::Router::<AppState>::new().route("/admin", get(admin_only));
    let app = TestApp::spawn_with(TestDb::create(backend).await, CATALOGUE, routes).await;
    let ada = app.signed_in("ada@example.com").await;

    let refused = app.with_session(Method::GET, "/admin", &ada).send().await.unwrap();
    expect_problem(refused, StatusCode::FORBIDDEN).await;

    app.sesame(&["user", "grant", "ada@example.com", "admin"]).await;
    assert!(
        eventually(ELSEWHERE, || async {
            let response = app.with_session(Method::GET, "/admin", &ada).send().await.unwrap();
            response.status() == StatusCode::OK
        })
        .await
    );
}
