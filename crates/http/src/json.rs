//! `ApiJson`: the JSON body extractor whose every rejection is an [`ApiError`], so a bad
//! body is answered in the same problem+json shape as everything else.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON request body, parsed into `T`.
///
/// - a `Content-Type` other than `application/json` (or `+json`) → 415;
/// - a body over the router's limit (64 KiB) → 413;
/// - malformed JSON → 400;
/// - well-formed JSON of the wrong shape → 422 naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// Whether the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse(&bytes).map(ApiJson)
    }
}

pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("The request body could not be read.".into())
    }
}

/// Parses a JSON body, telling syntax errors (400) from shape errors (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The body must be one JSON value and nothing after it. `serde_path_to_error` stops at
    // the end of the value, so without this check trailing bytes would be ignored.
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(ApiError::BadRequest("The request body is not valid JSON.".into()));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message.split(" at line ").next().unwrap_or_default();
                let field = missing_field(message)
                    .map_or_else(|| if path == "." { "body".to_owned() } else { path }, str::to_owned);
                ApiError::Validation(vec![FieldError::new(field, without_values(message))])
            }
            _ => ApiError::BadRequest("The request body is not valid JSON.".into()),
        }
    })
}

/// serde's message without anything the client sent: "invalid type: integer `918273645`,
/// expected a string" becomes "invalid type: expected a string". Only what the target
/// type expects is kept (its `expecting` text, written by us or by serde), so no value —
/// a password of the wrong JSON type least of all — is ever echoed.
fn without_values(message: &str) -> String {
    if message.starts_with("missing field `") {
        return message.to_owned();
    }
    let kind = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
    ]
    .into_iter()
    .find(|kind| message.starts_with(kind));
    match (kind, message.split_once(", expected ")) {
        (Some(kind), Some((_, expected))) => format!("{kind}: expected {expected}"),
        (Some(kind), None) => kind.to_owned(),
        (None, _) if message.starts_with("duplicate field") => "duplicate field".to_owned(),
        (None, _) => "invalid value".to_owned(),
    }
}

/// serde reports a missing field at the parent's path; name the field itself.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_name_the_field() {
        assert!(matches!(parse::<Login>(b"{\"email\":"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse::<Login>(br#"{"email":"a@b.c","password":"x"} trailing"#),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse::<Login>(br#"{"email":"a@b.c"} {}"#),
            Err(ApiError::BadRequest(_))
        ));
        match parse::<Login>(br#"{"email":"a@b.c"}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "password"),
            other => panic!("{other:?}"),
        }
        match parse::<Login>(br#"{"email":5,"password":"x"}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "email"),
            other => panic!("{other:?}"),
        }
        match parse::<Login>(br#"{"email":"a@b.c","password":918273645}"#) {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors[0].field, "password");
                assert_eq!(errors[0].message, "invalid type: expected a string");
            }
            other => panic!("{other:?}"),
        }
        match parse::<Login>(b"[]") {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "body"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_media_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, expected) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().expect("header"));
            assert_eq!(is_json(&headers), expected, "{value}");
        }
    }
}
