//! First-party sessions: the random handle carried by the cookie, the hash the database
//! keeps, the CSRF token bound to the session, and the lifetime policy.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

/// Length of an encoded handle or CSRF token: 32 bytes in unpadded base64url.
const ENCODED_LEN: usize = 43;

crate::id::uuid_id! {
    /// A session's public identifier (shown in `GET /sessions`; not a credential).
    SessionId
}

/// The secret in the session cookie: 256 bits from the OS CSPRNG, base64url.
/// It exists in plain form only between the client and this process; `Debug` hides it.
#[derive(Clone)]
pub struct SessionHandle(String);

impl SessionHandle {
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(crate::random::bytes32()))
    }

    /// Accepts a cookie value only if it has the exact shape of a handle this server
    /// issues, so arbitrary input never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != ENCODED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == 32).then(|| Self(raw.to_owned()))
    }

    /// The value to put in `Set-Cookie`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SessionHandleHash {
        SessionHandleHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionHandle([redacted])")
    }
}

/// SHA-256 of a handle: what the database stores and looks sessions up by. A leaked
/// database yields hashes, and a hash is not accepted as a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandleHash([u8; 32]);

impl SessionHandleHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionHandleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionHandleHash([redacted])")
    }
}

/// Where a session was started from, as its owner's session list shows it: the client's
/// user agent (cut to a bounded length) and IP address, each when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// The per-session anti-CSRF token (synchronizer token pattern). Readable by the
/// session's own pages through `GET /me`, never by another site.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(crate::random::bytes32()))
    }

    /// Wraps a token read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a token presented in a request header.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken([redacted])")
    }
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after login, however much it is used.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3_600),
        }
    }
}

/// The longest gap between two `last_seen_at` writes for a session in use.
const MAX_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

impl SessionPolicy {
    /// When a session ends if it is not used again.
    pub fn expires_at(&self, created_at: OffsetDateTime, last_seen_at: OffsetDateTime) -> OffsetDateTime {
        (last_seen_at + self.idle).min(created_at + self.absolute)
    }

    pub fn is_live(&self, created_at: OffsetDateTime, last_seen_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        now < self.expires_at(created_at, last_seen_at)
    }

    /// How stale `last_seen_at` may get before a request writes it again. Writes are
    /// coalesced to at most one a minute per session, and to a tenth of the idle
    /// lifetime when that is shorter, so coalescing never shortens a session by more
    /// than 10% of its idle lifetime.
    pub fn touch_interval(&self) -> Duration {
        (self.idle / 10).min(MAX_TOUCH_INTERVAL)
    }

    pub fn needs_touch(&self, last_seen_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        now - last_seen_at >= self.touch_interval()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn handles_are_256_bits_and_unique() {
        let a = SessionHandle::generate();
        let b = SessionHandle::generate();
        assert_eq!(a.expose().len(), ENCODED_LEN);
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn parse_accepts_only_the_issued_shape() {
        let handle = SessionHandle::generate();
        let parsed = SessionHandle::parse(handle.expose()).expect("round trip");
        assert_eq!(parsed.hash(), handle.hash());
        assert!(SessionHandle::parse("").is_none());
        assert!(SessionHandle::parse(&handle.expose()[1..]).is_none());
        assert!(SessionHandle::parse(&format!("{}=", &handle.expose()[1..])).is_none());
        assert!(SessionHandle::parse(&"!".repeat(ENCODED_LEN)).is_none());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let handle = SessionHandle::generate();
        let csrf = CsrfToken::generate();
        assert!(!format!("{handle:?}{:?}", handle.hash()).contains(handle.expose()));
        assert!(!format!("{csrf:?}").contains(csrf.expose()));
    }

    #[test]
    fn csrf_tokens_match_exactly() {
        let token = CsrfToken::generate();
        assert!(token.matches(token.expose()));
        assert!(!token.matches(&token.expose()[1..]));
        assert!(!token.matches(""));
    }

    #[test]
    fn a_session_ends_at_the_earlier_of_idle_and_absolute() {
        let policy = SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(3_600),
        };
        let created = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(policy.expires_at(created, created), datetime!(2026-01-01 00:30 UTC));
        let late = datetime!(2026-01-01 00:50 UTC);
        assert_eq!(policy.expires_at(created, late), datetime!(2026-01-01 01:00 UTC));
        assert!(policy.is_live(created, late, datetime!(2026-01-01 00:59:59 UTC)));
        assert!(!policy.is_live(created, late, datetime!(2026-01-01 01:00 UTC)));
    }

    #[test]
    fn touches_are_coalesced() {
        let policy = SessionPolicy::default();
        assert_eq!(policy.touch_interval(), Duration::from_secs(60));
        let seen = datetime!(2026-01-01 00:00 UTC);
        assert!(!policy.needs_touch(seen, datetime!(2026-01-01 00:00:59 UTC)));
        assert!(policy.needs_touch(seen, datetime!(2026-01-01 00:01 UTC)));
        let short = SessionPolicy {
            idle: Duration::from_secs(2),
            absolute: Duration::from_secs(60),
        };
        assert_eq!(short.touch_interval(), Duration::from_millis(200));
    }
}
