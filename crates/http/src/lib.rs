//! sesame's HTTP API: an axum router whose routes register their own OpenAPI
//! documentation, the extractors that authenticate requests, and the one error type that
//! turns every failure into an RFC 9457 problem.
//!
//! Embed it with [`router`], or reuse the extractors ([`auth::SessionUser`]) in a service
//! of your own.

/// Implements `FromRequestParts` for one of sesame's extractors, over any state the
/// `AppState` can be taken from (a service of your own embedding sesame's), refusing with
/// `ApiError`: `extractor!(Type, |parts, state| body)`, `state` being the caller's state.
macro_rules! extractor {
    ($extractor:ty, |$parts:ident, $state:ident| $body:block) => {
        impl<S> axum::extract::FromRequestParts<S> for $extractor
        where
            $crate::state::AppState: axum::extract::FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = $crate::error::ApiError;

            async fn from_request_parts(
                $parts: &mut axum::http::request::Parts,
                $state: &S,
            ) -> Result<Self, Self::Rejection> {
                $body
            }
        }
    };
}

mod auth;
mod client_ip;
mod docs;
mod error;
mod guard;
mod json;
mod metrics;
mod oauth;
mod openapi;
mod responses;
mod routes;
mod state;

/// Entry points for the fuzz targets: the parsers that read untrusted bytes. Not part of
/// the embedding API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::json::parse as parse_json;
    pub use crate::oauth::{basic_credentials, form_pairs, parse_form, presented_client};
    pub use crate::routes::login::{ApiKeyLogin, LoginRequest, PasswordLogin};
}

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use tower_cookies::CookieManagerLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{
    Audience, Authenticated, AuthenticatedFor, MaybeSessionUser, RequireScope, ScopeName, SesameAudience, SessionUser,
    require_scope,
};
pub use docs::render_openapi;
pub use error::{ApiError, FieldError, Problem};
pub use sesame_core::Core;
pub use state::{AppState, CookieConfig, ForwardRule, FrontendProfile, HttpConfig, PrincipalKind};

/// The largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes with their documentation, before state and middleware are applied.
fn api() -> OpenApiRouter<AppState> {
    use routes::{clients, grants, health, login, me, oauth, sessions, users, verify};
    let modules = [
        health::routes,
        users::routes,
        login::routes,
        me::routes,
        grants::routes,
        sessions::routes,
        clients::routes,
        oauth::routes,
        verify::routes,
    ];
    modules.into_iter().fold(
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()),
        |api, routes| api.merge(routes()),
    )
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api().into_openapi();
    openapi::document_forward_auth_methods(&mut document);
    document
}

/// The whole application: routes, documentation endpoint and middleware.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// sesame's application with routes of your own merged in. Your routes get the same
/// middleware (cookies, cross-site guard, body limit, CORS) and can use the
/// [`Authenticated`] and [`RequireScope`] extractors.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (routes, mut document) = api().split_for_parts();
    openapi::document_forward_auth_methods(&mut document);
    openapi::configure(&mut document, &state.core.settings().scopes, &state.config.frontends);
    let routes = routes.merge(extra);
    let document = std::sync::Arc::new(document);
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    routes
        .merge(docs::routes(&document))
        .merge(routes::authorize::routes())
        // Forward auth answers whatever method the proxy keeps.
        .route(
            routes::verify::VERIFY_PATH,
            axum::routing::post(routes::verify::verify)
                .put(routes::verify::verify)
                .patch(routes::verify::verify)
                .delete(routes::verify::verify),
        )
        // Envoy's ext_authz appends the original path to the one it is given.
        .route("/auth/verify/{*original}", axum::routing::any(routes::verify::verify))
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(error::method_not_allowed_problem))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::cross_site_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout,
            guard::request_timeout,
        ))
        .layer(CookieManagerLayer::new())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(guard::cors_layer(&config))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track_requests))
        .with_state(state)
}
