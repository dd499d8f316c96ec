//! Forged and altered tokens (RFC 8725): each case is refused by `GET /me` with an
//! `invalid_token` challenge and introspects as `{"active": false}`. Cases that need a
//! valid signature are signed with sesame's real key, read from the database, so that the
//! one thing wrong with each is the thing under test; a control token minted the same way
//! is accepted, so the refusals are not an artefact of the minting.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp, header_text, jwt_part, on_both_backends};

use crate::jwt::{Signer, now, sign_with, signing_input};

on_both_backends!(
    forged_and_altered_tokens_are_all_refused_as_invalid_tokens,
    a_token_expired_within_the_leeway_is_still_accepted,
);

/// A client, a genuine token, and what is needed to forge others.
struct Forge {
    app: TestApp,
    client_id: String,
    key: String,
    genuine: String,
    /// The genuine token's header and claims.
    header: Value,
    claims: Value,
    sesame: Signer,
}

impl Forge {
    async fn new(backend: Backend) -> Self {
        let app = TestApp::spawn(backend, &[]).await;
        let session = app.signed_in("ada@example.com").await;
        let client = app.create_client(&session, &["notes:read"]).await;
        let genuine = app.token(&client.client_id, &client.key, None).await;
        let header = jwt_part(&genuine, 0);
        let claims = jwt_part(&genuine, 1);
        let sesame = Signer::sesame(&app, header["kid"].as_str().unwrap()).await;
        Self {
            app,
            client_id: client.client_id,
            key: client.key,
            genuine,
            header,
            claims,
            sesame,
        }
    }

    fn kid(&self) -> &str {
        self.header["kid"].as_str().unwrap()
    }

    /// The genuine header with these members changed (`null` removes one).
    fn header_with(&self, changes: &Value) -> Value {
        with(&self.header, changes)
    }

    /// Fresh genuine claims (a new `jti`, issued now) with these members changed.
    fn claims_with(&self, changes: &Value) -> Value {
        let t = now();
        let fresh = with(
            &self.claims,
            &json!({"iat": t, "nbf": t, "exp": t + 600, "jti": URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())}),
        );
        with(&fresh, changes)
    }

    /// Signed with sesame's real key: only the changes can make it fail.
    fn real(&self, header: &Value, claims: &Value) -> String {
        self.sesame.sign(header, claims)
    }

    /// Whether sesame refuses the token everywhere it checks one.
    async fn refused(&self, token: &str) -> Result<(), String> {
        let response = self.app.me_bearer(token).await;
        let status = response.status();
        let challenge = header_text(&response, "www-authenticate");
        if status != StatusCode::UNAUTHORIZED || !challenge.contains(r#"error="invalid_token""#) {
            return Err(format!("GET /me answered {status} with WWW-Authenticate {challenge:?}"));
        }
        let introspection = self.app.introspect(&self.client_id, &self.key, token).await;
        if introspection != json!({"active": false}) {
            return Err(format!("introspection said {introspection}"));
        }
        Ok(())
    }
}

/// `base` with `changes` merged in; a `null` change removes the member.
fn with(base: &Value, changes: &Value) -> Value {
    let mut out = base.as_object().unwrap().clone();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            out.remove(name);
        } else {
            out.insert(name.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A JWS with no signature at all.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// The token with one bit of its signature flipped.
fn flip_signature_bit(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

async fn forged_and_altered_tokens_are_all_refused_as_invalid_tokens(backend: Backend) {
    let forge = Forge::new(backend).await;
    let attacker = Signer::attacker();
    let kid = forge.kid().to_owned();
    let t = now();
    let genuine = forge.genuine.clone();

    // The control: minted here with the real key and genuine header, it is accepted, so
    // every refusal below is down to the one change each case makes.
    let control = forge.real(&forge.header, &forge.claims_with(&json!({})));
    assert!(
        forge.app.accepts(&control).await,
        "a token minted with the real key is accepted"
    );

    // The server's public key, as published, to key an HMAC with (algorithm confusion).
    let jwks = forge.app.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let public_bytes = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let hs256 = |secret: &[u8]| {
        sign_with(
            &forge.header_with(&json!({"alg": "HS256"})),
            &forge.claims_with(&json!({})),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
    };
    let attacker_jwk = serde_json::to_value(&attacker.jwk).unwrap();
    let claims = forge.claims_with(&json!({}));

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none, unsigned",
            unsigned(&forge.header_with(&json!({"alg": "none"})), &claims),
        ),
        (
            "alg None, unsigned",
            unsigned(&forge.header_with(&json!({"alg": "None"})), &claims),
        ),
        (
            "alg none, with the genuine signature kept",
            format!(
                "{}.{}",
                signing_input(&forge.header_with(&json!({"alg": "none"})), &jwt_part(&genuine, 1)),
                genuine.rsplit('.').next().unwrap()
            ),
        ),
        ("HS256 keyed with the public key's bytes", hs256(&public_bytes)),
        ("HS256 keyed with the JWK's x string", hs256(x.as_bytes())),
        (
            "signed by a foreign Ed25519 key under the real kid",
            attacker.sign(&forge.header, &claims),
        ),
        (
            "an embedded jwk with the attacker's key, and no kid",
            attacker.sign(&forge.header_with(&json!({"kid": null, "jwk": attacker_jwk})), &claims),
        ),
        (
            "an embedded jwk with the attacker's key, under the real kid",
            attacker.sign(&forge.header_with(&json!({"jwk": attacker_jwk})), &claims),
        ),
        (
            "a jku pointing at the attacker's key set",
            attacker.sign(
                &forge.header_with(&json!({"kid": "attacker", "jku": "https://attacker.example/jwks.json"})),
                &claims,
            ),
        ),
        (
            "an x5u header",
            attacker.sign(
                &forge.header_with(&json!({"kid": "attacker", "x5u": "https://attacker.example/cert.pem"})),
                &claims,
            ),
        ),
        (
            "a jku header, even on a token signed with the real key",
            forge.real(
                &forge.header_with(&json!({"jku": "https://attacker.example/jwks.json"})),
                &claims,
            ),
        ),
        (
            "an embedded jwk, even on a token signed with the real key",
            forge.real(&forge.header_with(&json!({"jwk": jwks["keys"][0].clone()})), &claims),
        ),
        (
            "typ JWT",
            forge.real(&forge.header_with(&json!({"typ": "JWT"})), &claims),
        ),
        ("no typ", forge.real(&forge.header_with(&json!({"typ": null})), &claims)),
        (
            "the wrong issuer",
            forge.real(
                &forge.header,
                &forge.claims_with(&json!({"iss": "https://evil.example"})),
            ),
        ),
        (
            "the issuer with a trailing slash",
            forge.real(
                &forge.header,
                &forge.claims_with(&json!({"iss": format!("{}/", forge.app.base)})),
            ),
        ),
        (
            "no issuer",
            forge.real(&forge.header, &forge.claims_with(&json!({"iss": null}))),
        ),
        (
            "the wrong audience",
            forge.real(
                &forge.header,
                &forge.claims_with(&json!({"aud": "https://other.example"})),
            ),
        ),
        (
            "no audience",
            forge.real(&forge.header, &forge.claims_with(&json!({"aud": null}))),
        ),
        (
            "expired beyond the 60 s leeway",
            forge.real(
                &forge.header,
                &forge.claims_with(&json!({"iat": t - 1000, "nbf": t - 1000, "exp": t - 120})),
            ),
        ),
        (
            "no exp",
            forge.real(&forge.header, &forge.claims_with(&json!({"exp": null}))),
        ),
        (
            "not valid before a time beyond the leeway",
            forge.real(
                &forge.header,
                &forge.claims_with(&json!({"nbf": t + 300, "exp": t + 900})),
            ),
        ),
        (
            "an unknown kid",
            forge.real(&forge.header_with(&json!({"kid": "no-such-key"})), &claims),
        ),
        ("no kid", forge.real(&forge.header_with(&json!({"kid": null})), &claims)),
        ("a signature with one bit flipped", flip_signature_bit(&genuine)),
        ("truncated", genuine[..genuine.len() - 10].to_owned()),
        (
            "without its signature",
            format!("{}.", genuine.rsplit_once('.').unwrap().0),
        ),
        (
            "claims altered after signing (a wider scope)",
            format!(
                "{}.{}",
                signing_input(
                    &forge.header,
                    &with(&jwt_part(&genuine, 1), &json!({"scope": "notes:read admin"}))
                ),
                genuine.rsplit('.').next().unwrap()
            ),
        ),
        (
            "claims of another client under a genuine signature",
            format!(
                "{}.{}",
                signing_input(
                    &forge.header,
                    &with(
                        &jwt_part(&genuine, 1),
                        &json!({"sub": "cli_AAAAAAAAAAAAAAAAAAAAAA", "client_id": "cli_AAAAAAAAAAAAAAAAAAAAAA"})
                    )
                ),
                genuine.rsplit('.').next().unwrap()
            ),
        ),
    ];
    assert!(!cases.iter().any(|(_, token)| token == &genuine));
    assert_eq!(jwt_part(&genuine, 0)["kid"], kid.as_str());

    let mut failures = Vec::new();
    for (name, token) in &cases {
        if let Err(why) = forge.refused(token).await {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "accepted forgeries:\n{}", failures.join("\n"));
    assert!(forge.app.accepts(&genuine).await, "the genuine token is untouched");
    forge.app.stop().await;
}

async fn a_token_expired_within_the_leeway_is_still_accepted(backend: Backend) {
    let forge = Forge::new(backend).await;
    let t = now();
    let recently_expired = forge.real(
        &forge.header,
        &forge.claims_with(&json!({"iat": t - 900, "nbf": t - 900, "exp": t - 20})),
    );
    assert!(
        forge.app.accepts(&recently_expired).await,
        "20 s late is within 60 s of skew"
    );
    let not_yet_valid = forge.real(
        &forge.header,
        &forge.claims_with(&json!({"iat": t + 20, "nbf": t + 20, "exp": t + 900})),
    );
    assert!(
        forge.app.accepts(&not_yet_valid).await,
        "20 s early is within 60 s of skew"
    );
    forge.app.stop().await;
}
