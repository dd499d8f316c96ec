//! A bearer token on `GET /me` (RFC 6750): the client principal, the challenges for a
//! missing, bad or misplaced token, and the rule that an `Authorization` header alone
//! decides, whatever cookie comes with it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp, expect_problem, header_text, jwt_part, on_both_backends};

on_both_backends!(
    a_bearer_token_on_me_describes_the_client_and_is_not_cached,
    an_authorization_header_alone_decides_even_beside_a_valid_cookie,
    a_token_in_the_query_beside_an_authorization_header_is_an_invalid_request,
    a_token_only_in_the_query_string_is_not_a_credential,
    a_bad_token_is_answered_with_an_invalid_token_challenge,
);

async fn a_bearer_token_on_me_describes_the_client_and_is_not_cached(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let response = app.me_bearer(&token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["kind"], "client");
    assert_eq!(me["client_id"], client.client_id.as_str());
    assert_eq!(me["scopes"], json!(["notes:read", "notes:write"]));
    let expires_at = time::OffsetDateTime::parse(
        me["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        expires_at.unix_timestamp(),
        jwt_part(&token, 1)["exp"].as_i64().unwrap()
    );
    assert!(me.get("user").is_none() && me.get("csrf_token").is_none(), "{me}");

    // The scheme name is case-insensitive (RFC 7235 §2.1).
    let lower = app
        .http()
        .get(app.url("/me"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);
    app.stop().await;
}

async fn an_authorization_header_alone_decides_even_beside_a_valid_cookie(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    assert_eq!(
        app.me(&session).await.status(),
        StatusCode::OK,
        "the cookie alone works"
    );

    let bad_bearer = app
        .with_session(Method::GET, "/me", &session)
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header_text(&bad_bearer, "www-authenticate"),
        r#"Bearer realm="sesame", error="invalid_token""#
    );
    expect_problem(bad_bearer, StatusCode::UNAUTHORIZED).await;

    let other_scheme = app
        .with_session(Method::GET, "/me", &session)
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    expect_problem(other_scheme, StatusCode::UNAUTHORIZED).await;

    let good_bearer = app
        .with_session(Method::GET, "/me", &session)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(good_bearer.status(), StatusCode::OK);
    let me: Value = good_bearer.json().await.unwrap();
    assert_eq!(me["kind"], "client", "the token, not the cookie, decides: {me}");
    assert_eq!(me["client_id"], client.client_id.as_str());
    app.stop().await;
}

async fn a_token_in_the_query_beside_an_authorization_header_is_an_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let response = app
        .http()
        .get(app.url(&format!("/me?access_token={token}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let challenge = header_text(&response, "www-authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(r#"error="invalid_request""#), "{challenge}");
    let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
    assert!(!problem.to_string().contains(&token), "the token is not echoed");
    app.stop().await;
}

async fn a_token_only_in_the_query_string_is_not_a_credential(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let response = app
        .http()
        .get(app.url(&format!("/me?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(header_text(&response, "www-authenticate"), r#"Bearer realm="sesame""#);
    expect_problem(response, StatusCode::UNAUTHORIZED).await;

    let nothing = app.http().get(app.url("/me")).send().await.unwrap();
    assert_eq!(
        header_text(&nothing, "www-authenticate"),
        r#"Bearer realm="sesame""#,
        "no credential, no error attribute"
    );
    expect_problem(nothing, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn a_bad_token_is_answered_with_an_invalid_token_challenge(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    let (head, rest) = token.split_once('.').unwrap();

    for bad in [
        "not-a-token".to_owned(),
        format!("{token}x"),
        format!("{head}.{rest}.extra"),
        format!("x{token}"),
    ] {
        let response = app.me_bearer(&bad).await;
        assert_eq!(
            header_text(&response, "www-authenticate"),
            r#"Bearer realm="sesame", error="invalid_token""#,
            "{bad}"
        );
        let problem = expect_problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(!problem.to_string().contains(&bad), "the token is not echoed");
    }
    assert!(app.accepts(&token).await);
    app.stop().await;
}
