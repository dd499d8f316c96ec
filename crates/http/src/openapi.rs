//! The OpenAPI document's frame: metadata, tags, security schemes and the shared error
//! responses. Paths are not listed here: each route registers its own documentation where it
//! is mounted.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, AuthorizationCode, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldErrorSchema, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sesame",
        description = "Authentication for HTTP APIs: email and password to an HttpOnly session cookie for \
                       first-party clients; API keys to short-lived JWT bearer tokens for third parties.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(Problem, FieldErrorSchema)),
    modifiers(&SharedComponents),
    tags(
        (name = "login", description = "Signing in and out"),
        (name = "users", description = "Accounts"),
        (name = "sessions", description = "A user's sessions"),
        (name = "me", description = "The caller"),
        (name = "clients", description = "Third-party clients and their API keys"),
        (name = "oauth", description = "OAuth 2.0 revocation, introspection and discovery"),
        (name = "operations", description = "Probes"),
        (name = "forward-auth", description = "Who is calling, for a reverse proxy in front of other applications"),
    )
)]
pub struct ApiDoc;

struct SharedComponents;

/// The OAuth 2.0 scheme, listing `scopes` in both its flows: client credentials, and the
/// authorization code (with PKCE) that the API explorer can run.
fn client_credentials(scopes: Scopes) -> SecurityScheme {
    SecurityScheme::OAuth2(OAuth2::with_description(
        [
            Flow::ClientCredentials(ClientCredentials::new("/login", scopes.clone())),
            Flow::AuthorizationCode(AuthorizationCode::with_refresh_url(
                "/authorize",
                "/login",
                scopes,
                "/login",
            )),
        ],
        "The client-credentials grant: client_id and API key (as client_secret) at /login. \
         A token carries the scopes its client was registered with, or those it asks for among them. \
         The authorization-code grant (PKCE S256 required) lets a client act for a user; its refresh \
         tokens rotate at /login.",
    ))
}

/// `/auth/verify` answers every method as it answers `GET` (a proxy may keep the original
/// request's): the same operation under each, with an id of its own.
pub fn document_forward_auth_methods(document: &mut utoipa::openapi::OpenApi) {
    let Some(item) = document.paths.paths.get_mut("/auth/verify") else {
        return;
    };
    let Some(get) = item.get.clone() else {
        return;
    };
    for (name, slot) in [
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ] {
        let mut operation = get.clone();
        operation.operation_id = Some(format!("verify_{name}"));
        operation.summary = Some(format!(
            "The same as GET /auth/verify, for a proxy that keeps the {} method",
            name.to_ascii_uppercase()
        ));
        *slot = Some(operation);
    }
}

/// What the document says that depends on the configuration, added at start: each cookie
/// profile's cookie (§11) as a scheme of its own, and the scope catalogue in the OAuth
/// flows (left empty without one, as in the committed document).
pub fn configure(
    document: &mut utoipa::openapi::OpenApi,
    catalogue: &sesame_domain::Catalogue,
    frontends: &[crate::FrontendProfile],
) {
    for frontend in frontends {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            format!("session_cookie_{}", frontend.name),
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                frontend.cookie.name.clone(),
                format!(
                    "The session cookie of the `{}` front end, set by `POST /login` from {} and used for \
                     requests from there (with `csrf_token` on unsafe ones).",
                    frontend.name,
                    frontend.origins.join(", ")
                ),
            ))),
        );
    }
    let sesame_domain::Catalogue::Declared(entries) = catalogue else {
        return;
    };
    let scopes = Scopes::from_iter(entries.iter().map(|(scope, info)| {
        let description = info.description.clone().unwrap_or_else(|| scope.as_str().to_owned());
        (scope.as_str().to_owned(), description)
    }));
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme("oauth2_client_credentials", client_credentials(scopes));
}

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
        components.add_security_scheme("oauth2_client_credentials", client_credentials(Scopes::new()));
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
