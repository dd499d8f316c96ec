//! Request guards that run before any handler: the cross-site checks (Origin and
//! Sec-Fetch-Site) on unsafe requests, JSON-only bodies, and CORS.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{CSRF_HEADER, is_unsafe};
use crate::error::{ApiError, CsrfFailure};
use crate::json::is_json;
use crate::state::{AppState, HttpConfig};

/// Refuses unsafe requests that a browser sent from another site, and non-JSON bodies.
///
/// Requests that carry an `Authorization` header are exempt: a bearer token is not an
/// ambient credential, so another site cannot make a browser send one.
pub async fn cross_site_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_unsafe(request.method())
        && !request.headers().contains_key(header::AUTHORIZATION)
        && let Err(error) = check_request(&state.config, &request)
    {
        return error.into_response();
    }
    next.run(request).await
}

fn check_request(config: &HttpConfig, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let trusted = origin.to_str().is_ok_and(|origin| config.is_trusted_origin(origin));
        if !trusted {
            return Err(ApiError::Csrf(CsrfFailure::ForeignOrigin));
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(ApiError::Csrf(CsrfFailure::CrossSite));
    }
    // A body of any other type could have come from an HTML form on another site, which
    // needs no CORS preflight; JSON cannot be sent cross-site without one.
    if headers.contains_key(header::CONTENT_TYPE) && !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType("application/json"));
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
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(CSRF_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
