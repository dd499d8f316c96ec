//! The one error of the application layer. It says what went wrong in the terms of the
//! rules (a wrong password, a spent budget, an unknown client), never in HTTP's: the
//! HTTP layer maps each variant to its status and body in one place.

use std::time::Duration;

use sesame_storage::StorageError;

/// One invalid field of a request, and why (serialized as it is in a 422's `errors`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's name (a JSON path for nested fields; `body` for the body as a whole).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a service can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that breaks a rule, field by field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Wrong password, unknown email or disabled account: one answer for all three.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A session that does not exist (any more), or whose user is disabled.
    #[error("session ended")]
    SessionEnded,
    /// A bearer token that is malformed, forged, expired or revoked.
    #[error("invalid token")]
    InvalidToken(#[source] TokenError),
    /// Client authentication failed (unknown, malformed, revoked or mismatched key).
    #[error("invalid client")]
    InvalidClient,
    /// A requested scope the client does not hold.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// An authorization code (or, later, a refresh token) that is not valid for this
    /// request: unknown, spent, expired, another client's, or a wrong redirect URI or
    /// PKCE verifier (RFC 6749 §5.2 `invalid_grant`).
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    /// A client that may not use the grant it asked for (a public client asking for
    /// client credentials).
    #[error("unauthorized client")]
    UnauthorizedClient,
    /// A `resource` (RFC 8707) this server does not mint tokens for.
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// A resource that is not there, or not the caller's (the same answer).
    #[error("not found")]
    NotFound,
    #[error("registration is closed")]
    RegistrationClosed,
    #[error("current password is wrong")]
    WrongCurrentPassword,
    #[error("email taken")]
    EmailTaken,
    /// A throttle budget is spent.
    #[error("too many failed attempts")]
    Throttled { retry_after: Duration },
    /// The database or the hashing pool cannot take the request now.
    #[error("service unavailable")]
    Unavailable(#[source] Option<StorageError>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The configuration cannot work with what is stored (e.g. signing keys sealed under
    /// another secret): the program must not start.
    #[error("{0}")]
    Misconfigured(String),
}

impl CoreError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<StorageError> for CoreError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(_) | StorageError::Contended(_) => Self::Unavailable(Some(error)),
            StorageError::EmailTaken => Self::EmailTaken,
            other => Self::internal(other),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Why a token was refused. Every variant is answered the same way (401 invalid_token);
/// the distinction is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("wrong typ header")]
    WrongType,
    #[error("untrusted key reference in header")]
    UntrustedHeader,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token revoked")]
    Revoked,
    #[error("token minted for another audience")]
    WrongAudience,
    #[error("signing failed")]
    Signing,
}
