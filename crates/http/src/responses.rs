//! The error answers that many operations share, written once. Each is a reusable
//! response under `components/responses` in the OpenAPI document ([`ToResponse`]), and
//! the usual sets of them are bundled ([`IntoResponses`]) so that an operation lists only
//! what is its own.
//!
//! An operation names a bundle first and its own answers after it: a later entry for the
//! same status replaces the bundle's.

use std::collections::BTreeMap;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, KnownFormat, Ref, RefOr, SchemaFormat, Type};
use utoipa::{IntoResponses, ToResponse};

const PROBLEM: &str = "application/problem+json";
const OAUTH: &str = "application/json";

/// A response whose body is the named schema, with optional headers.
fn answer(description: &str, media_type: &str, schema: &str, headers: &[(&str, Header)]) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build();
    headers
        .iter()
        .fold(
            ResponseBuilder::new()
                .description(description)
                .content(media_type, content),
            |builder, (name, header)| builder.header(*name, header.build()),
        )
        .build()
}

/// A documented response header.
enum Header {
    /// A string, described.
    Text(&'static str),
    /// Seconds to wait before trying again.
    RetryAfter,
}

impl Header {
    fn build(&self) -> utoipa::openapi::Header {
        match self {
            Self::Text(description) => HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(*description))
                .build(),
            Self::RetryAfter => HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .minimum(Some(0)),
                ))
                .description(Some("Seconds to wait"))
                .build(),
        }
    }
}

/// Declares reusable responses: `Name => (description, media type, body schema, headers)`.
macro_rules! reusable {
    ($($(#[$doc:meta])* $name:ident => ($description:expr, $media:expr, $schema:expr, [$($header:expr),*]);)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), answer($description, $media, $schema, &[$($header),*]).into())
                }
            }
        )*
    };
}

reusable! {
    /// 400: the body is not valid JSON.
    MalformedJson => ("Malformed JSON", PROBLEM, "Problem", []);
    /// 401: no session, or one that has ended.
    NoSession => ("No live session", PROBLEM, "Problem", [
        ("Set-Cookie", Header::Text("Clears the cookie of a session that has ended (`Max-Age=0`)"))
    ]);
    /// 403: the CSRF defences refused a cookie request.
    CsrfFailed => (
        "CSRF check failed: no or a wrong `X-CSRF-Token`, a foreign `Origin`, or `Sec-Fetch-Site: cross-site`",
        PROBLEM, "Problem", []
    );
    /// 403: a request from a foreign origin.
    CrossSite => (
        "Cross-site request: a foreign `Origin`, or `Sec-Fetch-Site: cross-site`",
        PROBLEM, "Problem", []
    );
    /// 413: the body is over the limit.
    TooLarge => ("Body over 64 KiB", PROBLEM, "Problem", []);
    /// 415: a cookie request whose body is not JSON.
    NotJson => ("Body is not JSON", PROBLEM, "Problem", []);
    /// 429: a budget of attempts is spent.
    Throttled => ("Too many attempts: refused until `Retry-After` seconds have passed", PROBLEM, "Problem", [
        ("Retry-After", Header::RetryAfter)
    ]);
    /// 503: the database (or, where a password is hashed, the hashing pool) cannot serve.
    Unavailable => (
        "Database unavailable (or, where a password is hashed, the hashing pool is full)",
        PROBLEM, "Problem", [("Retry-After", Header::RetryAfter)]
    );
    /// 404: no client of this id, or one of another user's (the same answer).
    NoSuchClient => ("No such client of the caller's", PROBLEM, "Problem", []);
    /// 400 on the OAuth paths (RFC 6749 §5.2).
    OAuthInvalidRequest => ("Malformed request: `invalid_request`", OAUTH, "OAuthErrorBody", []);
    /// 401 on the OAuth paths.
    OAuthInvalidClient => ("Client authentication failed: `invalid_client`", OAUTH, "OAuthErrorBody", [
        ("WWW-Authenticate", Header::Text(r#"`Basic realm="sesame"` when the client used Basic"#))
    ]);
    /// 413 on the OAuth paths.
    OAuthTooLarge => ("Body over 64 KiB", OAUTH, "OAuthErrorBody", []);
    /// 415 on the OAuth paths.
    NotAForm => ("Not a form", OAUTH, "OAuthErrorBody", []);
    /// 429 on the OAuth paths.
    OAuthThrottled => ("Too many failed client authentications", OAUTH, "OAuthErrorBody", [
        ("Retry-After", Header::RetryAfter)
    ]);
    /// 503 on the OAuth paths.
    OAuthUnavailable => ("Database unavailable", OAUTH, "OAuthErrorBody", [("Retry-After", Header::RetryAfter)]);
}

/// Every reusable response, for the document's `components`.
pub fn all() -> Vec<(&'static str, RefOr<Response>)> {
    vec![
        MalformedJson::response(),
        NoSession::response(),
        CsrfFailed::response(),
        CrossSite::response(),
        TooLarge::response(),
        NotJson::response(),
        Throttled::response(),
        Unavailable::response(),
        NoSuchClient::response(),
        OAuthInvalidRequest::response(),
        OAuthInvalidClient::response(),
        OAuthTooLarge::response(),
        NotAForm::response(),
        OAuthThrottled::response(),
        OAuthUnavailable::response(),
    ]
}

/// A response map of references to reusable responses, by status.
fn refs(entries: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .iter()
        .map(|(status, name)| ((*status).to_owned(), RefOr::Ref(Ref::from_response_name(*name))))
        .collect()
}

/// Declares bundles: `Name => [status => reusable response, …]`.
macro_rules! bundle {
    ($($(#[$doc:meta])* $name:ident => [$($status:literal => $response:ident),*];)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    refs(&[$(($status, stringify!($response))),*])
                }
            }
        )*
    };
}

bundle! {
    /// An operation that needs a live session and reads.
    SessionRead => ["401" => NoSession, "503" => Unavailable];
    /// An operation that needs a live session, the CSRF token, and takes no body.
    SessionWrite => ["401" => NoSession, "403" => CsrfFailed, "415" => NotJson, "503" => Unavailable];
    /// What a JSON body can be refused for before it is read.
    JsonBody => ["400" => MalformedJson, "413" => TooLarge, "415" => NotJson];
    /// A client-authenticated OAuth form endpoint (RFC 6749 §2.3.1, §5.2).
    ClientAuthenticated => [
        "400" => OAuthInvalidRequest, "401" => OAuthInvalidClient, "403" => CrossSite, "413" => OAuthTooLarge,
        "415" => NotAForm, "429" => OAuthThrottled, "503" => OAuthUnavailable
    ];
}
