//! Registration and password changes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sesame_domain::password::Verification;
use sesame_domain::{Email, Password, User, UserId};
use utoipa::ToSchema;

use crate::auth::SessionUser;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, FieldError, Problem};
use crate::json::ApiJson;
use crate::routes::UserBody;
use crate::state::AppState;
use crate::throttle::Attempt;

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
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Registration is closed (`SESAME_REGISTRATION=closed`), or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or password; `errors` names each field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or hashing unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    if !state.config.registration_open {
        return Err(ApiError::RegistrationClosed);
    }
    let email = Email::parse(&body.email);
    let password = state.config.passwords.parse_new(body.password);
    let (email, password) = match (email, password) {
        (Ok(email), Ok(password)) => (email, password),
        (email, password) => {
            let mut errors = Vec::new();
            if let Err(e) = email {
                errors.push(FieldError::new("email", e.to_string()));
            }
            if let Err(e) = password {
                errors.push(FieldError::new("password", e.to_string()));
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let user = register(&state, email, password).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(UserBody::from(&user))))
}

/// Hashes the password and stores a new user; shared with the CLI.
pub async fn register(state: &AppState, email: Email, password: Password) -> Result<User, ApiError> {
    let password_hash = state.hashing.hash(password).await?;
    let user = User {
        id: UserId::new(),
        email,
        created_at: sesame_domain::now(),
    };
    state.store.users.create_user(&user, &password_hash).await?;
    Ok(user)
}

/// Changes the signed-in user's password and ends every other session of theirs.
#[utoipa::path(put, path = "/me/password", tag = "users",
    request_body(content = ChangePasswordRequest, content_type = "application/json"),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Password changed; other sessions ended"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json",
            headers(("Set-Cookie" = String, description = "Clears the cookie of a session that has ended (`Max-Age=0`)"))),
        (status = 403, description = "Current password wrong, or CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "New password refused", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong current passwords", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "Database or hashing unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SessionUser(session): SessionUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let new_password = state
        .config
        .passwords
        .parse_new(body.new_password)
        .map_err(|e| ApiError::validation("new_password", e.to_string()))?;
    let current = Password::for_login(body.current_password).map_err(|_| ApiError::WrongCurrentPassword)?;
    // Guessing the current password through a stolen session is throttled like a login.
    let attempt = Attempt::new(&state, session.user.email.as_str(), &ip);
    attempt.check().await?;
    let record = state
        .store
        .users
        .find_user_by_id(session.user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let stored = record.password_hash;
    let verification = state.hashing.run(move |h| h.verify(&current, &stored)).await?;
    if verification == Verification::Mismatch {
        attempt.failed().await?;
        return Err(ApiError::WrongCurrentPassword);
    }
    attempt.succeeded().await;
    let new_hash = state.hashing.hash(new_password).await?;
    state
        .store
        .users
        .change_password(session.user.id, &new_hash, session.session_id)
        .await?;
    state.sessions.remove_user(session.user.id, Some(session.session_id));
    tracing::info!(user_id = %session.user.id, ip = %ip, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}
