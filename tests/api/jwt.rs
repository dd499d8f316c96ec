//! JWT tools of the suite's own, so that no test trusts sesame to check sesame: verifying a
//! token against the published JWKS with jsonwebtoken, and signing arbitrary headers and
//! claims with sesame's real key (read from the database) or an attacker's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::Value;
use sesame_core::tokens::SigningAlg;
use sesame_tests::TestApp;

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Verifies `token` the way an independent resource server would: the key chosen by `kid`
/// from the JWKS, the algorithm pinned to that key's `alg`, `iss`, `aud`, `exp` and `nbf`
/// checked with no leeway. Returns the claims.
pub fn verify_with_jwks(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Value {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK set");
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let kid = header.kid.expect("a kid");
    let jwk = set.find(&kid).expect("the token's kid is in the JWKS");
    let alg: Algorithm = jwk
        .common
        .key_algorithm
        .map(|a| a.to_string().parse().expect("a JWS algorithm"))
        .expect("the JWK names its alg");
    let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
    let mut validation = Validation::new(alg);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the token verifies against the JWKS: {e}"))
        .claims
}

/// A signing key: the algorithm and the private key.
pub struct Signer {
    pub alg: Algorithm,
    pub key: EncodingKey,
    /// The public half, as a JWK (for an embedded `jwk` header).
    pub jwk: Jwk,
}

impl Signer {
    fn from_record(alg: &str, der: &[u8]) -> Self {
        let alg: Algorithm = alg.parse().expect("a JWS algorithm");
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(der),
            other => panic!("the suite signs with EdDSA keys only, not {other:?}"),
        };
        let jwk = Jwk::from_encoding_key(&key, alg).expect("public JWK");
        Self { alg, key, jwk }
    }

    /// sesame's own signing key with this `kid`, read from the database.
    pub async fn sesame(app: &TestApp, kid: &str) -> Self {
        let store = app.store().await;
        let records = store.signing_keys.signing_keys().await.expect("signing keys");
        store.database.close().await;
        let record = records
            .iter()
            .find(|r| r.kid == kid)
            .expect("the kid is one of the stored keys");
        Self::from_record(&record.alg, &record.private_der)
    }

    /// A fresh Ed25519 key of the attacker's.
    pub fn attacker() -> Self {
        let record = sesame_core::tokens::keys::generate(SigningAlg::EdDsa, time::OffsetDateTime::now_utc())
            .expect("an Ed25519 key");
        Self::from_record(&record.alg, &record.private_der)
    }

    /// Signs any header and claims as given (the header's `alg` is not checked).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_with(header, claims, &self.key, self.alg)
    }
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"));
    format!("{}.{}", encode(header), encode(claims))
}

/// A compact JWS over exactly this header and these claims.
pub fn sign_with(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signing");
    format!("{input}.{signature}")
}
