//! The OpenAPI document: the one the server serves is the one committed in
//! `openapi/openapi.json`, and it declares what the contract says it declares.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp};

/// Where two JSON values first differ, as a JSON pointer.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (x.get(key), y.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y, &here),
                    _ => Some(here),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".to_owned() } else { at.to_owned() }),
    }
}

async fn served_document(app: &TestApp) -> Value {
    let response = app.http().get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    let served = served_document(&app).await;
    app.stop().await;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nRun `make openapi` and commit the file.",
            path.display()
        )
    });
    let committed: Value = serde_json::from_str(&committed).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON: {e}\nRun `make openapi` and commit the file.",
            path.display()
        )
    });
    if let Some(at) = first_difference(&served, &committed, "") {
        panic!(
            "openapi/openapi.json differs from the document the server serves (first at {at}).\n\
             Run `make openapi` and commit the result."
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_declares_how_each_operation_authenticates() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    let document = served_document(&app).await;
    app.stop().await;

    assert_eq!(document["openapi"], "3.1.0");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["type"], "apiKey");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["csrf_token"]["in"], "header");
    assert_eq!(schemes["csrf_token"]["name"], "X-CSRF-Token");
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["bearer_jwt"]["bearerFormat"], "JWT");
    assert_eq!(
        schemes["oauth2_client_credentials"]["flows"]["clientCredentials"]["tokenUrl"],
        "/login"
    );
    assert_eq!(schemes["client_basic"]["scheme"], "basic");

    // GET /me takes either credential: two alternatives, not both at once.
    assert_eq!(
        document["paths"]["/me"]["get"]["security"],
        json!([{"session_cookie": []}, {"bearer_jwt": []}])
    );
    // Every error is described: a problem (RFC 9457), or on the OAuth token path an
    // RFC 6749 §5.2 error as application/json.
    let token_path = ["/login", "/oauth/revoke", "/oauth/introspect"];
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let response = resolve(&document, response);
                // §2: every 429 and 503 carries `Retry-After`, and the document says so.
                if status == "429" || status == "503" {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{method} {path} {status} does not declare Retry-After"
                    );
                }
                let content = response["content"].as_object();
                let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                assert!(!types.is_empty(), "{method} {path} {status} has no body described");
                for media_type in types {
                    assert!(
                        media_type == "application/problem+json"
                            || (media_type == "application/json" && token_path.contains(&path.as_str())),
                        "{method} {path} {status} is described as {media_type}"
                    );
                }
            }
        }
    }
}

/// A response as written, or the reusable one (`#/components/responses/…`) it refers to.
fn resolve<'a>(document: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| panic!("unexpected reference {reference}"));
            let target = &document["components"]["responses"][name];
            assert!(target.is_object(), "{reference} is not in components/responses");
            target
        }
        None => response,
    }
}
