//! Who is making a request, once a credential has been checked.

use time::OffsetDateTime;

use crate::session::{CsrfToken, SessionId};
use crate::user::User;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person, through a first-party session cookie.
    User(UserSession),
}

/// A user and the live session that authenticated the request.
#[derive(Debug, Clone)]
pub struct UserSession {
    pub user: User,
    pub session_id: SessionId,
    pub expires_at: OffsetDateTime,
    pub csrf_token: CsrfToken,
}
