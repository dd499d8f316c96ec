//! `POST /login` and `POST /logout`: the first-party session lifecycle.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use sesame_domain::password::Verification;
use sesame_domain::{CsrfToken, Email, Password, SessionHandle, SessionId};
use sesame_storage::NewSession;
use tower_cookies::Cookies;
use utoipa::ToSchema;

use crate::auth::{MaybeSessionUser, clearing_cookie, presented_handle, session_cookie};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::routes::{SessionSummary, UserBody};
use crate::state::AppState;
use crate::throttle::Attempt;

/// The longest `User-Agent` kept with a session.
const MAX_USER_AGENT: usize = 512;

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

/// Signs in with an email and a password and starts a new session.
#[utoipa::path(post, path = "/login", tag = "login",
    request_body(content = PasswordLogin, content_type = "application/json",
        description = "An email and a password. Any session cookie sent along is ended (no session fixation)."),
    responses(
        (status = 200, description = "Signed in. The session handle is in the cookie only.", body = LoginResponse,
            headers(
                ("Set-Cookie" = String, description = "`sesame_session=<handle>; Path=/; HttpOnly; SameSite=Lax` (`__Host-` prefix and `Secure` when secure); no `Domain`, no `Max-Age`"),
                ("Cache-Control" = String, description = "`no-store`"),
            ),
            example = json!({
                "user": {"id": "01936d3c-5a8e-7c1b-9f4e-2b8a7d6c5e4f", "email": "ada@example.com", "created_at": "2026-01-01T12:00:00Z"},
                "session": {"id": "01936d3d-0b1c-7e2a-8f3b-4c5d6e7f8091", "expires_at": "2026-01-01T12:30:00Z"},
                "csrf_token": "bq0Jm1o4cR2yN8vXw5Tz7uKpLhG3sDfAeYiOnWlMcQE"
            })),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "The request body is not valid JSON."})),
        (status = 401, description = "Wrong email or password, or disabled account (one answer for all)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "urn:sesame:problem:invalid-credentials", "title": "Invalid credentials", "status": 401, "detail": "The email or password is incorrect."})),
        (status = 403, description = "Cross-site request: a foreign `Origin`, or `Sec-Fetch-Site: cross-site` (login CSRF)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid field", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "urn:sesame:problem:validation", "title": "Validation failed", "status": 422, "detail": "One or more fields are invalid.",
                "errors": [{"field": "email", "message": "must look like local@domain"}]})),
        (status = 429, description = "Too many failed attempts; refused even with the right password until the wait is over", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait")),
            example = json!({"type": "urn:sesame:problem:throttled", "title": "Too many failed attempts", "status": 429, "detail": "Wait for the time given in Retry-After, then try again."})),
        (status = 503, description = "Database or hashing unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordLogin>,
) -> Result<Json<LoginResponse>, ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::validation("email", e.to_string()))?;
    let password = Password::for_login(body.password).map_err(|e| ApiError::validation("password", e.to_string()))?;
    let attempt = Attempt::new(&state, email.as_str(), &ip);
    attempt.check().await?;

    let record = state.store.users.find_user_by_email(&email).await?;
    // Unknown emails are verified against a dummy hash, so every failure costs the same.
    let stored = record
        .as_ref()
        .map_or_else(|| state.dummy_hash.to_string(), |r| r.password_hash.clone());
    let verification = state.hashing.run(move |h| h.verify(&password, &stored)).await?;
    let record = match (record, &verification) {
        (Some(record), Verification::Match | Verification::MatchRehashed(_)) if !record.is_disabled() => {
            if let Verification::MatchRehashed(new_hash) = verification
                && let Err(error) = state.store.users.update_password_hash(record.user.id, &new_hash).await
            {
                tracing::warn!(%error, "could not upgrade a password hash");
            }
            record
        }
        _ => {
            attempt.failed().await?;
            tracing::info!(ip = %ip, outcome = "invalid_credentials", "login failed");
            return Err(ApiError::InvalidCredentials);
        }
    };
    attempt.succeeded().await;

    // Session fixation defence: whatever session the browser arrived with ends here, and
    // the new one gets a handle of our own making.
    if let Some(Ok(previous)) = presented_handle(&cookies, &state.config.cookie) {
        state.store.sessions.delete_session_by_hash(&previous).await?;
    }
    let handle = SessionHandle::generate();
    let now = sesame_domain::now();
    let session = NewSession {
        id: SessionId::new(),
        user_id: record.user.id,
        handle_hash: handle.hash(),
        csrf_token: CsrfToken::generate(),
        created_at: now,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        ip: Some(ip.clone()),
    };
    state.store.sessions.create_session(&session).await?;
    cookies.add(session_cookie(&state.config.cookie, &handle));
    tracing::info!(ip = %ip, user_id = %record.user.id, session_id = %session.id, outcome = "success", "login");

    Ok(Json(LoginResponse {
        user: UserBody::from(&record.user),
        session: SessionSummary {
            id: session.id.0,
            expires_at: state.config.sessions.expires_at(now, now),
        },
        csrf_token: session.csrf_token.expose().to_owned(),
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
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    MaybeSessionUser(session): MaybeSessionUser,
) -> Result<StatusCode, ApiError> {
    if let Some(session) = session {
        state
            .store
            .sessions
            .delete_user_session(session.user.id, session.session_id)
            .await?;
        tracing::info!(ip = %ip, user_id = %session.user.id, session_id = %session.session_id, "logout");
    }
    if cookies.get(&state.config.cookie.name).is_some() {
        cookies.add(clearing_cookie(&state.config.cookie));
    }
    Ok(StatusCode::NO_CONTENT)
}
