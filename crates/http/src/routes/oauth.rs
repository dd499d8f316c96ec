//! The OAuth 2.0 endpoints besides the token endpoint (`/login`): revocation (RFC 7009),
//! introspection (RFC 7662), and discovery (RFC 8414 metadata, RFC 7517 JWKS).

use axum::Json;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use sesame_core::tokens::{Audience, ClientAuth, Introspected};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::client_ip::ClientIp;
use crate::json;
use crate::oauth::{self, OAuthError};
use crate::responses::ClientAuthenticated;
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(revoke_token))
        .routes(routes!(introspect_token))
        .routes(routes!(jwks))
        .routes(routes!(server_metadata))
}

/// How long discovery documents may be cached.
const DISCOVERY_MAX_AGE: &str = "public, max-age=300";

/// `token=<jwt>` with optional `token_type_hint`, and client credentials.
#[derive(serde::Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "documents the form; the form is parsed strictly by `oauth::parse_form`"
)]
pub struct TokenForm {
    /// The access token.
    pub token: String,
    /// Ignored: sesame has one kind of token.
    pub token_type_hint: Option<String>,
    /// With `client_secret_post`.
    pub client_id: Option<String>,
    /// With `client_secret_post`: the API key.
    pub client_secret: Option<String>,
}

/// RFC 7662 §2.2. Only `active` is present when the token is not live.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"active": true, "client_id": "cli_…", "sub": "cli_…", "scope": "notes:read", "exp": 1_767_225_600, "iat": 1_767_224_700, "iss": "https://auth.example.com", "aud": "https://auth.example.com", "jti": "…", "token_type": "Bearer", "owner": "01936d3c-5a8e-7c1b-9f4e-2b8a7d6c5e4f"}))]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<AudienceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The id of the user who owns the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The client's static claims, at the top level as in the token.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A token's `aud`: a string for one audience, an array for several (RFC 8707).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AudienceBody {
    One(String),
    Many(Vec<String>),
}

impl From<Audience> for AudienceBody {
    fn from(audience: Audience) -> Self {
        match audience {
            Audience::One(one) => Self::One(one),
            Audience::Many(many) => Self::Many(many),
        }
    }
}

/// Reads a client-authenticated form with a `token` parameter: how the client presented
/// itself (checked by the one service call that follows), and the token.
async fn token_form(state: &AppState, request: Request) -> Result<(ClientAuth, String), OAuthError> {
    oauth::refuse_query_credentials(request.uri())?;
    let headers: HeaderMap = request.headers().clone();
    if !oauth::is_form(&headers) {
        return Err(OAuthError::unsupported_media_type());
    }
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|e| OAuthError::from(json::body_error(e)))?;
    let form = oauth::parse_form(&body)?;
    let client = oauth::presented_client(&headers, &form)?;
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required."))?;
    Ok((client, token.clone()))
}

/// Revokes an access token of the calling client (RFC 7009). Answers 200 whether or not
/// the token was known, valid, or the caller's; another client's token is left alone.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Done (also for unknown tokens)"),
        ClientAuthenticated,
    ))]
pub async fn revoke_token(State(state): State<AppState>, ClientIp(ip): ClientIp, request: Request) -> Response {
    let (client, token) = match token_form(&state, request).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    // Only a token that verifies (signature, issuer, audience, unexpired) and belongs to
    // the caller is revoked; anything else is silently accepted.
    if let Err(error) = state.core.tokens().revoke_as(&client, &token, &ip).await {
        return OAuthError::for_client(error, &client).into_response();
    }
    no_store(axum::http::StatusCode::OK.into_response())
}

/// Tells a client-authenticated caller whether a token is live (RFC 7662).
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state; `{\"active\": false}` alone when not live", body = Introspection),
        ClientAuthenticated,
    ))]
pub async fn introspect_token(State(state): State<AppState>, ClientIp(ip): ClientIp, request: Request) -> Response {
    let (client, token) = match token_form(&state, request).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let introspected = match state.core.tokens().introspect_as(&client, &token, &ip).await {
        Ok(introspected) => introspected,
        Err(error) => return OAuthError::for_client(error, &client).into_response(),
    };
    let answer = match introspected {
        Some(Introspected::Refresh(refresh)) => Introspection {
            active: true,
            client_id: Some(refresh.client_id),
            sub: Some(refresh.sub),
            scope: Some(refresh.scope),
            exp: Some(refresh.exp),
            token_type: Some("refresh_token"),
            ..Introspection::default()
        },
        Some(Introspected::Access(claims)) => Introspection {
            active: true,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            scope: Some(claims.scope),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud.into()),
            jti: Some(claims.jti),
            token_type: Some("Bearer"),
            owner: claims.owner,
            claims: claims.extra,
        },
        None => Introspection::default(),
    };
    no_store(Json(answer).into_response())
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn cacheable(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(DISCOVERY_MAX_AGE));
    response
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "…", "alg": "EdDSA", "use": "sig"}]}))]
pub struct Jwks {
    /// Public keys only, newest (signing) first.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// The public keys that verify sesame's access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, description = "The signing keys' public parts", body = Jwks,
        headers(("Cache-Control" = String, description = "`public, max-age=300`")))))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    cacheable(Json(state.core.tokens().jwks()).into_response())
}

/// RFC 8414 authorization server metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    /// Equal to every token's `iss`.
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The scope catalogue; absent when the operator declared none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scopes_supported: Option<Vec<String>>,
    /// `GET /authorize` (§10).
    pub authorization_endpoint: String,
    /// The authorization-code flow only.
    pub response_types_supported: Vec<&'static str>,
    /// PKCE is required, with S256 only.
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// Redirects from `/authorize` carry `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
}

/// Where everything is, for OAuth clients that discover it.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses(
        (status = 200, description = "RFC 8414 metadata", body = ServerMetadata,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    ))]
pub async fn server_metadata(State(state): State<AppState>) -> Response {
    let tokens = state.core.tokens();
    let issuer = tokens.settings().issuer.clone();
    let scopes_supported = tokens.scopes_supported();
    cacheable(
        Json(ServerMetadata {
            token_endpoint: format!("{issuer}/login"),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            grant_types_supported: vec!["client_credentials", "authorization_code", "refresh_token"],
            token_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post", "none"],
            scopes_supported,
            authorization_endpoint: format!("{issuer}/authorize"),
            response_types_supported: vec!["code"],
            code_challenge_methods_supported: vec!["S256"],
            authorization_response_iss_parameter_supported: true,
            revocation_endpoint: format!("{issuer}/oauth/revoke"),
            // A public client revokes its own tokens naming itself (RFC 7009 §2.1).
            revocation_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post", "none"],
            introspection_endpoint: format!("{issuer}/oauth/introspect"),
            introspection_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
            issuer,
        })
        .into_response(),
    )
}
