//! Third-party clients: their ids, their API keys, and the scopes they may ask for.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

/// A client's public identifier: `cli_` and 128 random bits in base64url. The prefix
/// means a client id can never equal a user id (a UUID), so a token's `sub` is never
/// ambiguous.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

const CLIENT_PREFIX: &str = "cli_";

impl ClientId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        crate::random::fill(&mut bytes);
        Self(format!("{CLIENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accepts only the shape this server issues.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(CLIENT_PREFIX)?;
        let ok = rest.len() == 22 && URL_SAFE_NO_PAD.decode(rest).is_ok_and(|b| b.len() == 16);
        ok.then(|| Self(raw.to_owned()))
    }
}

crate::id::text_value!(ClientId);

crate::id::uuid_id! {
    /// An API key's public identifier, embedded in the key so the server finds its record
    /// without scanning.
    ApiKeyId
}

/// A plain API key: `sk_<key id, 32 hex>_<256 random bits, base64url>`. Shown to its
/// owner once; `Debug` hides it.
#[derive(Clone)]
pub struct ApiKey {
    id: ApiKeyId,
    text: String,
}

/// SHA-256 of a whole API key: what the database keeps. The key carries 256 random bits,
/// so a fast hash is enough; there is nothing to brute-force.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKey {
    pub fn generate() -> (Self, ApiKeyId) {
        let id = ApiKeyId::new();
        let secret = URL_SAFE_NO_PAD.encode(crate::random::bytes32());
        let text = format!("sk_{}_{secret}", id.0.simple());
        (Self { id, text }, id)
    }

    /// Accepts only the shape this server issues.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("sk_")?;
        let (id, secret) = rest.split_once('_')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return None;
        }
        let id = Uuid::try_parse(id).ok()?;
        let secret_ok = secret.len() == 43 && URL_SAFE_NO_PAD.decode(secret).is_ok_and(|b| b.len() == 32);
        secret_ok.then(|| Self {
            id: ApiKeyId(id),
            text: raw.to_owned(),
        })
    }

    pub fn id(&self) -> ApiKeyId {
        self.id
    }

    pub fn expose(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.text.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, [redacted])", self.id)
    }
}

impl ApiKeyHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash([redacted])")
    }
}

/// One OAuth scope: `^[a-z0-9_.:-]{1,64}$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope {0:?} must be 1 to 64 of a-z 0-9 _ . : -")]
    Malformed(String),
    #[error("scope {0:?} is not granted to this client")]
    NotGranted(String),
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ScopeError::Malformed(raw.chars().take(80).collect()))
        }
    }
}

crate::id::text_value!(Scope);

/// A set of scopes, kept sorted so that its text form is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn from_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        items.into_iter().map(Scope::parse).collect::<Result<_, _>>().map(Self)
    }

    pub fn from_scopes(items: impl IntoIterator<Item = Scope>) -> Self {
        Self(items.into_iter().collect())
    }

    /// The scopes that pass `keep`.
    pub fn filter(&self, mut keep: impl FnMut(&Scope) -> bool) -> Self {
        Self(self.0.iter().filter(|s| keep(s)).cloned().collect())
    }

    /// Parses the space-separated form used in OAuth (`scope=a b c`).
    pub fn parse_space_separated(text: &str) -> Result<Self, ScopeError> {
        Self::from_list(text.split(' ').filter(|s| !s.is_empty()))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// The space-separated form.
    pub fn to_text(&self) -> String {
        self.0.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// The scopes a token gets: all of the client's when none are requested, else the
    /// requested ones, each of which the client must hold (RFC 6749 §3.3).
    pub fn narrow(&self, requested: Option<&str>) -> Result<Self, ScopeError> {
        let Some(requested) = requested.filter(|r| !r.trim_matches(' ').is_empty()) else {
            return Ok(self.clone());
        };
        let requested = Self::parse_space_separated(requested)?;
        if let Some(extra) = requested.0.iter().find(|s| !self.0.contains(*s)) {
            return Err(ScopeError::NotGranted(extra.as_str().to_owned()));
        }
        Ok(requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_carry_a_prefix_and_parse_back() {
        let id = ClientId::generate();
        assert_eq!(ClientId::parse(id.as_str()), Some(id.clone()));
        assert!(id.as_str().starts_with("cli_"));
        assert!(ClientId::parse("cli_short").is_none());
        assert!(ClientId::parse(&id.as_str().replace("cli_", "usr_")).is_none());
        assert!(ClientId::parse(&Uuid::now_v7().to_string()).is_none());
    }

    #[test]
    fn api_keys_embed_their_id_and_parse_strictly() {
        let (key, id) = ApiKey::generate();
        assert!(key.expose().starts_with("sk_"));
        let parsed = ApiKey::parse(key.expose()).expect("round trip");
        assert_eq!(parsed.id(), id);
        assert!(parsed.hash().matches(&key.hash()));
        let text = key.expose();
        for bad in [
            "",
            "sk_",
            &text[..text.len() - 1],
            &format!("{text}x"),
            &text.replace("sk_", "pk_"),
            &text.to_uppercase(),
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{key:?}").contains(&text[36..]));
    }

    #[test]
    fn different_keys_have_different_hashes() {
        let (a, _) = ApiKey::generate();
        let (b, _) = ApiKey::generate();
        assert!(!a.hash().matches(&b.hash()));
    }

    #[test]
    fn scopes_follow_the_grammar() {
        for good in ["notes:read", "a", "x.y-z_1", &"a".repeat(64)] {
            assert!(Scope::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Notes", "a b", "é", &"a".repeat(65), "a/b"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn narrowing_grants_subsets_only() {
        let granted = Scopes::from_list(["notes:read", "notes:write"]).expect("valid");
        assert_eq!(granted.narrow(None).expect("all"), granted);
        assert_eq!(granted.narrow(Some("")).expect("all"), granted);
        assert_eq!(
            granted.narrow(Some("notes:read")).expect("subset").to_text(),
            "notes:read"
        );
        assert_eq!(
            granted
                .narrow(Some("notes:write  notes:read"))
                .expect("subset")
                .to_text(),
            "notes:read notes:write"
        );
        assert_eq!(
            granted.narrow(Some("notes:read admin")),
            Err(ScopeError::NotGranted("admin".into()))
        );
        assert!(matches!(granted.narrow(Some("NOTES")), Err(ScopeError::Malformed(_))));
    }
}
