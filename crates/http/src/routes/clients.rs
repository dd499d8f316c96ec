//! A user's third-party clients and their API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sesame_core::clients::{ClientSpec, ClientView, NewClient, NewKey};
use sesame_domain::{Client, ClientType};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::SessionUser;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::responses::{JsonBody, NoSuchClient, SessionRead, SessionWrite};
use crate::state::AppState;

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_client, list_clients))
        .routes(routes!(get_client, delete_client))
        .routes(routes!(create_key))
        .routes(routes!(revoke_key))
}

/// The client a path names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClientPath {
    /// The client's id (`cli_…`)
    pub client_id: String,
}

/// A key of a client, as a path names it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The client's id (`cli_…`)
    pub client_id: String,
    /// The key's id
    #[param(value_type = Uuid)]
    pub key_id: String,
}

/// `POST /clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Spreadsheet sync", "scopes": ["notes:read"]}))]
pub struct CreateClientRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// Each matches `^[a-z0-9_.:-]{1,64}$`; at most 64.
    pub scopes: Vec<String>,
    /// `confidential` (the default: it gets API keys) or `public` (no key; the
    /// authorization-code grant with PKCE only).
    #[serde(rename = "type", default)]
    pub client_type: ClientKind,
    /// Where the authorization endpoint may send the browser back to: `https://` URIs,
    /// loopback `http://127.0.0.1/…` or `http://[::1]/…` (any port at request time), or a
    /// reverse-domain private-use scheme (`com.example.app:/callback`). No fragment, no
    /// wildcard, no `localhost`; at most 10. Required for a public client.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// A client's type (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    #[default]
    Confidential,
    Public,
}

impl From<ClientKind> for ClientType {
    fn from(kind: ClientKind) -> Self {
        match kind {
            ClientKind::Confidential => Self::Confidential,
            ClientKind::Public => Self::Public,
        }
    }
}

impl From<ClientType> for ClientKind {
    fn from(kind: ClientType) -> Self {
        match kind {
            ClientType::Confidential => Self::Confidential,
            ClientType::Public => Self::Public,
        }
    }
}

/// A newly made API key: the only time its secret is shown.
#[derive(Serialize, ToSchema)]
pub struct NewApiKey {
    pub id: Uuid,
    /// `sk_…`. Store it now: the server keeps only its hash.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What every answer about a client says of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFields {
    pub client_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientKind,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Client> for ClientFields {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.as_str().to_owned(),
            name: client.name.clone(),
            client_type: client.client_type.into(),
            scopes: client.scopes.to_vec(),
            redirect_uris: client.redirect_uris.iter().map(|u| u.as_str().to_owned()).collect(),
            created_at: client.created_at,
        }
    }
}

/// A newly registered client with its first key (none for a public client).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientFields,
    /// Absent for a public client.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub api_key: Option<NewApiKey>,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Recorded at most once a minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A client as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientBody {
    #[serde(flatten)]
    pub client: ClientFields,
    /// Static claims copied into each of its tokens, set by the operator (§9).
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub keys: Vec<ApiKeyInfo>,
}

impl From<ClientView> for ClientBody {
    fn from(ClientView { client, keys }: ClientView) -> Self {
        Self {
            client: ClientFields::from(&client),
            claims: client.claims.as_map().clone(),
            keys: keys
                .into_iter()
                .map(|k| ApiKeyInfo {
                    id: k.id.0,
                    created_at: k.created_at,
                    last_used_at: k.last_used_at,
                    revoked_at: k.revoked_at,
                })
                .collect(),
        }
    }
}

fn shown(key: &NewKey) -> NewApiKey {
    NewApiKey {
        id: key.record.id.0,
        key: key.key.expose().to_owned(),
        created_at: key.record.created_at,
    }
}

impl From<NewClient> for CreatedClient {
    fn from(created: NewClient) -> Self {
        Self {
            client: ClientFields::from(&created.client),
            api_key: created.key.as_ref().map(shown),
        }
    }
}

/// Registers a third-party client and returns its first API key.
#[utoipa::path(post, path = "/clients", tag = "clients",
    request_body(content = CreateClientRequest, content_type = "application/json"),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 201, description = "Client registered; the key is shown this once", body = CreatedClient,
            headers(("Cache-Control" = String, description = "`no-store`")),
            links(
                ("GetClient" = (operation_id = "get_client", parameters(("client_id" = "$response.body#/client_id")))),
                ("CreateKey" = (operation_id = "create_key", parameters(("client_id" = "$response.body#/client_id")))),
                ("RevokeKey" = (operation_id = "revoke_key", parameters(
                    ("client_id" = "$response.body#/client_id"),
                    ("key_id" = "$response.body#/api_key/id"),
                ))),
                ("DeleteClient" = (operation_id = "delete_client", parameters(("client_id" = "$response.body#/client_id")))),
            )),
        SessionWrite, JsonBody,
        (status = 422, description = "Invalid name, scopes, type or redirect URIs (a public client needs one)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<(StatusCode, Json<CreatedClient>), ApiError> {
    let created = state
        .core
        .clients()
        .register_spec(
            session.user.id,
            &ClientSpec {
                name: body.name,
                scopes: body.scopes,
                client_type: body.client_type.into(),
                redirect_uris: body.redirect_uris,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Lists the caller's clients and their keys (never the keys' secrets).
#[utoipa::path(get, path = "/clients", tag = "clients",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The caller's clients", body = Vec<ClientBody>),
        SessionRead,
    ))]
pub async fn list_clients(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
) -> Result<Json<Vec<ClientBody>>, ApiError> {
    let clients = state.core.clients().list(session.user.id).await?;
    Ok(Json(clients.into_iter().map(ClientBody::from).collect()))
}

/// One of the caller's clients.
#[utoipa::path(get, path = "/clients/{client_id}", tag = "clients",
    params(ClientPath),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The client", body = ClientBody),
        SessionRead,
        (status = 404, response = NoSuchClient),
    ))]
pub async fn get_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(ClientPath { client_id }): Path<ClientPath>,
) -> Result<Json<ClientBody>, ApiError> {
    Ok(Json(
        state.core.clients().get(session.user.id, &client_id).await?.into(),
    ))
}

/// Deletes a client: all its keys and tokens stop working at once.
#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients",
    params(ClientPath),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Client deleted; its keys and tokens no longer work"),
        SessionWrite,
        (status = 404, response = NoSuchClient),
    ))]
pub async fn delete_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(ClientPath { client_id }): Path<ClientPath>,
) -> Result<StatusCode, ApiError> {
    state.core.clients().delete(session.user.id, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds an API key to a client (rotation: several keys may be live at once).
#[utoipa::path(post, path = "/clients/{client_id}/keys", tag = "clients",
    params(ClientPath),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 201, description = "Key made; shown this once", body = NewApiKey,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        SessionWrite,
        (status = 404, response = NoSuchClient),
        (status = 422, description = "A public client has no API keys", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(ClientPath { client_id }): Path<ClientPath>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    let key = state.core.clients().add_key(session.user.id, &client_id).await?;
    Ok((StatusCode::CREATED, Json(shown(&key))))
}

/// Revokes an API key: it and every token exchanged with it stop working at once.
#[utoipa::path(delete, path = "/clients/{client_id}/keys/{key_id}", tag = "clients",
    params(KeyPath),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Key revoked"),
        SessionWrite,
        (status = 404, description = "No such client or key of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(KeyPath { client_id, key_id }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .clients()
        .revoke_key(session.user.id, &client_id, &key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
