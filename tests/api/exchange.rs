//! The third-party half of `POST /login`: an API key exchanged for an access token, by
//! the OAuth 2.0 client-credentials grant (form, Basic or `client_secret_post`) or by
//! JSON, with RFC 6749 §5.2 errors, scope narrowing and throttling, beside the unchanged
//! first-party password login.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{
    Backend, PASSWORD, TestApp, basic_auth, eventually, expect_oauth_error, header_text, on_both_backends, set_cookies,
};

on_both_backends!(
    a_key_is_exchanged_with_http_basic_for_a_bearer_token_that_is_not_cached,
    a_key_is_exchanged_with_client_secret_post,
    a_key_is_exchanged_as_json,
    basic_credentials_are_form_url_decoded,
    the_token_lifetime_follows_the_configured_ttl,
    scopes_are_narrowed_to_the_request_and_never_widened,
    two_client_authentication_methods_in_one_request_are_refused,
    a_repeated_parameter_is_refused,
    an_unknown_or_missing_grant_type_is_refused,
    a_bad_key_is_invalid_client_with_a_basic_challenge_only_after_basic,
    a_key_of_another_client_is_refused,
    credentials_in_the_query_string_are_refused,
    unknown_parameters_are_ignored,
    failed_exchanges_are_throttled_per_client_even_for_the_right_key,
    a_busy_client_is_throttled_at_once_after_failures_here_and_soon_after_failures_elsewhere,
    the_password_login_is_unchanged_beside_the_key_exchange,
);

/// Asserts a successful token response and returns its body.
async fn expect_token(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    assert_eq!(header_text(&response, "pragma"), "no-cache");
    assert!(header_text(&response, "content-type").starts_with("application/json"));
    assert!(set_cookies(response.headers()).is_empty(), "no cookie for a client");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3),
        "{body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64(), "{body}");
    assert!(body["scope"].is_string(), "{body}");
    assert!(body.get("refresh_token").is_none(), "no refresh token: {body}");
    body
}

async fn a_key_is_exchanged_with_http_basic_for_a_bearer_token_that_is_not_cached(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:write", "notes:read"]).await;

    let response = app.token_response(&client.client_id, &client.key, None).await;
    let body = expect_token(response).await;
    assert_eq!(body["expires_in"], 900, "15 minutes by default");
    assert_eq!(body["scope"], "notes:read notes:write", "all of the client's scopes");
    let members: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(members.len(), 4, "{body}");

    let token = body["access_token"].as_str().unwrap();
    let me: Value = app.me_bearer(token).await.json().await.unwrap();
    assert_eq!(me["client_id"], client.client_id.as_str());
    app.stop().await;
}

async fn a_key_is_exchanged_with_client_secret_post(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let response = app
        .post_form(
            "/login",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.key),
            ],
        )
        .send()
        .await
        .unwrap();
    let body = expect_token(response).await;
    assert_eq!(body["scope"], "notes:read");
    assert!(app.accepts(body["access_token"].as_str().unwrap()).await);
    app.stop().await;
}

async fn a_key_is_exchanged_as_json(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;

    let all = expect_token(app.post_json("/login", &json!({"api_key": client.key})).await).await;
    assert_eq!(all["scope"], "notes:read notes:write");
    assert_eq!(all["expires_in"], 900);

    let narrowed = app
        .post_json("/login", &json!({"api_key": client.key, "scope": "notes:read"}))
        .await;
    let narrowed = expect_token(narrowed).await;
    assert_eq!(narrowed["scope"], "notes:read");
    let me: Value = app
        .me_bearer(narrowed["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["scopes"], json!(["notes:read"]));

    let outside = app
        .post_json("/login", &json!({"api_key": client.key, "scope": "admin"}))
        .await;
    expect_oauth_error(outside, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let wrong = app
        .post_json("/login", &json!({"api_key": format!("{}x", client.key)}))
        .await;
    let www = header_text(&wrong, "www-authenticate");
    expect_oauth_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(www.is_empty(), "no Basic challenge without Basic: {www}");
    app.stop().await;
}

async fn basic_credentials_are_form_url_decoded(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    // A client library may percent-encode every character (RFC 6749 §2.3.1 form-encodes
    // both parts); the server must decode them before comparing.
    let escape = |text: &str| text.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", escape(&client.client_id), escape(&client.key)));
    let response = app
        .post_form("/login", &[("grant_type", "client_credentials")])
        .header("authorization", format!("Basic {credentials}"))
        .send()
        .await
        .unwrap();
    let body = expect_token(response).await;
    assert!(app.accepts(body["access_token"].as_str().unwrap()).await);
    app.stop().await;
}

async fn the_token_lifetime_follows_the_configured_ttl(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_TOKEN_TTL", "2m")]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let body = app.token_body(&client.client_id, &client.key, None).await;
    assert_eq!(body["expires_in"], 120);
    let claims = sesame_tests::jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    app.stop().await;
}

async fn scopes_are_narrowed_to_the_request_and_never_widened(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app
        .create_client(&session, &["notes:read", "notes:write", "billing:read"])
        .await;
    let id = &client.client_id;

    let everything = app.token_body(id, &client.key, None).await;
    assert_eq!(everything["scope"], "billing:read notes:read notes:write");
    let empty = app.token_body(id, &client.key, Some("")).await;
    assert_eq!(
        empty["scope"], "billing:read notes:read notes:write",
        "an empty scope asks for none in particular"
    );
    let one = app.token_body(id, &client.key, Some("notes:read")).await;
    assert_eq!(one["scope"], "notes:read");
    let two = app.token_body(id, &client.key, Some("notes:write notes:read")).await;
    let mut granted: Vec<&str> = two["scope"].as_str().unwrap().split(' ').collect();
    granted.sort_unstable();
    assert_eq!(granted, ["notes:read", "notes:write"]);
    let me: Value = app
        .me_bearer(one["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["scopes"], json!(["notes:read"]));

    for outside in ["admin", "notes:read admin", "NOTES:READ", "notes:read\u{0}"] {
        let response = app.token_response(id, &client.key, Some(outside)).await;
        expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
    app.stop().await;
}

async fn two_client_authentication_methods_in_one_request_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let response = app
        .post_form_basic(
            "/login",
            &client.client_id,
            &client.key,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.key),
            ],
        )
        .send()
        .await
        .unwrap();
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.stop().await;
}

async fn a_repeated_parameter_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["a", "b"]).await;

    for pairs in [
        vec![("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
        vec![
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    ] {
        let response = app
            .post_form_basic("/login", &client.client_id, &client.key, &pairs)
            .send()
            .await
            .unwrap();
        expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let response = app
        .post_form(
            "/login",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.key),
                ("client_secret", &client.key),
            ],
        )
        .send()
        .await
        .unwrap();
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.stop().await;
}

async fn an_unknown_or_missing_grant_type_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    for grant in ["password", "implicit", "CLIENT_CREDENTIALS"] {
        let response = app
            .post_form_basic("/login", &client.client_id, &client.key, &[("grant_type", grant)])
            .send()
            .await
            .unwrap();
        expect_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    // The authorization-code grant exists (§10): without a code it is malformed.
    let no_code = app
        .post_form_basic(
            "/login",
            &client.client_id,
            &client.key,
            &[("grant_type", "authorization_code")],
        )
        .send()
        .await
        .unwrap();
    expect_oauth_error(no_code, StatusCode::BAD_REQUEST, "invalid_request").await;
    let missing = app
        .post_form_basic("/login", &client.client_id, &client.key, &[("scope", "notes:read")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.stop().await;
}

async fn a_bad_key_is_invalid_client_with_a_basic_challenge_only_after_basic(backend: Backend) {
    // More failures than the default budget allows, none of them throttled.
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "50/15m")]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    // The same shape as a real key, one character off.
    let mut wrong = client.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });

    for bad in [wrong.as_str(), "sk_nonsense", ""] {
        let response = app.token_response(&client.client_id, bad, None).await;
        assert_eq!(
            header_text(&response, "www-authenticate"),
            r#"Basic realm="sesame""#,
            "{bad:?}"
        );
        let body = expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(!body.to_string().contains(&client.key[..20]), "no key echoed: {body}");

        let post = app
            .post_form(
                "/login",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.client_id),
                    ("client_secret", bad),
                ],
            )
            .send()
            .await
            .unwrap();
        assert!(
            post.headers().get("www-authenticate").is_none(),
            "no Basic challenge for client_secret_post"
        );
        expect_oauth_error(post, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }

    let no_credentials = app
        .post_form("/login", &[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(no_credentials, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let unknown_client = app
        .token_response("cli_AAAAAAAAAAAAAAAAAAAAAA", &client.key, None)
        .await;
    expect_oauth_error(unknown_client, StatusCode::UNAUTHORIZED, "invalid_client").await;
    app.stop().await;
}

async fn a_key_of_another_client_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let mine = app.create_client(&session, &["notes:read"]).await;
    let theirs = app.create_client(&session, &["billing:read"]).await;

    let basic = app.token_response(&mine.client_id, &theirs.key, None).await;
    expect_oauth_error(basic, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let post = app
        .post_form(
            "/login",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &mine.client_id),
                ("client_secret", &theirs.key),
            ],
        )
        .send()
        .await
        .unwrap();
    expect_oauth_error(post, StatusCode::UNAUTHORIZED, "invalid_client").await;
    app.stop().await;
}

async fn credentials_in_the_query_string_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let in_query = app
        .http()
        .post(app.url(&format!(
            "/login?client_id={}&client_secret={}",
            client.client_id, client.key
        )))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_oauth_error(in_query, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Even beside valid Basic credentials, and for the JSON exchange.
    let beside_basic = app
        .http()
        .post(app.url(&format!("/login?client_secret={}", client.key)))
        .header("authorization", basic_auth(&client.client_id, &client.key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_oauth_error(beside_basic, StatusCode::BAD_REQUEST, "invalid_request").await;
    let json_query = app
        .http()
        .post(app.url(&format!("/login?api_key={}", client.key)))
        .json(&json!({"api_key": client.key}))
        .send()
        .await
        .unwrap();
    expect_oauth_error(json_query, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.stop().await;
}

async fn unknown_parameters_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let response = app
        .post_form_basic(
            "/login",
            &client.client_id,
            &client.key,
            &[
                ("grant_type", "client_credentials"),
                ("ui_locales", "en"),
                ("foo", ""),
                ("state", "xyz"),
            ],
        )
        .send()
        .await
        .unwrap();
    expect_token(response).await;
    app.stop().await;
}

async fn failed_exchanges_are_throttled_per_client_even_for_the_right_key(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_ACCOUNT_IP", "3/1m")]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let other = app.create_client(&session, &["notes:read"]).await;

    for _ in 0..3 {
        let response = app.token_response(&client.client_id, "sk_wrong", None).await;
        expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let throttled = app.token_response(&client.client_id, &client.key, None).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header_text(&throttled, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(header_text(&throttled, "content-type").starts_with("application/json"));
    let body: Value = throttled.json().await.unwrap();
    assert!(body["error"].is_string(), "an RFC 6749-style body: {body}");
    assert!(body.get("access_token").is_none());

    // Through the other entry points too, for the same client.
    let post = app
        .post_form(
            "/login",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.key),
            ],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::TOO_MANY_REQUESTS);

    // The budget is per client: another client from the same address goes on.
    app.token(&other.client_id, &other.key, None).await;
    app.stop().await;
}

async fn the_password_login_is_unchanged_beside_the_key_exchange(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    app.token(&client.client_id, &client.key, None).await;

    let response = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(response.headers());
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].starts_with("sesame_session="), "{cookies:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert!(body.get("access_token").is_none());

    // The same email and password as a form are not a password login: the form path is
    // the OAuth grant, which wants a grant_type.
    let as_form = app
        .post_form("/login", &[("email", "ada@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(set_cookies(as_form.headers()).is_empty(), "no session from a form");
    expect_oauth_error(as_form, StatusCode::BAD_REQUEST, "invalid_request").await;
    let with_grant = app
        .post_form(
            "/login",
            &[
                ("grant_type", "password"),
                ("username", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .send()
        .await
        .unwrap();
    assert!(set_cookies(with_grant.headers()).is_empty());
    expect_oauth_error(with_grant, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    app.stop().await;
}

/// A client that has just succeeded (and whose clean record an instance may remember for
/// a moment) is refused at once after failures on the same instance, and within the
/// documented bound (1 s, plus slack here) after failures on another.
async fn a_busy_client_is_throttled_at_once_after_failures_here_and_soon_after_failures_elsewhere(backend: Backend) {
    let settings = [("SESAME_THROTTLE_ACCOUNT_IP", "3/1m")];
    let a = TestApp::spawn(backend, &settings).await;
    let b = TestApp::spawn_on(a.db.clone(), &settings).await;
    let session = a.signed_in("ada@example.com").await;
    let here = a.create_client(&session, &["notes:read"]).await;
    let elsewhere = a.create_client(&session, &["notes:read"]).await;

    // Failures on the instance the client has just used: refused at once.
    a.token(&here.client_id, &here.key, None).await;
    a.token(&here.client_id, &here.key, None).await;
    for _ in 0..3 {
        let response = a.token_response(&here.client_id, "sk_wrong", None).await;
        expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let throttled = a.token_response(&here.client_id, &here.key, None).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    // Failures on another instance: refused on this one within the bound, and from then on.
    b.token(&elsewhere.client_id, &elsewhere.key, None).await;
    for _ in 0..3 {
        let response = a.token_response(&elsewhere.client_id, "sk_wrong", None).await;
        expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let limit = Duration::from_secs(3);
    let throttled_on_b = || async {
        b.token_response(&elsewhere.client_id, &elsewhere.key, None)
            .await
            .status()
            == StatusCode::TOO_MANY_REQUESTS
    };
    assert!(
        eventually(limit, throttled_on_b).await,
        "the other instance still exchanges after {limit:?}"
    );
    assert!(throttled_on_b().await);
    b.stop().await;
    a.stop().await;
}
