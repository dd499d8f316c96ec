//! Who is making a request, once a credential has been checked.

use time::OffsetDateTime;

use crate::catalogue::Held;
use crate::client::{ClientId, Scopes};
use crate::session::{CsrfToken, SessionId};
use crate::user::{User, UserId};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person, through a first-party session cookie.
    User(UserSession),
    /// A third-party client, through a bearer token.
    Client(ClientToken),
    /// A third-party client acting for a user who consented, through a delegated token
    /// (§10).
    Delegated(DelegatedToken),
}

/// A delegated access token: a client acting for a user, within its scopes.
#[derive(Debug, Clone)]
pub struct DelegatedToken {
    /// The user it acts for (the token's `sub`).
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scopes: Scopes,
    pub expires_at: OffsetDateTime,
    /// The token's `jti`.
    pub token_id: String,
    /// The client's static claims, as the token carries them.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A user and the live session that authenticated the request.
#[derive(Debug, Clone)]
pub struct UserSession {
    pub user: User,
    pub session_id: SessionId,
    pub expires_at: OffsetDateTime,
    pub csrf_token: CsrfToken,
    /// The scopes the user holds (§9).
    pub held: Held,
    /// When the user signed in (the session began): a delegated token's `auth_time`.
    pub signed_in_at: OffsetDateTime,
}

/// A client and the access token that authenticated the request.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub client_id: ClientId,
    /// The user who owns the client (§9).
    pub owner: Option<UserId>,
    /// The client's static claims, as the token carries them (§9).
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub scopes: Scopes,
    pub expires_at: OffsetDateTime,
    /// The token's `jti`.
    pub token_id: String,
}

impl Principal {
    /// Whether the caller may act with this scope: a token that carries it, or a session
    /// whose user holds it (never a blanket pass, §9).
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Self::User(session) => session.held.contains(scope),
            Self::Client(token) => token.scopes.contains(scope),
            Self::Delegated(token) => token.scopes.contains(scope),
        }
    }
}
