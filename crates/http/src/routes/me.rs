//! `GET /me`: who the caller is, by whichever credential they presented.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use sesame_domain::{Held, Principal};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::error::{ApiError, Problem};
use crate::responses::Unavailable;
use crate::routes::{SessionSummary, UserBody};
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me))
}

/// The caller, by kind.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Me {
    /// A person signed in with the session cookie.
    User {
        user: UserBody,
        session: SessionSummary,
        /// The session's CSRF token, for pages that did not keep the login response.
        csrf_token: String,
        /// The catalogue scopes the user holds; absent without a catalogue, where every
        /// scope is held.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        scopes: Option<Vec<String>>,
    },
    /// A third-party client acting for a user who consented (§10).
    Delegated {
        user: UserBody,
        client_id: String,
        scopes: Vec<String>,
        /// When the token expires.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// A third-party client presenting a bearer token.
    Client {
        client_id: String,
        /// The id of the user who owns the client.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        owner: Option<uuid::Uuid>,
        scopes: Vec<String>,
        /// When the token expires.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
}

/// Describes the caller. With an `Authorization` header, that header alone decides.
#[utoipa::path(get, path = "/me", tag = "me",
    security(("session_cookie" = []), ("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The caller", body = Me, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "A token in the query string beside an Authorization header", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = r#"`Bearer realm="sesame", error="invalid_request"`"#))),
        (status = 401, description = "No credential, an ended session, or a bad, expired or revoked token", body = Problem, content_type = "application/problem+json",
            headers(
                ("WWW-Authenticate" = String, description = r#"`Bearer realm="sesame"`, with `error="invalid_token"` for a bad token"#),
                ("Set-Cookie" = String, description = "Clears the cookie of a session that has ended (`Max-Age=0`)"),
            )),
        (status = 503, response = Unavailable),
    ))]
pub async fn get_me(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Result<Json<Me>, ApiError> {
    Ok(Json(match caller {
        Principal::User(session) => Me::User {
            user: UserBody::from(&session.user),
            session: SessionSummary {
                id: session.session_id.0,
                expires_at: session.expires_at,
            },
            csrf_token: session.csrf_token.expose().to_owned(),
            scopes: match session.held {
                Held::Every => None,
                Held::Only(scopes) => Some(scopes.to_vec()),
            },
        },
        Principal::Delegated(token) => {
            // The user it acts for, as they are now (a user who is gone is a token that is).
            let user = match state.core.accounts().active_by_id(token.user_id).await {
                Ok(user) => user,
                Err(sesame_core::CoreError::NotFound) => return Err(ApiError::InvalidToken),
                Err(other) => return Err(other.into()),
            };
            Me::Delegated {
                user: UserBody::from(&user),
                client_id: token.client_id.as_str().to_owned(),
                scopes: token.scopes.to_vec(),
                expires_at: token.expires_at,
            }
        }
        Principal::Client(token) => Me::Client {
            client_id: token.client_id.as_str().to_owned(),
            owner: token.owner.map(|o| o.0),
            scopes: token.scopes.to_vec(),
            expires_at: token.expires_at,
        },
    }))
}
