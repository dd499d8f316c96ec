//! The authorization-code grant's secrets (RFC 6749 §4.1, RFC 7636, RFC 9700): the
//! single-use code handed to the browser, and the PKCE proof that only the app that
//! started the flow can redeem it.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A live grant, as its user lists it: an app they let act for them, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    pub client_id: crate::ClientId,
    pub client_name: String,
    pub scopes: crate::Scopes,
    pub created_at: time::OffsetDateTime,
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// What kind of single-purpose secret an [`Opaque`] is: its prefix and its name.
pub trait OpaqueKind {
    const PREFIX: &'static str;
    const NAME: &'static str;
}

/// An opaque secret handed to a client: a prefix and 256 random bits in base64url. Only
/// its hash is stored; `Debug` hides it.
pub struct Opaque<K>(String, PhantomData<K>);

/// The authorization code's kind (`ac_…`).
pub enum Code {}

impl OpaqueKind for Code {
    const PREFIX: &'static str = "ac_";
    const NAME: &'static str = "AuthorizationCode";
}

/// The refresh token's kind (`rt_…`, §10).
pub enum Refresh {}

impl OpaqueKind for Refresh {
    const PREFIX: &'static str = "rt_";
    const NAME: &'static str = "RefreshToken";
}

/// A single-use authorization code.
pub type AuthorizationCode = Opaque<Code>;

/// A rotating refresh token.
pub type RefreshToken = Opaque<Refresh>;

/// SHA-256 of a whole opaque secret: what the database keeps and looks it up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeHash([u8; 32]);

/// A refresh token's hash: the same digest as a code's.
pub type RefreshTokenHash = CodeHash;

impl<K: OpaqueKind> Opaque<K> {
    pub fn generate() -> Self {
        Self(
            format!("{}{}", K::PREFIX, URL_SAFE_NO_PAD.encode(crate::random::bytes32())),
            PhantomData,
        )
    }

    /// Accepts only the shape this server issues, so arbitrary input never reaches the
    /// database.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(K::PREFIX)?;
        let ok = rest.len() == 43 && URL_SAFE_NO_PAD.decode(rest).is_ok_and(|b| b.len() == 32);
        ok.then(|| Self(raw.to_owned(), PhantomData))
    }

    /// The value handed to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> CodeHash {
        CodeHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl<K> Clone for Opaque<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<K: OpaqueKind> fmt::Debug for Opaque<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}([redacted])", K::NAME)
    }
}

impl CodeHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash([redacted])")
    }
}

/// An S256 code challenge (RFC 7636 §4.2): `BASE64URL(SHA256(verifier))`, 43 characters.
/// `plain` is never accepted (RFC 9700 §2.1.1).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// A challenge as the authorization request carries it, with its method: only
    /// `S256`, and only the shape SHA-256 in base64url has.
    pub fn parse(challenge: &str, method: Option<&str>) -> Option<Self> {
        if method != Some("S256") {
            return None;
        }
        let ok = challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|b| b.len() == 32);
        ok.then(|| Self(challenge.to_owned()))
    }

    /// A challenge read back from storage.
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` (43 to 128 of `A-Z a-z 0-9 - . _ ~`, RFC 7636 §4.1) hashes to
    /// this challenge, compared in constant time.
    pub fn is_met_by(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let matches: bool = computed.as_bytes().ct_eq(self.0.as_bytes()).into();
        well_formed && matches
    }
}

impl fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeChallenge({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_one_shape_and_hide_in_debug() {
        let code = AuthorizationCode::generate();
        assert!(code.expose().starts_with("ac_"));
        let parsed = AuthorizationCode::parse(code.expose()).expect("round trip");
        assert_eq!(parsed.hash(), code.hash());
        for bad in ["", "ac_", &code.expose()[1..], &format!("{}x", code.expose())] {
            assert!(AuthorizationCode::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{code:?}").contains(&code.expose()[3..]));
        let refresh = RefreshToken::generate();
        assert!(refresh.expose().starts_with("rt_"));
        assert!(
            RefreshToken::parse(code.expose()).is_none(),
            "a code is no refresh token"
        );
        assert!(AuthorizationCode::parse(refresh.expose()).is_none());
        assert_eq!(format!("{refresh:?}"), "RefreshToken([redacted])");
    }

    #[test]
    fn pkce_is_s256_only_and_checks_the_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let parsed = CodeChallenge::parse(challenge, Some("S256")).expect("valid");
        assert!(parsed.is_met_by(verifier));
        assert!(!parsed.is_met_by("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
        assert!(!parsed.is_met_by(challenge));
        assert!(CodeChallenge::parse(challenge, Some("plain")).is_none());
        assert!(CodeChallenge::parse(challenge, None).is_none());
        assert!(CodeChallenge::parse("short", Some("S256")).is_none());
        // A verifier of the wrong shape never passes, even if its hash matched.
        let short = "abc";
        let short_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(short.as_bytes()));
        assert!(!CodeChallenge::from_stored(short_challenge).is_met_by(short));
    }
}
