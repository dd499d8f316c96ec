//! The `sesame` command line.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use sesame_core::accounts::Registrar;
use sesame_core::clients::{ClientSpec, ClientView};
use sesame_core::{Core, CoreError, SystemClock};
use sesame_domain::ClientType;
use sesame_domain::password::{HashParams, Verification};
use sesame_server::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Prints a line of a command's output. A reader that has gone away
/// (`sesame client add … | head -1`) ends the output, not the program with a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = writeln!(std::io::stdout(), "{line}")
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("sesame: cannot write the output: {error}");
    }
}

/// Authentication for HTTP APIs: session cookies for your own clients, JWTs for
/// third-party ones.
#[derive(Debug, Parser)]
#[command(name = "sesame", version, about)]
struct Cli {
    /// A TOML file with settings (the same keys as the SESAME_* variables, lower case,
    /// without the prefix). Environment variables win.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations, then serve until SIGTERM or ctrl-c (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage third-party clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Measure password verifications per second with sesame's own argon2id parameters
    /// and code, on THREADS threads for SECONDS (the ceiling for password logins/s).
    BenchHash {
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Threads hashing at once (default: the available cores, as the server's pool).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        threads: Option<u64>,
    },
    /// Serve a bare `GET /healthz` on SESAME_LISTEN with sesame's runtime and HTTP server
    /// settings and none of its middleware: the ceiling `make bench` compares sesame with.
    #[command(hide = true)]
    BenchBare,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client for a user; prints its client_id and a first API key.
    Add {
        /// The owning user's email.
        #[arg(long)]
        owner: String,
        /// A name for people to recognise the client by.
        #[arg(long)]
        name: String,
        /// A scope the client may request (repeat for several).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A public client: no API key; the authorization-code grant with PKCE only.
        #[arg(long)]
        public: bool,
        /// A redirect URI for the authorization-code grant (repeat for several; a public
        /// client needs one).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
    },
    /// List clients (every client, or one owner's): id, owner, name, scopes, and each
    /// key's id and state. Never a key itself.
    List {
        /// Only the clients of the user with this email.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete a client: all its keys and tokens stop working at once.
    Delete { client_id: String },
    /// Revoke one of a client's API keys: it and its tokens stop working at once.
    RevokeKey { client_id: String, key_id: String },
    /// Set the static claims copied into each of a client's tokens, and print them all.
    /// Values are JSON (`--set tenant='"acme"' --set tier=3`); at most 1 KiB in all;
    /// registered and sesame claims (iss, sub, aud, scope, owner, …) cannot be set.
    Claims {
        client_id: String,
        /// A claim to set, as NAME=JSON (repeat for several).
        #[arg(long = "set", value_name = "NAME=JSON")]
        set: Vec<String>,
        /// A claim to remove (repeat for several).
        #[arg(long = "unset", value_name = "NAME")]
        unset: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a signing key: published in the JWKS at once, it starts signing after
    /// SESAME_KEY_PUBLISH_DELAY (the JWKS max-age plus the key reload interval), so every
    /// resource server has fetched it first. Older keys stay published until every token
    /// they signed has expired.
    Rotate {
        /// Sign with the new key at once (a compromised key): resource servers holding
        /// an older JWKS refuse its tokens until they fetch it again.
        #[arg(long)]
        now: bool,
    },
    /// Seal every signing key under the current SESAME_SECRET_KEY (keys stored
    /// unencrypted, or sealed under SESAME_SECRET_KEY_OLD).
    Rewrap,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user (asks for the password without echo).
    Add {
        email: String,
        /// Read the password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user and end at once everything that acts for them: their sessions,
    /// their clients' keys and tokens.
    Disable { email: String },
    /// Lift a disable (nothing it ended comes back; keys not revoked work again).
    Enable { email: String },
    /// Give a user restricted scopes of the catalogue: they may then put them on their
    /// clients.
    Grant {
        email: String,
        #[arg(required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// Take restricted scopes away from a user: their clients' tokens issued before now
    /// stop working at once, and no later token carries them.
    Revoke {
        email: String,
        #[arg(required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Openapi) => return print_openapi(),
        Some(Command::BenchHash { seconds, threads }) => return bench_hash(seconds, threads),
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sesame: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sesame: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(&config).await,
            Command::Migrate => migrate(&config).await,
            Command::User(UserCommand::Add { email, password_stdin }) => {
                add_user(&config, &email, password_stdin).await
            }
            Command::User(UserCommand::Disable { email }) => disable_user(&config, &email).await,
            Command::User(UserCommand::Enable { email }) => enable_user(&config, &email).await,
            Command::User(UserCommand::Grant { email, scopes }) => change_scopes(&config, &email, &scopes, true).await,
            Command::User(UserCommand::Revoke { email, scopes }) => {
                change_scopes(&config, &email, &scopes, false).await
            }
            Command::Client(ClientCommand::Add {
                owner,
                name,
                scopes,
                public,
                redirect_uris,
            }) => {
                let spec = ClientSpec {
                    name,
                    scopes,
                    client_type: if public {
                        ClientType::Public
                    } else {
                        ClientType::Confidential
                    },
                    redirect_uris,
                };
                add_client(&config, &owner, &spec).await
            }
            Command::Client(ClientCommand::List { owner }) => list_clients(&config, owner.as_deref()).await,
            Command::Client(ClientCommand::Delete { client_id }) => delete_client(&config, &client_id).await,
            Command::Client(ClientCommand::Claims { client_id, set, unset }) => {
                set_claims(&config, &client_id, &set, &unset).await
            }
            Command::Client(ClientCommand::RevokeKey { client_id, key_id }) => {
                revoke_key(&config, &client_id, &key_id).await
            }
            Command::Keys(KeysCommand::Rotate { now }) => rotate_keys(&config, now).await,
            Command::Keys(KeysCommand::Rewrap) => rewrap_keys(&config).await,
            Command::BenchBare => bench_bare(&config).await,
            Command::Openapi | Command::BenchHash { .. } => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<sesame_server::StartupRefused>().is_some() => {
            eprintln!("sesame: cannot start: {error:#}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("sesame: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_openapi() -> ExitCode {
    // The same bytes as `GET /openapi.json` serves.
    print!("{}", sesame_http::render_openapi(&sesame_http::openapi()));
    ExitCode::SUCCESS
}

/// Verifies one password against its hash on `threads` threads for `seconds`, exactly as
/// a login does (`PasswordHasher::verify` under `HashParams::default()`), and prints the
/// rate. Needs no configuration or database.
fn bench_hash(seconds: u64, threads: Option<u64>) -> ExitCode {
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        |n| usize::try_from(n).unwrap_or(1),
    );
    let run = || -> anyhow::Result<(u64, f64)> {
        let hasher = sesame_server::password_hasher()?;
        let password = sesame_domain::Password::for_login("correct horse battery staple".into())
            .map_err(|e| anyhow::anyhow!("password {e}"))?;
        let stored = hasher.hash(&password)?;
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs(seconds);
        let counts = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = 0u64;
                        while std::time::Instant::now() < deadline {
                            if hasher.verify(&password, &stored) != Verification::Match {
                                return Err(anyhow::anyhow!("verification failed"));
                            }
                            done += 1;
                        }
                        Ok(done)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?
                })
                .sum::<anyhow::Result<u64>>()
        })?;
        Ok((counts, started.elapsed().as_secs_f64()))
    };
    match run() {
        Ok((count, elapsed)) => {
            let params = HashParams::default();
            #[allow(clippy::cast_precision_loss)]
            let rate = count as f64 / elapsed;
            say!(
                "hashes_per_sec={rate:.1} verifications={count} threads={threads} seconds={elapsed:.2} \
                 argon2id m={} t={} p={}",
                params.memory_kib,
                params.iterations,
                params.parallelism
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sesame: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SESAME_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = sesame_server::start(config, listener).await?;
    tracing::info!(
        "sesame listening on http://{} (issuer {}), database {}",
        server.addr,
        server.issuer,
        redact_url(&config.database_url)
    );
    tracing::info!(
        "create a first user: sesame user add you@example.com   (or POST {}/users)",
        server.issuer
    );
    let stop = server.stop_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop.send(true);
    });
    server.wait().await
}

/// The bare ceiling: the same listener, hyper settings and connection limits as `serve`,
/// one route answering what sesame's `/healthz` answers, no middleware and no database.
async fn bench_bare(config: &Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    sesame_server::serve::serve(listener, app, config.connections, stopped).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// A database URL fit for a log line.
fn redact_url(url: &str) -> String {
    sesame_server::config::redact_database_url(url)
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = sesame_server::open_store(config).await?;
    store.database.close().await;
    say!("migrations applied");
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        // Only the line ending goes: passwords are never trimmed.
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        return Ok(password.to_owned());
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second = rpassword::prompt_password("Again: ").context("cannot read the password")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

/// The application, for a command: the same services the server runs, on the configured
/// database.
async fn open_core(config: &Config) -> anyhow::Result<Core> {
    let fallback_issuer = format!("http://{}", config.listen);
    sesame_server::open_core(config, &fallback_issuer, std::sync::Arc::new(SystemClock)).await
}

/// A command's failure in words for the operator.
fn explain(error: CoreError) -> anyhow::Error {
    match error {
        CoreError::Validation(errors) => {
            let messages: Vec<String> = errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect();
            anyhow::anyhow!(messages.join("; "))
        }
        other => anyhow::Error::new(other),
    }
}

/// Runs a command's work on the application and closes it whatever the outcome; "not
/// found" is put in the words `missing` gives, any other refusal by [`explain`].
async fn on_core<T>(
    config: &Config,
    missing: impl FnOnce() -> String,
    work: impl AsyncFnOnce(&Core) -> Result<T, CoreError>,
) -> anyhow::Result<T> {
    let core = open_core(config).await?;
    let outcome = work(&core).await;
    core.close().await;
    outcome.map_err(|error| match error {
        CoreError::NotFound => anyhow::anyhow!(missing()),
        other => explain(other),
    })
}

/// "No such user", in the form the email is looked up by.
fn no_user(email: &str) -> impl FnOnce() -> String {
    move || format!("no user with email {}", email.trim().to_lowercase())
}

async fn add_user(config: &Config, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    // Checked before the password is asked for.
    sesame_domain::Email::parse(email).map_err(|e| anyhow::anyhow!("email {e}"))?;
    let password = read_password(password_stdin)?;
    let core = open_core(config).await?;
    let outcome = core.accounts().register(email, password, Registrar::Operator).await;
    core.close().await;
    match outcome {
        Ok(user) => {
            say!("created user {} ({})", user.email, user.id);
            Ok(())
        }
        Err(CoreError::EmailTaken) => bail!("a user with email {} already exists", email.trim().to_lowercase()),
        Err(other) => Err(explain(other)),
    }
}

async fn disable_user(config: &Config, email: &str) -> anyhow::Result<()> {
    let id = on_core(config, no_user(email), async |core| {
        core.accounts().disable(email).await
    })
    .await?;
    say!(
        "disabled user {} ({id}); their sessions, client keys and tokens have ended",
        email.trim().to_lowercase()
    );
    Ok(())
}

async fn change_scopes(config: &Config, email: &str, scopes: &[String], grant: bool) -> anyhow::Result<()> {
    let granted = on_core(config, no_user(email), async |core| {
        let accounts = core.accounts();
        if grant {
            accounts.grant_scopes(email, scopes).await
        } else {
            accounts.revoke_scopes(email, scopes).await
        }
    })
    .await?;
    let listed = if granted.is_empty() {
        "none".to_owned()
    } else {
        granted.to_text()
    };
    say!("{} is granted: {listed}", email.trim().to_lowercase());
    if !grant {
        say!("their clients' earlier tokens are revoked");
    }
    Ok(())
}

async fn enable_user(config: &Config, email: &str) -> anyhow::Result<()> {
    let id = on_core(config, no_user(email), async |core| core.accounts().enable(email).await).await?;
    say!("enabled user {} ({id})", email.trim().to_lowercase());
    Ok(())
}

async fn list_clients(config: &Config, owner: Option<&str>) -> anyhow::Result<()> {
    let core = open_core(config).await?;
    let outcome = async {
        let owner = match owner {
            None => None,
            Some(email) => match core.accounts().find(email).await {
                Err(CoreError::NotFound) => bail!("no user with email {}", email.trim().to_lowercase()),
                other => Some(other.map_err(explain)?.user.id),
            },
        };
        core.clients().list_all(owner).await.map_err(explain)
    }
    .await;
    core.close().await;
    for ClientView { client, keys } in outcome? {
        say!(
            "{}\towner={}\tname={:?}\ttype={}\tscopes={}",
            client.id,
            client.owner_id,
            client.name,
            client.client_type.as_str(),
            client.scopes.to_text()
        );
        for uri in &client.redirect_uris {
            say!("	redirect_uri {}", uri.as_str());
        }
        for key in &keys {
            let state = key
                .revoked_at
                .map_or_else(|| "live".to_owned(), |at| format!("revoked {at}"));
            say!("\tkey {}\t{state}", key.id);
        }
    }
    Ok(())
}

async fn delete_client(config: &Config, client_id: &str) -> anyhow::Result<()> {
    let missing = || format!("no client {client_id}");
    on_core(config, missing, async |core| {
        let owner = core.clients().owner_of(client_id).await?;
        core.clients().delete(owner, client_id).await
    })
    .await?;
    say!("deleted client {client_id}; its keys and tokens have stopped working");
    Ok(())
}

async fn revoke_key(config: &Config, client_id: &str, key_id: &str) -> anyhow::Result<()> {
    let missing = || format!("client {client_id} has no key {key_id}");
    on_core(config, missing, async |core| {
        let owner = core.clients().owner_of(client_id).await?;
        core.clients().revoke_key(owner, client_id, key_id).await
    })
    .await?;
    say!("revoked key {key_id} of client {client_id}; it and its tokens have stopped working");
    Ok(())
}

async fn set_claims(config: &Config, client_id: &str, set: &[String], unset: &[String]) -> anyhow::Result<()> {
    let missing = || format!("no client {client_id}");
    let claims = on_core(config, missing, async |core| {
        core.clients().set_claims(client_id, set, unset).await
    })
    .await?;
    say!("{}", claims.to_json());
    Ok(())
}

async fn add_client(config: &Config, owner: &str, spec: &ClientSpec) -> anyhow::Result<()> {
    sesame_core::clients::check_client(&spec.name, &spec.scopes).map_err(explain)?;
    let core = open_core(config).await?;
    let outcome = async {
        let owner = match core.accounts().find(owner).await {
            Err(CoreError::NotFound) => bail!("no user with email {}", owner.trim().to_lowercase()),
            Err(CoreError::Validation(_)) => bail!("owner email is not valid"),
            other => other.map_err(explain)?,
        };
        core.clients().register_spec(owner.user.id, spec).await.map_err(explain)
    }
    .await;
    core.close().await;
    let created = outcome?;
    say!("client_id: {}", created.client.id);
    match &created.key {
        Some(key) => {
            say!("api_key:   {}", key.key.expose());
            say!("(the key is shown only now; store it safely)");
        }
        None => say!("(a public client: no API key; it authenticates with its client_id and PKCE)"),
    }
    Ok(())
}

async fn rewrap_keys(config: &Config) -> anyhow::Result<()> {
    if !config.sealer.is_enabled() {
        bail!("SESAME_SECRET_KEY (or SESAME_SECRET_KEY_FILE) is not set: there is nothing to seal the keys under");
    }
    let core = open_core(config).await?;
    let outcome = core.tokens().rewrap().await;
    core.close().await;
    let (rewrapped, total) = outcome.map_err(explain)?;
    say!("sealed {rewrapped} of {total} signing keys under the current secret (the others already were)");
    Ok(())
}

async fn rotate_keys(config: &Config, at_once: bool) -> anyhow::Result<()> {
    let core = open_core(config).await?;
    let outcome = core.tokens().rotate(at_once).await;
    core.close().await;
    let record = outcome.map_err(explain)?;
    if at_once {
        say!("new signing key {} ({}) signs now", record.kid, record.alg);
    } else {
        say!(
            "new signing key {} ({}) is published now and signs in {} s",
            record.kid,
            record.alg,
            config.key_publish_delay.as_secs()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        for (url, shown) in [
            ("postgres://u:secret@h/db", "postgres://u:[redacted]@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://sesame.db", "sqlite://sesame.db"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let with_query = redact_url("postgres://u@h/db?sslmode=require&password=secret&sslpassword=s2");
        assert!(
            !with_query.contains("secret") && !with_query.contains("s2"),
            "{with_query}"
        );
        assert!(with_query.contains("sslmode=require"), "{with_query}");
    }
}
