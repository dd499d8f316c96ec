//! Delegated access (§10): a third-party app asks to act for a signed-in user. The
//! authorization request is checked in the order RFC 6749 §4.1.2.1 and RFC 9700 require
//! (what cannot be trusted is never redirected to), consent is recorded as a grant, and a
//! single-use code bound to everything the request said is redeemed, with its PKCE
//! proof, for a delegated access token.

use sesame_domain::principal::UserSession;
use sesame_domain::{AuthorizationCode, Client, ClientId, CodeChallenge, GrantView, RefreshToken, Scopes, UserId};
use sesame_storage::{CodeRecord, FamilyRecord, Redemption, RefreshRotation, RevocationKind, Rotation};

use crate::Context;
use crate::error::{CoreError, Result};
use crate::tokens::{ActingFor, Audience, Grantee, IssuedToken};

/// How long after its rotation a refresh token still works (two tabs refreshing at
/// once, §10); presented later, it ends its family.
pub const REFRESH_REUSE_GRACE: time::Duration = time::Duration::seconds(10);

/// A delegated access token and the next refresh token of its family.
pub struct Delegated {
    pub issued: IssuedToken,
    pub refresh: RefreshToken,
}

/// What introspection says of a live refresh token (RFC 7662, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshIntrospection {
    pub client_id: String,
    /// The user the family acts for.
    pub sub: String,
    pub scope: String,
    /// When the family ends if left unused.
    pub exp: i64,
}

/// `GET /authorize`'s parameters, as sent.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    /// RFC 8707, repeatable.
    pub resources: Vec<String>,
}

/// `prompt` (OpenID Connect Core §3.1.2.1, as RFC 6749 clients use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Default,
    /// Never show a page: answer `login_required` or `consent_required` instead.
    None,
    /// Sign in again even with a session.
    Login,
    /// Ask for consent even when a grant covers the request.
    Consent,
}

/// Where the browser is sent back to, and with what (RFC 6749 §4.1.2, RFC 9207).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectBack {
    pub redirect_uri: String,
    pub params: Vec<(&'static str, String)>,
}

impl RedirectBack {
    /// The redirect's `Location`: the registered URI with the parameters added to its
    /// query.
    pub fn location(&self) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.params {
            pairs.append_pair(name, value);
        }
        let query = pairs.finish();
        let separator = if self.redirect_uri.contains('?') { '&' } else { '?' };
        format!("{}{separator}{query}", self.redirect_uri)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// A request whose client and redirect URI are trusted and whose every parameter is
/// valid; what consent is asked for.
#[derive(Debug, Clone)]
pub struct Checked {
    pub client: Client,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub challenge: CodeChallenge,
    pub prompt: Prompt,
    pub resources: Vec<String>,
}

/// What to do with an authorization request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The client or redirect URI cannot be trusted: say so on a page, never redirect.
    Refused(String),
    /// No (fresh enough) session: send the browser to sign in, then back here.
    SignIn,
    /// Ask the user.
    Consent(Box<Checked>),
    /// Back to the client, with a code or an error.
    Redirect(RedirectBack),
}

/// The authorization service.
pub struct Authorizations<'a>(pub(crate) &'a Context);

impl Authorizations<'_> {
    /// Decides an authorization request for the caller's session, if any. `fresh` says
    /// the user has just signed in for this very request (so `prompt=login` is met).
    pub async fn decide(
        &self,
        request: &AuthorizationRequest,
        session: Option<&UserSession>,
        fresh: bool,
    ) -> Result<Decision> {
        let checked = match self.check(request).await? {
            Ok(checked) => checked,
            Err(decision) => return Ok(decision),
        };
        let Some(session) = session else {
            return Ok(if checked.prompt == Prompt::None {
                Decision::Redirect(self.error(&checked, "login_required", "The user is not signed in."))
            } else {
                Decision::SignIn
            });
        };
        if checked.prompt == Prompt::Login && !fresh {
            return Ok(Decision::SignIn);
        }
        if let Some(refusal) = self.scope_not_held(&checked, session) {
            return Ok(refusal);
        }
        let grants = &self.0.store.authorizations;
        let granted = grants.grant(session.user.id, &checked.client.id).await?;
        if let Some(grant) = granted
            && checked.scopes.iter().all(|s| grant.scopes.contains(s.as_str()))
            && checked.prompt != Prompt::Consent
        {
            return Ok(Decision::Redirect(
                self.issue_code(&checked, session, grant.version).await?,
            ));
        }
        if checked.prompt == Prompt::None {
            let description = "The user has not granted these scopes to this client.";
            return Ok(Decision::Redirect(self.error(
                &checked,
                "consent_required",
                description,
            )));
        }
        Ok(Decision::Consent(Box::new(checked)))
    }

    /// The user approved (a `POST` with the session and its CSRF token): records the
    /// grant and sends the browser back with a code. The request is checked again, as
    /// everything in it came back from the browser.
    pub async fn approve(&self, request: &AuthorizationRequest, session: &UserSession) -> Result<Decision> {
        let checked = match self.check(request).await? {
            Ok(checked) => checked,
            Err(decision) => return Ok(decision),
        };
        if let Some(refusal) = self.scope_not_held(&checked, session) {
            return Ok(refusal);
        }
        let (grants, now) = (&self.0.store.authorizations, self.0.clock.now());
        let grant = grants
            .widen_grant(session.user.id, &checked.client.id, &checked.scopes, now)
            .await?;
        tracing::info!(user_id = %session.user.id, client_id = %checked.client.id, scopes = %checked.scopes.to_text(), "grant approved");
        Ok(Decision::Redirect(
            self.issue_code(&checked, session, grant.version).await?,
        ))
    }

    /// Back to the client with `invalid_scope` when the user does not hold a scope the
    /// request names: a user cannot let an app do what they may not do themselves.
    fn scope_not_held(&self, checked: &Checked, session: &UserSession) -> Option<Decision> {
        let scope = checked.scopes.iter().find(|s| !session.held.contains(s.as_str()))?;
        let description = format!("The user does not hold the scope {:?}.", scope.as_str());
        Some(Decision::Redirect(self.error(checked, "invalid_scope", &description)))
    }

    /// The user denied: back to the client with `access_denied`.
    pub async fn deny(&self, request: &AuthorizationRequest) -> Result<Decision> {
        Ok(match self.check(request).await? {
            Ok(checked) => Decision::Redirect(self.error(&checked, "access_denied", "The user denied the request.")),
            Err(decision) => decision,
        })
    }

    /// The user's live grants, oldest first (`GET /me/grants`).
    pub async fn grants(&self, user: UserId) -> Result<Vec<GrantView>> {
        Ok(self.0.store.authorizations.list_grants(user).await?)
    }

    /// Ends the user's grant to a client (`DELETE /me/grants/{client_id}`): every token
    /// issued under it stops working, at once here and within a poll elsewhere, and the
    /// next request asks for consent again. No such grant: [`CoreError::NotFound`].
    pub async fn end_grant(&self, user: UserId, client_id: &str) -> Result<()> {
        let cx = self.0;
        let client = ClientId::parse(client_id).ok_or(CoreError::NotFound)?;
        let entry = cx.tokens.revocation(RevocationKind::Owner, String::new());
        let ended = cx.store.authorizations.end_grant(user, &client, entry).await?;
        let revocation = ended.ok_or(CoreError::NotFound)?;
        cx.tokens.revocations().apply([&revocation]);
        tracing::info!(user_id = %user, client_id = %client, "grant ended; its tokens are revoked");
        Ok(())
    }

    /// Checks a request: first the client and redirect URI (a failure is a page), then
    /// everything else (a failure goes back to the client).
    async fn check(&self, request: &AuthorizationRequest) -> Result<std::result::Result<Checked, Decision>> {
        let refused = |why: &str| Ok(Err(Decision::Refused(why.to_owned())));
        let Some(client_id) = request.client_id.as_deref().and_then(ClientId::parse) else {
            return refused("The request names no client this server knows.");
        };
        let Some(found) = self.0.store.clients.find_client(&client_id).await? else {
            return refused("The request names no client this server knows.");
        };
        let client = found.client;
        let registered = &client.redirect_uris;
        let redirect_uri = match request.redirect_uri.as_deref() {
            Some(asked) if registered.iter().any(|r| r.matches(asked)) => asked.to_owned(),
            Some(_) => return refused("The redirect URI is not one this client registered."),
            None if registered.len() == 1 => registered[0].as_str().to_owned(),
            None => return refused("The request must name one of the client's redirect URIs."),
        };
        let back = |error: &'static str, description: &str| {
            let partial = Checked {
                client: client.clone(),
                redirect_uri: redirect_uri.clone(),
                scopes: Scopes::default(),
                state: request.state.clone(),
                challenge: CodeChallenge::from_stored(String::new()),
                prompt: Prompt::Default,
                resources: Vec::new(),
            };
            Ok(Err(Decision::Redirect(self.error(&partial, error, description))))
        };
        match request.response_type.as_deref() {
            Some("code") => {}
            Some(_) => return back("unsupported_response_type", "Only response_type=code is supported."),
            None => return back("invalid_request", "response_type is required."),
        }
        let prompt = match request.prompt.as_deref() {
            None | Some("") => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some("consent") => Prompt::Consent,
            Some(_) => return back("invalid_request", "prompt must be none, login or consent."),
        };
        let Some(challenge) = request
            .code_challenge
            .as_deref()
            .and_then(|c| CodeChallenge::parse(c, request.code_challenge_method.as_deref()))
        else {
            return back(
                "invalid_request",
                "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256.",
            );
        };
        // The client's scopes, narrowed to those asked (all of them when none are); the
        // user's holding is checked once there is a session.
        let scopes = match client.scopes.narrow(request.scope.as_deref()) {
            Ok(scopes) => scopes,
            Err(e) => return back("invalid_scope", &e.to_string()),
        };
        if let Some(unknown) = self.0.settings.scopes.unknown(&scopes) {
            return back(
                "invalid_scope",
                &format!("{:?} is not in the catalogue.", unknown.as_str()),
            );
        }
        match crate::tokens::Tokens(self.0).audience_for(&request.resources) {
            Ok(_) => {}
            Err(CoreError::InvalidTarget(description)) => return back("invalid_target", &description),
            Err(other) => return Err(other),
        }
        Ok(Ok(Checked {
            client,
            redirect_uri,
            scopes,
            state: request.state.clone(),
            challenge,
            prompt,
            resources: request.resources.clone(),
        }))
    }

    /// An error for the client, with `state` and `iss` (RFC 9207).
    fn error(&self, checked: &Checked, error: &'static str, description: &str) -> RedirectBack {
        let mut params = vec![
            ("error", error.to_owned()),
            ("error_description", description.to_owned()),
        ];
        self.finish(checked, &mut params);
        RedirectBack {
            redirect_uri: checked.redirect_uri.clone(),
            params,
        }
    }

    fn finish(&self, checked: &Checked, params: &mut Vec<(&'static str, String)>) {
        if let Some(state) = &checked.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.0.settings.tokens.issuer.clone()));
    }

    /// Makes a code bound to the request and the user, and the redirect that carries it.
    async fn issue_code(&self, checked: &Checked, session: &UserSession, grant_version: i64) -> Result<RedirectBack> {
        let cx = self.0;
        let now = cx.clock.now();
        let ttl = time::Duration::try_from(cx.settings.auth_code_ttl).unwrap_or(time::Duration::MINUTE);
        let code = AuthorizationCode::generate();
        let record = CodeRecord {
            hash: code.hash(),
            client_id: checked.client.id.clone(),
            user_id: session.user.id,
            redirect_uri: checked.redirect_uri.clone(),
            challenge: checked.challenge.clone(),
            scopes: checked.scopes.clone(),
            resources: checked.resources.clone(),
            auth_time: session.signed_in_at,
            created_at: now,
            expires_at: now + ttl,
            grant_version,
        };
        cx.store.authorizations.insert_code(&record).await?;
        tracing::info!(user_id = %session.user.id, client_id = %checked.client.id, "authorization code issued");
        let mut params = vec![("code", code.expose().to_owned())];
        self.finish(checked, &mut params);
        Ok(RedirectBack {
            redirect_uri: checked.redirect_uri.clone(),
            params,
        })
    }

    /// The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6) for `client`, which
    /// has already authenticated (a confidential client) or named itself (a public
    /// one). A code of another client, a wrong redirect URI or verifier, an expired or
    /// spent code: [`CoreError::InvalidGrant`]; a code presented again also revokes the
    /// token it was exchanged for and ends the refresh family it started.
    pub async fn redeem(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<Delegated> {
        let cx = self.0;
        let invalid = |why: &str| CoreError::InvalidGrant(why.to_owned());
        let code = AuthorizationCode::parse(code).ok_or_else(|| invalid("The code is not valid."))?;
        let now = cx.clock.now();
        let record = match cx.store.authorizations.redeem_code(&code.hash(), now).await? {
            Redemption::Redeemed(record) => record,
            Redemption::Replayed {
                record,
                issued_jti,
                family,
            } => {
                if let Some(jti) = issued_jti {
                    let entry = cx.tokens.revocation(RevocationKind::Token, jti);
                    cx.tokens.revoke(&entry).await?;
                }
                if let Some(family) = family {
                    self.end_family(family).await?;
                }
                tracing::warn!(client_id = %record.client_id, user_id = %record.user_id, "authorization code replayed; what it issued is revoked");
                return Err(invalid("The code was already used."));
            }
            Redemption::Unknown => return Err(invalid("The code is not valid.")),
        };
        if record.client_id != client.id {
            return Err(invalid("The code was issued to another client."));
        }
        if now >= record.expires_at {
            return Err(invalid("The code has expired."));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(invalid("redirect_uri must be the one the code was issued for."));
        }
        if !verifier.is_some_and(|v| record.challenge.is_met_by(v)) {
            return Err(invalid("The code_verifier does not match the code_challenge."));
        }
        let family = FamilyRecord {
            id: uuid::Uuid::now_v7(),
            client_id: client.id.clone(),
            user_id: record.user_id,
            scopes: record.scopes.clone(),
            resources: record.resources.clone(),
            auth_time: record.auth_time,
            grant_version: record.grant_version,
            created_at: record.created_at,
            last_used_at: now,
        };
        let issued = self
            .delegate(client, &family, &record.scopes, &record.resources)
            .await?;
        let refresh = RefreshToken::generate();
        cx.store
            .authorizations
            .start_family(&code.hash(), &issued.claims.jti, &family, &refresh.hash())
            .await?;
        tracing::info!(client_id = %client.id, user_id = %family.user_id, jti = %issued.claims.jti, "delegated token issued");
        Ok(Delegated { issued, refresh })
    }

    /// The refresh grant (RFC 6749 §6) for `client`, authenticated as for a code. The
    /// token rotates: the one presented is spent and the next one returned. A spent token
    /// presented again within [`REFRESH_REUSE_GRACE`] of its spending gets a fresh pair
    /// (two tabs refreshing at once); later, it ends its whole family and every access
    /// token issued from it. `scope` may only narrow the family's scopes, `resources` only
    /// pick among its resources.
    pub async fn refresh(
        &self,
        client: &Client,
        token: &str,
        scope: Option<&str>,
        resources: &[String],
    ) -> Result<Delegated> {
        let cx = self.0;
        let invalid = |why: &str| CoreError::InvalidGrant(why.to_owned());
        let token = RefreshToken::parse(token).ok_or_else(|| invalid("The refresh token is not valid."))?;
        let now = cx.clock.now();
        let found = cx.store.authorizations.find_refresh(&token.hash()).await?;
        let Some(found) = found else {
            return Err(invalid("The refresh token is not valid."));
        };
        let family = &found.family;
        if family.client_id != client.id {
            return Err(invalid("The refresh token was issued to another client."));
        }
        if !self.is_within_lifetimes(family, now) {
            self.end_family(family.id).await?;
            return Err(invalid("The refresh token has expired."));
        }
        if !found.grant_live {
            return Err(invalid("The grant this refresh token was issued under has ended."));
        }
        // A bad request leaves the token as it was.
        let scopes = family
            .scopes
            .narrow(scope)
            .map_err(|e| CoreError::InvalidScope(e.to_string()))?;
        let resources = self.narrow_resources(family, resources)?;
        let refresh = RefreshToken::generate();
        let rotation = RefreshRotation {
            hash: &token.hash(),
            family: family.id,
            next: &refresh.hash(),
            at: now,
            grace_since: now - REFRESH_REUSE_GRACE,
        };
        let rotation = cx.store.authorizations.rotate_refresh(&rotation).await?;
        match rotation {
            Rotation::Rotated => {}
            Rotation::SpentBefore(_) => {
                self.end_family(family.id).await?;
                tracing::warn!(client_id = %client.id, user_id = %family.user_id, "refresh token reused after its rotation; its family is ended");
                return Err(invalid("The refresh token was already used."));
            }
            Rotation::Ended => return Err(invalid("The refresh token is not valid.")),
        }
        let issued = self.delegate(client, family, &scopes, &resources).await?;
        tracing::info!(client_id = %client.id, user_id = %family.user_id, jti = %issued.claims.jti, "delegated token refreshed");
        Ok(Delegated { issued, refresh })
    }

    /// What introspection (RFC 7662) says of a refresh token presented by `client`:
    /// `None` unless it is the client's own, unspent, and its family live.
    pub async fn introspect_refresh(&self, client: &ClientId, token: &str) -> Result<Option<RefreshIntrospection>> {
        let cx = self.0;
        let Some(token) = RefreshToken::parse(token) else {
            return Ok(None);
        };
        let Some(found) = cx.store.authorizations.find_refresh(&token.hash()).await? else {
            return Ok(None);
        };
        let family = &found.family;
        let now = cx.clock.now();
        if family.client_id != *client
            || found.spent_at.is_some()
            || !found.grant_live
            || !self.is_within_lifetimes(family, now)
        {
            return Ok(None);
        }
        Ok(Some(RefreshIntrospection {
            client_id: family.client_id.as_str().to_owned(),
            sub: family.user_id.to_string(),
            scope: family.scopes.to_text(),
            exp: self.family_ends_at(family).unix_timestamp(),
        }))
    }

    /// RFC 7009 for a refresh token presented by `client`: ends its family if it is the
    /// client's own; `false` if `token` is no refresh token of a live family of `client`.
    pub async fn revoke_refresh(&self, client: &ClientId, token: &str) -> Result<bool> {
        let cx = self.0;
        let Some(token) = RefreshToken::parse(token) else {
            return Ok(false);
        };
        let Some(found) = cx.store.authorizations.find_refresh(&token.hash()).await? else {
            return Ok(false);
        };
        if found.family.client_id != *client {
            return Ok(false);
        }
        cx.throttle.revocation(client.as_str()).reserve().await?;
        self.end_family(found.family.id).await?;
        tracing::info!(client_id = %client, user_id = %found.family.user_id, "refresh token revoked; its family is ended");
        Ok(true)
    }

    /// Ends a family and revokes every access token issued from it: at once here, within
    /// a poll elsewhere.
    async fn end_family(&self, family: uuid::Uuid) -> Result<()> {
        let cx = self.0;
        let entry = cx.tokens.revocation(RevocationKind::Token, String::new());
        if let Some(revocation) = cx.store.authorizations.end_family(family, entry).await? {
            cx.tokens.revocations().apply([&revocation]);
        }
        Ok(())
    }

    /// When a family ends if unused from now on.
    fn family_ends_at(&self, family: &FamilyRecord) -> time::OffsetDateTime {
        let policy = self.0.settings.refresh;
        (family.last_used_at + policy.idle).min(family.created_at + policy.absolute)
    }

    fn is_within_lifetimes(&self, family: &FamilyRecord, now: time::OffsetDateTime) -> bool {
        now < self.family_ends_at(family)
    }

    /// The resources a refresh asks for: each one of the family's (or `SESAME_AUDIENCE`
    /// when the family named none), else [`CoreError::InvalidTarget`]; none asked is the
    /// family's own.
    fn narrow_resources(&self, family: &FamilyRecord, asked: &[String]) -> Result<Vec<String>> {
        let audience = &self.0.settings.tokens.audience;
        let allowed = |r: &String| {
            if family.resources.is_empty() {
                r == audience
            } else {
                family.resources.contains(r)
            }
        };
        if let Some(other) = asked.iter().find(|r| !allowed(r)) {
            let shown: String = other.chars().take(200).collect();
            return Err(CoreError::InvalidTarget(format!(
                "{shown:?} is not a resource this grant was issued for"
            )));
        }
        Ok(if asked.is_empty() {
            family.resources.clone()
        } else {
            asked.to_vec()
        })
    }

    /// Signs a delegated access token from a family for `scopes` (what the user still
    /// holds and the client still has of them) and `resources`: refused once the user or
    /// the client's owner is disabled.
    async fn delegate(
        &self,
        client: &Client,
        family: &FamilyRecord,
        scopes: &Scopes,
        resources: &[String],
    ) -> Result<IssuedToken> {
        let cx = self.0;
        let invalid = |why: &str| CoreError::InvalidGrant(why.to_owned());
        let user = cx
            .store
            .users
            .find_user_by_id(family.user_id)
            .await?
            .filter(|u| !u.is_disabled())
            .ok_or_else(|| invalid("The user is no longer active."))?;
        let owner = if client.owner_id == user.user.id {
            user.clone()
        } else {
            cx.store
                .users
                .find_user_by_id(client.owner_id)
                .await?
                .filter(|u| !u.is_disabled())
                .ok_or_else(|| invalid("The client's owner is no longer active."))?
        };
        let held = cx.settings.scopes.held(&user.granted_scopes);
        let scopes = held.keep(scopes).filter(|s| client.scopes.contains(s.as_str()));
        let audience = match resources {
            [] => Audience::One(cx.settings.tokens.audience.clone()),
            resources => Audience::of(resources),
        };
        cx.tokens
            .issue(
                Grantee {
                    client: &client.id,
                    key: None,
                    owner: client.owner_id,
                    owner_version: owner.token_version,
                    claims: &client.claims,
                    user: Some(ActingFor {
                        user: user.user.id,
                        auth_time: family.auth_time,
                        user_version: user.token_version,
                        grant_version: family.grant_version,
                        family: family.id,
                    }),
                },
                &scopes,
                audience,
            )
            .map_err(CoreError::internal)
    }
}
