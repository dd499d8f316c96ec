//! The access token itself (RFC 9068), read and verified here with the suite's own tools,
//! never sesame's: its header and claims, the three signing algorithms, discovery (JWKS and
//! RFC 8414 metadata), and signing-key rotation across instances.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;
use sesame_core::tokens::SigningAlg;
use sesame_tests::{Backend, TestApp, header_text, jwt_part, on_both_backends};

use crate::jwt::{now, verify_with_jwks};

on_both_backends!(
    an_access_token_is_an_rfc_9068_jwt_signed_with_a_published_key,
    the_audience_can_be_configured,
    a_configured_issuer_is_every_tokens_iss_and_the_base_of_the_metadata,
    es256_keys_sign_tokens_that_verify_against_the_jwks,
    rs256_keys_sign_tokens_that_verify_against_the_jwks,
    the_jwks_publishes_public_keys_only_and_may_be_cached,
    the_server_metadata_names_every_endpoint_and_the_tokens_issuer,
    a_rotated_key_signs_new_tokens_and_every_instance_accepts_old_and_new,
);

/// Members of a JWK that only a private key has (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn assert_public_only(jwks: &Value) {
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        for member in PRIVATE_MEMBERS {
            assert!(key.get(member).is_none(), "private member {member} in {key}");
        }
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert!(key["alg"].is_string(), "{key}");
        assert_eq!(key["use"], "sig", "{key}");
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn an_access_token_is_an_rfc_9068_jwt_signed_with_a_published_key(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;
    let before = now();
    let body = app.token_body(&client.client_id, &client.key, Some("notes:read")).await;
    let token = body["access_token"].as_str().unwrap();

    let head = jwt_part(token, 0);
    assert_eq!(head["typ"], "at+jwt");
    assert_eq!(head["alg"], "EdDSA");
    for untrusted in ["jku", "jwk", "x5u", "x5c"] {
        assert!(head.get(untrusted).is_none(), "{head}");
    }
    let jwks = app.jwks().await;
    let kid = head["kid"].as_str().expect("kid");
    assert!(kids(&jwks).contains(&kid.to_owned()), "{kid} not in {jwks}");

    let claims = jwt_part(token, 1);
    let issuer = app.metadata().await["issuer"].as_str().unwrap().to_owned();
    assert_eq!(issuer, app.base, "the issuer defaults to the server's own URL");
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], issuer.as_str(), "the audience defaults to the issuer");
    assert_eq!(claims["sub"], client.client_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], "notes:read");
    let (iat, exp, nbf) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, body["expires_in"].as_i64().unwrap());
    assert!((before - 2..=now() + 2).contains(&iat), "iat {iat}");
    assert!(nbf <= iat + 1 && nbf >= iat - 60, "nbf {nbf}, iat {iat}");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16), "{claims}");

    // An independent verifier accepts it with the published key alone.
    let verified = verify_with_jwks(token, &jwks, &issuer, &issuer);
    assert_eq!(verified["sub"], client.client_id.as_str());

    let mut jtis = HashSet::new();
    jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    for _ in 0..4 {
        let other = app.token(&client.client_id, &client.key, None).await;
        assert!(
            jtis.insert(jwt_part(&other, 1)["jti"].as_str().unwrap().to_owned()),
            "jti repeated"
        );
    }
    app.stop().await;
}

async fn the_audience_can_be_configured(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_AUDIENCE", "https://api.example")]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let claims = jwt_part(&token, 1);
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["iss"], app.base.as_str());
    verify_with_jwks(&token, &app.jwks().await, &app.base, "https://api.example");
    assert!(app.accepts(&token).await, "sesame accepts its own audience");
    app.stop().await;
}

async fn a_configured_issuer_is_every_tokens_iss_and_the_base_of_the_metadata(backend: Backend) {
    let issuer = "http://auth.example.test:8443/sesame";
    let app = TestApp::spawn(backend, &[("SESAME_ISSUER", issuer)]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    let metadata = app.metadata().await;
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/login"));
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], issuer);
    verify_with_jwks(&token, &app.jwks().await, issuer, issuer);
    assert!(app.accepts(&token).await);
    app.stop().await;
}

/// A server whose keys use `alg` signs tokens that an independent verifier accepts with
/// the published JWK, and publishes nothing private.
async fn tokens_verify_against_the_jwks_with(backend: Backend, alg: SigningAlg) {
    let app = TestApp::spawn(backend, &[("SESAME_SIGNING_ALG", alg.as_str())]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;

    assert_eq!(jwt_part(&token, 0)["alg"], alg.as_str());
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    let jwks = app.jwks().await;
    assert_public_only(&jwks);
    assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
    let claims = verify_with_jwks(&token, &jwks, &app.base, &app.base);
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert!(app.accepts(&token).await);
    app.stop().await;
}

async fn es256_keys_sign_tokens_that_verify_against_the_jwks(backend: Backend) {
    tokens_verify_against_the_jwks_with(backend, SigningAlg::Es256).await;
}

async fn rs256_keys_sign_tokens_that_verify_against_the_jwks(backend: Backend) {
    tokens_verify_against_the_jwks_with(backend, SigningAlg::Rs256).await;
}

async fn the_jwks_publishes_public_keys_only_and_may_be_cached(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let response = app.http().get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cache_control = header_text(&response, "cache-control");
    assert!(
        cache_control.contains("public") && cache_control.contains("max-age="),
        "{cache_control}"
    );
    assert!(header_text(&response, "content-type").starts_with("application/json"));
    let jwks: Value = response.json().await.unwrap();
    assert_public_only(&jwks);
    let key = &jwks["keys"][0];
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key["x"].is_string());
    app.stop().await;
}

async fn the_server_metadata_names_every_endpoint_and_the_tokens_issuer(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read", "notes:write"]).await;
    app.create_client(&session, &["billing:read"]).await;

    let metadata = app.metadata().await;
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(issuer, app.base);
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/login"));
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(metadata["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
    assert_eq!(metadata["introspection_endpoint"], format!("{issuer}/oauth/introspect"));
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(metadata["authorization_endpoint"], format!("{issuer}/authorize"));
    // A public client revokes its own tokens naming itself; only confidential ones
    // introspect.
    assert_eq!(
        metadata["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        metadata["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    // What clients hold is not public: without a catalogue no scopes are listed (§9).
    assert_eq!(metadata.get("scopes_supported"), None, "{metadata}");

    // Every URL it names answers.
    let jwks_uri = metadata["jwks_uri"].as_str().unwrap();
    let jwks_path = jwks_uri.strip_prefix(issuer).unwrap();
    assert_eq!(app.get_json(jwks_path).await, app.jwks().await);

    for _ in 0..2 {
        let token = app.token(&client.client_id, &client.key, None).await;
        assert_eq!(
            jwt_part(&token, 1)["iss"],
            issuer,
            "iss equals the metadata issuer exactly"
        );
    }
    app.stop().await;
}

/// What both instances of a fleet share: one public URL.
const FLEET: [(&str, &str); 1] = [("SESAME_ISSUER", "http://sesame.fleet.test")];

async fn a_rotated_key_signs_new_tokens_and_every_instance_accepts_old_and_new(backend: Backend) {
    let first = TestApp::spawn(backend, &FLEET).await;
    let session = first.signed_in("ada@example.com").await;
    let client = first.create_client(&session, &["notes:read"]).await;
    let old_token = first.token(&client.client_id, &client.key, None).await;
    let old_kid = jwt_part(&old_token, 0)["kid"].as_str().unwrap().to_owned();

    // What `sesame keys rotate --now` does.
    let store = first.store().await;
    let record = sesame_core::tokens::keys::generate(SigningAlg::EdDsa, sesame_domain::now()).unwrap();
    store
        .signing_keys
        .add_signing_key(&record, std::time::Duration::ZERO)
        .await
        .unwrap();
    store.database.close().await;

    let second = TestApp::spawn_on(first.db.clone(), &FLEET).await;
    let new_token = second.token(&client.client_id, &client.key, None).await;
    assert_eq!(jwt_part(&new_token, 0)["kid"], record.kid.as_str(), "the new key signs");
    assert_ne!(record.kid, old_kid);

    // The first instance has not seen the new key yet; it looks it up on first sight.
    assert!(
        first.accepts(&new_token).await,
        "a token of the new key on the old instance"
    );
    assert!(
        second.accepts(&old_token).await,
        "a token of the old key on the new instance"
    );
    assert!(first.accepts(&old_token).await);
    assert!(second.accepts(&new_token).await);

    let jwks = second.jwks().await;
    let published = kids(&jwks);
    assert_eq!(
        published,
        [record.kid.clone(), old_kid.clone()],
        "both keys, newest first"
    );
    assert_public_only(&jwks);
    let issuer = "http://sesame.fleet.test";
    verify_with_jwks(&old_token, &jwks, issuer, issuer);
    verify_with_jwks(&new_token, &jwks, issuer, issuer);
    let first_jwks = first.jwks().await;
    assert!(
        kids(&first_jwks).contains(&record.kid),
        "the first instance publishes it too"
    );

    first.stop().await;
    second.stop().await;
}
