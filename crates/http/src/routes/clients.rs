//! A user's third-party clients and their API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sesame_domain::principal::UserSession;
use sesame_domain::{ApiKey, ApiKeyId, ClientId, Scopes};
use sesame_storage::{ApiKeyRecord, ClientRecord, ClientWithKeys, Revocation, RevocationKind};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::SessionUser;
use crate::error::{ApiError, FieldError, Problem};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::tokens::service::{LEEWAY_SECONDS, MAX_TOKEN_TTL};

/// The longest client name.
const MAX_NAME: usize = 100;
/// The most scopes one client may hold.
const MAX_SCOPES: usize = 64;

/// `POST /clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Spreadsheet sync", "scopes": ["notes:read"]}))]
pub struct CreateClientRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// Each matches `^[a-z0-9_.:-]{1,64}$`; at most 64.
    pub scopes: Vec<String>,
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

/// A newly registered client with its first key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub api_key: NewApiKey,
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
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub keys: Vec<ApiKeyInfo>,
}

impl From<ClientWithKeys> for ClientBody {
    fn from(found: ClientWithKeys) -> Self {
        Self {
            client_id: found.client.id.as_str().to_owned(),
            name: found.client.name,
            scopes: found.client.scopes.to_vec(),
            created_at: found.client.created_at,
            keys: found
                .keys
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

fn new_key(client: &ClientId, now: OffsetDateTime) -> (ApiKey, ApiKeyRecord) {
    let (key, id) = ApiKey::generate();
    let record = ApiKeyRecord {
        id,
        client_id: client.clone(),
        key_hash: key.hash(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    (key, record)
}

fn shown(key: &ApiKey, record: &ApiKeyRecord) -> NewApiKey {
    NewApiKey {
        id: record.id.0,
        key: key.expose().to_owned(),
        created_at: record.created_at,
    }
}

/// Registers a client: shared by `POST /clients` and the CLI.
pub async fn register_client(
    store: &sesame_storage::Store,
    owner: sesame_domain::UserId,
    name: String,
    scopes: Scopes,
) -> Result<CreatedClient, ApiError> {
    let now = sesame_domain::now();
    let client = ClientRecord {
        id: ClientId::generate(),
        owner_id: owner,
        name,
        scopes,
        created_at: now,
    };
    let (key, record) = new_key(&client.id, now);
    store.clients.create_client(&client, &record).await?;
    tracing::info!(client_id = %client.id, owner_id = %owner, "client registered");
    Ok(CreatedClient {
        client_id: client.id.as_str().to_owned(),
        name: client.name,
        scopes: client.scopes.to_vec(),
        created_at: client.created_at,
        api_key: shown(&key, &record),
    })
}

/// Checks a new client's name (trimmed) and scopes; shared with the CLI.
pub fn check_client(name: &str, scopes: &[String]) -> Result<(String, Scopes), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    let scopes = match Scopes::from_list(scopes.iter().map(String::as_str)) {
        Ok(_) if scopes.len() > MAX_SCOPES => {
            errors.push(FieldError::new("scopes", format!("at most {MAX_SCOPES} scopes")));
            None
        }
        Ok(parsed) => Some(parsed),
        Err(e) => {
            errors.push(FieldError::new("scopes", e.to_string()));
            None
        }
    };
    match scopes {
        Some(scopes) if errors.is_empty() => Ok((name, scopes)),
        _ => Err(errors),
    }
}

/// The caller's own client, or 404 (also for someone else's: their existence is not
/// revealed).
async fn own_client(state: &AppState, session: &UserSession, id: &str) -> Result<ClientWithKeys, ApiError> {
    let id = ClientId::parse(id).ok_or(ApiError::NotFound)?;
    let found = state.store.clients.find_client(&id).await?.ok_or(ApiError::NotFound)?;
    if found.client.owner_id != session.user.id {
        return Err(ApiError::NotFound);
    }
    Ok(found)
}

/// How long a revocation must be remembered: past the end of any token it concerns.
fn revocation(kind: RevocationKind, subject: String) -> Revocation {
    let now = sesame_domain::now();
    let keep = time::Duration::try_from(MAX_TOKEN_TTL).unwrap_or(time::Duration::HOUR)
        + time::Duration::seconds(i64::try_from(LEEWAY_SECONDS).unwrap_or(60) + 60);
    Revocation {
        kind,
        subject,
        created_at: now,
        expires_at: now + keep,
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
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or scopes", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<(StatusCode, Json<CreatedClient>), ApiError> {
    let (name, scopes) = check_client(&body.name, &body.scopes).map_err(ApiError::Validation)?;
    let created = register_client(&state.store, session.user.id, name, scopes).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists the caller's clients and their keys (never the keys' secrets).
#[utoipa::path(get, path = "/clients", tag = "clients",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The caller's clients", body = Vec<ClientBody>),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_clients(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
) -> Result<Json<Vec<ClientBody>>, ApiError> {
    let clients = state.store.clients.list_clients(session.user.id).await?;
    Ok(Json(clients.into_iter().map(ClientBody::from).collect()))
}

/// One of the caller's clients.
#[utoipa::path(get, path = "/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id (`cli_…`)")),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The client", body = ClientBody),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(client_id): Path<String>,
) -> Result<Json<ClientBody>, ApiError> {
    Ok(Json(own_client(&state, &session, &client_id).await?.into()))
}

/// Deletes a client: all its keys and tokens stop working at once.
#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id (`cli_…`)")),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Client deleted; its keys and tokens no longer work"),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_client(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = ClientId::parse(&client_id).ok_or(ApiError::NotFound)?;
    let entry = revocation(RevocationKind::Client, id.as_str().to_owned());
    if !state.store.clients.delete_client(session.user.id, &id, &entry).await? {
        return Err(ApiError::NotFound);
    }
    state.tokens.revocations().apply([&entry]);
    state.keys.remove_client(&id);
    tracing::info!(client_id = %id, owner_id = %session.user.id, "client deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Adds an API key to a client (rotation: several keys may be live at once).
#[utoipa::path(post, path = "/clients/{client_id}/keys", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id (`cli_…`)")),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 201, description = "Key made; shown this once", body = NewApiKey,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A non-JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path(client_id): Path<String>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    let found = own_client(&state, &session, &client_id).await?;
    let (key, record) = new_key(&found.client.id, sesame_domain::now());
    state.store.clients.add_key(&record).await?;
    tracing::info!(client_id = %found.client.id, key_id = %record.id, "API key created");
    Ok((StatusCode::CREATED, Json(shown(&key, &record))))
}

/// Revokes an API key: it and every token exchanged with it stop working at once.
#[utoipa::path(delete, path = "/clients/{client_id}/keys/{key_id}", tag = "clients",
    params(
        ("client_id" = String, Path, description = "The client's id (`cli_…`)"),
        ("key_id" = Uuid, Path, description = "The key's id"),
    ),
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Key revoked"),
        (status = 401, description = "No live session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF check failed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client or key of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    SessionUser(session): SessionUser,
    Path((client_id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let found = own_client(&state, &session, &client_id).await?;
    let key_id = Uuid::parse_str(&key_id).map(ApiKeyId).map_err(|_| ApiError::NotFound)?;
    let entry = revocation(RevocationKind::Key, key_id.0.to_string());
    if !state.store.clients.revoke_key(&found.client.id, key_id, &entry).await? {
        return Err(ApiError::NotFound);
    }
    state.tokens.revocations().apply([&entry]);
    state.keys.remove(key_id);
    tracing::info!(client_id = %found.client.id, key_id = %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
