//! Wiring: configuration in, a running server out. The binary in `main.rs` is a thin CLI
//! over this, and the test suite starts servers through the same path.

pub mod config;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sesame_core::{Core, HashingPool, Settings, SharedClock, SystemClock, TokenSettings};
use sesame_domain::password::{HashParams, PasswordHasher};
use sesame_http::{AppState, CookieConfig, FrontendProfile, HttpConfig};
use sesame_storage::{ConnectOptions, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

/// How often expired sessions, old login failures and forgotten revocations are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// How often signing keys are re-read, so a `sesame keys rotate` reaches every instance.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// Connects to the database named in the configuration and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, &ConnectOptions::default())
        .await
        .context("cannot open the database")?;
    store.database.migrate().await.context("cannot apply migrations")?;
    Ok(store)
}

/// The HTTP layer's settings under a resolved issuer.
pub fn http_config(config: &Config, issuer: &str) -> HttpConfig {
    let secure = config.cookie_is_secure(issuer);
    let frontends: Vec<FrontendProfile> = config
        .frontends
        .iter()
        .map(|f| FrontendProfile {
            name: f.name.clone(),
            origins: f.origins.clone(),
            cookie: CookieConfig {
                partitioned: f.partitioned,
                ..CookieConfig::new(&f.cookie_name, secure, f.same_site)
            },
        })
        .collect();
    // A profile's origins are allowed origins: CORS with credentials, the origin check.
    let mut allowed_origins = config.allowed_origins.clone();
    for origin in frontends.iter().flat_map(|f| &f.origins) {
        if !allowed_origins.contains(origin) {
            allowed_origins.push(origin.clone());
        }
    }
    HttpConfig {
        issuer: issuer.to_owned(),
        allowed_origins,
        cookie: CookieConfig::new(&config.cookie_name, secure, config.cookie_same_site),
        trust_proxy: config.trust_proxy,
        request_timeout: config.request_timeout,
        signin_url: config.signin_url.clone().unwrap_or_else(|| format!("{issuer}/signin")),
        forward_rules: config.forward_rules.clone(),
        frontends,
    }
}

/// The application's rules under a resolved issuer.
pub fn core_settings(config: &Config, issuer: &str) -> Settings {
    Settings {
        sessions: config.sessions,
        throttle: config.throttle,
        passwords: config.passwords,
        registration_open: config.registration_open,
        tokens: token_settings(config, issuer),
        scopes: config.scopes.clone(),
        auth_code_ttl: config.auth_code_ttl,
        refresh: config.refresh,
        frontends: config.frontends.iter().map(|f| (f.name.clone(), f.sessions)).collect(),
    }
}

/// Opens the database and builds the application, as the server and the CLI both use
/// it. The issuer is the configured one, or `fallback_issuer` when none is set.
pub async fn open_core(config: &Config, fallback_issuer: &str, clock: SharedClock) -> anyhow::Result<Core> {
    let issuer = config.issuer.clone().unwrap_or_else(|| fallback_issuer.to_owned());
    let store = open_store(config).await?;
    let hashing = HashingPool::for_this_machine(password_hasher()?);
    Core::new(core_settings(config, &issuer), store, hashing, clock)
        .await
        .map_err(|e| match e {
            sesame_core::CoreError::Misconfigured(message) => anyhow::Error::new(StartupRefused(message)),
            other => anyhow::anyhow!("cannot start the application: {other}"),
        })
}

/// The token service's settings under a resolved issuer.
pub fn token_settings(config: &Config, issuer: &str) -> TokenSettings {
    TokenSettings {
        issuer: issuer.to_owned(),
        audience: config.audience.clone().unwrap_or_else(|| issuer.to_owned()),
        ttl: config.token_ttl,
        alg: config.signing_alg,
        publish_delay: config.key_publish_delay,
        sealer: config.sealer.clone(),
        resources: config.resources.clone(),
        revocation_poll: sesame_core::tokens::revocation::POLL_INTERVAL,
        notifications: config.database_notify,
    }
}

/// The stored state cannot work with the configuration (signing keys sealed under
/// another secret): the program stops with exit status 2, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupRefused(pub String);

/// The password hasher under the default (OWASP) argon2id parameters.
pub fn password_hasher() -> anyhow::Result<PasswordHasher> {
    PasswordHasher::new(HashParams::default()).context("invalid argon2 parameters")
}

/// A server running in the background of this process.
pub struct RunningServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The issuer the server answers as.
    pub issuer: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    /// Background upkeep: sweeping, revocation polling, key reloads.
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting connections, finishes in-flight requests, and waits.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.background.iter().for_each(JoinHandle::abort);
        self.task.await.context("server task failed")?.context("server error")?;
        Ok(())
    }

    /// Waits until the server stops (after [`RunningServer::stop_handle`] is triggered).
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.task.await;
        self.background.iter().for_each(JoinHandle::abort);
        result.context("server task failed")?.context("server error")?;
        Ok(())
    }

    /// A handle that starts a graceful shutdown when sent `true`.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Migrates, builds the application and serves it on `listener` until shut down.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<RunningServer> {
    start_with(config, listener, axum::Router::new()).await
}

/// Like [`start`], with routes of your own served beside sesame's.
pub async fn start_with(
    config: &Config,
    listener: TcpListener,
    extra: axum::Router<AppState>,
) -> anyhow::Result<RunningServer> {
    start_with_clock(config, listener, extra, Arc::new(SystemClock)).await
}

/// Like [`start_with`], with the application reading time from `clock` (tests move a
/// manual clock instead of sleeping).
pub async fn start_with_clock(
    config: &Config,
    listener: TcpListener,
    extra: axum::Router<AppState>,
    clock: SharedClock,
) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr().context("listener has no address")?;
    let issuer = config.issuer.clone().unwrap_or_else(|| format!("http://{addr}"));
    let core = open_core(config, &issuer, clock).await?;
    if !config.sealer.is_enabled() && issuer.starts_with("https://") {
        tracing::warn!(
            "signing keys are stored unencrypted: set SESAME_SECRET_KEY (at least 32 bytes) and run `sesame keys rewrap`"
        );
    }
    if !config.scopes.is_declared() {
        tracing::warn!(
            "no scope catalogue: any well-formed scope may be put on a client (set SESAME_SCOPES and SESAME_RESTRICTED_SCOPES, or [scopes.<name>] in the config file)"
        );
    }
    let state = AppState::new(http_config(config, &issuer), core.clone());
    let app = sesame_http::router_with(state, extra);

    let (shutdown, stopped) = watch::channel(false);
    let task = tokio::spawn(serve::serve(listener, app, config.connections, stopped));
    let poller = {
        let core = core.clone();
        tokio::spawn(async move { core.follow_changes().await })
    };
    let key_reloader = tokio::spawn(reload_keys(core.clone()));
    let sweeper = tokio::spawn(sweep(core));
    Ok(RunningServer {
        addr,
        issuer,
        shutdown,
        task,
        background: vec![sweeper, poller, key_reloader],
    })
}

/// Picks up signing keys added by `sesame keys rotate` (here or on another machine).
async fn reload_keys(core: Core) {
    let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(error) = core.tokens().reload_keys().await {
            tracing::warn!(%error, "cannot reload signing keys");
        }
    }
}

/// Sweeps what has ended, every [`SWEEP_INTERVAL`].
async fn sweep(core: Core) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        core.sweep().await;
    }
}
