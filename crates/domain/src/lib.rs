//! sesame's vocabulary: the values that cross every layer (emails, passwords, session
//! handles, user ids) and the policies that decide what is allowed (password rules,
//! session lifetimes, login throttling). Nothing here does I/O; everything here can be
//! tested without a database or a socket.

pub mod authorization;
pub mod catalogue;
pub mod claims;
pub mod client;
pub mod duration;
pub mod email;
mod id;
pub mod password;
pub mod principal;
pub mod random;
pub mod redirect;
pub mod session;
pub mod throttle;
pub mod user;

pub use authorization::{AuthorizationCode, CodeChallenge, CodeHash, GrantView, RefreshToken, RefreshTokenHash};
pub use catalogue::{Catalogue, Held, ScopeInfo};
pub use claims::{ClaimsError, StaticClaims};
pub use client::{ApiKey, ApiKeyHash, ApiKeyId, ClientId, Scope, ScopeError, Scopes};
pub use duration::{DurationError, parse_duration};
pub use email::{Email, EmailError};
pub use password::{Password, PasswordError, PasswordPolicy};
pub use principal::Principal;
pub use redirect::{Client, ClientType, MAX_REDIRECT_URIS, RedirectUri, RedirectUriError, parse_redirect_uris};
pub use session::{CsrfToken, SessionHandle, SessionHandleHash, SessionId, SessionOrigin, SessionPolicy};
pub use throttle::{AttemptKind, Budget, BudgetError, ThrottleKey, ThrottlePolicy, ThrottleVerdict};
pub use user::{User, UserId};

/// The current time in UTC, truncated to whole microseconds: the precision both
/// databases keep, so a value reads back exactly as it was written.
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    let micros = now.microsecond();
    now.replace_microsecond(micros).unwrap_or(now)
}
