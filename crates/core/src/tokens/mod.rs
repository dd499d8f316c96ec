//! Access tokens (RFC 9068 JWTs): client authentication with an API key, issuing,
//! verifying, revoking and introspecting; signing keys and their rotation; and the
//! in-memory revocation set that keeps every instance's bearer checks free of database
//! reads.

pub mod grant;
pub mod keys;
pub mod revocation;
pub mod service;

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use secrecy::{ExposeSecret, SecretString};
use sesame_domain::UserId;
use sesame_domain::principal::{ClientToken, DelegatedToken, Principal};
use sesame_domain::{ApiKey, ApiKeyId, ClientId, Scopes};
use sesame_storage::{ApiKeyRecord, ClientRecord, OwnerState, Revocation, RevocationKind};

pub use crate::error::TokenError;
pub use grant::{ClientAuth, Grant, GrantRequest, GrantResponse};
pub use keys::SigningAlg;
pub use revocation::RevocationSet;
pub use service::{AccessClaims, ActingFor, Audience, Grantee, IssuedToken, LoadError, TokenService, TokenSettings};

use crate::Context;
use crate::cache::TtlCache;
use crate::error::{CoreError, Result};

/// `last_used_at` is written at most this often per key.
const KEY_TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// The longest a cached key record is trusted without asking the database.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most keys held at once.
const MAX_CACHED_KEYS: usize = 4_096;

/// Live API-key records and their clients, so that a client exchanging its key many
/// times a second costs one database read a second. Rules:
/// - an entry is trusted for at most [`KEY_CACHE_TTL`]. Together with the revocation set
///   (polled every second, and applied at once for this instance's own revocations, which
///   every exchange consults), that bounds how long a key revoked or a client deleted
///   elsewhere can still be exchanged here: 1 second;
/// - only live keys are cached: a record read as revoked, or a key id that matches
///   nothing, is never remembered, so random key ids cannot fill the cache;
/// - it holds the key's hash, never the key.
/// - a key whose owner is disabled is never cached, and a disable made here forgets the
///   owner's keys at once.
pub(crate) struct KeyCache(TtlCache<ApiKeyId, FoundKey>);

/// A key, its client and the client's owner's state, as last read.
type FoundKey = (ApiKeyRecord, ClientRecord, OwnerState);

impl Default for KeyCache {
    fn default() -> Self {
        Self(TtlCache::new(KEY_CACHE_TTL, MAX_CACHED_KEYS))
    }
}

impl KeyCache {
    pub(crate) fn remove(&self, id: ApiKeyId) {
        self.0.remove(&id);
    }

    pub(crate) fn remove_client(&self, client: &ClientId) {
        self.0.remove_where(|(_, c, _)| &c.id == client);
    }

    pub(crate) fn remove_owner(&self, owner: UserId) {
        self.0.remove_where(|(_, c, _)| c.owner_id == owner);
    }
}

/// Client credentials as presented, before checking. Its `Debug` hides the secret.
#[derive(Debug)]
pub struct PresentedClient {
    /// The client id the request names, if it names one.
    pub client_id: Option<String>,
    /// The API key (`client_secret`).
    pub secret: SecretString,
}

/// A client that proved itself with one of its live API keys.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: ClientRecord,
    pub key: ApiKeyRecord,
    pub owner: OwnerState,
}

/// What introspection (RFC 7662) says of a live token.
#[derive(Debug, Clone)]
pub enum Introspected {
    /// An access token: its claims.
    Access(Box<AccessClaims>),
    /// A refresh token of the asking client (§10).
    Refresh(crate::authorizations::RefreshIntrospection),
}

/// The token service.
pub struct Tokens<'a>(pub(crate) &'a Context);

impl Tokens<'_> {
    /// Checks an API key (and the client id, when named), throttled like password logins
    /// and keyed by client id and IP. Unknown, malformed, revoked and mismatched keys all
    /// fail the same way: [`CoreError::InvalidClient`].
    pub async fn authenticate_client(&self, presented: &PresentedClient, ip: &str) -> Result<AuthenticatedClient> {
        let cx = self.0;
        let named = presented.client_id.as_deref().filter(|id| !id.is_empty());
        if named.is_some_and(|id| ClientId::parse(id).is_none()) {
            return Err(CoreError::InvalidClient);
        }
        let key = ApiKey::parse(presented.secret.expose_secret());
        let found = match &key {
            Some(key) => self.find_key(key.id()).await?,
            None => None,
        };
        // Throttle under the client the request names, else the key's client, else the
        // key id: a stable account name for every attempt. Charged per (client, IP) and
        // per IP only: a client id is public, so strangers naming it must not lock it out.
        let account = named
            .map(str::to_owned)
            .or_else(|| found.as_ref().map(|(_, client, _)| client.id.as_str().to_owned()))
            .or_else(|| key.as_ref().map(|k| format!("key:{}", k.id())))
            .unwrap_or_else(|| "key:malformed".to_owned());
        let attempt = cx.throttle.client(&account, ip);
        attempt.check().await?;

        let authenticated = match (key, found) {
            (Some(key), Some((record, client, owner)))
                if record.key_hash.matches(&key.hash())
                    && record.revoked_at.is_none()
                    && !owner.disabled
                    && !self.is_revoked(&record, &client, &owner)
                    && named.is_none_or(|id| id == client.id.as_str()) =>
            {
                Some(AuthenticatedClient {
                    client,
                    key: record,
                    owner,
                })
            }
            _ => None,
        };
        let Some(authenticated) = authenticated else {
            // Checking a key costs a SHA-256, so the failure is charged after it; a
            // failure past a budget is answered like any throttled attempt.
            attempt.reserve().await?;
            attempt.failed().await;
            tracing::info!(ip = %ip, outcome = "invalid_client", "client authentication failed");
            return Err(CoreError::InvalidClient);
        };
        attempt.succeeded().await;
        let now = cx.clock.now();
        let stale = authenticated
            .key
            .last_used_at
            .is_none_or(|at| now - at >= KEY_TOUCH_INTERVAL);
        if stale {
            match cx.store.clients.touch_key(authenticated.key.id, now).await {
                Ok(()) => cx.keys.0.update(&authenticated.key.id, |(key, _, _)| {
                    key.last_used_at = Some(key.last_used_at.map_or(now, |seen| seen.max(now)));
                }),
                Err(error) => tracing::warn!(%error, "could not record API key use"),
            }
        }
        Ok(authenticated)
    }

    /// Whether this instance knows the key, its client or its owner's credentials to be
    /// revoked (at once for its own revocations, within a poll for the others').
    fn is_revoked(&self, key: &ApiKeyRecord, client: &ClientRecord, owner: &OwnerState) -> bool {
        let revocations = self.0.tokens.revocations();
        revocations.is_key_revoked(&key.id.to_string(), client.id.as_str())
            || revocations.is_owner_version_revoked(&client.owner_id.to_string(), owner.token_version)
    }

    /// A key's record, its client and its owner: from the key cache if fresh, else from
    /// the database (and then cached if live).
    async fn find_key(&self, id: ApiKeyId) -> Result<Option<FoundKey>> {
        let cx = self.0;
        let now = cx.clock.now();
        if let Some(found) = cx.keys.0.get(&id, now) {
            let (_, client, owner) = &found;
            // An entry read before its owner's tokens were revoked (a scope taken away)
            // is read again: the owner's new version may be good.
            if !cx
                .tokens
                .revocations()
                .is_owner_version_revoked(&client.owner_id.to_string(), owner.token_version)
            {
                return Ok(Some(found));
            }
            cx.keys.remove(id);
        }
        let found = cx.store.clients.find_key(id).await?;
        if let Some((key, client, owner)) = &found
            && key.revoked_at.is_none()
            && !owner.disabled
        {
            cx.keys.0.insert(id, (key.clone(), client.clone(), owner.clone()), now);
        }
        Ok(found)
    }

    /// The client-credentials grant: authenticates the client and signs a token with
    /// the requested scopes (all of the client's when `scope` is absent).
    pub async fn exchange(&self, presented: &PresentedClient, scope: Option<&str>, ip: &str) -> Result<IssuedToken> {
        self.exchange_for(presented, scope, &[], ip).await
    }

    /// The audience a token request asks for (RFC 8707): `SESAME_AUDIENCE` when it names
    /// none, else each named resource, which must be `SESAME_AUDIENCE` or one of
    /// `SESAME_RESOURCES` ([`CoreError::InvalidTarget`]).
    pub fn audience_for(&self, resources: &[String]) -> Result<Audience> {
        let settings = &self.0.settings.tokens;
        if resources.is_empty() {
            return Ok(Audience::One(settings.audience.clone()));
        }
        if let Some(unknown) = resources
            .iter()
            .find(|r| **r != settings.audience && !settings.resources.contains(r))
        {
            let shown: String = unknown.chars().take(200).collect();
            return Err(CoreError::InvalidTarget(format!(
                "{shown:?} is not a resource of this server"
            )));
        }
        Ok(Audience::of(resources))
    }

    /// The client-credentials grant for the resources named (none: `SESAME_AUDIENCE`).
    pub async fn exchange_for(
        &self,
        presented: &PresentedClient,
        scope: Option<&str>,
        resources: &[String],
        ip: &str,
    ) -> Result<IssuedToken> {
        let authenticated = self.authenticate_client(presented, ip).await?;
        // A token carries only scopes the owner still holds (§9): a scope taken away from
        // the owner is left out, and asking for it is `invalid_scope`.
        let held = self.0.settings.scopes.held(&authenticated.owner.granted_scopes);
        let scopes = held
            .keep(&authenticated.client.scopes)
            .narrow(scope)
            .map_err(|e| CoreError::InvalidScope(e.to_string()))?;
        let issued = self.issue(
            Grantee {
                client: &authenticated.client.id,
                key: Some(authenticated.key.id),
                owner: authenticated.client.owner_id,
                owner_version: authenticated.owner.token_version,
                claims: &authenticated.client.claims,
                user: None,
            },
            &scopes,
            self.audience_for(resources)?,
        )?;
        tracing::info!(
            ip = %ip,
            client_id = %authenticated.client.id,
            key_id = %authenticated.key.id,
            jti = %issued.claims.jti,
            outcome = "success",
            "token issued"
        );
        Ok(issued)
    }

    /// A token request (`POST /login` for a token): the client authenticated as it
    /// presented itself, then the grant it asks for.
    pub async fn grant(&self, request: &GrantRequest, ip: &str) -> Result<GrantResponse> {
        match &request.grant {
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                let client = self.client_for_code(&request.client, ip).await?;
                let issued = crate::authorizations::Authorizations(self.0)
                    .redeem(&client, code, redirect_uri.as_deref(), code_verifier.as_deref())
                    .await?;
                Ok(issued.into())
            }
            Grant::RefreshToken { refresh_token } => {
                let client = self.client_for_code(&request.client, ip).await?;
                let issued = crate::authorizations::Authorizations(self.0)
                    .refresh(&client, refresh_token, request.scope.as_deref(), &request.resources)
                    .await?;
                Ok(issued.into())
            }
            Grant::ClientCredentials if matches!(request.client, ClientAuth::None { .. }) => {
                Err(self.unauthenticated(&request.client).await)
            }
            Grant::ClientCredentials => {
                let issued = self
                    .exchange_for(
                        &request.client.presented(),
                        request.scope.as_deref(),
                        &request.resources,
                        ip,
                    )
                    .await?;
                Ok(issued.into())
            }
        }
    }

    /// The client redeeming a code or a refresh token: a confidential one authenticated
    /// with a key, a public one by its `client_id` alone (PKCE, then possession of the
    /// rotating refresh token, is its proof).
    async fn client_for_code(&self, auth: &ClientAuth, ip: &str) -> Result<sesame_domain::Client> {
        let ClientAuth::None { client_id } = auth else {
            return Ok(self.authenticate_client(&auth.presented(), ip).await?.client);
        };
        let id = ClientId::parse(client_id).ok_or(CoreError::InvalidClient)?;
        match self.0.store.clients.find_client(&id).await? {
            Some(found) if found.client.client_type == sesame_domain::ClientType::Public => Ok(found.client),
            _ => Err(CoreError::InvalidClient),
        }
    }

    /// A client that named itself without a secret, where one is needed: a public client
    /// is told it may not use this grant (`unauthorized_client`), anything else that it
    /// did not authenticate.
    async fn unauthenticated(&self, client: &ClientAuth) -> CoreError {
        let ClientAuth::None { client_id } = client else {
            return CoreError::InvalidClient;
        };
        let Some(id) = ClientId::parse(client_id) else {
            return CoreError::InvalidClient;
        };
        match self.0.store.clients.find_client(&id).await {
            Ok(Some(found)) if found.client.client_type == sesame_domain::ClientType::Public => {
                CoreError::UnauthorizedClient
            }
            Ok(_) => CoreError::InvalidClient,
            Err(error) => error.into(),
        }
    }

    /// RFC 7009 for an authenticated client, in one call: revokes `token` if it is the
    /// client's own.
    /// A public client names itself (`client_id` alone, RFC 7009 §2.1): it can only
    /// revoke its own delegated tokens, which it holds anyway.
    pub async fn revoke_as(&self, client: &ClientAuth, token: &str, ip: &str) -> Result<()> {
        if matches!(client, ClientAuth::None { .. }) {
            let client = self.client_for_code(client, ip).await?;
            return self.revoke_for(&client.id, token, ip).await;
        }
        let caller = self.authenticate_client(&client.presented(), ip).await?;
        self.revoke(&caller, token, ip).await
    }

    /// RFC 7662 for an authenticated client, in one call: the claims of a live token,
    /// `None` for anything else.
    /// A refresh token is introspected only for the client it was issued to.
    pub async fn introspect_as(&self, client: &ClientAuth, token: &str, ip: &str) -> Result<Option<Introspected>> {
        if matches!(client, ClientAuth::None { .. }) {
            return Err(CoreError::InvalidClient);
        }
        let caller = self.authenticate_client(&client.presented(), ip).await?;
        if let Some(refresh) = crate::authorizations::Authorizations(self.0)
            .introspect_refresh(&caller.client.id, token)
            .await?
        {
            return Ok(Some(Introspected::Refresh(refresh)));
        }
        Ok(self
            .introspect(token)
            .await
            .map(|claims| Introspected::Access(Box::new(claims))))
    }

    /// Signs a token for a client, exchanged with the given key, with these scopes.
    pub fn issue(&self, grantee: Grantee<'_>, scopes: &Scopes, audience: Audience) -> Result<IssuedToken> {
        self.0
            .tokens
            .issue(grantee, scopes, audience)
            .map_err(CoreError::internal)
    }

    /// Verifies a bearer token fully (signature, header, claims, revocation, and an `aud`
    /// naming `SESAME_AUDIENCE`) into the client it speaks for. Every failure is
    /// [`CoreError::InvalidToken`].
    pub async fn verify(&self, token: &str) -> Result<Principal> {
        self.verify_for(token, &self.0.settings.tokens.audience).await
    }

    /// Like [`Tokens::verify`], for a resource server known as `audience`: a token
    /// minted for any other audience is refused. A client-credentials token is the
    /// client; a delegated token (its `sub` a user, §10) is the client acting for them.
    pub async fn verify_for(&self, token: &str, audience: &str) -> Result<Principal> {
        let refused = |error: TokenError| {
            tracing::debug!(%error, "bearer token refused");
            CoreError::InvalidToken(error)
        };
        let claims = self.0.tokens.verify(token).await.map_err(refused)?;
        if !claims.aud.contains(audience) {
            return Err(refused(TokenError::WrongAudience));
        }
        let malformed = || CoreError::InvalidToken(TokenError::Malformed);
        let client_id = ClientId::parse(&claims.client_id).ok_or_else(malformed)?;
        let scopes = Scopes::parse_space_separated(&claims.scope).map_err(|_| malformed())?;
        let expires_at = claims.expires_at();
        if claims.sub != claims.client_id {
            let user_id = uuid::Uuid::parse_str(&claims.sub)
                .map(UserId)
                .map_err(|_| malformed())?;
            return Ok(Principal::Delegated(DelegatedToken {
                user_id,
                client_id,
                scopes,
                expires_at,
                token_id: claims.jti,
                claims: claims.extra,
            }));
        }
        Ok(Principal::Client(ClientToken {
            client_id,
            owner: claims
                .owner
                .as_deref()
                .and_then(|o| uuid::Uuid::parse_str(o).ok())
                .map(UserId),
            scopes,
            expires_at,
            claims: claims.extra,
            token_id: claims.jti,
        }))
    }

    /// RFC 7009: revokes `token` if it verifies and belongs to `caller`; anything else is
    /// silently left alone (the caller learns nothing about other clients' tokens).
    pub async fn revoke(&self, caller: &AuthenticatedClient, token: &str, ip: &str) -> Result<()> {
        self.revoke_for(&caller.client.id, token, ip).await
    }

    async fn revoke_for(&self, caller: &ClientId, token: &str, ip: &str) -> Result<()> {
        let cx = self.0;
        // A refresh token of the caller's ends its family (§10).
        if crate::authorizations::Authorizations(cx)
            .revoke_refresh(caller, token)
            .await?
        {
            return Ok(());
        }
        if let Ok(claims) = cx.tokens.verify_signature(token).await
            && claims.client_id == caller.as_str()
            && !cx.tokens.revocations().is_revoked(claims.ids())
        {
            // Each revocation is kept until its token expires: one already revoked adds
            // nothing, and each new one counts against the client's budget.
            cx.throttle.revocation(caller.as_str()).reserve().await?;
            let entry = Revocation {
                kind: RevocationKind::Token,
                subject: claims.jti.clone(),
                created_at: cx.clock.now(),
                expires_at: claims.expires_at()
                    + time::Duration::seconds(i64::try_from(service::LEEWAY_SECONDS).unwrap_or(60)),
            };
            cx.tokens.revoke(&entry).await?;
            tracing::info!(ip = %ip, client_id = %caller, jti = %claims.jti, "token revoked");
        }
        Ok(())
    }

    /// RFC 7662: the claims of a live token, `None` for anything else.
    pub async fn introspect(&self, token: &str) -> Option<AccessClaims> {
        self.0.tokens.verify(token).await.ok()
    }

    /// The published keys.
    pub fn jwks(&self) -> JwkSet {
        self.0.tokens.jwks()
    }

    pub fn settings(&self) -> &TokenSettings {
        self.0.tokens.settings()
    }

    /// The catalogue's scopes, for the server metadata; `None` without a catalogue
    /// (never read from clients' rows: what clients hold is not public).
    pub fn scopes_supported(&self) -> Option<Vec<String>> {
        let catalogue = &self.0.settings.scopes;
        catalogue.is_declared().then(|| catalogue.names())
    }

    /// Seals every signing key under the current secret (`sesame keys rewrap`): how many
    /// were sealed again, of how many.
    pub async fn rewrap(&self) -> Result<(usize, usize)> {
        service::rewrap(self.0.tokens.settings(), &self.0.store)
            .await
            .map_err(load_error)
    }

    /// Adds a signing key: published at once, signing after the publish delay (or at
    /// once with `at_once`).
    pub async fn rotate(&self, at_once: bool) -> Result<sesame_storage::SigningKeyRecord> {
        self.0.tokens.rotate(at_once).await.map_err(load_error)
    }

    /// The kid that signs now, here.
    pub fn signing_kid(&self) -> String {
        self.0.tokens.signing_kid()
    }

    /// Re-reads the signing keys (after a rotation by another process).
    pub async fn reload_keys(&self) -> Result<()> {
        self.0.tokens.reload_keys().await.map_err(load_error)
    }

    /// Polls the shared revocation log for as long as the task runs.
    pub async fn poll_revocations(&self) {
        self.0.tokens.poll_revocations(std::sync::Arc::new(|_| {})).await;
    }
}

pub(crate) fn load_error(error: LoadError) -> CoreError {
    match error {
        LoadError::Storage(storage) => CoreError::from(storage),
        LoadError::Key(key) => CoreError::internal(key),
        LoadError::Sealed(sealed) => CoreError::Misconfigured(sealed.to_string()),
    }
}
