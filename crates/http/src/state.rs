//! The application state every handler shares, and the settings of the HTTP layer.

use std::sync::Arc;

use axum::extract::FromRef;
use sesame_domain::{PasswordPolicy, SessionPolicy, ThrottlePolicy};
use sesame_storage::Store;
use tower_cookies::cookie::SameSite;

use crate::hashing::HashingPool;
use crate::key_cache::KeyCache;
use crate::metrics::Metrics;
use crate::session_cache::SessionCache;
use crate::throttle::CleanMemo;
use crate::tokens::TokenService;

/// What the HTTP layer needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Public base URL, e.g. `https://auth.example.com`; no trailing slash.
    pub issuer: String,
    /// Browser origins allowed for CORS with credentials and for the CSRF origin check.
    pub allowed_origins: Vec<String>,
    pub cookie: CookieConfig,
    pub sessions: SessionPolicy,
    pub throttle: ThrottlePolicy,
    pub passwords: PasswordPolicy,
    /// Whether anyone may `POST /users`.
    pub registration_open: bool,
    /// Whether to take the client IP from `X-Forwarded-For`.
    pub trust_proxy: bool,
}

impl HttpConfig {
    /// The issuer's origin (`scheme://host[:port]`), as browsers send it in `Origin`.
    pub fn issuer_origin(&self) -> &str {
        origin_of(&self.issuer)
    }

    /// Whether a browser origin may make credentialed requests.
    pub fn is_trusted_origin(&self, origin: &str) -> bool {
        origin == self.issuer_origin() || self.allowed_origins.iter().any(|allowed| allowed == origin)
    }
}

/// The part of a URL before its path.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |slash| &url[..after_scheme + slash])
}

/// How the session cookie is written.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// The full name, including the `__Host-` prefix when secure.
    pub name: String,
    pub secure: bool,
    pub same_site: SameSite,
}

impl CookieConfig {
    /// Applies the naming rule: a secure cookie is sent as `__Host-<name>`, which browsers
    /// accept only with `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2).
    pub fn new(base_name: &str, secure: bool, same_site: SameSite) -> Self {
        let name = if secure {
            format!("__Host-{base_name}")
        } else {
            base_name.to_owned()
        };
        Self {
            name,
            secure,
            same_site,
        }
    }
}

/// Shared by every handler. Cloning it (which the router does several times per request)
/// costs one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// HTTP-layer settings, read once at start.
    pub config: Arc<HttpConfig>,
    /// The database, whichever backend.
    pub store: Store,
    /// argon2id on a bounded pool.
    pub hashing: HashingPool,
    /// A hash of a random password, verified against when the email is unknown so that
    /// unknown and known emails cost the same time.
    pub dummy_hash: Arc<str>,
    /// Signing keys, token issue and verification, and the revocation set.
    pub tokens: Arc<TokenService>,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Recently read live sessions (trusted for at most a second).
    pub sessions: Arc<SessionCache>,
    /// Recently read live API keys (trusted for at most a second).
    pub keys: Arc<KeyCache>,
    /// (client, IP) pairs recently found without login failures (for at most a second).
    pub clean_memo: Arc<CleanMemo>,
}

impl AppState {
    /// Builds the state, computing the dummy hash on the hashing pool.
    pub async fn new(
        config: HttpConfig,
        store: Store,
        hashing: HashingPool,
        tokens: Arc<TokenService>,
    ) -> Result<Self, crate::ApiError> {
        let dummy = sesame_domain::Password::for_login(base64_random())
            .map_err(|e| crate::ApiError::internal(std::io::Error::other(e.to_string())))?;
        let dummy_hash = hashing.hash(dummy).await?;
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            store,
            hashing,
            dummy_hash: dummy_hash.into(),
            tokens,
            metrics: Arc::new(Metrics::default()),
            sessions: Arc::new(SessionCache::default()),
            keys: Arc::new(KeyCache::default()),
            clean_memo: Arc::new(CleanMemo::default()),
        })))
    }
}

fn base64_random() -> String {
    sesame_domain::SessionHandle::generate().expose().to_owned()
}

impl FromRef<AppState> for Arc<HttpConfig> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin_of("https://auth.example.com"), "https://auth.example.com");
        assert_eq!(origin_of("https://auth.example.com/base/"), "https://auth.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
