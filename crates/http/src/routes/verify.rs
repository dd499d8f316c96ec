//! Forward auth (§11): a reverse proxy (nginx `auth_request`, Traefik `forwardAuth`,
//! Caddy `forward_auth`, Envoy `ext_authz`) asks, for each request it is about to pass to
//! an application, who is calling; sesame answers with the caller in `X-Sesame-*` headers,
//! or refuses. The CSRF and cross-site checks apply to the *original* request's method,
//! which the proxy names in `X-Forwarded-Method`.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use axum::response::{IntoResponse, Response};
use sesame_domain::Principal;
use sesame_domain::catalogue::Held;
use tower_cookies::Cookies;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{CSRF_HEADER, authenticate, bearer_token, is_unsafe};
use crate::error::{ApiError, CsrfFailure};
use crate::state::{AppState, ForwardRule, PrincipalKind};

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// Where proxies ask.
pub const VERIFY_PATH: &str = "/auth/verify";

pub const KIND: HeaderName = HeaderName::from_static("x-sesame-kind");
pub const SUBJECT: HeaderName = HeaderName::from_static("x-sesame-subject");
pub const SCOPES: HeaderName = HeaderName::from_static("x-sesame-scopes");
pub const USER_EMAIL: HeaderName = HeaderName::from_static("x-sesame-user-email");
pub const CLIENT_ID: HeaderName = HeaderName::from_static("x-sesame-client-id");

/// The original request, as the proxy describes it.
struct Original {
    method: Method,
    path: String,
}

impl Original {
    /// `X-Forwarded-Method` / `X-Original-Method` and `X-Forwarded-Uri` / `X-Original-URI`;
    /// without them, the verify request's own method, and the path after `/auth/verify`
    /// (Envoy's `ext_authz` appends the original path to its `path_prefix`).
    fn of(parts: &Parts) -> Result<Self, ApiError> {
        let header = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| parts.headers.get(*name))
                .map(|value| value.to_str().map_err(|_| bad(names[0])))
        };
        let method = match header(["x-forwarded-method", "x-original-method"]) {
            Some(text) => Method::from_bytes(text?.trim().as_bytes()).map_err(|_| bad("x-forwarded-method"))?,
            None => parts.method.clone(),
        };
        let path = match header(["x-forwarded-uri", "x-original-uri"]) {
            Some(text) => {
                let uri = text?.trim();
                if !uri.starts_with('/') {
                    return Err(bad("x-forwarded-uri"));
                }
                uri.split(['?', '#']).next().unwrap_or("/").to_owned()
            }
            None => match parts.uri.path().strip_prefix(VERIFY_PATH) {
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => "/".to_owned(),
            },
        };
        Ok(Self { method, path })
    }
}

fn bad(header: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{header} must be an HTTP method or a path, as the proxy saw it"
    ))
}

/// `GET /auth/verify` (or the method the proxy keeps): who the original request's
/// credentials name. Envoy's `ext_authz`, which appends the original path, may call
/// `/auth/verify/<original path>`.
#[utoipa::path(get, path = "/auth/verify", tag = "forward-auth",
    params(
        ("X-Forwarded-Method" = Option<String>, Header, description = "The original request's method (or `X-Original-Method`); the CSRF and cross-site checks apply to it"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original request's path and query (or `X-Original-URI`); rules match its path"),
        ("X-Forwarded-Host" = Option<String>, Header, description = "The original request's host"),
    ),
    responses(
        (status = 200, description = "The caller, in headers (every one present, empty where it does not apply); no body", headers(
            ("X-Sesame-Kind" = String, description = "`user`, `client` or `delegated`"),
            ("X-Sesame-Subject" = String, description = "The user's id, or the client's id for a client token"),
            ("X-Sesame-Scopes" = String, description = "Space-separated: the token's scopes, or the catalogue scopes the user holds"),
            ("X-Sesame-User-Email" = String, description = "The user's email (a session); empty for tokens"),
            ("X-Sesame-Client-Id" = String, description = "The client's id (a token); empty for a session"),
            ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 400, description = "A forwarded method or URI that is not one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"sesame\"`"))),
        (status = 403, description = "An unsafe original request by cookie without the CSRF token, or cross-site; or a rule not met", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot answer now", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds"))),
    ))]
pub async fn verify(State(state): State<AppState>, cookies: Cookies, request: axum::extract::Request) -> Response {
    // The body (a proxy keeping the original's) is never read.
    let (parts, _) = request.into_parts();
    match decide(&state, &cookies, &parts).await {
        Ok(principal) => answer(&principal),
        Err(error) => error.into_response(),
    }
}

async fn decide(state: &AppState, cookies: &Cookies, parts: &Parts) -> Result<Principal, ApiError> {
    let original = Original::of(parts)?;
    let principal = if let Some(token) = bearer_token(parts)? {
        let tokens = state.core.tokens();
        tokens.verify_for(token, &tokens.settings().audience).await?
    } else {
        let session = match authenticate(state, cookies, &parts.headers).await {
            Ok(Some(session)) => session,
            Ok(None) | Err(ApiError::Unauthenticated) => return Err(ApiError::NoCredential),
            Err(other) => return Err(other),
        };
        if is_unsafe(&original.method) {
            crate::guard::check_browser(&state.config, &parts.headers)?;
            let token = parts
                .headers
                .get(CSRF_HEADER)
                .ok_or(ApiError::Csrf(CsrfFailure::MissingToken))?
                .to_str()
                .map_err(|_| ApiError::Csrf(CsrfFailure::WrongToken))?;
            if !session.csrf_token.matches(token) {
                return Err(ApiError::Csrf(CsrfFailure::WrongToken));
            }
        }
        Principal::User(session)
    };
    if let Some(rule) = rule_for(&state.config.forward_rules, &original.path) {
        check_rule(rule, &principal)?;
    }
    Ok(principal)
}

/// The first rule whose prefix the path starts with.
fn rule_for<'a>(rules: &'a [ForwardRule], path: &str) -> Option<&'a ForwardRule> {
    rules.iter().find(|rule| path.starts_with(&rule.path_prefix))
}

fn check_rule(rule: &ForwardRule, principal: &Principal) -> Result<(), ApiError> {
    if !rule.kinds.is_empty() && !rule.kinds.contains(&kind_of(principal)) {
        return Err(ApiError::Forbidden(format!(
            "{} is not open to this kind of caller",
            rule.path_prefix
        )));
    }
    if let Some(missing) = rule.scopes.iter().find(|scope| !principal.has_scope(scope)) {
        return Err(ApiError::InsufficientScope(missing.clone()));
    }
    Ok(())
}

fn kind_of(principal: &Principal) -> PrincipalKind {
    match principal {
        Principal::User(_) => PrincipalKind::User,
        Principal::Client(_) => PrincipalKind::Client,
        Principal::Delegated(_) => PrincipalKind::Delegated,
    }
}

/// `200` with all five headers, empty where they do not apply.
fn answer(principal: &Principal) -> Response {
    let (subject, scopes, email, client) = match principal {
        Principal::User(session) => {
            let scopes = match &session.held {
                Held::Every => String::new(),
                Held::Only(scopes) => scopes.to_text(),
            };
            (
                session.user.id.to_string(),
                scopes,
                session.user.email.as_str().to_owned(),
                String::new(),
            )
        }
        Principal::Client(token) => (
            token.client_id.as_str().to_owned(),
            token.scopes.to_text(),
            String::new(),
            token.client_id.as_str().to_owned(),
        ),
        Principal::Delegated(token) => (
            token.user_id.to_string(),
            token.scopes.to_text(),
            String::new(),
            token.client_id.as_str().to_owned(),
        ),
    };
    let mut response = axum::http::StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (KIND, kind_of(principal).as_str().to_owned()),
        (SUBJECT, subject),
        (SCOPES, scopes),
        (USER_EMAIL, email),
        (CLIENT_ID, client),
    ] {
        // Ids, scopes and normalized emails are visible ASCII; anything else is left empty.
        headers.insert(
            name,
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
