//! Cross-site request forgery defences: the per-session `X-CSRF-Token` on unsafe cookie
//! requests, the `Origin` and `Sec-Fetch-Site` checks on every unsafe request (login
//! and registration included), and JSON-only bodies.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;
use sesame_tests::{Backend, PASSWORD, Session, TestApp, expect_problem, on_both_backends, set_cookies};

on_both_backends!(
    unsafe_cookie_requests_without_the_csrf_token_or_with_a_wrong_one_are_forbidden,
    a_foreign_origin_is_refused_on_every_unsafe_request,
    the_issuers_own_origin_and_allowed_origins_are_accepted,
    a_cross_site_fetch_is_refused_and_same_site_ones_are_accepted,
    form_multipart_and_text_bodies_are_unsupported_media_types,
);

const FOREIGN: &str = "https://evil.example";
const ALLOWED: &str = "https://app.example";

/// The unsafe requests a session cookie can make, each with a body it accepts.
fn unsafe_requests(app: &TestApp, session: &Session) -> Vec<(&'static str, RequestBuilder)> {
    let cookie = |method: Method, path: &str| {
        app.http()
            .request(method, app.url(path))
            .header("cookie", &session.cookie)
    };
    vec![
        ("POST /logout", cookie(Method::POST, "/logout")),
        ("DELETE /sessions", cookie(Method::DELETE, "/sessions")),
        (
            "PUT /me/password",
            cookie(Method::PUT, "/me/password")
                .json(&json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase"})),
        ),
    ]
}

/// Asserts nothing those requests could have done happened: the sessions live and the
/// password is unchanged.
async fn assert_untouched(app: &TestApp, sessions: &[&Session]) {
    for session in sessions {
        assert_eq!(app.me(session).await.status(), StatusCode::OK);
    }
    let login = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK, "the password is unchanged");
}

async fn unsafe_cookie_requests_without_the_csrf_token_or_with_a_wrong_one_are_forbidden(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let other = app.login("ada@example.com", PASSWORD).await;
    for (name, request) in unsafe_requests(&app, &session) {
        let response = request.send().await.unwrap();
        let problem = expect_problem(response, StatusCode::FORBIDDEN).await;
        assert!(!problem.to_string().contains(&session.csrf), "{name}");
    }
    // Wrong tokens: made up, empty, and another session's (of the same user).
    for wrong in ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "", other.csrf.as_str()] {
        for (name, request) in unsafe_requests(&app, &session) {
            let response = request.header("x-csrf-token", wrong).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name} with token {wrong:?}");
            expect_problem(response, StatusCode::FORBIDDEN).await;
        }
    }
    assert_untouched(&app, &[&session, &other]).await;
    app.stop().await;
}

async fn a_foreign_origin_is_refused_on_every_unsafe_request(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_ALLOWED_ORIGINS", ALLOWED)]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;

    for origin in [FOREIGN, "null", "http://127.0.0.1", "https://app.example.evil.example"] {
        let login = app
            .http()
            .post(app.url("/login"))
            .header("origin", origin)
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(
            set_cookies(login.headers()).is_empty(),
            "login CSRF: no session for {origin}"
        );
        expect_problem(login, StatusCode::FORBIDDEN).await;

        let register = app
            .http()
            .post(app.url("/users"))
            .header("origin", origin)
            .json(&json!({"email": "mallory@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        expect_problem(register, StatusCode::FORBIDDEN).await;

        // Even with the right CSRF token.
        for (name, request) in unsafe_requests(&app, &session) {
            let response = request
                .header("origin", origin)
                .header("x-csrf-token", &session.csrf)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name} from {origin}");
            expect_problem(response, StatusCode::FORBIDDEN).await;
        }
    }
    assert_untouched(&app, &[&session]).await;
    let login = app.login_response("mallory@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "no account was registered");
    app.stop().await;
}

async fn the_issuers_own_origin_and_allowed_origins_are_accepted(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        &[("SESAME_ALLOWED_ORIGINS", &format!("https://other.example, {ALLOWED}"))],
    )
    .await;
    for (i, origin) in [app.base.as_str(), ALLOWED].into_iter().enumerate() {
        let email = format!("user{i}@example.com");
        let register = app
            .http()
            .post(app.url("/users"))
            .header("origin", origin)
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(register.status(), StatusCode::CREATED, "register from {origin}");

        let login = app
            .http()
            .post(app.url("/login"))
            .header("origin", origin)
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::OK, "login from {origin}");
        let session = sesame_tests::session_from(login).await;

        let logout = app
            .with_session(Method::POST, "/logout", &session)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT, "logout from {origin}");
        expect_problem(app.me(&session).await, StatusCode::UNAUTHORIZED).await;
    }
    app.stop().await;
}

async fn a_cross_site_fetch_is_refused_and_same_site_ones_are_accepted(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let login = |site: &'static str| {
        app.http()
            .post(app.url("/login"))
            .header("sec-fetch-site", site)
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
    };
    let refused = login("cross-site").await.unwrap();
    assert!(set_cookies(refused.headers()).is_empty());
    expect_problem(refused, StatusCode::FORBIDDEN).await;

    let register = app
        .http()
        .post(app.url("/users"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": "mallory@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_problem(register, StatusCode::FORBIDDEN).await;

    let session = app.login("ada@example.com", PASSWORD).await;
    let logout = app
        .with_session(Method::POST, "/logout", &session)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    expect_problem(logout, StatusCode::FORBIDDEN).await;
    assert_eq!(app.me(&session).await.status(), StatusCode::OK);

    for site in ["same-origin", "same-site", "none"] {
        let response = login(site).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "Sec-Fetch-Site: {site}");
    }
    app.stop().await;
}

async fn form_multipart_and_text_bodies_are_unsupported_media_types(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let bodies = [
        (
            "application/x-www-form-urlencoded",
            "email=mallory%40example.com&password=correct+horse+battery+staple".to_owned(),
        ),
        (
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nmallory@example.com\r\n--XyZ--\r\n"
                .to_owned(),
        ),
        (
            "text/plain",
            r#"{"email":"mallory@example.com","password":"correct horse battery staple"}"#.to_owned(),
        ),
    ];
    for (content_type, body) in &bodies {
        for path in ["/users", "/login", "/logout"] {
            if path == "/login" && content_type.starts_with("application/x-www-form-urlencoded") {
                continue; // below: on /login a form is the OAuth token request, not a cookie login
            }
            let request = if path == "/logout" {
                app.with_session(Method::POST, path, &session)
            } else {
                app.http().post(app.url(path))
            };
            let response = request
                .header("content-type", *content_type)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type} to {path}"
            );
            assert!(set_cookies(response.headers()).is_empty(), "{content_type} to {path}");
            expect_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        }
    }
    // A form on /login is how OAuth clients ask for a token (RFC 6749 §4.4), so it may be
    // answered with that grant's error rather than 415; either way, an HTML form posting
    // an email and password never signs anyone in.
    let form = format!("email=ada%40example.com&password={}", PASSWORD.replace(' ', "+"));
    let response = app
        .http()
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(set_cookies(response.headers()).is_empty());

    assert_eq!(app.me(&session).await.status(), StatusCode::OK, "logout did not happen");
    let login = app.login_response("mallory@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "no account was registered");
    app.stop().await;
}
