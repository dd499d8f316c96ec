//! Who is making a request, once a credential has been checked.

use time::OffsetDateTime;

use crate::client::{ClientId, Scopes};
use crate::session::{CsrfToken, SessionId};
use crate::user::User;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person, through a first-party session cookie.
    User(UserSession),
    /// A third-party client, through a bearer token.
    Client(ClientToken),
}

/// A user and the live session that authenticated the request.
#[derive(Debug, Clone)]
pub struct UserSession {
    pub user: User,
    pub session_id: SessionId,
    pub expires_at: OffsetDateTime,
    pub csrf_token: CsrfToken,
}

/// A client and the access token that authenticated the request.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub client_id: ClientId,
    pub scopes: Scopes,
    pub expires_at: OffsetDateTime,
    /// The token's `jti`.
    pub token_id: String,
}

impl Principal {
    /// Whether the caller may act with this scope. Scopes limit what third-party clients
    /// may do; a user's own session is not limited by them.
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Self::User(_) => true,
            Self::Client(token) => token.scopes.contains(scope),
        }
    }
}
