//! CORS: credentialed cross-origin access for the configured origins only, preflights
//! answered, never a wildcard.

use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, TestApp, header, on_both_backends, session_from};

on_both_backends!(
    an_allowed_origin_gets_credentialed_cors_headers,
    a_preflight_from_an_allowed_origin_allows_json_and_the_csrf_header,
    a_foreign_origin_gets_no_cors_headers,
);

const ALLOWED: &str = "https://app.example";

/// A comma-separated header's items, across repeated headers, trimmed and lower-cased.
fn list(response: &Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .map(|item| item.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

fn assert_credentialed_cors(response: &Response, what: &str) {
    assert_eq!(
        header(response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED),
        "{what}"
    );
    assert_eq!(
        header(response, "access-control-allow-credentials").as_deref(),
        Some("true"),
        "{what}"
    );
    assert!(
        list(response, "vary").contains(&"origin".to_owned()),
        "{what}: Vary {:?}",
        list(response, "vary")
    );
}

async fn an_allowed_origin_gets_credentialed_cors_headers(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_ALLOWED_ORIGINS", ALLOWED)]).await;
    app.user("ada@example.com").await;
    let login = app
        .http()
        .post(app.url("/login"))
        .header("origin", ALLOWED)
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_credentialed_cors(&login, "POST /login");
    let session = session_from(login).await;

    let me = app
        .with_session(Method::GET, "/me", &session)
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_credentialed_cors(&me, "GET /me");

    // Error answers carry them too, or the page could not read why it failed.
    let failed = app
        .http()
        .post(app.url("/login"))
        .header("origin", ALLOWED)
        .json(&json!({"email": "ada@example.com", "password": "not the right passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert_credentialed_cors(&failed, "a failed POST /login");
    app.stop().await;
}

async fn a_preflight_from_an_allowed_origin_allows_json_and_the_csrf_header(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_ALLOWED_ORIGINS", ALLOWED)]).await;
    for path in ["/login", "/logout", "/sessions"] {
        let method = if path == "/sessions" { "DELETE" } else { "POST" };
        let preflight = app
            .http()
            .request(Method::OPTIONS, app.url(path))
            .header("origin", ALLOWED)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type,x-csrf-token")
            .send()
            .await
            .unwrap();
        assert!(
            preflight.status().is_success(),
            "preflight of {path}: {}",
            preflight.status()
        );
        assert_credentialed_cors(&preflight, path);
        let methods = list(&preflight, "access-control-allow-methods");
        assert!(methods.contains(&method.to_ascii_lowercase()), "{path}: {methods:?}");
        let headers = list(&preflight, "access-control-allow-headers");
        for needed in ["content-type", "x-csrf-token"] {
            assert!(
                headers.contains(&needed.to_owned()),
                "{path}: {headers:?} lacks {needed}"
            );
        }
        assert!(
            !headers.contains(&"*".to_owned()),
            "no wildcard with credentials: {headers:?}"
        );
    }
    app.stop().await;
}

async fn a_foreign_origin_gets_no_cors_headers(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_ALLOWED_ORIGINS", ALLOWED)]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    for origin in ["https://evil.example", "https://app.example.evil.example", "null"] {
        let me = app
            .with_session(Method::GET, "/me", &session)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        let preflight = app
            .http()
            .request(Method::OPTIONS, app.url("/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-csrf-token")
            .send()
            .await
            .unwrap();
        for (what, response) in [("GET /me", &me), ("preflight", &preflight)] {
            assert_eq!(
                header(response, "access-control-allow-origin"),
                None,
                "{what} from {origin}"
            );
            assert_eq!(
                header(response, "access-control-allow-credentials"),
                None,
                "{what} from {origin}: credentials are for listed origins only"
            );
        }
    }
    // Never a wildcard, whoever asks.
    for origin in [ALLOWED, "https://evil.example"] {
        let response = app
            .http()
            .get(app.url("/healthz"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_ne!(header(&response, "access-control-allow-origin").as_deref(), Some("*"));
    }
    app.stop().await;
}
