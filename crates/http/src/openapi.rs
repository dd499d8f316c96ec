//! The OpenAPI document's frame: metadata, tags, security schemes and the shared error
//! responses. Paths are not listed here: each route registers its own documentation where it
//! is mounted.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
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
    modifiers(&SharedComponents),
    tags(
        (name = "login", description = "Signing in and out"),
        (name = "users", description = "Accounts"),
        (name = "sessions", description = "A user's sessions"),
        (name = "me", description = "The caller"),
        (name = "clients", description = "Third-party clients and their API keys"),
        (name = "oauth", description = "OAuth 2.0 revocation, introspection and discovery"),
        (name = "operations", description = "Probes"),
    )
)]
pub struct ApiDoc;

struct SharedComponents;

impl Modify for SharedComponents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, response) in crate::responses::all() {
            components.responses.insert(name.to_owned(), response);
        }
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
        components.add_security_scheme(
            "bearer_jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `POST /login` with an API key (RFC 9068)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2_client_credentials",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new("/login", Scopes::new()))],
                "The client-credentials grant: client_id and API key (as client_secret) at /login. \
                 Scopes are those registered for each client.",
            )),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "OAuth client authentication: client_id and API key, each form-urlencoded (RFC 6749 §2.3.1).",
                    ))
                    .build(),
            ),
        );
    }
}
