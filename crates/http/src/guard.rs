//! Request guards that run before any handler: the cross-site checks (Origin and
//! Sec-Fetch-Site) on unsafe requests, JSON-only bodies, and CORS.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::auth::{CSRF_HEADER, is_unsafe};
use crate::error::{ApiError, CsrfFailure};
use crate::json::is_json;
use crate::oauth::is_form;

/// The endpoints of the OAuth token path, which accept form bodies.
/// `/authorize` takes the consent page's form, which proves itself with the session's
/// CSRF token in a field (and a same-origin `Origin`).
const FORM_ENDPOINTS: &[&str] = &["/login", "/oauth/revoke", "/oauth/introspect", "/authorize"];
use crate::state::{AppState, HttpConfig};

/// Refuses unsafe requests that a browser sent from another site, and non-JSON bodies.
///
/// Requests that carry a bearer token are exempt: a bearer token is not an ambient
/// credential, so another site cannot make a browser send one. Any other `Authorization`
/// (Basic above all, which a browser may send by itself) exempts nothing.
pub async fn cross_site_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Forward auth checks the original request's method itself, not its own.
    if is_unsafe(request.method())
        && !is_forward_auth(request.uri().path())
        && !carries_bearer(request.headers())
        && let Err(error) = check_request(&state.config, &request)
    {
        return error.into_response();
    }
    next.run(request).await
}

/// Whether a path is forward auth's, which checks the original request's method itself.
fn is_forward_auth(path: &str) -> bool {
    path.strip_prefix(crate::routes::verify::VERIFY_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether the request's `Authorization` uses the `Bearer` scheme (case-insensitive, RFC
/// 9110 §11.1).
fn carries_bearer(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ")
    })
}

fn check_request(config: &HttpConfig, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    check_browser(config, headers)?;
    // A body of any other type could have come from an HTML form on another site, which
    // needs no CORS preflight; JSON cannot be sent cross-site without one. The OAuth
    // token path takes forms (RFC 6749), but carries no ambient credential: the client
    // authenticates in the request itself.
    let form_allowed = FORM_ENDPOINTS.contains(&request.uri().path()) && is_form(headers);
    if headers.contains_key(header::CONTENT_TYPE) && !is_json(headers) && !form_allowed {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    Ok(())
}

/// The cross-site checks of an unsafe request by a browser: an `Origin` must be trusted,
/// and `Sec-Fetch-Site: cross-site` is refused unless from a listed origin. Forward auth
/// applies them to the headers a proxy passed through of the original request.
pub(crate) fn check_browser(config: &HttpConfig, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let trusted = origin.to_str().is_ok_and(|origin| config.is_trusted_origin(origin));
        if !trusted {
            return Err(ApiError::Csrf(CsrfFailure::ForeignOrigin));
        }
    }
    // A cross-site request is refused unless it comes from an origin the operator listed
    // in SESAME_ALLOWED_ORIGINS (a cross-site front end with SameSite=None cookies).
    let listed_origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|origin| config.allowed_origins.iter().any(|allowed| allowed == origin));
    if !listed_origin
        && headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(ApiError::Csrf(CsrfFailure::CrossSite));
    }
    Ok(())
}

/// CORS for the allowed origins only, with credentials, never `*`.
pub fn cors_layer(config: &HttpConfig) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let listed = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        // Only listed origins hear that credentials are allowed.
        .allow_credentials(AllowCredentials::predicate(move |origin, _| listed.contains(origin)))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(CSRF_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Answers `503` with `Retry-After` when a handler runs past the request timeout. An
/// unsafe request's handler runs in a task of its own and is never cancelled midway,
/// neither by the timeout nor by a client that hangs up: what it started (a failed
/// attempt's charge, a password change and the sessions it ends) is finished. A safe
/// request (GET, HEAD, OPTIONS) starts nothing that must finish, and is simply dropped at
/// the timeout, which spares every read a task of its own.
pub async fn request_timeout(State(limit): State<std::time::Duration>, request: Request, next: Next) -> Response {
    if !is_unsafe(request.method()) {
        return match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(limit_ms = limit.as_millis(), "request timed out");
                ApiError::Unavailable(None).into_response()
            }
        };
    }
    let mut work = tokio::spawn(next.run(request));
    match tokio::time::timeout(limit, &mut work).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => {
            tracing::error!(error = %failure, "a request handler failed");
            ApiError::internal(failure).into_response()
        }
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis(), "request timed out; its work goes on");
            ApiError::Unavailable(None).into_response()
        }
    }
}
