//! §11 forward auth: `GET /auth/verify` as a reverse proxy calls it, with the original
//! request described in `X-Forwarded-*` headers and the caller's credentials passed
//! through.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sesame_tests::{Backend, CONFIG_FILE, PKCE_VERIFIER, Session, TestApp, eventually, header_text, on_both_backends};

on_both_backends!(
    forward_auth_names_a_session_a_client_token_and_a_delegated_token,
    forward_auth_checks_csrf_and_cross_site_on_the_original_method,
    forward_auth_rules_match_the_first_path_prefix,
);

/// The verify request a proxy makes for an original `method uri`.
fn verify(app: &TestApp, method: &str, uri: &str) -> RequestBuilder {
    app.http()
        .get(app.url("/auth/verify"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-host", "app.example.com")
}

/// The five `X-Sesame-*` headers of a `200`, in order: kind, subject, scopes, user email,
/// client id.
fn caller(response: &Response) -> [String; 5] {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(response, "cache-control"), "no-store");
    ["kind", "subject", "scopes", "user-email", "client-id"].map(|name| {
        response
            .headers()
            .get(format!("x-sesame-{name}"))
            .unwrap_or_else(|| panic!("x-sesame-{name} is always present"))
            .to_str()
            .unwrap()
            .to_owned()
    })
}

/// Ada lets a public client of Bob's act for her; the delegated access token.
async fn delegated_token(app: &TestApp, ada: &Session, bob: &Session) -> (String, String) {
    let callback = "https://app.example.com/cb";
    let client_id = app.public_client(bob, "Notes", &["notes:read"], callback).await;
    let code = app.approve(ada, &client_id, callback, "notes:read").await;
    let token: Value = app
        .post_form(
            "/login",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", callback),
                ("code_verifier", PKCE_VERIFIER),
                ("client_id", &client_id),
            ],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (token["access_token"].as_str().unwrap().to_owned(), client_id)
}

fn user_id(session: &Session) -> String {
    session.body["user"]["id"].as_str().unwrap().to_owned()
}

async fn forward_auth_names_a_session_a_client_token_and_a_delegated_token(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    // No credential: 401 with a challenge.
    let none = verify(&app, "GET", "/notes").send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header_text(&none, "www-authenticate"), r#"Bearer realm="sesame""#);
    assert!(none.headers().get("x-sesame-kind").is_none());

    let ada = app.signed_in("ada@example.com").await;
    let by_cookie = verify(&app, "GET", "/notes?page=2")
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        caller(&by_cookie),
        [
            "user".into(),
            user_id(&ada),
            String::new(),
            "ada@example.com".into(),
            String::new()
        ]
    );

    let client = app.create_client(&ada, &["notes:read", "notes:write"]).await;
    let token = app.token(&client.client_id, &client.key, Some("notes:read")).await;
    let by_token = verify(&app, "DELETE", "/notes/7")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        caller(&by_token),
        [
            "client".into(),
            client.client_id.clone(),
            "notes:read".into(),
            String::new(),
            client.client_id.clone()
        ]
    );

    let bob = app.signed_in("bob@example.com").await;
    let (delegated, delegated_client) = delegated_token(&app, &ada, &bob).await;
    let by_delegated = verify(&app, "GET", "/notes")
        .bearer_auth(&delegated)
        .send()
        .await
        .unwrap();
    assert_eq!(
        caller(&by_delegated),
        [
            "delegated".into(),
            user_id(&ada),
            "notes:read".into(),
            String::new(),
            delegated_client
        ]
    );

    // A token that is not one: 401 invalid_token, even beside a good cookie.
    let forged = verify(&app, "GET", "/notes")
        .bearer_auth(format!("{token}x"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(header_text(&forged, "www-authenticate").contains(r#"error="invalid_token""#));
    // A revoked token is refused at once.
    let revoked = app
        .post_form_basic("/oauth/revoke", &client.client_id, &client.key, &[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let after = verify(&app, "GET", "/notes").bearer_auth(&token).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // An ended session is no credential.
    let logout = app.with_session(Method::POST, "/logout", &ada).send().await.unwrap();
    assert!(logout.status().is_success());
    let ended = verify(&app, "GET", "/notes")
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    // A forwarded URI that is no path is a bad request.
    let bad = verify(&app, "GET", "https://elsewhere.example/x")
        .bearer_auth(&delegated)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn forward_auth_checks_csrf_and_cross_site_on_the_original_method(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let post = |extra: &[(&str, &str)]| {
        let mut request = verify(&app, "POST", "/notes").header("cookie", &ada.cookie);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request
    };
    // An unsafe original request by cookie needs the session's CSRF token.
    let bare = post(&[]).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    let wrong = post(&[("x-csrf-token", "not-the-token")]).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let with_token = post(&[("x-csrf-token", &ada.csrf)]).send().await.unwrap();
    assert_eq!(caller(&with_token)[0], "user");
    // ... and must not come from another site.
    let foreign = post(&[("x-csrf-token", &ada.csrf), ("origin", "https://evil.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let cross = post(&[("x-csrf-token", &ada.csrf), ("sec-fetch-site", "cross-site")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // A safe original request needs neither.
    let read = verify(&app, "GET", "/notes")
        .header("cookie", &ada.cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    // A proxy that keeps the original method (Traefik), body type and all: the checks are
    // the original's, and the verify request's own method and body change nothing.
    let kept = app
        .http()
        .post(app.url("/auth/verify"))
        .header("cookie", &ada.cookie)
        .header("content-type", "text/plain")
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-uri", "/notes")
        .header("x-csrf-token", &ada.csrf)
        .body("a note")
        .send()
        .await
        .unwrap();
    assert_eq!(caller(&kept)[0], "user");
    let kept_bare = app
        .http()
        .post(app.url("/auth/verify"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept_bare.status(),
        StatusCode::FORBIDDEN,
        "its own POST is the original"
    );
    // Envoy's ext_authz: the original method, and the original path after /auth/verify.
    let envoy = app
        .http()
        .delete(app.url("/auth/verify/notes/7"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        envoy.status(),
        StatusCode::FORBIDDEN,
        "a DELETE by cookie without the token"
    );
    let envoy = app
        .http()
        .delete(app.url("/auth/verify/notes/7"))
        .header("cookie", &ada.cookie)
        .header("x-csrf-token", &ada.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(caller(&envoy)[0], "user");
    // A bearer token is no ambient credential: no CSRF token needed.
    let client = app.create_client(&ada, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    let by_token = verify(&app, "PUT", "/notes/1")
        .bearer_auth(&token)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(caller(&by_token)[0], "client");
    app.stop().await;
}

async fn forward_auth_rules_match_the_first_path_prefix(backend: Backend) {
    let rules = r#"
[[forward_auth.rules]]
path_prefix = "/admin"
scopes = ["admin"]
kinds = ["user"]

[[forward_auth.rules]]
path_prefix = "/api"
kinds = ["client", "delegated"]

[[forward_auth.rules]]
path_prefix = "/"
scopes = ["notes:read"]
"#;
    let app = TestApp::spawn(
        backend,
        &[
            (CONFIG_FILE, rules),
            ("SESAME_SCOPES", "notes:read,notes:write"),
            ("SESAME_RESTRICTED_SCOPES", "admin"),
        ],
    )
    .await;
    let ada = app.signed_in("ada@example.com").await;
    let client = app.create_client(&ada, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    let status = |request: RequestBuilder| async move { request.send().await.unwrap().status() };
    let as_ada = |uri: &str| verify(&app, "GET", uri).header("cookie", &ada.cookie);
    let as_client = |uri: &str| verify(&app, "GET", uri).bearer_auth(&token);

    // /admin: users holding admin only.
    assert_eq!(status(as_ada("/admin/users")).await, StatusCode::FORBIDDEN);
    assert_eq!(status(as_client("/admin/users")).await, StatusCode::FORBIDDEN);
    app.sesame(&["user", "grant", "ada@example.com", "admin"]).await;
    // Granted by another process: sessions see it within the session cache's second.
    let bound = std::time::Duration::from_millis(1_500);
    assert!(
        eventually(bound, || async {
            status(as_ada("/admin/users")).await == StatusCode::OK
        })
        .await
    );
    let admin = as_ada("/admin/users").send().await.unwrap();
    // The catalogue scopes Ada holds: the self-service ones and her grant.
    assert_eq!(caller(&admin)[2], "admin notes:read notes:write");
    // /api: tokens only, whatever their scopes.
    assert_eq!(status(as_ada("/api/notes")).await, StatusCode::FORBIDDEN);
    assert_eq!(status(as_client("/api/notes")).await, StatusCode::OK);
    // Everything else needs notes:read.
    assert_eq!(status(as_client("/notes")).await, StatusCode::OK);
    let bob = app.signed_in("bob@example.com").await;
    let bob_client = app.create_client(&bob, &["notes:write"]).await;
    let write_only = app.token(&bob_client.client_id, &bob_client.key, None).await;
    assert_eq!(
        status(verify(&app, "GET", "/notes").bearer_auth(&write_only)).await,
        StatusCode::FORBIDDEN
    );
    // A prefix is a prefix of the path, as nginx's `location` and Traefik's `PathPrefix`
    // read it: /administer falls under /admin (end a prefix with / for a segment).
    assert_eq!(status(as_client("/administer")).await, StatusCode::FORBIDDEN);
    let problem: Value = as_client("/admin").send().await.unwrap().json().await.unwrap();
    assert_eq!(problem["status"], 403);
    app.stop().await;
}
