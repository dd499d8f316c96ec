//! An off-the-shelf OAuth 2.0 client (the `oauth2` crate) works against sesame unchanged,
//! with either client authentication method, and an independent verifier (jsonwebtoken)
//! accepts the token it gets with nothing but the JWKS fetched over HTTP.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;
use sesame_tests::{Backend, TestApp, on_both_backends};

on_both_backends!(
    the_oauth2_crate_gets_a_token_with_basic_auth_that_verifies_against_the_jwks,
    the_oauth2_crate_gets_a_token_with_credentials_in_the_body,
    the_oauth2_crate_understands_sesames_errors,
    the_oauth2_crate_introspects_a_token,
    the_oauth2_crate_runs_the_authorization_code_flow_with_pkce_for_a_public_and_a_confidential_client,
);

/// An HTTP client as the `oauth2` crate recommends: no redirects followed.
fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Fetches the JWKS over HTTP and verifies the token with the key its `kid` names,
/// checking `iss`, `aud` and `exp` (jsonwebtoken's default validation).
async fn verify_independently(app: &TestApp, token: &str) -> Value {
    let jwks: JwkSet = http()
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("the kid is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[&app.base]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("the token verifies with the published key")
        .claims
}

async fn exchange_with(backend: Backend, auth_type: AuthType) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let registered = app.create_client(&session, &["notes:read", "notes:write"]).await;

    let client = BasicClient::new(ClientId::new(registered.client_id.clone()))
        .set_client_secret(ClientSecret::new(registered.key.clone()))
        .set_token_uri(TokenUrl::new(app.url("/login")).unwrap())
        .set_auth_type(auth_type);
    let response = client
        .exchange_client_credentials()
        .add_scope(Scope::new("notes:read".into()))
        .request_async(&http())
        .await
        .expect("the exchange succeeds");

    assert_eq!(*response.token_type(), BasicTokenType::Bearer);
    assert_eq!(response.expires_in(), Some(std::time::Duration::from_secs(900)));
    assert_eq!(response.scopes(), Some(&vec![Scope::new("notes:read".into())]));
    assert!(response.refresh_token().is_none());

    let token = response.access_token().secret();
    let claims = verify_independently(&app, token).await;
    assert_eq!(claims["sub"], registered.client_id.as_str());
    assert_eq!(claims["client_id"], registered.client_id.as_str());
    assert_eq!(claims["scope"], "notes:read");
    assert!(app.accepts(token).await);
    app.stop().await;
}

async fn the_oauth2_crate_gets_a_token_with_basic_auth_that_verifies_against_the_jwks(backend: Backend) {
    exchange_with(backend, AuthType::BasicAuth).await;
}

async fn the_oauth2_crate_gets_a_token_with_credentials_in_the_body(backend: Backend) {
    exchange_with(backend, AuthType::RequestBody).await;
}

async fn the_oauth2_crate_understands_sesames_errors(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let registered = app.create_client(&session, &["notes:read"]).await;
    let token_url = TokenUrl::new(app.url("/login")).unwrap();

    let wrong_secret = BasicClient::new(ClientId::new(registered.client_id.clone()))
        .set_client_secret(ClientSecret::new("sk_wrong".into()))
        .set_token_uri(token_url.clone());
    match wrong_secret.exchange_client_credentials().request_async(&http()).await {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(*error.error(), BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }

    let right = BasicClient::new(ClientId::new(registered.client_id.clone()))
        .set_client_secret(ClientSecret::new(registered.key.clone()))
        .set_token_uri(token_url);
    match right
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http())
        .await
    {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(*error.error(), BasicErrorResponseType::InvalidScope);
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }
    app.stop().await;
}

async fn the_oauth2_crate_introspects_a_token(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let registered = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&registered.client_id, &registered.key, None).await;

    let client = BasicClient::new(ClientId::new(registered.client_id.clone()))
        .set_client_secret(ClientSecret::new(registered.key.clone()))
        .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap());
    let live = client
        .introspect(&AccessToken::new(token.clone()))
        .request_async(&http())
        .await
        .expect("introspection succeeds");
    assert!(live.active());
    assert_eq!(
        live.client_id().map(|c| c.as_str()),
        Some(registered.client_id.as_str())
    );
    assert_eq!(live.sub(), Some(registered.client_id.as_str()));
    assert_eq!(live.scopes(), Some(&vec![Scope::new("notes:read".into())]));
    assert_eq!(live.iss(), Some(app.base.as_str()));
    assert_eq!(live.aud(), Some(&vec![app.base.clone()]));
    assert_eq!(live.token_type(), Some(&BasicTokenType::Bearer));
    assert!(live.exp().is_some() && live.iat().is_some() && live.jti().is_some());

    app.revoke(&registered.client_id, &registered.key, &token).await;
    let dead = client
        .introspect(&AccessToken::new(token))
        .request_async(&http())
        .await
        .expect("introspection succeeds");
    assert!(!dead.active());
    assert!(dead.client_id().is_none() && dead.scopes().is_none());
    app.stop().await;
}

/// What a person does in the browser: the consent page's Approve, with their session.
async fn approve(app: &TestApp, session: &sesame_tests::Session, authorize_url: &url::Url) -> url::Url {
    let page = app
        .http()
        .get(authorize_url.as_str())
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK, "the consent page");
    let approved = app
        .http()
        .post(app.url("/authorize"))
        .header("cookie", &session.cookie)
        .header("origin", &app.base)
        .form(&[
            ("request", authorize_url.query().unwrap()),
            ("csrf_token", session.csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), reqwest::StatusCode::SEE_OTHER);
    url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap()
}

async fn the_oauth2_crate_runs_the_authorization_code_flow_with_pkce_for_a_public_and_a_confidential_client(
    backend: Backend,
) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let callback = "http://127.0.0.1/callback";
    for public in [true, false] {
        let response = app
            .with_session(reqwest::Method::POST, "/clients", &ada)
            .json(&serde_json::json!({
                "name": "Desktop notes",
                "scopes": ["notes:read", "notes:write"],
                "type": if public { "public" } else { "confidential" },
                "redirect_uris": [callback],
            }))
            .send()
            .await
            .unwrap();
        let registered: Value = response.json().await.unwrap();
        let client_id = registered["client_id"].as_str().unwrap();
        let mut client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_auth_uri(AuthUrl::new(app.url("/authorize")).unwrap())
            .set_token_uri(TokenUrl::new(app.url("/login")).unwrap())
            // A native app's loopback listener picks its port at run time (RFC 8252 §7.3).
            .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:53682/callback".into()).unwrap());
        if !public {
            let key = registered["api_key"]["key"].as_str().unwrap();
            client = client.set_client_secret(ClientSecret::new(key.to_owned()));
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (authorize_url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("notes:read".into()))
            .set_pkce_challenge(challenge)
            .url();

        let back = approve(&app, &ada, &authorize_url).await;
        assert!(back.as_str().starts_with("http://127.0.0.1:53682/callback?"), "{back}");
        let param = |name: &str| back.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v.into_owned());
        assert_eq!(param("state").as_deref(), Some(state.secret().as_str()));
        assert_eq!(param("iss").as_deref(), Some(app.base.as_str()));
        let token = client
            .exchange_code(AuthorizationCode::new(param("code").unwrap()))
            .set_pkce_verifier(verifier)
            .request_async(&http())
            .await
            .expect("the code is exchanged");
        assert_eq!(*token.token_type(), BasicTokenType::Bearer);
        assert_eq!(token.scopes(), Some(&vec![Scope::new("notes:read".into())]));
        let claims = verify_independently(&app, token.access_token().secret()).await;
        assert_eq!(claims["client_id"], client_id);
        assert_ne!(claims["sub"], client_id, "a delegated token's subject is the user");
        let me: Value = app.me_bearer(token.access_token().secret()).await.json().await.unwrap();
        assert_eq!(
            (me["kind"].clone(), me["user"]["email"].clone()),
            ("delegated".into(), "ada@example.com".into())
        );
        // The refresh grant, as the crate sends it: a new pair, the old refresh token spent.
        let refresh = token.refresh_token().expect("a refresh token");
        let refreshed = client
            .exchange_refresh_token(refresh)
            .request_async(&http())
            .await
            .expect("the refresh token is exchanged");
        let next = refreshed.refresh_token().expect("the next refresh token");
        assert_ne!(next.secret(), refresh.secret());
        assert!(app.accepts(refreshed.access_token().secret()).await);
        let narrowed = client
            .exchange_refresh_token(next)
            .add_scope(Scope::new("notes:write".into()))
            .request_async(&http())
            .await;
        assert!(
            matches!(&narrowed, Err(RequestTokenError::ServerResponse(e)) if *e.error() == BasicErrorResponseType::InvalidScope),
            "notes:write was never granted: {narrowed:?}"
        );
    }
}
