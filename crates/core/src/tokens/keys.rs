//! Signing keys: generation, and the key ring built from the stored keys (the active
//! signing key, every key still trusted for verification, and the published JWKS).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sesame_storage::SigningKeyRecord;
use time::OffsetDateTime;

/// The signature algorithm of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// Ed25519.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

impl FromStr for SigningAlg {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "EdDSA" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => Err(KeyError(format!("unknown signing algorithm {other:?}"))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyError(pub String);

fn key_error(e: impl std::fmt::Display) -> KeyError {
    KeyError(e.to_string())
}

/// Makes a new key with a random `kid`, stored as PKCS#8 DER.
pub fn generate(alg: SigningAlg, now: OffsetDateTime) -> Result<SigningKeyRecord, KeyError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let private_der = match alg {
        SigningAlg::EdDsa => {
            // PKCS#8 v1 (the seed alone), the form jsonwebtoken reads.
            let key = ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: sesame_domain::random::bytes32(),
                public_key: None,
            };
            key.to_pkcs8_der().map_err(key_error)?.as_bytes().to_vec()
        }
        SigningAlg::Es256 => {
            // A random scalar is out of range with probability ~2^-128; draw again if so.
            let key = loop {
                if let Ok(key) = p256::SecretKey::from_slice(&sesame_domain::random::bytes32()) {
                    break key;
                }
            };
            p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                .map_err(key_error)?
                .as_bytes()
                .to_vec()
        }
        SigningAlg::Rs256 => {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(key_error)?;
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                .map_err(key_error)?
                .as_bytes()
                .to_vec()
        }
    };
    let mut kid = [0u8; 16];
    sesame_domain::random::fill(&mut kid);
    Ok(SigningKeyRecord {
        kid: URL_SAFE_NO_PAD.encode(kid),
        alg: alg.as_str().to_owned(),
        private_der,
        created_at: now,
        signs_from: None,
    })
}

/// The key used to sign new tokens.
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub signer: Signer,
}

/// A signing key parsed once. Parsing derives the public key, a scalar multiplication as
/// dear as a signature, so a key parsed for every token would double its cost.
///
/// Signatures are made by aws-lc (through `aws-lc-rs`): its Ed25519 signs in about half
/// the time of the portable Rust implementation, and its RSA signing is constant-time.
/// Verification stays with jsonwebtoken's Rust backend.
pub enum Signer {
    EdDsa(aws_lc_rs::signature::Ed25519KeyPair),
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    Rs256(aws_lc_rs::signature::RsaKeyPair),
}

impl Signer {
    fn new(alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
        Ok(match alg {
            // PKCS#8 v1, the seed alone, as `generate` writes it.
            SigningAlg::EdDsa => Self::EdDsa(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(key_error)?),
            SigningAlg::Es256 => {
                Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(key_error)?)
            }
            SigningAlg::Rs256 => Self::Rs256(RsaKeyPair::from_pkcs8(der).map_err(key_error)?),
        })
    }

    /// The JWS signature (RFC 7515 §3.1 and RFC 7518 §3) of `message`, the encoded header
    /// and payload joined by a dot.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let random = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::EdDsa(key) => Ok(key.sign(message).as_ref().to_vec()),
            // ES256 is R and S, 32 bytes each (RFC 7518 §3.4): the "fixed" encoding.
            Self::Es256(key) => Ok(key.sign(&random, message).map_err(key_error)?.as_ref().to_vec()),
            Self::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &random,
                    message,
                    &mut signature,
                )
                .map_err(key_error)?;
                Ok(signature)
            }
        }
    }
}

/// A key trusted for verification, with the one algorithm it may be used with.
pub struct VerifyingKey {
    pub alg: SigningAlg,
    pub decoding: DecodingKey,
}

/// Everything derived from the stored keys.
pub struct KeyRing {
    /// Every key that signs or will, in the database's order, with when it starts (`None`:
    /// at once).
    signers: Vec<(Option<OffsetDateTime>, ActiveKey)>,
    pub verifying: HashMap<String, VerifyingKey>,
    pub jwks: JwkSet,
}

/// The key material as jsonwebtoken wants it (PKCS#8 for Ed25519 and P-256, PKCS#1 for RSA).
fn encoding_key(alg: SigningAlg, der: &[u8]) -> Result<EncodingKey, KeyError> {
    Ok(match alg {
        SigningAlg::EdDsa => EncodingKey::from_ed_der(der),
        SigningAlg::Es256 => EncodingKey::from_ec_der(der),
        SigningAlg::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            let key: rsa::RsaPrivateKey = rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(der).map_err(key_error)?;
            EncodingKey::from_rsa_der(key.to_pkcs1_der().map_err(key_error)?.as_bytes())
        }
    })
}

impl KeyRing {
    /// Builds the ring from every stored key, in the database's order. A key is published
    /// (JWKS) and trusted from the moment it is stored; it signs from its `signs_from`, the
    /// newest such key winning; it stays trusted and published until `retain` after a
    /// later key started signing: long enough for every token it signed, and for every
    /// instance to have switched.
    pub fn build(records: &[SigningKeyRecord], now: OffsetDateTime, retain: Duration) -> Result<Self, KeyError> {
        if records.is_empty() {
            return Err(KeyError("no signing key".into()));
        }
        let mut verifying = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut signers = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let succeeded_at = records[index + 1..]
                .iter()
                .map(|next| next.signs_from.unwrap_or(next.created_at))
                .min();
            let retired_long_ago = succeeded_at.is_some_and(|at| now - at > retain);
            if retired_long_ago {
                continue;
            }
            let alg: SigningAlg = record.alg.parse()?;
            let encoding = encoding_key(alg, &record.private_der)?;
            let mut jwk = Jwk::from_encoding_key(&encoding, alg.jwt()).map_err(key_error)?;
            jwk.common.key_id = Some(record.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(match alg {
                SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
                SigningAlg::Es256 => KeyAlgorithm::ES256,
                SigningAlg::Rs256 => KeyAlgorithm::RS256,
            });
            let decoding = DecodingKey::from_jwk(&jwk).map_err(key_error)?;
            verifying.insert(record.kid.clone(), VerifyingKey { alg, decoding });
            jwks.keys.push(jwk);
            signers.push((
                record.signs_from,
                ActiveKey {
                    kid: record.kid.clone(),
                    alg,
                    signer: Signer::new(alg, &record.private_der)?,
                },
            ));
        }
        // Newest first, so a reader of the JWKS sees the latest key at the top.
        jwks.keys.reverse();
        Ok(Self {
            signers,
            verifying,
            jwks,
        })
    }

    /// The key that signs at `now`: the newest whose time has come (the oldest kept, if
    /// none has: a clock set back before every key).
    pub fn active(&self, now: OffsetDateTime) -> &ActiveKey {
        let started = self
            .signers
            .iter()
            .rev()
            .find(|(from, _)| from.is_none_or(|from| from <= now));
        // `build` refuses an empty ring, and a retired key is only dropped after a
        // later one started, so there is always a first signer.
        #[allow(clippy::expect_used)]
        let first = self.signers.first().expect("a key ring has a key");
        &started.unwrap_or(first).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_the_ring() {
        let now = sesame_domain::now();
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let record = generate(alg, now).expect("generate");
            let ring = KeyRing::build(std::slice::from_ref(&record), now, Duration::from_secs(3_600)).expect("ring");
            assert_eq!(ring.active(now).kid, record.kid);
            assert_eq!(ring.jwks.keys.len(), 1);
            let json = serde_json::to_value(&ring.jwks).expect("json");
            let text = json.to_string();
            assert!(!text.contains("\"d\""), "no private parts: {text}");
            assert_eq!(json["keys"][0]["kid"], record.kid.as_str());
            assert_eq!(json["keys"][0]["use"], "sig");
            assert_eq!(json["keys"][0]["alg"], alg.as_str());
            // What the signer signs, the published key verifies (and nothing else).
            let message = b"eyJhbGciOiJ9.eyJzdWIiOiJ9";
            let signature = ring.active(now).signer.sign(message).expect("sign");
            let decoding = &ring.verifying[&record.kid].decoding;
            let verifies = |message: &[u8], signature: &[u8]| {
                jsonwebtoken::crypto::verify(&URL_SAFE_NO_PAD.encode(signature), message, decoding, alg.jwt())
                    .unwrap_or(false)
            };
            assert!(verifies(message, &signature), "{alg:?}");
            assert!(!verifies(b"eyJhbGciOiJ9.eyJzdWIiOiK9", &signature), "{alg:?}");
            let mut forged = signature.clone();
            forged[7] ^= 1;
            assert!(!verifies(message, &forged), "{alg:?}");
        }
    }

    #[test]
    fn a_rotated_key_is_published_at_once_and_signs_only_from_its_time() {
        let start = sesame_domain::now();
        let old = generate(SigningAlg::EdDsa, start).expect("old");
        let new = SigningKeyRecord {
            signs_from: Some(start + time::Duration::minutes(5)),
            ..generate(SigningAlg::EdDsa, start + time::Duration::minutes(1)).expect("new")
        };
        let records = [old.clone(), new.clone()];
        let retain = Duration::from_secs(600);
        let before = start + time::Duration::minutes(2);
        let ring = KeyRing::build(&records, before, retain).expect("ring");
        assert_eq!(ring.active(before).kid, old.kid, "the new key does not sign yet");
        assert!(ring.verifying.contains_key(&new.kid), "but it is published");
        assert_eq!(ring.jwks.keys.len(), 2);
        assert_eq!(ring.active(start + time::Duration::minutes(5)).kid, new.kid);
        // The old key is kept for `retain` after the new one started, not after it was made.
        let later = KeyRing::build(&records, start + time::Duration::minutes(14), retain).expect("ring");
        assert!(later.verifying.contains_key(&old.kid));
        let gone = KeyRing::build(&records, start + time::Duration::minutes(16), retain).expect("ring");
        assert!(!gone.verifying.contains_key(&old.kid));
    }

    #[test]
    fn a_retired_key_is_published_until_its_retention_ends() {
        let start = sesame_domain::now();
        let old = generate(SigningAlg::EdDsa, start).expect("old");
        let new = generate(SigningAlg::EdDsa, start + time::Duration::minutes(1)).expect("new");
        let records = [old.clone(), new.clone()];
        let retain = Duration::from_secs(600);
        let ring = KeyRing::build(&records, start + time::Duration::minutes(5), retain).expect("ring");
        assert_eq!(ring.active(start + time::Duration::minutes(5)).kid, new.kid);
        assert!(ring.verifying.contains_key(&old.kid));
        assert_eq!(ring.jwks.keys.len(), 2);
        let later = KeyRing::build(&records, start + time::Duration::minutes(12), retain).expect("ring");
        assert!(!later.verifying.contains_key(&old.kid));
        assert_eq!(later.jwks.keys.len(), 1);
    }
}
