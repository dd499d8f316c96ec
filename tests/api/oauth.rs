//! Revocation (RFC 7009) and introspection (RFC 7662), on one instance and across a fleet
//! of two sharing a database, where a revocation made on one must reach the other within
//! the documented polling bound (about a second).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame_tests::{
    Backend, TestApp, basic_auth, eventually, expect_oauth_error, header_text, on_both_backends,
    on_postgres_polling_only,
};

on_both_backends!(
    a_revoked_token_stops_working_at_once,
    revoking_an_unknown_or_malformed_token_still_answers_200,
    revoking_another_clients_token_answers_200_and_leaves_it_alone,
    revocation_and_introspection_need_client_authentication,
    introspecting_a_live_token_describes_it,
    introspecting_a_dead_token_says_only_that_it_is_inactive,
    a_token_revoked_on_one_instance_is_refused_by_another_within_a_second,
    a_key_revoked_on_one_instance_stops_its_tokens_on_another_within_a_second,
    a_client_deleted_on_one_instance_stops_its_tokens_on_another_within_a_second,
    a_key_revoked_on_one_instance_cannot_be_exchanged_where_it_was_just_used,
    a_client_deleted_on_one_instance_cannot_exchange_where_it_was_just_used,
);

// What one instance ends, the others refuse within the bound without notifications too.
on_postgres_polling_only!(
    a_token_revoked_on_one_instance_is_refused_by_another_within_a_second,
    a_key_revoked_on_one_instance_stops_its_tokens_on_another_within_a_second,
    a_client_deleted_on_one_instance_stops_its_tokens_on_another_within_a_second,
);

/// How long a test waits for another instance to learn of a revocation: the documented
/// bound is one poll interval (1 s); the rest is slack for a loaded machine.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(3);

/// What instances of one fleet share: one public URL (so one `iss`).
const FLEET: [(&str, &str); 1] = [("SESAME_ISSUER", "http://sesame.fleet.test")];

async fn a_revoked_token_stops_working_at_once(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    let sibling = app.token(&client.client_id, &client.key, None).await;
    assert!(app.accepts(&token).await);

    let response = app.revoke(&client.client_id, &client.key, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");

    assert!(!app.accepts(&token).await, "refused on the next request");
    assert_eq!(
        app.introspect(&client.client_id, &client.key, &token).await,
        json!({"active": false})
    );
    assert!(app.accepts(&sibling).await, "only that token: its siblings live on");
    let again = app.revoke(&client.client_id, &client.key, &token).await;
    assert_eq!(again.status(), StatusCode::OK, "revoking twice is fine");

    // client_secret_post works for revocation too.
    let response = app
        .post_form(
            "/oauth/revoke",
            &[
                ("token", &sibling),
                ("token_type_hint", "access_token"),
                ("client_id", &client.client_id),
                ("client_secret", &client.key),
            ],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!app.accepts(&sibling).await);
    app.stop().await;
}

async fn revoking_an_unknown_or_malformed_token_still_answers_200(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let mut tampered = token.clone();
    tampered.truncate(token.len() - 4);
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", tampered.as_str()] {
        let response = app.revoke(&client.client_id, &client.key, garbage).await;
        assert_eq!(response.status(), StatusCode::OK, "{garbage}");
    }
    assert!(app.accepts(&token).await, "nothing real was revoked");
    app.stop().await;
}

async fn revoking_another_clients_token_answers_200_and_leaves_it_alone(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let eve = app.signed_in("eve@example.com").await;
    let victim = app.create_client(&ada, &["notes:read"]).await;
    let attacker = app.create_client(&eve, &["notes:read"]).await;
    let token = app.token(&victim.client_id, &victim.key, None).await;

    let response = app.revoke(&attacker.client_id, &attacker.key, &token).await;
    assert_eq!(response.status(), StatusCode::OK, "revealing nothing");
    assert!(app.accepts(&token).await, "another client's token is left alone");
    assert_eq!(
        app.introspect(&victim.client_id, &victim.key, &token).await["active"],
        true
    );
    app.stop().await;
}

async fn revocation_and_introspection_need_client_authentication(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let anonymous = app.post_form(path, &[("token", &token)]).send().await.unwrap();
        expect_oauth_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;

        let wrong_key = app
            .post_form(path, &[("token", &token)])
            .header("authorization", basic_auth(&client.client_id, "sk_wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(header_text(&wrong_key, "www-authenticate"), r#"Basic realm="sesame""#);
        expect_oauth_error(wrong_key, StatusCode::UNAUTHORIZED, "invalid_client").await;

        // The token being revoked is not a credential for revoking it.
        let bearer = app
            .post_form(path, &[("token", &token)])
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert!(bearer.status().is_client_error(), "{path}: {}", bearer.status());
        assert_ne!(bearer.status(), StatusCode::OK);
    }
    assert!(app.accepts(&token).await, "no unauthenticated revocation took effect");
    app.stop().await;
}

async fn introspecting_a_live_token_describes_it(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;
    let resource_server = app.create_client(&session, &["introspect"]).await;
    let token = app.token(&client.client_id, &client.key, Some("notes:write")).await;
    let claims = sesame_tests::jwt_part(&token, 1);

    let response = app
        .post_form_basic(
            "/oauth/introspect",
            &resource_server.client_id,
            &resource_server.key,
            &[("token", &token)],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], client.client_id.as_str());
    assert_eq!(body["sub"], client.client_id.as_str());
    assert_eq!(body["scope"], "notes:write");
    assert_eq!(body["token_type"], "Bearer");
    // The owner: the user who registered the client, in the token and in the answer.
    assert_eq!(body["owner"], session.body["user"]["id"]);
    for claim in ["exp", "iat", "iss", "aud", "jti", "owner"] {
        assert_eq!(body[claim], claims[claim], "{claim}");
    }
    assert_eq!(body["iss"], app.base.as_str());
    let mut members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort_unstable();
    let mut expected = [
        "active",
        "client_id",
        "sub",
        "scope",
        "exp",
        "iat",
        "iss",
        "aud",
        "jti",
        "token_type",
        "owner",
    ];
    expected.sort_unstable();
    assert_eq!(members, expected, "{body}");
    app.stop().await;
}

async fn introspecting_a_dead_token_says_only_that_it_is_inactive(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let observer = app.create_client(&session, &["introspect"]).await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let (_, spare_key) = app.add_key(&session, &client.client_id).await;
    let doomed = app.create_client(&session, &["notes:read"]).await;

    let revoked = app.token(&client.client_id, &client.key, None).await;
    app.revoke(&client.client_id, &client.key, &revoked).await;
    let of_revoked_key = app.token(&client.client_id, &client.key, None).await;
    app.revoke_key(&session, &client.client_id, &client.key_id).await;
    let of_deleted_client = app.token(&doomed.client_id, &doomed.key, None).await;
    app.delete_client(&session, &doomed.client_id).await;
    let live = app.token(&client.client_id, &spare_key, None).await;
    let mut forged = live.clone();
    let cut = forged.rfind('.').unwrap() + 5;
    let flipped = if &forged[cut..=cut] == "A" { "B" } else { "A" };
    forged.replace_range(cut..=cut, flipped);

    for (what, token) in [
        ("revoked", revoked.as_str()),
        ("of a revoked key", of_revoked_key.as_str()),
        ("of a deleted client", of_deleted_client.as_str()),
        ("forged", forged.as_str()),
        ("garbage", "not-a-token"),
    ] {
        let body = app.introspect(&observer.client_id, &observer.key, token).await;
        assert_eq!(body, json!({"active": false}), "a token {what}");
    }
    assert_eq!(
        app.introspect(&observer.client_id, &observer.key, &live).await["active"],
        true,
        "the control token is live"
    );
    app.stop().await;
}

/// Two instances on one database, a user and a client, and a token from the first that
/// the second accepts.
async fn fleet(
    backend: Backend,
) -> (
    TestApp,
    TestApp,
    sesame_tests::Session,
    sesame_tests::TestClient,
    String,
) {
    let a = TestApp::spawn(backend, &FLEET).await;
    let b = TestApp::spawn_on(a.db.clone(), &FLEET).await;
    let session = a.signed_in("ada@example.com").await;
    let client = a.create_client(&session, &["notes:read"]).await;
    let token = a.token(&client.client_id, &client.key, None).await;
    assert!(b.accepts(&token).await, "the other instance accepts the token before");
    (a, b, session, client, token)
}

async fn a_token_revoked_on_one_instance_is_refused_by_another_within_a_second(backend: Backend) {
    let (a, b, _session, client, token) = fleet(backend).await;
    let survivor = a.token(&client.client_id, &client.key, None).await;

    let response = a.revoke(&client.client_id, &client.key, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!a.accepts(&token).await, "at once where it was revoked");
    assert!(
        eventually(PROPAGATION_LIMIT, || b.refuses(&token)).await,
        "the other instance still accepts a revoked token after {PROPAGATION_LIMIT:?}"
    );
    assert_eq!(
        b.introspect(&client.client_id, &client.key, &token).await,
        json!({"active": false})
    );
    assert!(b.accepts(&survivor).await);
    a.stop().await;
    b.stop().await;
}

async fn a_key_revoked_on_one_instance_stops_its_tokens_on_another_within_a_second(backend: Backend) {
    let (a, b, session, client, token) = fleet(backend).await;
    let (_, spare_key) = a.add_key(&session, &client.client_id).await;
    let survivor = b.token(&client.client_id, &spare_key, None).await;

    a.revoke_key(&session, &client.client_id, &client.key_id).await;
    assert!(!a.accepts(&token).await);
    let refused = b.token_response(&client.client_id, &client.key, None).await;
    expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        eventually(PROPAGATION_LIMIT, || b.refuses(&token)).await,
        "the other instance still accepts a revoked key's token after {PROPAGATION_LIMIT:?}"
    );
    assert!(b.accepts(&survivor).await && a.accepts(&survivor).await);
    a.stop().await;
    b.stop().await;
}

async fn a_client_deleted_on_one_instance_stops_its_tokens_on_another_within_a_second(backend: Backend) {
    let (a, b, session, client, token) = fleet(backend).await;
    let bystander = a.create_client(&session, &["notes:read"]).await;
    let survivor = b.token(&bystander.client_id, &bystander.key, None).await;

    a.delete_client(&session, &client.client_id).await;
    assert!(!a.accepts(&token).await);
    let refused = b.token_response(&client.client_id, &client.key, None).await;
    expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        eventually(PROPAGATION_LIMIT, || b.refuses(&token)).await,
        "the other instance still accepts a deleted client's token after {PROPAGATION_LIMIT:?}"
    );
    assert!(b.accepts(&survivor).await);
    a.stop().await;
    b.stop().await;
}

/// Whether exchanging this key on `app` is refused as `invalid_client`.
async fn exchange_refused(app: &TestApp, client_id: &str, key: &str) -> bool {
    app.token_response(client_id, key, None).await.status() == StatusCode::UNAUTHORIZED
}

/// Asserts that `app` refuses to exchange the client's key within the propagation bound,
/// and goes on refusing (not a moment's refusal).
async fn refused_within_the_bound_and_for_good(app: &TestApp, client: &sesame_tests::TestClient, what: &str) {
    assert!(
        eventually(PROPAGATION_LIMIT, || exchange_refused(
            app,
            &client.client_id,
            &client.key
        ))
        .await,
        "the other instance still exchanges a {what} after {PROPAGATION_LIMIT:?}"
    );
    for _ in 0..3 {
        assert!(exchange_refused(app, &client.client_id, &client.key).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

async fn a_key_revoked_on_one_instance_cannot_be_exchanged_where_it_was_just_used(backend: Backend) {
    let (a, b, session, client, _token) = fleet(backend).await;
    // The other instance has just read the key (and may keep it in memory for a moment).
    b.token(&client.client_id, &client.key, None).await;
    b.token(&client.client_id, &client.key, None).await;

    a.revoke_key(&session, &client.client_id, &client.key_id).await;
    let refused = a.token_response(&client.client_id, &client.key, None).await;
    expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
    refused_within_the_bound_and_for_good(&b, &client, "revoked key").await;
    a.stop().await;
    b.stop().await;
}

async fn a_client_deleted_on_one_instance_cannot_exchange_where_it_was_just_used(backend: Backend) {
    let (a, b, session, client, _token) = fleet(backend).await;
    b.token(&client.client_id, &client.key, None).await;

    a.delete_client(&session, &client.client_id).await;
    assert!(
        exchange_refused(&a, &client.client_id, &client.key).await,
        "at once where it was deleted"
    );
    refused_within_the_bound_and_for_good(&b, &client, "deleted client's key").await;
    a.stop().await;
    b.stop().await;
}
