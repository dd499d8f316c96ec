//! `POST /login` and `POST /logout`: the first-party session lifecycle.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sesame_core::sessions::Origin;
use sesame_core::tokens::{ClientAuth, Grant, GrantRequest};
use tower_cookies::Cookies;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{
    MaybeSessionUser, clearing_cookie, presented_handle, profile_of_origin, profile_of_request, session_cookie,
};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, Problem};
use crate::json::{self, is_json};
use crate::metrics::Outcome;
use crate::oauth::OAuthErrorBody;
use crate::oauth::{self, OAuthError};
use crate::responses::{NotJson, Unavailable};
use crate::routes::{SessionSummary, UserBody};
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout))
}

/// First-party sign-in. No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct PasswordLogin {
    pub email: String,
    /// Compared byte for byte: never trimmed, case-folded or truncated.
    #[schema(max_length = 1024)]
    pub password: String,
}

/// A new session. The session's handle is only in `Set-Cookie`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserBody,
    pub session: SessionSummary,
    /// Send back as `X-CSRF-Token` on every unsafe request made with the cookie.
    pub csrf_token: String,
}

/// Third-party sign-in with an API key, as JSON.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"api_key": "sk_0193…_…", "scope": "notes:read"}))]
pub struct ApiKeyLogin {
    /// The client's API key.
    pub api_key: String,
    /// Space-separated scopes to narrow the token to; all of the client's when absent.
    #[serde(default)]
    pub scope: Option<String>,
    /// The resource (or resources) the token is for (RFC 8707): its `aud`.
    #[serde(default)]
    pub resource: Option<Resources>,
}

/// One `resource` or several.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Resources {
    One(String),
    Many(Vec<String>),
}

impl Resources {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// An OAuth 2.0 token request, as every OAuth client sends it: client credentials
/// (RFC 6749 §4.4), an authorization code with its PKCE verifier (§4.1.3, RFC 7636), or a
/// refresh token (§6).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"grant_type": "client_credentials", "scope": "notes:read"}))]
#[expect(
    dead_code,
    reason = "documents the form; the form is parsed strictly by `oauth::parse_form`"
)]
pub struct TokenRequestForm {
    /// `client_credentials`, `authorization_code` or `refresh_token`.
    #[schema(pattern = "^(client_credentials|authorization_code|refresh_token)$")]
    pub grant_type: String,
    /// Space-separated scopes to narrow the token to (for a refresh, within the grant's).
    pub scope: Option<String>,
    /// `authorization_code`: the code the redirect carried.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    #[schema(examples("https://app.example.com/callback"))]
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (43–128 characters).
    #[schema(examples("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))]
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token (`rt_…`); it is spent, and the answer carries
    /// the next one.
    pub refresh_token: Option<String>,
    /// With `client_secret_post`: the client's id; alone for a public client.
    pub client_id: Option<String>,
    /// With `client_secret_post`: the API key. Otherwise send both in HTTP Basic.
    pub client_secret: Option<String>,
    /// The resource the token is for (RFC 8707), repeatable: each must be this server's
    /// audience or one of `SESAME_RESOURCES`, else `invalid_target`. The token's `aud`.
    pub resource: Option<Vec<String>>,
}

/// The JSON bodies `POST /login` accepts.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LoginRequest {
    Password(PasswordLogin),
    ApiKey(ApiKeyLogin),
}

/// An access token (RFC 6749 §5.1), and for a delegated grant the next refresh token.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9...", "token_type": "Bearer", "expires_in": 900, "scope": "notes:read"}))]
pub struct TokenResponse {
    /// An RFC 9068 JWT, verifiable with the keys at `/.well-known/jwks.json`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// For the authorization-code and refresh grants: the refresh token to use next
    /// (`rt_…`, single use, rotating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Either kind of successful login.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "documents the two answers; each is built as itself")]
pub enum LoginSuccess {
    Session(LoginResponse),
    Token(TokenResponse),
}

/// One endpoint, two ways in: a JSON email and password starts a session (cookie); an
/// API key (JSON `api_key`, or the OAuth client-credentials form) gets a bearer token.
#[utoipa::path(post, path = "/login", tag = "login",
    request_body(
        description = "A JSON email and password (first party; any session cookie sent along is ended, \
                       so no session fixation), a JSON `api_key`, or the OAuth 2.0 client-credentials form \
                       with the client authenticated by HTTP Basic or `client_secret_post`.",
        content(
            (LoginRequest = "application/json"),
            (TokenRequestForm = "application/x-www-form-urlencoded"),
        )
    ),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Signed in: a session (cookie) for a password, an access token (RFC 6749 §5.1) for an API key.",
            headers(
                ("Set-Cookie" = String, description = "On a password login: `sesame_session=<handle>; Path=/; HttpOnly; SameSite=Lax` (`__Host-` prefix and `Secure` when secure); no `Domain`, no `Max-Age`"),
                ("Cache-Control" = String, description = "`no-store`"),
                ("Pragma" = String, description = "`no-cache` on a token response"),
            ),
            content(
                (LoginSuccess = "application/json", examples(
                    ("session" = (summary = "A password login", value = json!({
                        "user": {"id": "01936d3c-5a8e-7c1b-9f4e-2b8a7d6c5e4f", "email": "ada@example.com", "created_at": "2026-01-01T12:00:00Z"},
                        "session": {"id": "01936d3d-0b1c-7e2a-8f3b-4c5d6e7f8091", "expires_at": "2026-01-01T12:30:00Z"},
                        "csrf_token": "bq0Jm1o4cR2yN8vXw5Tz7uKpLhG3sDfAeYiOnWlMcQE"
                    }))),
                    ("token" = (summary = "An API-key exchange", value = json!({
                        "access_token": "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.e30.c2ln",
                        "token_type": "Bearer", "expires_in": 900, "scope": "notes:read"
                    }))),
                )),
            )),
        (status = 400, description = "Malformed JSON (problem); or on the token path `invalid_request` (two authentication methods, a repeated parameter, credentials in the query), `unsupported_grant_type`, `invalid_scope` or `invalid_target` (a `resource` this server does not serve)",
            content(
                (Problem = "application/problem+json", example = json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "The request body is not valid JSON."})),
                (OAuthErrorBody = "application/json", example = json!({"error": "invalid_scope", "error_description": "scope \"admin\" is not granted to this client"})),
            )),
        (status = 401, description = "Wrong email or password, or disabled account (one problem for all); or on the token path `invalid_client`",
            headers(("WWW-Authenticate" = String, description = r#"`Basic realm="sesame"` when the client used HTTP Basic"#)),
            content(
                (Problem = "application/problem+json", example = json!({"type": "urn:sesame:problem:invalid-credentials", "title": "Invalid credentials", "status": 401, "detail": "The email or password is incorrect."})),
                (OAuthErrorBody = "application/json", example = json!({"error": "invalid_client", "error_description": "Client authentication failed."})),
            )),
        (status = 403, description = "Cross-site request: a foreign `Origin`, or `Sec-Fetch-Site: cross-site` (login CSRF)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB",
            content((Problem = "application/problem+json"), (OAuthErrorBody = "application/json"))),
        (status = 415, description = "Neither JSON nor a form", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid field of a password login", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "urn:sesame:problem:validation", "title": "Validation failed", "status": 422, "detail": "One or more fields are invalid.",
                "errors": [{"field": "email", "message": "must look like local@domain"}]})),
        (status = 429, description = "Too many failed attempts; refused even with the right credentials until the wait is over",
            headers(("Retry-After" = u32, description = "Seconds to wait")),
            content((Problem = "application/problem+json"), (OAuthErrorBody = "application/json"))),
        (status = 503, description = "Database or hashing unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait")),
            content((Problem = "application/problem+json"), (OAuthErrorBody = "application/json"))),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    headers: HeaderMap,
    body: Result<LoginBody, LoginRejection>,
) -> Response {
    let metrics = &state.metrics;
    match body {
        Ok(LoginBody::Password(login)) => {
            let outcome = login_with_password(&state, &ip, &cookies, &headers, login).await;
            metrics.record_login(outcome.as_ref().map_or_else(ApiError::outcome, |_| Outcome::Success));
            outcome.into_response()
        }
        Ok(LoginBody::Token(request)) => {
            let outcome = grant(&state, &ip, &request).await;
            metrics.record_token_issue(outcome.as_ref().map_or_else(OAuthError::outcome, |_| Outcome::Success));
            outcome.into_response()
        }
        Err(LoginRejection::Password(error)) => {
            metrics.record_login(error.outcome());
            error.into_response()
        }
        Err(LoginRejection::Token(error)) => {
            metrics.record_token_issue(error.outcome());
            error.into_response()
        }
        Err(LoginRejection::Unsorted(response)) => response,
    }
}

/// `POST /login`'s body, parsed once: its media type and shape choose the path.
pub enum LoginBody {
    /// A JSON email and password.
    Password(PasswordLogin),
    /// A token request: the client-credentials form, or a JSON `api_key`.
    Token(GrantRequest),
}

/// Why `POST /login`'s body was refused, in the shape of the path it was meant for.
pub enum LoginRejection {
    /// A password login's body: a problem.
    Password(ApiError),
    /// A token request's body: an RFC 6749 error.
    Token(OAuthError),
    /// Neither path could be told (wrong media type, unreadable body, credentials in the
    /// query string).
    Unsorted(Response),
}

impl IntoResponse for LoginRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Password(error) => error.into_response(),
            Self::Token(error) => error.into_response(),
            Self::Unsorted(response) => response,
        }
    }
}

impl<S> FromRequest<S> for LoginBody
where
    S: Send + Sync,
{
    type Rejection = LoginRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        oauth::refuse_query_credentials(request.uri()).map_err(|e| LoginRejection::Unsorted(e.into_response()))?;
        let headers = request.headers().clone();
        if oauth::is_form(&headers) {
            let body = read_body(request, state)
                .await
                .map_err(|e| LoginRejection::Token(e.into()))?;
            return client_credentials_form(&headers, &body).map_err(LoginRejection::Token);
        }
        if !is_json(&headers) {
            return Err(LoginRejection::Unsorted(
                ApiError::UnsupportedMediaType("application/json or application/x-www-form-urlencoded").into_response(),
            ));
        }
        let body = read_body(request, state)
            .await
            .map_err(|e| LoginRejection::Unsorted(e.into_response()))?;
        // An `api_key` member means a third party.
        let is_key_exchange = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .is_some_and(|value| value.get("api_key").is_some());
        if is_key_exchange {
            let login = json::parse::<ApiKeyLogin>(&body).map_err(|e| LoginRejection::Token(e.into()))?;
            return Ok(Self::Token(GrantRequest {
                grant: Grant::ClientCredentials,
                client: ClientAuth::ApiKey {
                    secret: login.api_key.into(),
                },
                scope: login.scope,
                resources: login.resource.map(Resources::into_vec).unwrap_or_default(),
            }));
        }
        json::parse::<PasswordLogin>(&body)
            .map(Self::Password)
            .map_err(LoginRejection::Password)
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(json::body_error)
}

/// A token request from a form: the client-credentials, authorization-code or refresh
/// grant.
fn client_credentials_form(headers: &HeaderMap, body: &[u8]) -> Result<LoginBody, OAuthError> {
    let mut form = oauth::parse_form(body)?;
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => Grant::ClientCredentials,
        Some("authorization_code") => Grant::AuthorizationCode {
            code: form
                .remove("code")
                .filter(|c| !c.is_empty())
                .ok_or_else(|| OAuthError::invalid_request("code is required."))?,
            redirect_uri: form.remove("redirect_uri"),
            code_verifier: form.remove("code_verifier"),
        },
        Some("refresh_token") => Grant::RefreshToken {
            refresh_token: form
                .remove("refresh_token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required."))?,
        },
        Some(_) => return Err(OAuthError::unsupported_grant_type()),
        None => return Err(OAuthError::invalid_request("grant_type is required.")),
    };
    let client = oauth::presented_client(headers, &form)?;
    Ok(LoginBody::Token(GrantRequest {
        grant,
        client,
        scope: form.remove("scope"),
        resources: oauth::resources(body),
    }))
}

/// The token path: one call to `Tokens::grant`.
async fn grant(state: &AppState, ip: &str, request: &GrantRequest) -> Result<Response, OAuthError> {
    let granted = state
        .core
        .tokens()
        .grant(request, ip)
        .await
        .map_err(|e| OAuthError::for_client(e, &request.client))?;
    let mut response = Json(TokenResponse {
        access_token: granted.access_token,
        token_type: granted.token_type,
        expires_in: granted.expires_in,
        scope: granted.scope,
        refresh_token: granted.refresh_token,
    })
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The first-party path: email and password to a new session.
async fn login_with_password(
    state: &AppState,
    ip: &str,
    cookies: &Cookies,
    headers: &HeaderMap,
    body: PasswordLogin,
) -> Result<Json<LoginResponse>, ApiError> {
    let origin = Origin {
        ip: ip.to_owned(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    // The cookie profile of the page that signs in (§11): its `Origin` decides.
    let profile = profile_of_origin(&state.config, headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()));
    // Session fixation defence: whatever session the browser arrived with ends.
    let previous = presented_handle(cookies, profile.cookie).and_then(Result::ok);
    let started = state
        .core
        .sessions()
        .login_for(&body.email, body.password, &origin, previous.as_ref(), profile.frontend)
        .await?;
    cookies.add(session_cookie(profile.cookie, &started.handle));
    Ok(Json(LoginResponse {
        user: UserBody::from(&started.user),
        session: SessionSummary {
            id: started.session.session_id.0,
            expires_at: started.session.expires_at,
        },
        csrf_token: started.session.csrf_token.expose().to_owned(),
    }))
}

/// Ends the current session and clears its cookie. Without a session it still answers
/// 204, so a client can always call it.
#[utoipa::path(post, path = "/logout", tag = "login",
    security((), ("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie, if one was sent, is cleared",
            headers(("Set-Cookie" = String, description = "The session cookie with `Max-Age=0`, when one was sent"))),
        (status = 403, description = "CSRF check failed: a live session without the right `X-CSRF-Token`, a foreign `Origin`, or `Sec-Fetch-Site: cross-site`", body = Problem, content_type = "application/problem+json"),
        (status = 415, response = NotJson),
        (status = 503, response = Unavailable),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    headers: HeaderMap,
    MaybeSessionUser(session): MaybeSessionUser,
) -> Result<StatusCode, ApiError> {
    if let Some(session) = session {
        match state.core.sessions().logout(&session, &ip).await {
            Ok(()) | Err(sesame_core::CoreError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
    }
    // Only the cookie of the profile that signs out.
    if let Some(profile) = profile_of_request(&state.config, &headers, &cookies)
        && cookies.get(&profile.cookie.name).is_some()
    {
        cookies.add(clearing_cookie(profile.cookie));
    }
    Ok(StatusCode::NO_CONTENT)
}
