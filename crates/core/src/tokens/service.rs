//! Issuing and verifying access tokens.
//!
//! Verification follows RFC 8725 and RFC 9068: the algorithm is pinned to the key named by
//! `kid` (so neither `alg: none` nor HMAC keyed with a public key can pass), `jku`,
//! `x5u`, `x5c` and embedded `jwk` headers are refused outright, `typ` must be `at+jwt`,
//! and `iss`, `aud`, `exp`, `nbf` are checked with at most 60 s of leeway.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use sesame_domain::{ApiKeyId, ClientId, Scopes, StaticClaims, UserId};
use sesame_storage::{Revocation, RevocationKind, SigningKeyRecord, Store};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::keys::{self, KeyRing, SigningAlg};
use super::revocation::{RevocationSet, TokenIds};
use crate::cache::TtlCache;
use crate::clock::SharedClock;
use crate::error::TokenError;
use crate::sealing::{SealError, Sealer};

/// The most clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 60;

/// The longest token lifetime sesame allows; revocations and retired keys are kept at
/// least this long (plus leeway) so that every token they concern has expired first.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3_600);

/// How long a retired signing key stays trusted and published: the longest token
/// lifetime, the leeway, and time for every instance to pick up its successor.
pub const KEY_RETENTION: Duration = Duration::from_secs(3_600 + 60 + 5 * 60);

/// The most verified tokens remembered at once (a few MiB).
const MAX_VERIFIED: usize = 16_384;

/// A reload on an unknown `kid` happens at most this often, so forged kids cannot make
/// every request read the database.
const RELOAD_BACKOFF: Duration = Duration::from_secs(5);

/// Aborts a task when the task that owns it ends (or is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the token service needs from the configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// Audiences a token may be requested for besides `audience` (RFC 8707).
    pub resources: Vec<String>,
    pub ttl: Duration,
    /// The algorithm for keys made by this instance.
    pub alg: SigningAlg,
    /// How long a rotated key is published before it signs (`SESAME_KEY_PUBLISH_DELAY`).
    pub publish_delay: Duration,
    /// Seals signing keys at rest (and opens them), under the operator's secret.
    pub sealer: Arc<Sealer>,
    /// How often the shared revocation log is read whatever the database tells
    /// ([`super::revocation::POLL_INTERVAL`] in service).
    pub revocation_poll: Duration,
    /// Whether to listen for the database's word of other instances' revocations and
    /// ended sessions (`SESAME_DATABASE_NOTIFY`); without it the poll alone.
    pub notifications: bool,
}

/// The claims of a sesame access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The API key the token was exchanged for, so revoking the key revokes its tokens;
    /// empty (and left out) for a delegated token, which no key made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// When the user a delegated token acts for signed in (§10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The token version of the user a delegated token acts for, when it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_version: Option<i64>,
    /// The version of the user's grant to the client a delegated token was issued under:
    /// ending the grant revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_version: Option<i64>,
    /// The refresh-token family a delegated token was issued from: ending the family
    /// (a refresh token reused, or revoked) revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_family: Option<String>,
    /// The id of the user who owns the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner's token version when the token was issued: disabling the owner, or
    /// taking a scope away, revokes every token issued under an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_version: Option<i64>,
    /// The client's static claims (§9), at the top level beside the others.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A token's `aud`: one audience as a string, several as an array (RFC 7519 §4.1.3,
/// RFC 8707 §2), matched as exact strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// One audience for one, an array for several (duplicates dropped, order kept).
    pub fn of(audiences: &[String]) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(audiences.len());
        for audience in audiences {
            if !unique.contains(audience) {
                unique.push(audience.clone());
            }
        }
        match <[String; 1]>::try_from(unique) {
            Ok([one]) => Self::One(one),
            Err(many) => Self::Many(many),
        }
    }

    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

impl AccessClaims {
    /// What a revocation can concern.
    pub fn ids(&self) -> TokenIds<'_> {
        TokenIds {
            jti: &self.jti,
            key_id: &self.key_id,
            client_id: &self.client_id,
            owner: self.owner.as_deref().zip(self.owner_version),
            user: self.user_version.map(|version| (self.sub.as_str(), version)),
            grant: self
                .grant_version
                .map(|version| (self.sub.as_str(), self.client_id.as_str(), version)),
            family: self.refresh_family.as_deref(),
        }
    }
}

/// Who a token is issued to: the client, the key it exchanged, and the client's owner.
#[derive(Debug, Clone, Copy)]
pub struct Grantee<'a> {
    pub client: &'a ClientId,
    /// The API key exchanged (client credentials); none for a delegated token.
    pub key: Option<ApiKeyId>,
    pub owner: UserId,
    pub owner_version: i64,
    /// The client's static claims.
    pub claims: &'a StaticClaims,
    /// The user a delegated token acts for (its `sub`), for a delegated token.
    pub user: Option<ActingFor>,
}

/// Whom a delegated token acts for, and the versions that can revoke it.
#[derive(Debug, Clone, Copy)]
pub struct ActingFor {
    pub user: UserId,
    /// When the user signed in.
    pub auth_time: OffsetDateTime,
    /// The user's token version (a disable, a scope taken away).
    pub user_version: i64,
    /// The version of the user's grant to the client (the grant ended).
    pub grant_version: i64,
    /// The refresh-token family the token is issued from.
    pub family: uuid::Uuid,
}

/// A freshly signed token.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub claims: AccessClaims,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Signs and verifies access tokens with the stored keys, and keeps the revocation set.
pub struct TokenService {
    settings: TokenSettings,
    store: Store,
    clock: SharedClock,
    ring: RwLock<Arc<KeyRing>>,
    /// When an unknown `kid` last made us re-read the keys; `None` until it first does, so
    /// a key added after this instance loaded its ring is picked up on first sight.
    last_reload: Mutex<Option<time::OffsetDateTime>>,
    revocations: Arc<RevocationSet>,
    /// Tokens whose signature and claims already verified, by SHA-256 of the whole token,
    /// so a client reusing its token costs a hash, not a signature check. A different
    /// token (forged or altered) has a different digest and is verified in full. Their
    /// `exp` and `nbf` are checked again on every use, and an entry is kept no longer than
    /// its token's `exp` plus the leeway.
    verified: TtlCache<[u8; 32], AccessClaims>,
}

impl TokenService {
    /// Loads the signing keys, making the first one if there is none, and the current
    /// revocation log.
    ///
    /// Every stored key must open (see [`Sealer`]): a key sealed under an unknown secret,
    /// or sealed with no secret configured, fails the load, and nothing is replaced.
    pub async fn load(settings: TokenSettings, store: Store, clock: SharedClock) -> Result<Self, LoadError> {
        let mut records = store.signing_keys.signing_keys().await?;
        let mut opened = open_all(&settings.sealer, &records)?;
        if records.is_empty() {
            let record = keys::generate(settings.alg, clock.now())?;
            // The first key signs at once: no resource server can hold an older set.
            store
                .signing_keys
                .add_signing_key(&sealed(&settings.sealer, &record)?, Duration::ZERO)
                .await?;
            tracing::info!(kid = %record.kid, alg = %record.alg, "created the first signing key");
            records = store.signing_keys.signing_keys().await?;
            opened = open_all(&settings.sealer, &records)?;
        }
        let unsealed = records.iter().filter(|r| !Sealer::is_sealed(&r.private_der)).count();
        if settings.sealer.is_enabled() && unsealed > 0 {
            tracing::warn!(
                unsealed,
                "signing keys are stored unencrypted although SESAME_SECRET_KEY is set: run `sesame keys rewrap`"
            );
        }
        let ring = KeyRing::build(&opened, clock.now(), KEY_RETENTION)?;
        let revocations = Arc::new(RevocationSet::default());
        revocations.refresh(&store, clock.now()).await?;
        Ok(Self {
            settings,
            store,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(None),
            revocations,
            verified: TtlCache::new(MAX_TOKEN_TTL + Duration::from_secs(LEEWAY_SECONDS), MAX_VERIFIED),
            clock,
        })
    }

    /// Adds a signing key (`sesame keys rotate`): published at once (here, and on every
    /// other instance within their next key reload), it signs only after the publish
    /// delay, so every resource server has fetched it before it meets a token it signed;
    /// `at_once` (`--now`, for a compromised key) skips the wait.
    pub async fn rotate(&self, at_once: bool) -> Result<sesame_storage::SigningKeyRecord, LoadError> {
        let record = keys::generate(self.settings.alg, self.clock.now())?;
        let delay = if at_once {
            Duration::ZERO
        } else {
            self.settings.publish_delay
        };
        self.store
            .signing_keys
            .add_signing_key(&sealed(&self.settings.sealer, &record)?, delay)
            .await?;
        self.reload_keys().await?;
        tracing::info!(kid = %record.kid, alg = %record.alg, "signing key rotated");
        Ok(record)
    }

    /// Records a revocation: in the shared log first, then in this instance's set, so it
    /// takes effect here at once and on every other instance within their next poll.
    pub async fn revoke(&self, entry: &Revocation) -> Result<(), sesame_storage::StorageError> {
        self.store.revocations.revoke(entry).await?;
        self.revocations.apply([entry]);
        Ok(())
    }

    /// A revocation of a key or client, kept past the end of any token it concerns.
    pub fn revocation(&self, kind: RevocationKind, subject: String) -> Revocation {
        let now = self.clock.now();
        let keep = time::Duration::try_from(MAX_TOKEN_TTL).unwrap_or(time::Duration::HOUR)
            + time::Duration::seconds(i64::try_from(LEEWAY_SECONDS).unwrap_or(60) + 60);
        Revocation {
            kind,
            subject,
            created_at: now,
            expires_at: now + keep,
        }
    }

    /// Follows the shared revocation log for as long as the task runs: read again as soon
    /// as the database says another instance logged a revocation (Postgres `NOTIFY`), and
    /// every `revocation_poll` (1 s) whatever happens, which stays the guarantee when a
    /// notification is lost or the listener is reconnecting.
    /// `sessions` hears of sessions ended on other instances (see [`crate::Core::follow_changes`]).
    pub async fn poll_revocations(&self, sessions: sesame_storage::SessionsEnded) {
        let notice = Arc::new(tokio::sync::Notify::new());
        // Ends with this task: the loop below never returns, so only an abort ends both.
        let _follower = self.settings.notifications.then(|| {
            AbortOnDrop(tokio::spawn({
                let store = self.store.clone();
                let notice = notice.clone();
                async move {
                    loop {
                        match store.database.follow_changes(notice.clone(), sessions.clone()).await {
                            // The database cannot tell: polling alone.
                            Ok(()) => return,
                            Err(error) => {
                                tracing::warn!(%error, "not listening for revocations; polling meanwhile");
                                tokio::time::sleep(super::revocation::POLL_INTERVAL).await;
                            }
                        }
                    }
                }
            }))
        });
        let mut tick = tokio::time::interval(self.settings.revocation_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = notice.notified() => {}
            }
            if let Err(error) = self.revocations.refresh(&self.store, self.clock.now()).await {
                tracing::warn!(%error, "cannot read the revocation log");
            }
        }
    }

    /// Deletes revocations that no unexpired token can concern.
    pub async fn prune_revocations(&self) -> Result<u64, sesame_storage::StorageError> {
        self.store.revocations.prune_revocations(self.clock.now()).await
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the signing keys (after a rotation by another process).
    pub async fn reload_keys(&self) -> Result<(), LoadError> {
        let records = self.store.signing_keys.signing_keys().await?;
        let opened = open_all(&self.settings.sealer, &records)?;
        let ring = KeyRing::build(&opened, self.clock.now(), KEY_RETENTION)?;
        *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// The kid that signs now.
    pub fn signing_kid(&self) -> String {
        self.ring().active(self.clock.now()).kid.clone()
    }

    /// The published keys.
    pub fn jwks(&self) -> JwkSet {
        self.ring().jwks.clone()
    }

    /// Signs a token for a client, exchanged with the given key, with these scopes.
    pub fn issue(&self, grantee: Grantee<'_>, scopes: &Scopes, audience: Audience) -> Result<IssuedToken, TokenError> {
        let Grantee {
            client,
            key,
            owner,
            owner_version,
            claims: statics,
            user,
        } = grantee;
        let ring = self.ring();
        let now = self.clock.now().unix_timestamp();
        let ttl = i64::try_from(self.settings.ttl.as_secs()).unwrap_or(900);
        let mut jti = [0u8; 16];
        sesame_domain::random::fill(&mut jti);
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user.map_or_else(|| client.as_str().to_owned(), |acting| acting.user.to_string()),
            aud: audience,
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti: URL_SAFE_NO_PAD.encode(jti),
            client_id: client.as_str().to_owned(),
            scope: scopes.to_text(),
            key_id: key.map(|k| k.0.to_string()).unwrap_or_default(),
            auth_time: user.map(|acting| acting.auth_time.unix_timestamp()),
            user_version: user.map(|acting| acting.user_version),
            grant_version: user.map(|acting| acting.grant_version),
            refresh_family: user.map(|acting| acting.family.to_string()),
            owner: Some(owner.to_string()),
            owner_version: Some(owner_version),
            extra: statics.as_map().clone(),
        };
        let active = ring.active(self.clock.now());
        let mut header = Header::new(active.alg.jwt());
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(active.kid.clone());
        let token = sign(&header, &claims, &active.signer)?;
        Ok(IssuedToken {
            token,
            expires_in: self.settings.ttl.as_secs(),
            claims,
        })
    }

    /// Verifies signature, header and claims, but not revocation.
    pub async fn verify_signature(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let kid = checked_kid(token)?;
        let mut ring = self.ring();
        if !ring.verifying.contains_key(&kid) && self.may_reload() {
            if let Err(error) = self.reload_keys().await {
                tracing::warn!(%error, "cannot reload signing keys");
            }
            ring = self.ring();
        }
        verify_with(&ring, &self.settings, token, self.clock.now())
    }

    /// Verifies a token fully: signature, header, claims and revocation.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now();
        let claims = match self.verified.get(&digest, now) {
            // The signature holds for ever; time does not.
            Some(claims) => {
                check_times(&claims, now)?;
                claims
            }
            None => {
                let claims = self.verify_signature(token).await?;
                // Kept no longer than the token can be accepted.
                let until = claims.expires_at() + time::Duration::seconds(i64::try_from(LEEWAY_SECONDS).unwrap_or(60));
                self.verified.insert_until(digest, claims.clone(), now, until);
                claims
            }
        };
        if self.revocations.is_revoked(claims.ids()) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    fn may_reload(&self) -> bool {
        let mut last = self
            .last_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.clock.now();
        let backoff = time::Duration::try_from(RELOAD_BACKOFF).unwrap_or(time::Duration::SECOND);
        if last.is_none_or(|at| now - at >= backoff || now < at) {
            *last = Some(now);
            true
        } else {
            false
        }
    }
}

/// Seals every key not yet sealed under the current secret (`sesame keys rewrap`); how
/// many were sealed again, of how many.
pub async fn rewrap(settings: &TokenSettings, store: &Store) -> Result<(usize, usize), LoadError> {
    let records = store.signing_keys.signing_keys().await?;
    let mut rewrapped = 0;
    for record in &records {
        if settings.sealer.is_current(&record.private_der) {
            continue;
        }
        let der = settings.sealer.open(&record.kid, &record.alg, &record.private_der)?;
        let sealed = settings.sealer.seal(&record.kid, &record.alg, &der)?;
        if store.signing_keys.replace_signing_key(&record.kid, &sealed).await? {
            rewrapped += 1;
        }
    }
    Ok((rewrapped, records.len()))
}

/// The stored keys with their private parts opened.
fn open_all(sealer: &Sealer, records: &[SigningKeyRecord]) -> Result<Vec<SigningKeyRecord>, LoadError> {
    records
        .iter()
        .map(|record| {
            Ok(SigningKeyRecord {
                private_der: sealer.open(&record.kid, &record.alg, &record.private_der)?,
                ..record.clone()
            })
        })
        .collect()
}

/// A new key as it is stored: sealed under the current secret, if there is one.
fn sealed(sealer: &Sealer, record: &SigningKeyRecord) -> Result<SigningKeyRecord, LoadError> {
    Ok(SigningKeyRecord {
        private_der: sealer.seal(&record.kid, &record.alg, &record.private_der)?,
        ..record.clone()
    })
}

/// A JWS in compact serialization (RFC 7515 §7.1): the encoded header and claims, and
/// their signature by the ring's parsed signer.
fn sign(header: &Header, claims: &AccessClaims, signer: &keys::Signer) -> Result<String, TokenError> {
    let header = serde_json::to_vec(header).map_err(|_| TokenError::Signing)?;
    let claims = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = signer.sign(token.as_bytes()).map_err(|_| TokenError::Signing)?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

/// Checks a token's header (RFC 8725 §3.1, RFC 9068 §4) and returns its `kid`.
pub fn checked_kid(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some() {
        return Err(TokenError::UntrustedHeader);
    }
    header.kid.ok_or(TokenError::UnknownKey)
}

/// Verifies a token against a key ring: header, signature under the algorithm of the
/// key its `kid` names, and claims. No I/O; revocation is the caller's business.
pub fn verify_with(
    ring: &KeyRing,
    settings: &TokenSettings,
    token: &str,
    now: time::OffsetDateTime,
) -> Result<AccessClaims, TokenError> {
    let kid = checked_kid(token)?;
    let key = ring.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
    // The key decides the algorithm; a header naming any other is refused.
    let mut validation = Validation::new(key.alg.jwt());
    // Times are checked against the service's clock below, not the library's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[&settings.issuer]);
    // Here the audience need only be one this server mints for (`SESAME_AUDIENCE` or
    // `SESAME_RESOURCES`); each verifier then checks the one it serves.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
        .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))?;
    let ours = |aud: &String| *aud == settings.audience || settings.resources.contains(aud);
    let all_ours = match &data.claims.aud {
        Audience::One(one) => ours(one),
        Audience::Many(many) => !many.is_empty() && many.iter().all(ours),
    };
    if !all_ours {
        return Err(TokenError::WrongAudience);
    }
    check_times(&data.claims, now)?;
    Ok(data.claims)
}

/// `exp` and `nbf` against `now`, with [`LEEWAY_SECONDS`] of skew either way.
fn check_times(claims: &AccessClaims, now: time::OffsetDateTime) -> Result<(), TokenError> {
    let now = now.unix_timestamp();
    let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(60);
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Invalid("ExpiredSignature".into()));
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::Invalid("ImmatureSignature".into()));
    }
    Ok(())
}

impl AccessClaims {
    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Why the key ring could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Storage(#[from] sesame_storage::StorageError),
    #[error(transparent)]
    Key(#[from] super::keys::KeyError),
    /// A stored key does not open under the configured secrets.
    #[error(transparent)]
    Sealed(#[from] SealError),
}
