//! Users: people who sign in with an email and a password.

use time::OffsetDateTime;

use crate::email::Email;

crate::id::uuid_id! {
    /// A user's identifier.
    UserId
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub created_at: OffsetDateTime,
}
