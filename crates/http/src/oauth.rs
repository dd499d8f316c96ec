//! The OAuth 2.0 token path's plumbing: its error shape (RFC 6749 §5.2), strict form
//! parsing, HTTP Basic decoding (§2.3.1), and client authentication with an API key,
//! shared by the exchange on `/login`, revocation and introspection.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sesame_core::CoreError;
use sesame_core::tokens::ClientAuth;
use utoipa::ToSchema;

use crate::error::{ApiError, retry_after_value};

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_client", "error_description": "Client authentication failed."}))]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`, or
    /// `temporarily_unavailable` (throttled or database down).
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// An error on the token path.
#[derive(Debug, Clone)]
pub struct OAuthError {
    status: StatusCode,
    body: OAuthErrorBody,
    /// Answer `WWW-Authenticate: Basic` (the client authenticated with Basic).
    basic_challenge: bool,
    retry_after: Option<Duration>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            body: OAuthErrorBody {
                error,
                error_description: Some(description.into()),
            },
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.",
            )
        }
    }

    pub fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=client_credentials is supported.",
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// RFC 8707 §2: a `resource` this server does not mint tokens for.
    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "Send application/x-www-form-urlencoded.",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "Request bodies are limited to 64 KiB.",
        )
    }

    /// How a token request that ended with this error is counted.
    pub(crate) fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        if self.body.error == "invalid_client" {
            Outcome::Refused
        } else if self.status == StatusCode::TOO_MANY_REQUESTS {
            Outcome::Throttled
        } else if self.status.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Rejected
        }
    }

    pub fn error(&self) -> &'static str {
        self.body.error
    }

    fn throttled(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "Too many failed attempts; retry after the time in Retry-After.",
            )
        }
    }

    fn unavailable() -> Self {
        Self {
            retry_after: Some(Duration::from_secs(2)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Try again shortly.",
            )
        }
    }

    fn server_error(status: StatusCode) -> Self {
        Self::new(status, "server_error", "The request could not be completed.")
    }

    /// An application error for a client that authenticated (or tried to) as `presented`:
    /// a failed authentication challenges Basic when Basic was used.
    pub fn for_client(error: CoreError, client: &ClientAuth) -> Self {
        match error {
            CoreError::InvalidClient => Self::invalid_client(client.is_basic()),
            other => other.into(),
        }
    }
}

/// The one mapping from the application's refusals to RFC 6749 errors.
impl From<CoreError> for OAuthError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::InvalidClient => Self::invalid_client(false),
            CoreError::InvalidScope(description) => Self::invalid_scope(description),
            CoreError::InvalidTarget(description) => Self::invalid_target(description),
            CoreError::InvalidGrant(description) => Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description),
            CoreError::UnauthorizedClient => Self::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "A public client cannot use this grant.",
            ),
            // Throttling and unavailability are answered alike on every path.
            other => ApiError::from(other).into(),
        }
    }
}

/// Problems of the HTTP layer (body reading and parsing) in the token path's shape.
impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Throttled { retry_after } => Self::throttled(retry_after),
            ApiError::Unavailable(cause) => {
                if let Some(cause) = &cause {
                    tracing::warn!(error = %cause, "database unavailable");
                }
                Self::unavailable()
            }
            ApiError::PayloadTooLarge => Self::payload_too_large(),
            ApiError::UnsupportedMediaType(_) => Self::unsupported_media_type(),
            ApiError::BadRequest(detail) => Self::invalid_request(detail),
            ApiError::Validation(errors) => Self::invalid_request(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => {
                other.log();
                Self::server_error(other.status())
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="sesame""#),
            );
        }
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        response
    }
}

/// Whether the request declares a form body.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Parses a form body; a parameter given twice is an error (RFC 6749 §3.2), and
/// parameters without a value count as given.
pub fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        // The one parameter that may be repeated (RFC 8707 §2): read by `resources`.
        if name == "resource" {
            continue;
        }
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "Parameter {:?} is repeated.",
                name.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(params)
}

/// Every `resource` of a form body (RFC 8707), in order.
pub fn resources(body: &[u8]) -> Vec<String> {
    form_urlencoded::parse(body)
        .filter(|(name, _)| name == "resource")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// Every (name, value) pair of a form body, repeats included.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Refuses credentials in the query string: URLs end up in logs and histories.
pub fn refuse_query_credentials(uri: &Uri) -> Result<(), OAuthError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    let names = ["client_secret", "api_key", "password", "access_token", "token"];
    if form_urlencoded::parse(query.as_bytes()).any(|(name, _)| names.contains(&name.as_ref())) {
        return Err(OAuthError::invalid_request(
            "Credentials are not accepted in the query string.",
        ));
    }
    Ok(())
}

/// Decodes `Authorization: Basic` per RFC 6749 §2.3.1: base64 of
/// `urlencode(client_id) ":" urlencode(secret)`. `None` when the header is not Basic.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed = || OAuthError::invalid_request("Malformed Basic credentials.");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed());
    Some(decoded.and_then(|bytes| {
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
        let decode = |part: &str| -> String {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok((decode(id), decode(secret)))
    }))
}

/// Collects the client's credentials from Basic or the form (`client_secret_post`),
/// refusing two methods at once (RFC 6749 §2.3).
pub fn presented_client(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<ClientAuth, OAuthError> {
    let basic = basic_credentials(headers).transpose()?;
    let form_secret = form.get("client_secret");
    match (basic, form_secret) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "Use one client authentication method, not two.",
        )),
        (Some((client_id, secret)), None) => {
            if form.get("client_id").is_some_and(|form_id| *form_id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials.",
                ));
            }
            Ok(ClientAuth::Basic {
                client_id,
                secret: secret.into(),
            })
        }
        (None, Some(secret)) => Ok(ClientAuth::Post {
            client_id: form.get("client_id").cloned(),
            secret: secret.as_str().into(),
        }),
        (None, None) => {
            if headers.contains_key(header::AUTHORIZATION) {
                Err(OAuthError::invalid_request(
                    "Unsupported Authorization scheme; use Basic.",
                ))
            } else if let Some(client_id) = form.get("client_id").filter(|id| !id.is_empty()) {
                Ok(ClientAuth::None {
                    client_id: client_id.clone(),
                })
            } else {
                Err(OAuthError::invalid_client(false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_form(b"grant_type=client_credentials&scope=a").is_ok());
        let error = parse_form(b"scope=a&scope=b").expect_err("repeated");
        assert_eq!(error.error(), "invalid_request");
        let params = parse_form(b"scope=a+b%3Ac&empty=").expect("ok");
        assert_eq!(params["scope"], "a b:c");
        assert_eq!(params["empty"], "");
    }

    /// Headers with HTTP Basic credentials of `user:password` as given.
    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode(credentials);
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = basic("cli_a%2Bb:sk_x%3Ay+z");
        let (id, secret) = basic_credentials(&headers).expect("basic").expect("valid");
        assert_eq!(id, "cli_a+b");
        assert_eq!(secret, "sk_x:y z");
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        assert!(basic_credentials(&headers).expect("basic").is_err());
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert!(basic_credentials(&headers).is_none());
    }

    #[test]
    fn two_authentication_methods_are_refused() {
        let headers = basic("cli_x:sk_y");
        let form = parse_form(b"client_secret=sk_y").expect("form");
        let error = presented_client(&headers, &form).expect_err("two methods");
        assert_eq!(error.error(), "invalid_request");
    }

    #[test]
    fn query_credentials_are_refused() {
        let uri: Uri = "/login?client_secret=sk_x".parse().expect("uri");
        assert!(refuse_query_credentials(&uri).is_err());
        let uri: Uri = "/login?foo=bar".parse().expect("uri");
        assert!(refuse_query_credentials(&uri).is_ok());
    }
}
