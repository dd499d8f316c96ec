//! Registration and password changes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sesame_core::accounts::Registrar;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SessionUser;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::responses::{JsonBody, SessionWrite, Throttled, Unavailable};
use crate::routes::UserBody;
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(change_password))
}

/// `POST /users`. No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct CreateUserRequest {
    /// Trimmed and lower-cased before use; at most 254 characters.
    pub email: String,
    /// At least `SESAME_PASSWORD_MIN_LENGTH` (default 8) characters, at most 1024; not on
    /// the common-password list.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

/// `PUT /me/password`. No `Debug`: it holds passwords.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple", "new_password": "a longer and newer passphrase"}))]
pub struct ChangePasswordRequest {
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// The same rules as at registration.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Creates an account.
#[utoipa::path(post, path = "/users", tag = "users",
    request_body(content = CreateUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Account created", body = UserBody),
        JsonBody,
        (status = 403, description = "Registration is closed (`SESAME_REGISTRATION=closed`), or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or password; `errors` names each field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this address (`SESAME_THROTTLE_REGISTRATION`; every attempt counts)",
            headers(("Retry-After" = u32, description = "Seconds to wait")),
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    let user = state
        .core
        .accounts()
        .register(&body.email, body.password, Registrar::SelfService { ip: &ip })
        .await?;
    Ok((StatusCode::CREATED, Json(UserBody::from(&user))))
}

/// Changes the signed-in user's password and ends every other session of theirs.
#[utoipa::path(put, path = "/me/password", tag = "users",
    request_body(content = ChangePasswordRequest, content_type = "application/json"),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Password changed; other sessions ended"),
        SessionWrite, JsonBody,
        (status = 403, description = "Current password wrong, or CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "New password refused", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = Throttled),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SessionUser(session): SessionUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .accounts()
        .change_password(&session, body.current_password, body.new_password, &ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
