//! The OpenAPI document's frame: metadata, tags and security schemes. Paths are not
//! listed here: each route registers its own documentation where it is mounted.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sesame",
        description = "Authentication for HTTP APIs: email and password to an HttpOnly session cookie for \
                       first-party clients; API keys to short-lived JWT bearer tokens for third parties.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "login", description = "Signing in and out"),
        (name = "users", description = "Accounts"),
        (name = "sessions", description = "A user's sessions"),
        (name = "me", description = "The caller"),
        (name = "operations", description = "Probes"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sesame_session",
                "The session cookie set by `POST /login` (named `__Host-sesame_session` when secure).",
            ))),
        );
        components.add_security_scheme(
            "csrf_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's `csrf_token`, required with the cookie on POST, PUT, PATCH and DELETE.",
            ))),
        );
    }
}
