//! sesame's settings: one typed struct, read once at start from `SESAME_*` environment
//! variables and an optional TOML file (same keys, lower case, no prefix; the
//! environment wins). Every setting is checked here; an invalid one names itself and
//! what it accepts, and nothing is silently clamped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sesame_domain::{
    Budget, Catalogue, PasswordPolicy, Scope, ScopeInfo, SessionPolicy, ThrottlePolicy, parse_duration,
};
use sesame_http::{ForwardRule, PrincipalKind};
use tower_cookies::cookie::SameSite;

use crate::serve::Limits;

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The environment variable's name (the TOML key is its lower-case suffix).
    pub setting: String,
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: format!("SESAME_{}", key.to_ascii_uppercase()),
        message: message.into(),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub use sesame_core::SigningAlg;

/// A database URL fit for a log line or a `Debug` output: a user-info password and every
/// `password`-like query parameter (`password`, `sslpassword`) replaced.
pub fn redact_database_url(url: &str) -> String {
    const HIDDEN: &str = "[redacted]";
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL we can take apart: keep only what cannot be a secret.
        return match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}{HIDDEN}{}", &url[..scheme + 3], &url[at..]),
            _ => url.split('?').next().unwrap_or_default().to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let secret = key.to_ascii_lowercase().contains("password");
                (
                    key.into_owned(),
                    if secret { HIDDEN.to_owned() } else { value.into_owned() },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The URL encoder escapes the brackets; a reader should see them.
    parsed
        .to_string()
        .replace("%5Bredacted%5D", HIDDEN)
        .replace("%5Bredacted%5d", HIDDEN)
}

/// Every setting sesame has. See the table in the README. Its `Debug` shows the database
/// URL without credentials and no secret.
#[derive(Clone)]
pub struct Config {
    /// `SESAME_DATABASE_URL` (or `DATABASE_URL`): `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `SESAME_DATABASE_NOTIFY`: hear of other instances' revocations and ended sessions
    /// by Postgres `LISTEN` (default); `false` behind a pooler that cannot listen, leaving
    /// the 1 s poll and session cache as the bound.
    pub database_notify: bool,
    /// `SESAME_LISTEN`: the address to bind.
    pub listen: SocketAddr,
    /// `SESAME_ISSUER`: public base URL; `None` means `http://` + the bound address.
    pub issuer: Option<String>,
    /// `SESAME_AUDIENCE`: the JWT `aud`; `None` means the issuer.
    pub audience: Option<String>,
    /// `SESAME_SIGNIN_URL`: where `/authorize` sends a browser to sign in; `None` means
    /// the issuer's own `/signin` page.
    pub signin_url: Option<String>,
    /// `SESAME_ALLOWED_ORIGINS`: browser origins allowed for CORS and the CSRF check.
    pub allowed_origins: Vec<String>,
    /// `SESAME_COOKIE_NAME`: the cookie's base name (prefixed `__Host-` when secure).
    pub cookie_name: String,
    /// `SESAME_COOKIE_SECURE`: `None` means "secure when the issuer is https".
    pub cookie_secure: Option<bool>,
    /// `SESAME_COOKIE_SAMESITE`.
    pub cookie_same_site: SameSite,
    /// `SESAME_SESSION_IDLE` and `SESAME_SESSION_ABSOLUTE`.
    pub sessions: SessionPolicy,
    /// `SESAME_TOKEN_TTL`: access-token lifetime, 1m to 1h.
    pub token_ttl: Duration,
    /// `SESAME_REGISTRATION`: whether `POST /users` is open.
    pub registration_open: bool,
    /// `SESAME_THROTTLE_ACCOUNT_IP`, `SESAME_THROTTLE_ACCOUNT`, `SESAME_THROTTLE_IP`,
    /// `SESAME_THROTTLE_REGISTRATION`.
    pub throttle: ThrottlePolicy,
    /// `SESAME_PASSWORD_MIN_LENGTH`.
    pub passwords: PasswordPolicy,
    /// `SESAME_SIGNING_ALG`.
    pub signing_alg: SigningAlg,
    /// `SESAME_TRUST_PROXY`: take the client IP from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// `SESAME_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `SESAME_HEADER_TIMEOUT` (a request's headers must arrive within it),
    /// `SESAME_IDLE_TIMEOUT` (an idle keep-alive connection closes after it) and
    /// `SESAME_MAX_CONNECTIONS` (connections served at once).
    pub connections: Limits,
    /// `SESAME_REQUEST_TIMEOUT`: a handler running longer is answered 503.
    pub request_timeout: Duration,
    /// `SESAME_KEY_PUBLISH_DELAY`: how long a rotated key is published before it signs.
    pub key_publish_delay: Duration,
    /// `SESAME_SECRET_KEY` (or `_FILE`) and `SESAME_SECRET_KEY_OLD` (or `_FILE`): seal
    /// signing keys at rest. Its `Debug` shows no secret.
    pub sealer: std::sync::Arc<sesame_core::sealing::Sealer>,
    /// `SESAME_SCOPES` and `SESAME_RESTRICTED_SCOPES`, or the file's `[scopes.<name>]`
    /// tables: the scope catalogue (none: every scope is self-service).
    pub scopes: Catalogue,
    /// `SESAME_RESOURCES`: absolute URIs a token may be minted for besides the audience.
    pub resources: Vec<String>,
    /// `SESAME_AUTH_CODE_TTL`: how long an authorization code may be redeemed, 1s–10m.
    pub auth_code_ttl: Duration,
    /// `SESAME_REFRESH_IDLE` / `SESAME_REFRESH_ABSOLUTE`: refresh-token family lifetimes
    /// (14d / 90d; idle at most absolute).
    pub refresh: sesame_core::RefreshPolicy,
    /// The file's `[[forward_auth.rules]]` (§11).
    pub forward_rules: Vec<ForwardRule>,
    /// The file's `[frontends.<name>]` cookie profiles (§11), in the file's order.
    pub frontends: Vec<Frontend>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_database_url(&self.database_url))
            .field("database_notify", &self.database_notify)
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("signin_url", &self.signin_url)
            .field("allowed_origins", &self.allowed_origins)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("sessions", &self.sessions)
            .field("token_ttl", &self.token_ttl)
            .field("registration_open", &self.registration_open)
            .field("throttle", &self.throttle)
            .field("passwords", &self.passwords)
            .field("signing_alg", &self.signing_alg)
            .field("trust_proxy", &self.trust_proxy)
            .field("log_format", &self.log_format)
            .field("connections", &self.connections)
            .field("request_timeout", &self.request_timeout)
            .field("key_publish_delay", &self.key_publish_delay)
            .field("sealer", &self.sealer)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("auth_code_ttl", &self.auth_code_ttl)
            .field("refresh", &self.refresh)
            .field("forward_rules", &self.forward_rules)
            .field("frontends", &self.frontends)
            .finish()
    }
}

/// A cookie profile (§11) as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub name: String,
    /// The cookie's name, before any `__Host-` prefix.
    pub cookie_name: String,
    /// Exact origins (`scheme://host[:port]`).
    pub origins: Vec<String>,
    pub same_site: SameSite,
    pub partitioned: bool,
    pub sessions: SessionPolicy,
}

/// The keys a TOML file may contain (each also `SESAME_<KEY>` in the environment).
const KEYS: &[&str] = &[
    "database_url",
    "listen",
    "issuer",
    "audience",
    "allowed_origins",
    "cookie_name",
    "cookie_secure",
    "cookie_samesite",
    "session_idle",
    "session_absolute",
    "token_ttl",
    "registration",
    "throttle_account_ip",
    "throttle_account",
    "throttle_ip",
    "throttle_registration",
    "password_min_length",
    "signing_alg",
    "trust_proxy",
    "log_format",
    "header_timeout",
    "idle_timeout",
    "request_timeout",
    "max_connections",
    "key_publish_delay",
    "secret_key",
    "secret_key_file",
    "secret_key_old",
    "secret_key_old_file",
    "scopes",
    "restricted_scopes",
    "resources",
    "auth_code_ttl",
    "refresh_idle",
    "refresh_absolute",
    "signin_url",
    "database_notify",
];

/// Raw settings, merged from the file and the environment, before checking.
struct Sources {
    values: HashMap<&'static str, String>,
    /// The file's `[scopes.<name>]` tables, in the file's order.
    scope_tables: Vec<(String, ScopeInfo)>,
    /// The file's `[[forward_auth.rules]]`, in the file's order.
    forward_rules: Vec<ForwardRule>,
    /// The file's `[frontends.<name>]` tables, as written.
    frontend_tables: Option<toml::Table>,
}

impl Sources {
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

impl Config {
    /// Reads the settings from the process environment and an optional TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let toml = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| ConfigError {
                setting: "--config".into(),
                message: format!("cannot read {}: {e}", path.display()),
            })?),
            None => None,
        };
        Self::from_sources(toml.as_deref(), |name| std::env::var(name).ok())
    }

    /// Builds the configuration from TOML text and an environment lookup. The
    /// environment wins over the file; `DATABASE_URL` is a fallback for the database.
    pub fn from_sources(toml_text: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        let mut scope_tables = Vec::new();
        let mut forward_rules = Vec::new();
        let mut frontend_tables = None;
        if let Some(text) = toml_text {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
                setting: "--config".into(),
                message: format!("not valid TOML: {}", e.message()),
            })?;
            for (key, value) in table {
                if key == "forward_auth" {
                    forward_rules = forward_rules_of(value)?;
                    continue;
                }
                if key == "frontends" {
                    let toml::Value::Table(tables) = value else {
                        return Err(ConfigError {
                            setting: "[frontends]".into(),
                            message: "expected [frontends.<name>] tables".into(),
                        });
                    };
                    frontend_tables = Some(tables);
                    continue;
                }
                let known = KEYS.iter().find(|k| **k == key).ok_or_else(|| ConfigError {
                    setting: "--config".into(),
                    message: format!("unknown setting `{key}`"),
                })?;
                let text = match value {
                    toml::Value::Table(tables) if *known == "scopes" => {
                        scope_tables = scope_tables_of(tables)?;
                        continue;
                    }
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| invalid(known, "expected strings"))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(","),
                    _ => return Err(invalid(known, "expected a string, number or boolean")),
                };
                values.insert(*known, text);
            }
        }
        for key in KEYS {
            if let Some(value) = env(&format!("SESAME_{}", key.to_ascii_uppercase())) {
                values.insert(*key, value);
            }
        }
        if !values.contains_key("database_url")
            && let Some(url) = env("DATABASE_URL")
        {
            values.insert("database_url", url);
        }
        Self::check(&Sources {
            values,
            scope_tables,
            forward_rules,
            frontend_tables,
        })
    }

    fn check(sources: &Sources) -> Result<Self, ConfigError> {
        let database_url = sources.get("database_url").unwrap_or("sqlite://sesame.db").to_owned();
        if !sesame_storage::is_supported_url(&database_url) {
            return Err(invalid("database_url", "expected a sqlite://… or postgres://… URL"));
        }
        let listen = match sources.get("listen") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(text) => text.parse().map_err(|_| {
                invalid(
                    "listen",
                    format!("expected IP:PORT (e.g. 127.0.0.1:8080), got {text:?}"),
                )
            })?,
        };
        let issuer = sources.get("issuer").map(check_issuer).transpose()?;
        let audience = sources.get("audience").map(str::to_owned);
        if audience.as_deref() == Some("") {
            return Err(invalid("audience", "must not be empty"));
        }
        let allowed_origins = list(sources, "allowed_origins")
            .map(check_origin)
            .collect::<Result<_, _>>()?;
        let cookie_name = sources.get("cookie_name").unwrap_or("sesame_session").to_owned();
        let valid_name = !cookie_name.is_empty()
            && cookie_name.len() <= 64
            && cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(invalid("cookie_name", "expected 1 to 64 letters, digits, '_' or '-'"));
        }
        let cookie_secure = flag(sources, "cookie_secure")?;
        let cookie_same_site = match sources
            .get("cookie_samesite")
            .unwrap_or("Lax")
            .to_ascii_lowercase()
            .as_str()
        {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => return Err(invalid("cookie_samesite", "expected Lax, Strict or None")),
        };
        let sessions = SessionPolicy {
            idle: duration(sources, "session_idle", "30m")?,
            absolute: duration(sources, "session_absolute", "12h")?,
        };
        let token_ttl = duration(sources, "token_ttl", "15m")?;
        if !(Duration::from_secs(60)..=Duration::from_secs(3_600)).contains(&token_ttl) {
            return Err(invalid("token_ttl", "must be from 1m to 1h"));
        }
        let registration_open = match sources.get("registration").unwrap_or("open") {
            "open" => true,
            "closed" => false,
            _ => return Err(invalid("registration", "expected open or closed")),
        };
        let throttle = ThrottlePolicy {
            account_ip: budget(sources, "throttle_account_ip", "5/15m")?,
            account: budget(sources, "throttle_account", "50/1h")?,
            ip: budget(sources, "throttle_ip", "100/15m")?,
            registration: budget(sources, "throttle_registration", "20/1h")?,
        };
        let min_length = whole_number(sources, "password_min_length", 8, 8..=64)?;
        let signing_alg = match sources.get("signing_alg").unwrap_or("EdDSA") {
            "EdDSA" => SigningAlg::EdDsa,
            "ES256" => SigningAlg::Es256,
            "RS256" => SigningAlg::Rs256,
            _ => return Err(invalid("signing_alg", "expected EdDSA, ES256 or RS256")),
        };
        let trust_proxy = flag(sources, "trust_proxy")?.unwrap_or(false);
        let database_notify = flag(sources, "database_notify")?.unwrap_or(true);
        let log_format = match sources.get("log_format").unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(invalid("log_format", "expected pretty or json")),
        };
        let connections = Limits {
            header_timeout: timeout(sources, "header_timeout", "10s", 300, "5m")?,
            idle_timeout: timeout(sources, "idle_timeout", "75s", 3_600, "1h")?,
            max_connections: whole_number(sources, "max_connections", 4096, 1..=1_000_000)?,
        };
        let request_timeout = timeout(sources, "request_timeout", "30s", 600, "10m")?;
        // The JWKS max-age (300 s) plus the instances' key reload interval (30 s): by then
        // every cached JWKS has been fetched again after every instance published the key.
        let key_publish_delay = duration(sources, "key_publish_delay", "330s")?;
        if key_publish_delay > Duration::from_secs(86_400) {
            return Err(invalid("key_publish_delay", "must be at most 1d"));
        }
        let current_secret = secret(sources, "secret_key")?;
        let old_secret = secret(sources, "secret_key_old")?;
        let sealer = sesame_core::sealing::Sealer::new(current_secret.as_deref(), old_secret.as_deref())
            .map_err(|e| invalid("secret_key", e.to_string()))?;
        let scopes = catalogue(sources)?;
        let resources = list(sources, "resources")
            .map(|r| {
                check_resource(r)
                    .ok_or_else(|| invalid("resources", format!("{r:?} is not an absolute URI without a fragment")))
            })
            .collect::<Result<_, _>>()?;
        let auth_code_ttl = timeout(sources, "auth_code_ttl", "60s", 600, "10m")?;
        let refresh = refresh_policy(sources)?;
        let signin_url = sources
            .get("signin_url")
            .map(|url| {
                check_resource(url)
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                    .ok_or_else(|| invalid("signin_url", "expected an absolute http:// or https:// URL"))
            })
            .transpose()?;
        let config = Self {
            scopes,
            resources,
            auth_code_ttl,
            refresh,
            signin_url,
            database_notify,
            forward_rules: sources.forward_rules.clone(),
            frontends: Vec::new(),
            database_url,
            listen,
            issuer,
            audience,
            allowed_origins,
            cookie_name,
            cookie_secure,
            cookie_same_site,
            sessions,
            token_ttl,
            registration_open,
            throttle,
            passwords: PasswordPolicy { min_length },
            signing_alg,
            trust_proxy,
            log_format,
            connections,
            request_timeout,
            key_publish_delay,
            sealer: std::sync::Arc::new(sealer),
        };
        if config.cookie_same_site == SameSite::None && !config.cookie_is_secure(&config.default_issuer()) {
            return Err(invalid(
                "cookie_samesite",
                "None requires a secure cookie (SESAME_COOKIE_SECURE=true or an https issuer)",
            ));
        }
        let secure = config.cookie_is_secure(&config.default_issuer());
        let frontends = match &sources.frontend_tables {
            Some(tables) => frontends_of(tables, &config, secure)?,
            None => Vec::new(),
        };
        Ok(Self { frontends, ..config })
    }

    /// The issuer: configured, or `http://` + the listen address.
    pub fn default_issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Whether the cookie is `Secure` (and `__Host-` prefixed) under this issuer.
    pub fn cookie_is_secure(&self, issuer: &str) -> bool {
        self.cookie_secure.unwrap_or_else(|| issuer.starts_with("https://"))
    }
}

/// One `[frontends.<name>]` table, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontendSpec {
    origins: Vec<String>,
    cookie_name: Option<String>,
    samesite: Option<String>,
    #[serde(default)]
    partitioned: bool,
    session_idle: Option<String>,
    session_absolute: Option<String>,
}

/// The cookie profiles, checked one by one and against each other: distinct cookie names
/// (the default's too) and origins, `partitioned` only with `samesite = "None"`, `None`
/// only with a secure cookie.
fn frontends_of(tables: &toml::Table, config: &Config, secure: bool) -> Result<Vec<Frontend>, ConfigError> {
    let mut out: Vec<Frontend> = Vec::new();
    for (name, value) in tables {
        let fail = |message: String| ConfigError {
            setting: format!("[frontends.{name}]"),
            message,
        };
        let valid_name = |text: &str| {
            !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !valid_name(name) {
            return Err(fail("a profile's name is 1 to 64 letters, digits, '_' or '-'".into()));
        }
        let spec: FrontendSpec = value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| fail(e.message().to_owned()))?;
        if spec.origins.is_empty() {
            return Err(fail("`origins` must list at least one origin".into()));
        }
        let origins = spec
            .origins
            .iter()
            .map(|o| check_origin(o).map_err(|e| fail(e.message)))
            .collect::<Result<Vec<_>, _>>()?;
        let cookie_name = spec.cookie_name.unwrap_or_else(|| format!("{name}_session"));
        if !valid_name(&cookie_name) {
            return Err(fail("`cookie_name` is 1 to 64 letters, digits, '_' or '-'".into()));
        }
        let same_site = match spec.samesite.as_deref().unwrap_or("Lax").to_ascii_lowercase().as_str() {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => return Err(fail("`samesite` is Lax, Strict or None".into())),
        };
        if spec.partitioned && same_site != SameSite::None {
            return Err(fail("`partitioned` needs samesite = \"None\"".into()));
        }
        if same_site == SameSite::None && !secure {
            return Err(fail(
                "samesite = \"None\" needs a secure cookie (SESAME_COOKIE_SECURE=true or an https issuer)".into(),
            ));
        }
        let lifetime = |text: Option<&str>, default: Duration| {
            text.map(|t| parse_duration(t).map_err(|e| fail(format!("{e} (e.g. 30m, 12h, 7d), got {t:?}"))))
                .transpose()
                .map(|d| d.unwrap_or(default))
        };
        let sessions = SessionPolicy {
            idle: lifetime(spec.session_idle.as_deref(), config.sessions.idle)?,
            absolute: lifetime(spec.session_absolute.as_deref(), config.sessions.absolute)?,
        };
        if cookie_name == config.cookie_name {
            return Err(fail(format!(
                "cookie_name {cookie_name:?} is the default profile's (SESAME_COOKIE_NAME)"
            )));
        }
        if let Some(other) = out.iter().find(|f| f.cookie_name == cookie_name) {
            return Err(fail(format!(
                "cookie_name {cookie_name:?} is also [frontends.{}]'s",
                other.name
            )));
        }
        for origin in &origins {
            if let Some(other) = out.iter().find(|f| f.origins.contains(origin)) {
                return Err(fail(format!("origin {origin} is also [frontends.{}]'s", other.name)));
            }
        }
        out.push(Frontend {
            name: name.clone(),
            origins,
            cookie_name,
            same_site,
            partitioned: spec.partitioned,
            sessions,
        });
    }
    Ok(out)
}

/// One `[[forward_auth.rules]]` table, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    path_prefix: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardAuthSpec {
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

/// The file's `[forward_auth]` table: its `[[forward_auth.rules]]`, each a path prefix
/// (starting with `/`), scopes from the scope syntax, and kinds among user, client and
/// delegated.
fn forward_rules_of(value: toml::Value) -> Result<Vec<ForwardRule>, ConfigError> {
    let fail = |message: String| ConfigError {
        setting: "[[forward_auth.rules]]".into(),
        message,
    };
    let spec: ForwardAuthSpec = value
        .try_into()
        .map_err(|e: toml::de::Error| fail(e.message().to_owned()))?;
    spec.rules
        .into_iter()
        .map(|rule| {
            if !rule.path_prefix.starts_with('/') {
                return Err(fail(format!("path_prefix {:?} must start with /", rule.path_prefix)));
            }
            for scope in &rule.scopes {
                Scope::parse(scope).map_err(|_| fail(format!("{scope:?} is not a scope")))?;
            }
            let kinds = rule
                .kinds
                .iter()
                .map(|kind| {
                    PrincipalKind::parse(kind)
                        .ok_or_else(|| fail(format!("kind {kind:?} is not user, client or delegated")))
                })
                .collect::<Result<_, _>>()?;
            Ok(ForwardRule {
                path_prefix: rule.path_prefix,
                scopes: rule.scopes,
                kinds,
            })
        })
        .collect()
}

/// The file's `[scopes.<name>]` tables: `description` (a string) and `restricted` (a
/// boolean), both optional.
fn scope_tables_of(tables: toml::Table) -> Result<Vec<(String, ScopeInfo)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in tables {
        let setting = || format!("[scopes.{name:?}]");
        let fail = |message: String| ConfigError {
            setting: setting(),
            message,
        };
        let toml::Value::Table(table) = value else {
            return Err(fail("expected a table with `description` and `restricted`".into()));
        };
        let mut info = ScopeInfo::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("description", toml::Value::String(text)) => info.description = Some(text),
                ("restricted", toml::Value::Boolean(flag)) => info.restricted = flag,
                ("description", _) => return Err(fail("`description` must be a string".into())),
                ("restricted", _) => return Err(fail("`restricted` must be true or false".into())),
                (other, _) => {
                    return Err(fail(format!(
                        "unknown key `{other}` (expected description, restricted)"
                    )));
                }
            }
        }
        out.push((name, info));
    }
    Ok(out)
}

/// The catalogue: `SESAME_SCOPES` and `SESAME_RESTRICTED_SCOPES` when either is set (a
/// file table of the same name still gives its description), else the file's tables,
/// else none.
fn catalogue(sources: &Sources) -> Result<Catalogue, ConfigError> {
    let described = |name: &str| {
        sources
            .scope_tables
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, info)| info.description.clone())
    };
    let parse = |key: &str, name: &str| {
        Scope::parse(name).map_err(|_| invalid(key, format!("{name:?} is not a scope: 1 to 64 of a-z 0-9 _ . : -")))
    };
    let listed = |key: &'static str| -> Vec<&str> {
        sources
            .get(key)
            .map(|list| list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    };
    let (open, restricted) = (listed("scopes"), listed("restricted_scopes"));
    let mut entries = Vec::new();
    if sources.get("scopes").is_some() || sources.get("restricted_scopes").is_some() {
        for (key, names, is_restricted) in [("scopes", open, false), ("restricted_scopes", restricted, true)] {
            for name in names {
                let info = ScopeInfo {
                    description: described(name),
                    restricted: is_restricted,
                };
                entries.push((parse(key, name)?, info));
            }
        }
    } else {
        for (name, info) in &sources.scope_tables {
            let scope = Scope::parse(name).map_err(|_| ConfigError {
                setting: format!("[scopes.{name:?}]"),
                message: "not a scope: 1 to 64 of a-z 0-9 _ . : -".into(),
            })?;
            entries.push((scope, info.clone()));
        }
    }
    if entries.is_empty() {
        return Ok(Catalogue::Open);
    }
    // A scope listed as both self-service and restricted is restricted.
    let mut merged: std::collections::BTreeMap<Scope, ScopeInfo> = std::collections::BTreeMap::new();
    for (scope, info) in entries {
        let entry = merged.entry(scope).or_default();
        entry.restricted |= info.restricted;
        entry.description = entry.description.take().or(info.description);
    }
    Ok(Catalogue::declared(merged))
}

/// An absolute URI (a scheme, then something) without a fragment (RFC 8707 §2).
fn check_resource(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    (url.fragment().is_none() && !url.cannot_be_a_base()).then(|| text.to_owned())
}

/// A secret given as `<key>` or in the file `<key>_file` (one trailing newline ignored),
/// at least 32 bytes; both at once is an error.
fn secret(sources: &Sources, key: &str) -> Result<Option<Vec<u8>>, ConfigError> {
    let file_key = format!("{key}_file");
    let value = match (sources.get(key), sources.get(&file_key)) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key,
                format!(
                    "set either SESAME_{} or SESAME_{}, not both",
                    key.to_ascii_uppercase(),
                    file_key.to_ascii_uppercase()
                ),
            ));
        }
        (Some(value), None) => value.as_bytes().to_vec(),
        (None, Some(path)) => {
            let mut bytes =
                std::fs::read(path).map_err(|e| invalid(&file_key, format!("cannot read the file: {}", e.kind())))?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            bytes
        }
        (None, None) => return Ok(None),
    };
    if value.len() < sesame_core::sealing::MIN_SECRET_LEN {
        return Err(invalid(
            key,
            format!("must be at least {} bytes", sesame_core::sealing::MIN_SECRET_LEN),
        ));
    }
    Ok(Some(value))
}

/// A `true`/`false` setting; `None` when unset.
fn flag(sources: &Sources, key: &str) -> Result<Option<bool>, ConfigError> {
    match sources.get(key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid(key, "expected true or false")),
    }
}

/// A whole-number setting within `range`, `default` when unset.
fn whole_number(
    sources: &Sources,
    key: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    let Some(text) = sources.get(key) else {
        return Ok(default);
    };
    text.parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        invalid(
            key,
            format!("expected a whole number from {} to {}", range.start(), range.end()),
        )
    })
}

/// Refresh-token family lifetimes: each from 1 minute to 10 years, idle at most absolute.
fn refresh_policy(sources: &Sources) -> Result<sesame_core::RefreshPolicy, ConfigError> {
    let bounded = |key: &str, default: &str| {
        let value = duration(sources, key, default)?;
        if !(Duration::from_secs(60)..=Duration::from_secs(10 * 365 * 86_400)).contains(&value) {
            return Err(invalid(key, "must be from 1m to 3650d"));
        }
        time::Duration::try_from(value).map_err(|_| invalid(key, "out of range"))
    };
    let idle = bounded("refresh_idle", "14d")?;
    let absolute = bounded("refresh_absolute", "90d")?;
    if idle > absolute {
        // Named after the one the operator set (the idle lifetime when both are).
        return Err(if sources.get("refresh_idle").is_some() {
            invalid("refresh_idle", "must not exceed SESAME_REFRESH_ABSOLUTE")
        } else {
            invalid("refresh_absolute", "must be at least SESAME_REFRESH_IDLE")
        });
    }
    Ok(sesame_core::RefreshPolicy { idle, absolute })
}

fn duration(sources: &Sources, key: &str, default: &str) -> Result<Duration, ConfigError> {
    let text = sources.get(key).unwrap_or(default);
    parse_duration(text).map_err(|e| invalid(key, format!("{e} (e.g. 90s, 30m, 12h, 7d), got {text:?}")))
}

/// The non-empty items of a comma-separated setting, trimmed (none when unset).
fn list<'a>(sources: &'a Sources, key: &str) -> impl Iterator<Item = &'a str> {
    sources
        .get(key)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A duration from 1 s to `max_seconds` (`max_text` in the message).
fn timeout(
    sources: &Sources,
    key: &str,
    default: &str,
    max_seconds: u64,
    max_text: &str,
) -> Result<Duration, ConfigError> {
    let value = duration(sources, key, default)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(max_seconds)).contains(&value) {
        return Err(invalid(key, format!("must be from 1s to {max_text}")));
    }
    Ok(value)
}

fn budget(sources: &Sources, key: &str, default: &str) -> Result<Budget, ConfigError> {
    let text = sources.get(key).unwrap_or(default);
    text.parse()
        .map_err(|e| invalid(key, format!("{e}; expected COUNT/DURATION (e.g. 5/15m), got {text:?}")))
}

fn check_issuer(text: &str) -> Result<String, ConfigError> {
    let trimmed = text.trim_end_matches('/');
    let scheme_ok = trimmed.starts_with("http://") || trimmed.starts_with("https://");
    let host = trimmed.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || trimmed.contains(['?', '#', ' ']) {
        return Err(invalid(
            "issuer",
            "expected an http:// or https:// URL without query or fragment",
        ));
    }
    Ok(trimmed.to_owned())
}

fn check_origin(text: &str) -> Result<String, ConfigError> {
    let (scheme, host) = text.split_once("://").unwrap_or(("", ""));
    let ok = matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains(['/', '?', '#', '*', ' ']);
    if !ok {
        return Err(invalid(
            "allowed_origins",
            format!(
                "expected comma-separated origins like https://app.example.com (no path, no wildcard), got {text:?}"
            ),
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::from_sources(None, env(&[])).expect("defaults are valid");
        assert_eq!(config.database_url, "sqlite://sesame.db");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.default_issuer(), "http://127.0.0.1:8080");
        assert!(!config.cookie_is_secure(&config.default_issuer()));
        assert_eq!(config.sessions, SessionPolicy::default());
        assert_eq!(config.throttle, ThrottlePolicy::default());
        assert_eq!(config.token_ttl, Duration::from_secs(900));
        assert!(config.registration_open);
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let toml = "listen = \"127.0.0.1:9000\"\nsession_idle = \"5m\"\nallowed_origins = [\"https://a.example\", \"https://b.example\"]\n";
        let config = Config::from_sources(Some(toml), env(&[("SESAME_SESSION_IDLE", "7m")])).expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.sessions.idle, Duration::from_secs(420));
        assert_eq!(config.allowed_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn database_url_falls_back_to_the_generic_variable() {
        let config = Config::from_sources(None, env(&[("DATABASE_URL", "postgres://db/x")])).expect("valid");
        assert_eq!(config.database_url, "postgres://db/x");
        let config = Config::from_sources(
            None,
            env(&[
                ("DATABASE_URL", "postgres://db/x"),
                ("SESAME_DATABASE_URL", "sqlite://y.db"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.database_url, "sqlite://y.db");
    }

    #[test]
    fn the_scope_catalogue_comes_from_the_file_or_the_environment() {
        use sesame_domain::Catalogue;
        assert_eq!(
            Config::from_sources(None, env(&[])).expect("valid").scopes,
            Catalogue::Open
        );
        let file = r#"
            [scopes."notes:read"]
            description = "Read your notes"
            [scopes.admin]
            description = "Administer the service"
            restricted = true
        "#;
        let from_file = Config::from_sources(Some(file), env(&[])).expect("valid").scopes;
        assert_eq!(from_file.names(), ["admin", "notes:read"]);
        assert!(from_file.is_restricted("admin") && !from_file.is_restricted("notes:read"));
        assert_eq!(
            from_file.get("notes:read").and_then(|i| i.description.as_deref()),
            Some("Read your notes")
        );
        // The environment replaces the file's catalogue, keeping its descriptions.
        let replaced = Config::from_sources(Some(file), env(&[("SESAME_SCOPES", "notes:read,notes:write")]))
            .expect("valid")
            .scopes;
        assert_eq!(replaced.names(), ["notes:read", "notes:write"]);
        assert_eq!(
            replaced.get("notes:read").and_then(|i| i.description.as_deref()),
            Some("Read your notes")
        );
        for bad in [
            "[scopes.\"Bad Scope\"]\ndescription = \"x\"",
            "[scopes.admin]\nrestricted = \"yes\"",
            "[scopes.admin]\ncolour = \"blue\"",
        ] {
            let error = Config::from_sources(Some(bad), env(&[])).expect_err(bad);
            assert!(error.setting.starts_with("[scopes."), "{bad}: {error}");
        }
    }

    #[test]
    fn invalid_settings_name_themselves() {
        for (name, value) in [
            ("SESAME_LISTEN", "localhost"),
            ("SESAME_SESSION_IDLE", "30 minutes"),
            ("SESAME_TOKEN_TTL", "2h"),
            ("SESAME_TOKEN_TTL", "30s"),
            ("SESAME_THROTTLE_IP", "lots"),
            ("SESAME_REGISTRATION", "maybe"),
            ("SESAME_COOKIE_SAMESITE", "None"),
            ("SESAME_PASSWORD_MIN_LENGTH", "4"),
            ("SESAME_SIGNING_ALG", "HS256"),
            ("SESAME_ALLOWED_ORIGINS", "*"),
            ("SESAME_ALLOWED_ORIGINS", "https://a.example/path"),
            ("SESAME_ISSUER", "auth.example.com"),
            ("SESAME_DATABASE_URL", "mysql://x"),
            ("SESAME_TRUST_PROXY", "yes"),
            ("SESAME_DATABASE_NOTIFY", "sometimes"),
            ("SESAME_COOKIE_SECURE", "1"),
            ("SESAME_MAX_CONNECTIONS", "0"),
            ("SESAME_HEADER_TIMEOUT", "6m"),
            ("SESAME_IDLE_TIMEOUT", "2h"),
            ("SESAME_REQUEST_TIMEOUT", "0s"),
            ("SESAME_SCOPES", "notes:read,Notes"),
            ("SESAME_RESTRICTED_SCOPES", "admin rights"),
            ("SESAME_RESOURCES", "/relative"),
            ("SESAME_RESOURCES", "https://api.example.com/#frag"),
            ("SESAME_AUTH_CODE_TTL", "11m"),
            ("SESAME_REFRESH_IDLE", "91d"),
            ("SESAME_REFRESH_IDLE", "30s"),
            ("SESAME_REFRESH_ABSOLUTE", "7d"),
            ("SESAME_REFRESH_ABSOLUTE", "11000d"),
        ] {
            let error = Config::from_sources(None, env(&[(name, value)])).expect_err(value);
            assert_eq!(error.setting, name, "{value}");
        }
        let refresh = Config::from_sources(
            None,
            env(&[("SESAME_REFRESH_IDLE", "1h"), ("SESAME_REFRESH_ABSOLUTE", "2h")]),
        )
        .expect("valid lifetimes")
        .refresh;
        assert_eq!(
            (refresh.idle, refresh.absolute),
            (time::Duration::hours(1), time::Duration::hours(2))
        );
        let error = Config::from_sources(Some("colour = \"blue\""), env(&[])).expect_err("unknown key");
        assert!(error.message.contains("colour"));
    }

    #[test]
    fn cookie_profiles_are_read_and_impossible_ones_refused_by_name() {
        let toml = "[frontends.shop]\norigins = [\"https://shop.example.com\"]\nsession_idle = \"5m\"\n\
                    [frontends.partner]\norigins = [\"https://partner.example.net\"]\nsamesite = \"None\"\npartitioned = true\n";
        let config = Config::from_sources(Some(toml), env(&[("SESAME_ISSUER", "https://auth.example.com")]))
            .expect("valid profiles");
        let names: Vec<_> = config
            .frontends
            .iter()
            .map(|f| (f.name.as_str(), f.cookie_name.as_str()))
            .collect();
        assert_eq!(names, [("partner", "partner_session"), ("shop", "shop_session")]);
        let shop = &config.frontends[1];
        assert_eq!(shop.sessions.idle, Duration::from_secs(300));
        assert_eq!(
            shop.sessions.absolute, config.sessions.absolute,
            "the default's when not set"
        );
        assert!(config.frontends[0].partitioned);

        let secure = [("SESAME_ISSUER", "https://auth.example.com")];
        let plain: [(&str, &str); 0] = [];
        for (toml, settings, names) in [
            (
                "[frontends.a]\norigins = [\"https://a.example\"]\ncookie_name = \"x\"\n\
                 [frontends.b]\norigins = [\"https://b.example\"]\ncookie_name = \"x\"\n",
                &secure[..],
                "frontends.a",
            ),
            (
                "[frontends.a]\norigins = [\"https://a.example\"]\n[frontends.b]\norigins = [\"https://a.example\"]\n",
                &secure[..],
                "frontends.a",
            ),
            (
                "[frontends.a]\norigins = [\"https://a.example\"]\npartitioned = true\n",
                &secure[..],
                "partitioned",
            ),
            (
                "[frontends.a]\norigins = [\"https://a.example\"]\nsamesite = \"None\"\n",
                &plain[..],
                "secure cookie",
            ),
            (
                "[frontends.a]\norigins = [\"https://a.example\"]\ncookie_name = \"sesame_session\"\n",
                &secure[..],
                "SESAME_COOKIE_NAME",
            ),
            (
                "[frontends.a]\norigins = [\"https://a.example/path\"]\n",
                &secure[..],
                "origins",
            ),
            ("[frontends.a]\norigins = []\n", &secure[..], "at least one"),
            (
                "[frontends.a]\norigin = [\"https://a.example\"]\n",
                &secure[..],
                "origin",
            ),
        ] {
            let error = Config::from_sources(Some(toml), env(settings)).expect_err(toml);
            let shown = error.to_string();
            assert!(shown.contains("frontends."), "{toml}: {shown}");
            assert!(shown.contains(names), "{toml}: {shown}");
        }
    }

    #[test]
    fn same_site_none_is_allowed_with_a_secure_cookie() {
        let config = Config::from_sources(
            None,
            env(&[
                ("SESAME_COOKIE_SAMESITE", "None"),
                ("SESAME_ISSUER", "https://auth.example.com/"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.default_issuer(), "https://auth.example.com");
        assert!(config.cookie_is_secure(&config.default_issuer()));
    }
}
