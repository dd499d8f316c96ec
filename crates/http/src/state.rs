//! The application state every handler shares, and the settings of the HTTP layer.

use std::sync::Arc;

use axum::extract::FromRef;
use sesame_core::Core;
use tower_cookies::cookie::SameSite;

use crate::metrics::Metrics;

/// What the HTTP layer needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Public base URL, e.g. `https://auth.example.com`; no trailing slash.
    pub issuer: String,
    /// Where `/authorize` sends a browser without a session (`SESAME_SIGNIN_URL`).
    pub signin_url: String,
    /// Whether to take the client IP from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// How long a handler may run before the request is answered `503`; its work goes
    /// on to the end.
    pub request_timeout: std::time::Duration,
    /// The default cookie profile.
    pub cookie: CookieConfig,
    /// The other cookie profiles (`[frontends.<name>]`); their origins are also in
    /// `allowed_origins`.
    pub frontends: Vec<FrontendProfile>,
    /// Browser origins allowed for CORS with credentials and for the CSRF origin check.
    pub allowed_origins: Vec<String>,
    /// Forward auth's rules (`[[forward_auth.rules]]`), first match by path prefix.
    pub forward_rules: Vec<ForwardRule>,
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

/// Who a request is, as `X-Sesame-Kind` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Client,
    Delegated,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
            Self::Delegated => "delegated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "client" => Some(Self::Client),
            "delegated" => Some(Self::Delegated),
            _ => None,
        }
    }
}

/// A forward-auth rule (§11): requests whose original path starts with `path_prefix`
/// need a caller of one of `kinds` (any, when empty) holding every one of `scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRule {
    pub path_prefix: String,
    pub scopes: Vec<String>,
    pub kinds: Vec<PrincipalKind>,
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
    /// CHIPS (`Partitioned`), for a cross-site front end's `SameSite=None` cookie.
    pub partitioned: bool,
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
            partitioned: false,
        }
    }
}

/// A cookie profile (§11, `[frontends.<name>]`): a first-party front end at its own
/// origins, with a session cookie of its own.
#[derive(Debug, Clone)]
pub struct FrontendProfile {
    pub name: String,
    /// Exact browser origins; a login from one starts a session of this profile.
    pub origins: Vec<String>,
    pub cookie: CookieConfig,
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
    /// The application: every service a handler calls.
    pub core: Core,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(config: HttpConfig, core: Core) -> Self {
        Self(Arc::new(Shared {
            config: Arc::new(config),
            core,
            metrics: Arc::new(Metrics::default()),
        }))
    }
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
