//! A user's view of their own sessions: list them, end one, end all others.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use sesame_domain::SessionId;
use time::OffsetDateTime;
use tower_cookies::Cookies;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{SessionUser, clearing_cookie, profile_of_request};
use crate::error::{ApiError, Problem};
use crate::responses::{SessionRead, SessionWrite};
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, delete_other_sessions))
        .routes(routes!(delete_session))
}

/// One of the user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Recorded at most once a minute per session.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
    /// The cookie profile (`[frontends.<name>]`) it was started through; `null` for the
    /// default one.
    pub frontend: Option<String>,
}

/// Lists the signed-in user's live sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = "sessions",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The user's live sessions", body = Vec<SessionInfo>,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        SessionRead,
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    SessionUser(current): SessionUser,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let sessions = state.core.sessions().list(current.user.id).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id.0,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                user_agent: s.origin.user_agent,
                ip: s.origin.ip,
                current: s.id == current.session_id,
                frontend: s.frontend,
            })
            .collect(),
    ))
}

/// Ends one of the user's own sessions. Another user's session is "not found".
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "The session's id from `GET /sessions`")),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Session ended",
            headers(("Set-Cookie" = String, description = "Clears the cookie (`Max-Age=0`) when the session ended is the current one"))),
        SessionWrite,
        (status = 404, description = "No such session of this user (also for an id that is not a UUID)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    cookies: Cookies,
    headers: axum::http::HeaderMap,
    SessionUser(current): SessionUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map(SessionId).map_err(|_| ApiError::NotFound)?;
    state.core.sessions().revoke(&current, id).await?;
    if id == current.session_id
        && let Some(profile) = profile_of_request(&state.config, &headers, &cookies)
    {
        cookies.add(clearing_cookie(profile.cookie));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the user except the current one.
#[utoipa::path(delete, path = "/sessions", tag = "sessions",
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "All other sessions ended"),
        SessionWrite,
    ))]
pub async fn delete_other_sessions(
    State(state): State<AppState>,
    SessionUser(current): SessionUser,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .sessions()
        .end_others(current.user.id, Some(current.session_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
