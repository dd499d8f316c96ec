//! The one error type of the HTTP layer. Its single `match` decides the status, the RFC
//! 9457 problem `type` and title, and the headers that go with them (`Retry-After`,
//! `WWW-Authenticate`). Internal causes are logged here and never sent.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sesame_core::CoreError;
use utoipa::ToSchema;

/// The media type of every error body outside the OAuth token path.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How long a client should wait after a 503.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

pub use sesame_core::FieldError;

// The OpenAPI schema of `FieldError`, the core's own type, which a 422 carries as is.
/// One invalid field in a request body.
#[derive(ToSchema)]
#[schema(as = FieldError)]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) struct FieldErrorSchema {
    /// The field's name (a JSON path for nested fields; `body` for the body as a whole).
    pub field: String,
    pub message: String,
}

/// Why an unsafe request was refused as a possible cross-site request forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFailure {
    /// No `X-CSRF-Token` header.
    MissingToken,
    /// An `X-CSRF-Token` that is not this session's.
    WrongToken,
    /// An `Origin` that is neither the issuer's nor an allowed one.
    ForeignOrigin,
    /// `Sec-Fetch-Site: cross-site`.
    CrossSite,
}

/// Everything the API can answer besides success. Its words are its problem's: `Display`
/// is the title (and the detail, if any).
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Validation(Vec<FieldError>),
    UnsupportedMediaType(&'static str),
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    /// Wrong password, unknown email or disabled account: one answer for all three.
    InvalidCredentials,
    /// No session, or one that has ended.
    Unauthenticated,
    /// An endpoint that accepts a bearer token got no credential at all (RFC 6750 §3.1).
    NoCredential,
    /// A bearer token that is malformed, forged, expired or revoked.
    InvalidToken,
    /// A valid token without a scope the endpoint needs (RFC 6750 §3.1).
    InsufficientScope(String),
    /// An operator's rule refuses this caller (forward auth).
    Forbidden(String),
    /// A malformed bearer request, e.g. a token in the query string too.
    InvalidBearerRequest(&'static str),
    Csrf(CsrfFailure),
    RegistrationClosed,
    WrongCurrentPassword,
    EmailTaken,
    Throttled {
        retry_after: Duration,
    },
    /// The database or the hashing pool cannot take the request now.
    Unavailable(Option<Box<dyn std::error::Error + Send + Sync>>),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:sesame:problem:invalid-credentials",
    "title": "Invalid credentials",
    "status": 401,
    "detail": "The email or password is incorrect."
}))]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Present on 422: each invalid field and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldErrorSchema>>)]
    pub errors: Option<Vec<FieldError>>,
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidCredentials | Self::Unauthenticated | Self::NoCredential | Self::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidBearerRequest(_) => StatusCode::BAD_REQUEST,
            Self::Csrf(_)
            | Self::RegistrationClosed
            | Self::WrongCurrentPassword
            | Self::InsufficientScope(_)
            | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::EmailTaken => StatusCode::CONFLICT,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `type`, title and detail.
    fn describe(&self) -> (&'static str, &'static str, Option<String>) {
        match self {
            Self::BadRequest(detail) => ("about:blank", "Bad Request", Some(detail.clone())),
            Self::Validation(_) => (
                "urn:sesame:problem:validation",
                "Validation failed",
                Some("One or more fields are invalid.".into()),
            ),
            Self::UnsupportedMediaType(expected) => (
                "about:blank",
                "Unsupported Media Type",
                Some(format!("This endpoint accepts {expected} bodies only.")),
            ),
            Self::PayloadTooLarge => (
                "about:blank",
                "Payload Too Large",
                Some("Request bodies are limited to 64 KiB.".into()),
            ),
            Self::NotFound => ("about:blank", "Not Found", None),
            Self::MethodNotAllowed => ("about:blank", "Method Not Allowed", None),
            Self::InvalidCredentials => (
                "urn:sesame:problem:invalid-credentials",
                "Invalid credentials",
                Some("The email or password is incorrect.".into()),
            ),
            Self::Unauthenticated => (
                "urn:sesame:problem:unauthenticated",
                "Authentication required",
                Some("Sign in, or present a valid credential.".into()),
            ),
            Self::NoCredential => (
                "urn:sesame:problem:unauthenticated",
                "Authentication required",
                Some("Present a session cookie or a bearer token.".into()),
            ),
            Self::InvalidToken => (
                "urn:sesame:problem:invalid-token",
                "Invalid token",
                Some("The access token is malformed, expired, revoked or not ours.".into()),
            ),
            Self::InsufficientScope(scope) => (
                "urn:sesame:problem:insufficient-scope",
                "Insufficient scope",
                Some(format!("This request needs the scope {scope:?}.")),
            ),
            Self::Forbidden(detail) => ("urn:sesame:problem:forbidden", "Forbidden", Some(detail.clone())),
            Self::InvalidBearerRequest(detail) => (
                "urn:sesame:problem:invalid-request",
                "Invalid request",
                Some((*detail).into()),
            ),
            Self::Csrf(failure) => (
                "urn:sesame:problem:csrf",
                "Cross-site request refused",
                Some(
                    match failure {
                        CsrfFailure::MissingToken => "The X-CSRF-Token header is required with a session cookie.",
                        CsrfFailure::WrongToken => "The X-CSRF-Token header does not match this session.",
                        CsrfFailure::ForeignOrigin => "Requests from this origin are not allowed.",
                        CsrfFailure::CrossSite => "Cross-site requests are not allowed.",
                    }
                    .into(),
                ),
            ),
            Self::RegistrationClosed => (
                "urn:sesame:problem:registration-closed",
                "Registration is closed",
                Some("Accounts are created by an operator.".into()),
            ),
            Self::WrongCurrentPassword => (
                "urn:sesame:problem:wrong-current-password",
                "Current password is incorrect",
                None,
            ),
            Self::EmailTaken => (
                "urn:sesame:problem:email-taken",
                "Email already registered",
                Some("An account with this email already exists.".into()),
            ),
            Self::Throttled { .. } => (
                "urn:sesame:problem:throttled",
                "Too many failed attempts",
                Some("Wait for the time given in Retry-After, then try again.".into()),
            ),
            Self::Unavailable(_) => (
                "urn:sesame:problem:unavailable",
                "Service unavailable",
                Some("Try again shortly.".into()),
            ),
            Self::Internal(_) => ("about:blank", "Internal Server Error", None),
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        let (kind, title, detail) = self.describe();
        Problem {
            kind: kind.into(),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }

    /// How a login that ended with this error is counted.
    pub(crate) fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            Self::InvalidCredentials | Self::Unauthenticated => Outcome::Refused,
            Self::Throttled { .. } => Outcome::Throttled,
            Self::Unavailable(_) | Self::Internal(_) => Outcome::Error,
            _ => Outcome::Rejected,
        }
    }

    pub(crate) fn log(&self) {
        match self {
            Self::Internal(cause) => tracing::error!(error = %cause, source = ?cause.source(), "internal error"),
            Self::Unavailable(Some(cause)) => {
                tracing::warn!(error = %cause, source = ?cause.source(), "database unavailable");
            }
            _ => {}
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.describe() {
            (_, title, Some(detail)) => write!(f, "{title}: {detail}"),
            (_, title, None) => f.write_str(title),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(Some(cause)) | Self::Internal(cause) => Some(cause.as_ref()),
            _ => None,
        }
    }
}

/// The one mapping from the application's refusals to HTTP problems.
impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Validation(errors) => Self::Validation(errors),
            CoreError::InvalidCredentials => Self::InvalidCredentials,
            CoreError::SessionEnded | CoreError::InvalidClient => Self::Unauthenticated,
            CoreError::InvalidToken(_) => Self::InvalidToken,
            CoreError::InvalidScope(message) => Self::validation("scope", message),
            CoreError::InvalidTarget(message) => Self::validation("resource", message),
            CoreError::UnauthorizedClient => Self::Unauthenticated,
            CoreError::InvalidGrant(message) => Self::validation("code", message),
            CoreError::NotFound => Self::NotFound,
            CoreError::RegistrationClosed => Self::RegistrationClosed,
            CoreError::WrongCurrentPassword => Self::WrongCurrentPassword,
            CoreError::EmailTaken => Self::EmailTaken,
            CoreError::Throttled { retry_after } => Self::Throttled { retry_after },
            CoreError::Unavailable(cause) => Self::Unavailable(cause.map(|c| Box::new(c) as _)),
            CoreError::Internal(cause) => Self::Internal(cause),
            CoreError::Misconfigured(message) => Self::Internal(message.into()),
        }
    }
}

/// Seconds for a `Retry-After` header, rounded up, at least one.
pub fn retry_after_value(wait: Duration) -> HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            Self::Throttled { retry_after } => {
                headers.insert(header::RETRY_AFTER, retry_after_value(*retry_after));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, retry_after_value(UNAVAILABLE_RETRY_AFTER));
            }
            Self::NoCredential => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="sesame""#),
                );
            }
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="sesame", error="invalid_token""#),
                );
            }
            Self::InsufficientScope(scope) => {
                let challenge = format!(r#"Bearer realm="sesame", error="insufficient_scope", scope="{scope}""#);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::InvalidBearerRequest(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="sesame", error="invalid_request""#),
                );
            }
            _ => {}
        }
        response
    }
}

/// The router's fallback: unknown paths are problems too.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Gives axum's own 405 (a known path, another method) the problem body every other error
/// has. axum's answer is kept for its `Allow` header, which RFC 9110 requires and which
/// only the router knows how to fill in; a custom method fallback would lose it.
pub async fn method_not_allowed_problem(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let mut problem = ApiError::MethodNotAllowed.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}
