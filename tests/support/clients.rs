//! Helpers for the third-party half: registering clients and keys, exchanging keys for
//! tokens, presenting tokens, revoking and introspecting them, and reading a JWT's parts
//! without trusting sesame to do it.

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::{PASSWORD, Session, TestApp};

/// RFC 7636 appendix B's verifier and its S256 challenge.
pub const PKCE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const PKCE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A registered client and its first API key, as `POST /clients` showed them.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub client_id: String,
    /// The first key's secret (`sk_…`).
    pub key: String,
    pub key_id: String,
    /// The whole `201` body.
    pub body: Value,
}

/// `Authorization: Basic` for a client, each part form-urlencoded (RFC 6749 §2.3.1).
pub fn basic_auth(client_id: &str, key: &str) -> String {
    let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(key)))
    )
}

/// A form body from pairs, properly encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A header's value as text ("" when absent).
pub fn header_text(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts an RFC 6749 §5.2 error (JSON with this `error`), and returns its body.
pub async fn expect_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = header_text(&response, "content-type");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("OAuth error body");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// One part of a compact JWT (0 = header, 1 = claims), decoded without verification.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Polls `check` every 50 ms until it returns true, for at most `limit`; returns whether
/// it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Registers a public client of `owner` (the authorization-code grant) with one
    /// redirect URI; its id.
    pub async fn public_client(&self, owner: &Session, name: &str, scopes: &[&str], redirect_uri: &str) -> String {
        let response = self
            .with_session(Method::POST, "/clients", owner)
            .json(&json!({"name": name, "scopes": scopes, "type": "public", "redirect_uris": [redirect_uri]}))
            .send()
            .await
            .expect("POST /clients");
        assert_eq!(response.status(), StatusCode::CREATED, "registering a public client");
        let body: Value = response.json().await.expect("client body");
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// `user` approves `client_id` for `scope` on the consent form, as a browser posts it
    /// (PKCE with [`PKCE_CHALLENGE`]); the code the redirect carries.
    pub async fn approve(&self, user: &Session, client_id: &str, redirect_uri: &str, scope: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("code_challenge", PKCE_CHALLENGE),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        let approved = self
            .http()
            .post(self.url("/authorize"))
            .header("cookie", &user.cookie)
            .header("origin", &self.base)
            .form(&[
                ("request", query.as_str()),
                ("csrf_token", user.csrf.as_str()),
                ("decision", "approve"),
            ])
            .send()
            .await
            .expect("POST /authorize");
        assert_eq!(approved.status(), StatusCode::SEE_OTHER, "consent redirects back");
        let location = url::Url::parse(&header_text(&approved, "location")).expect("an absolute Location");
        location
            .query_pairs()
            .find(|(n, _)| n == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code")
    }

    /// Registers `email` and signs in.
    pub async fn signed_in(&self, email: &str) -> Session {
        self.user(email).await;
        self.login(email, PASSWORD).await
    }

    /// `GET path` with a session; its JSON body, after asserting `200`.
    pub async fn get_as(&self, session: &Session, path: &str) -> Value {
        let response = self
            .with_session(Method::GET, path, session)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    /// `POST /clients` as a signed-in user; the raw response.
    pub async fn create_client_response(&self, session: &Session, name: &str, scopes: &[&str]) -> Response {
        self.with_session(Method::POST, "/clients", session)
            .json(&json!({"name": name, "scopes": scopes}))
            .send()
            .await
            .expect("request")
    }

    /// Registers a client with these scopes and asserts it worked.
    pub async fn create_client(&self, session: &Session, scopes: &[&str]) -> TestClient {
        let response = self.create_client_response(session, "Test client", scopes).await;
        assert_eq!(response.status(), StatusCode::CREATED, "registering a client");
        let body: Value = response.json().await.expect("client body");
        TestClient {
            client_id: body["client_id"].as_str().expect("client_id").to_owned(),
            key: body["api_key"]["key"].as_str().expect("key").to_owned(),
            key_id: body["api_key"]["id"].as_str().expect("key id").to_owned(),
            body,
        }
    }

    /// `POST /clients/{id}/keys`; returns the new key's `(id, secret)`.
    pub async fn add_key(&self, session: &Session, client_id: &str) -> (String, String) {
        let response = self
            .with_session(Method::POST, &format!("/clients/{client_id}/keys"), session)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED, "adding a key");
        let body: Value = response.json().await.expect("key body");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["key"].as_str().expect("key").to_owned(),
        )
    }

    /// `DELETE /clients/{id}/keys/{key_id}` and asserts `204`.
    pub async fn revoke_key(&self, session: &Session, client_id: &str, key_id: &str) {
        let response = self
            .with_session(Method::DELETE, &format!("/clients/{client_id}/keys/{key_id}"), session)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "revoking a key");
    }

    /// `DELETE /clients/{id}` and asserts `204`.
    pub async fn delete_client(&self, session: &Session, client_id: &str) {
        let response = self
            .with_session(Method::DELETE, &format!("/clients/{client_id}"), session)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "deleting a client");
    }

    /// A form `POST` with Basic client authentication.
    pub fn post_form_basic(&self, path: &str, client_id: &str, key: &str, pairs: &[(&str, &str)]) -> RequestBuilder {
        self.post_form(path, pairs)
            .header("authorization", basic_auth(client_id, key))
    }

    /// A form `POST` with whatever the pairs carry.
    pub fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> RequestBuilder {
        self.http()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    }

    /// The client-credentials exchange with HTTP Basic; the raw response.
    pub async fn token_response(&self, client_id: &str, key: &str, scope: Option<&str>) -> Response {
        let mut pairs = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            pairs.push(("scope", scope));
        }
        self.post_form_basic("/login", client_id, key, &pairs)
            .send()
            .await
            .expect("request")
    }

    /// Exchanges a key for a token (HTTP Basic) and asserts success; the whole body.
    pub async fn token_body(&self, client_id: &str, key: &str, scope: Option<&str>) -> Value {
        let response = self.token_response(client_id, key, scope).await;
        let status = response.status();
        let body: Value = response.json().await.expect("token body");
        assert_eq!(status, StatusCode::OK, "token exchange: {body}");
        body
    }

    /// Exchanges a key for an access token and asserts success.
    pub async fn token(&self, client_id: &str, key: &str, scope: Option<&str>) -> String {
        let body = self.token_body(client_id, key, scope).await;
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn with_bearer(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http()
            .request(method, self.url(path))
            .header("authorization", format!("Bearer {token}"))
    }

    /// `GET /me` with a bearer token.
    pub async fn me_bearer(&self, token: &str) -> Response {
        self.with_bearer(Method::GET, "/me", token)
            .send()
            .await
            .expect("request")
    }

    /// Whether `GET /me` accepts the token (`200`); anything but `200` or `401` fails.
    pub async fn accepts(&self, token: &str) -> bool {
        let response = self.me_bearer(token).await;
        match response.status() {
            StatusCode::OK => true,
            StatusCode::UNAUTHORIZED => {
                assert_eq!(
                    header_text(&response, "www-authenticate"),
                    r#"Bearer realm="sesame", error="invalid_token""#
                );
                false
            }
            other => panic!("GET /me with a bearer token answered {other}"),
        }
    }

    /// Whether `GET /me` refuses the token as `invalid_token`.
    pub async fn refuses(&self, token: &str) -> bool {
        !self.accepts(token).await
    }

    /// `POST /oauth/introspect` as this client; asserts `200` and returns the body.
    pub async fn introspect(&self, client_id: &str, key: &str, token: &str) -> Value {
        let response = self
            .post_form_basic("/oauth/introspect", client_id, key, &[("token", token)])
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("introspection body");
        assert_eq!(status, StatusCode::OK, "introspection: {body}");
        body
    }

    /// `POST /oauth/revoke` as this client; the raw response.
    pub async fn revoke(&self, client_id: &str, key: &str, token: &str) -> Response {
        self.post_form_basic("/oauth/revoke", client_id, key, &[("token", token)])
            .send()
            .await
            .expect("request")
    }

    /// `GET` a JSON document, asserting `200`.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http().get(self.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("JSON body")
    }

    /// The published key set.
    pub async fn jwks(&self) -> Value {
        self.get_json("/.well-known/jwks.json").await
    }

    /// The RFC 8414 metadata.
    pub async fn metadata(&self) -> Value {
        self.get_json("/.well-known/oauth-authorization-server").await
    }

    /// A store on the app's database, for tests that look behind the API (signing keys).
    pub async fn store(&self) -> sesame_storage::Store {
        sesame_storage::Store::connect(&self.db.url, &sesame_storage::ConnectOptions::default())
            .await
            .expect("open the test database")
    }
}
