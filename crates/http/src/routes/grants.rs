//! `GET /me/grants` and `DELETE /me/grants/{client_id}`: the apps a user let act for
//! them (§10), and taking that back.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SessionUser;
use crate::error::{ApiError, Problem};
use crate::responses::{SessionRead, SessionWrite};
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_grants))
        .routes(routes!(end_grant))
}

/// A grant: an app the user let act for them, with what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantBody {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the user last approved it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// Lists the apps the signed-in user let act for them.
#[utoipa::path(get, path = "/me/grants", tag = "me",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The user's grants, oldest first", body = Vec<GrantBody>,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        SessionRead,
    ))]
pub async fn list_grants(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
) -> Result<Json<Vec<GrantBody>>, ApiError> {
    let grants = state.core.authorizations().grants(session.user.id).await?;
    Ok(Json(
        grants
            .into_iter()
            .map(|grant| GrantBody {
                client_id: grant.client_id.as_str().to_owned(),
                client_name: grant.client_name,
                scopes: grant.scopes.to_vec(),
                created_at: grant.created_at,
                last_used_at: grant.last_used_at,
            })
            .collect(),
    ))
}

/// Ends a grant: the app's tokens for this user stop working at once, and it must ask
/// for consent again.
#[utoipa::path(delete, path = "/me/grants/{client_id}", tag = "me",
    params(("client_id" = String, Path, description = "The app's client id (`cli_…`)")),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Grant ended; its tokens no longer work"),
        SessionWrite,
        (status = 404, description = "No grant of the user's to this client", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_grant(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .authorizations()
        .end_grant(session.user.id, &client_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
