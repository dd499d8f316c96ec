//! The API's resources, one module each, and the body types they share.

pub mod authorize;
pub mod clients;
pub mod grants;
pub mod health;
pub mod login;
pub mod me;
pub mod oauth;
pub mod sessions;
pub mod users;
pub mod verify;

use serde::Serialize;
use sesame_domain::User;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936d3c-5a8e-7c1b-9f4e-2b8a7d6c5e4f",
    "email": "ada@example.com",
    "created_at": "2026-01-01T12:00:00Z"
}))]
pub struct UserBody {
    pub id: Uuid,
    /// Normalized: trimmed and lower-cased.
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.0,
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
        }
    }
}

/// The session a response refers to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionSummary {
    pub id: Uuid,
    /// When the session ends unless used again (idle and absolute limits applied).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
