//! Bad requests are answered with the right 4xx as problem+json, never a 500 or another
//! shape.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, header, on_both_backends};

on_both_backends!(
    malformed_json_is_a_bad_request,
    a_body_over_64_kib_is_too_large,
    a_body_of_another_media_type_is_unsupported,
    a_missing_or_mistyped_field_is_a_validation_error_naming_it,
    an_unknown_path_is_not_found,
    a_wrong_method_is_not_allowed_and_says_which_are,
);

async fn malformed_json_is_a_bad_request(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let complete = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    let bodies = [
        "{\"email\": \"ada@example.com\",".to_owned(),
        "not json".to_owned(),
        String::new(),
        // A complete, valid value followed by more bytes is not one JSON document.
        format!("{complete} trailing"),
        format!("{complete}{complete}"),
        "{\"email\": \"ada@example.com\"} trailing".to_owned(),
    ];
    for body in &bodies {
        for path in ["/users", "/login"] {
            let response = app
                .http()
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            expect_problem(response, StatusCode::BAD_REQUEST).await;
        }
        let response = app
            .with_session(Method::PUT, "/me/password", &session)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST).await;
    }
    app.stop().await;
}

async fn a_body_over_64_kib_is_too_large(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let padding = "x".repeat(64 * 1024);
    let body = json!({"email": "ada@example.com", "password": PASSWORD, "padding": padding});
    for path in ["/users", "/login"] {
        let response = app.post_json(path, &body).await;
        let problem = expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
        assert!(!problem.to_string().contains(PASSWORD));
    }
    // Just under the limit is read (and the unknown field ignored).
    let fits = json!({"email": "ada@example.com", "password": PASSWORD, "padding": "x".repeat(60 * 1024)});
    assert_eq!(app.post_json("/users", &fits).await.status(), StatusCode::CREATED);
    app.stop().await;
}

async fn a_body_of_another_media_type_is_unsupported(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let body = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    for content_type in [Some("application/xml"), Some("application/octet-stream"), None] {
        for path in ["/users", "/login"] {
            let mut request = app.http().post(app.url(path)).body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            expect_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        }
    }
    // A JSON type with parameters is JSON.
    let response = app
        .http()
        .post(app.url("/users"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    app.stop().await;
}

async fn a_missing_or_mistyped_field_is_a_validation_error_naming_it(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let cases = [
        ("/users", json!({"email": "ada@example.com"}), "password"),
        ("/users", json!({"password": PASSWORD}), "email"),
        ("/users", json!({"email": 42, "password": PASSWORD}), "email"),
        ("/login", json!({"email": "ada@example.com"}), "password"),
        ("/login", json!({"password": PASSWORD}), "email"),
        (
            "/login",
            json!({"email": "ada@example.com", "password": ["x"]}),
            "password",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post_json(path, &body).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{path} {body}: {problem}");
    }
    let response = app
        .with_session(Method::PUT, "/me/password", &session)
        .json(&json!({"current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "new_password", "{problem}");
    app.stop().await;
}

async fn an_unknown_path_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    for (method, path) in [
        (Method::GET, "/nothing-here"),
        (Method::POST, "/users/extra"),
        (Method::GET, "/me/"),
        (Method::DELETE, "/sessions/a/b"),
    ] {
        let response = app.http().request(method.clone(), app.url(path)).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND).await;
    }
    app.stop().await;
}

async fn a_wrong_method_is_not_allowed_and_says_which_are(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    for (method, path, allowed) in [
        (Method::DELETE, "/healthz", "GET"),
        (Method::GET, "/login", "POST"),
        (Method::GET, "/users", "POST"),
        (Method::POST, "/me", "GET"),
        (Method::GET, "/me/password", "PUT"),
    ] {
        let response = app.http().request(method.clone(), app.url(path)).send().await.unwrap();
        let allow = header(&response, "allow").unwrap_or_else(|| panic!("{method} {path} has no Allow header"));
        let allow: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
        assert!(allow.iter().any(|m| m == allowed), "{method} {path}: Allow {allow:?}");
        assert!(
            !allow.iter().any(|m| *m == method.as_str()),
            "{method} {path}: Allow {allow:?}"
        );
        expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    app.stop().await;
}
