//! Third-party clients and their API keys: registration, keys added and revoked, and
//! deletion. A revoked key or a deleted client stops its tokens at once here (the
//! revocation set) and within a poll elsewhere.

use sesame_domain::{
    ApiKey, ApiKeyId, Client, ClientId, ClientType, RedirectUri, Scopes, StaticClaims, UserId, parse_redirect_uris,
};
use sesame_storage::{ApiKeyRecord, ClientWithKeys, RevocationKind};

use time::OffsetDateTime;

use crate::Context;
use crate::error::{CoreError, FieldError, Result};

/// The longest client name.
pub const MAX_NAME: usize = 100;
/// The most scopes one client may hold.
pub const MAX_SCOPES: usize = 64;

/// A key just made: its secret, shown this once, and its stored record.
pub struct NewKey {
    pub key: ApiKey,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.record.id)
            .finish_non_exhaustive()
    }
}

/// A client as its owner or the operator sees it: never a key's secret or hash.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub client: Client,
    /// Live and revoked, oldest first.
    pub keys: Vec<KeyView>,
}

/// One of a client's keys, as listed.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub id: ApiKeyId,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ClientWithKeys> for ClientView {
    fn from(found: ClientWithKeys) -> Self {
        Self {
            client: found.client,
            keys: found
                .keys
                .into_iter()
                .map(|key| KeyView {
                    id: key.id,
                    created_at: key.created_at,
                    last_used_at: key.last_used_at,
                    revoked_at: key.revoked_at,
                })
                .collect(),
        }
    }
}

/// A client just registered, with its first key (none for a public client).
#[derive(Debug)]
pub struct NewClient {
    pub client: Client,
    pub key: Option<NewKey>,
}

/// What a client is registered with.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub name: String,
    pub scopes: Vec<String>,
    pub client_type: ClientType,
    /// Required for a public client (§10).
    pub redirect_uris: Vec<String>,
}

/// A registration, checked.
struct Checked {
    name: String,
    scopes: Scopes,
    redirect_uris: Vec<RedirectUri>,
}

/// The client service.
pub struct Clients<'a>(pub(crate) &'a Context);

/// Checks a new client's name (trimmed) and scopes, naming each field's problem.
pub fn check_client(name: &str, scopes: &[String]) -> Result<(String, Scopes)> {
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
        _ => Err(CoreError::Validation(errors)),
    }
}

/// Checks a whole registration, naming every field's problem at once.
fn check_spec(spec: &ClientSpec) -> Result<Checked> {
    let mut errors = Vec::new();
    let named = check_client(&spec.name, &spec.scopes).map_err(|e| {
        if let CoreError::Validation(found) = e {
            errors.extend(found);
        }
    });
    let redirect_uris = match parse_redirect_uris(spec.redirect_uris.iter().map(String::as_str)) {
        Ok(uris) if uris.is_empty() && spec.client_type == ClientType::Public => {
            errors.push(FieldError::new("redirect_uris", "a public client needs at least one"));
            None
        }
        Ok(uris) => Some(uris),
        Err(e) => {
            errors.push(FieldError::new("redirect_uris", e.to_string()));
            None
        }
    };
    match (named, redirect_uris) {
        (Ok((name, scopes)), Some(redirect_uris)) if errors.is_empty() => Ok(Checked {
            name,
            scopes,
            redirect_uris,
        }),
        _ => Err(CoreError::Validation(errors)),
    }
}

impl Clients<'_> {
    fn new_key(&self, client: &ClientId) -> NewKey {
        let (key, id) = ApiKey::generate();
        let record = ApiKeyRecord {
            id,
            client_id: client.clone(),
            key_hash: key.hash(),
            created_at: self.0.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        NewKey { key, record }
    }

    /// Registers a confidential client for `owner` with a first key, after
    /// [`check_client`].
    pub async fn register(&self, owner: UserId, name: &str, scopes: &[String]) -> Result<NewClient> {
        let spec = ClientSpec {
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            ..ClientSpec::default()
        };
        self.register_spec(owner, &spec).await
    }

    /// Registers a client for `owner`: a confidential one with a first key, a public one
    /// with none.
    pub async fn register_spec(&self, owner: UserId, spec: &ClientSpec) -> Result<NewClient> {
        let checked = check_spec(spec)?;
        self.check_held(owner, &checked.scopes).await?;
        let client = Client {
            id: ClientId::generate(),
            owner_id: owner,
            name: checked.name,
            scopes: checked.scopes,
            created_at: self.0.clock.now(),
            claims: StaticClaims::default(),
            client_type: spec.client_type,
            redirect_uris: checked.redirect_uris,
        };
        let key = (client.client_type == ClientType::Confidential).then(|| self.new_key(&client.id));
        self.0
            .store
            .clients
            .create_client(&client, key.as_ref().map(|k| &k.record))
            .await?;
        tracing::info!(client_id = %client.id, owner_id = %owner, client_type = client.client_type.as_str(), "client registered");
        Ok(NewClient { client, key })
    }

    /// Every scope must be in the catalogue and held by the owner (§9): restricted ones
    /// only when the operator granted them.
    async fn check_held(&self, owner: UserId, scopes: &Scopes) -> Result<()> {
        let catalogue = &self.0.settings.scopes;
        let refuse = |scope: &sesame_domain::Scope, why: &str| {
            Err(CoreError::validation(
                "scopes",
                format!("scope {:?} {why}", scope.as_str()),
            ))
        };
        if let Some(unknown) = catalogue.unknown(scopes) {
            return refuse(unknown, "is not in the catalogue");
        }
        if !scopes.iter().any(|s| catalogue.is_restricted(s.as_str())) {
            return Ok(());
        }
        let user = self
            .0
            .store
            .users
            .find_user_by_id(owner)
            .await?
            .ok_or(CoreError::NotFound)?;
        let held = catalogue.held(&user.granted_scopes);
        match scopes.iter().find(|s| !held.contains(s.as_str())) {
            Some(scope) => refuse(scope, "is restricted and has not been granted to this user"),
            None => Ok(()),
        }
    }

    /// The owner's clients with their keys (never the keys' secrets).
    pub async fn list(&self, owner: UserId) -> Result<Vec<ClientView>> {
        let found = self.0.store.clients.list_clients(owner).await?;
        Ok(found.into_iter().map(ClientView::from).collect())
    }

    /// One of the owner's clients; someone else's, or a malformed id, is
    /// [`CoreError::NotFound`] (their existence is not revealed).
    pub async fn get(&self, owner: UserId, id: &str) -> Result<ClientView> {
        self.find_owned(owner, id).await.map(ClientView::from)
    }

    /// A client by id, whoever owns it; a malformed or unknown id is
    /// [`CoreError::NotFound`].
    async fn find(&self, id: &str) -> Result<ClientWithKeys> {
        let id = ClientId::parse(id).ok_or(CoreError::NotFound)?;
        self.0.store.clients.find_client(&id).await?.ok_or(CoreError::NotFound)
    }

    async fn find_owned(&self, owner: UserId, id: &str) -> Result<ClientWithKeys> {
        let found = self.find(id).await?;
        if found.client.owner_id != owner {
            return Err(CoreError::NotFound);
        }
        Ok(found)
    }

    /// Adds a key to one of the owner's clients (several may be live at once).
    pub async fn add_key(&self, owner: UserId, id: &str) -> Result<NewKey> {
        let found = self.find_owned(owner, id).await?;
        if found.client.client_type == ClientType::Public {
            return Err(CoreError::validation(
                "client_id",
                "a public client has no API keys: it authenticates with its client_id alone",
            ));
        }
        let key = self.new_key(&found.client.id);
        self.0.store.clients.add_key(&key.record).await?;
        tracing::info!(client_id = %found.client.id, key_id = %key.record.id, "API key created");
        Ok(key)
    }

    /// Revokes a key: it and every token exchanged with it stop working at once.
    pub async fn revoke_key(&self, owner: UserId, id: &str, key_id: &str) -> Result<()> {
        let cx = self.0;
        let found = self.find_owned(owner, id).await?;
        let key_id = uuid::Uuid::parse_str(key_id)
            .map(ApiKeyId)
            .map_err(|_| CoreError::NotFound)?;
        let entry = cx.tokens.revocation(RevocationKind::Key, key_id.0.to_string());
        if !cx.store.clients.revoke_key(&found.client.id, key_id, &entry).await? {
            return Err(CoreError::NotFound);
        }
        cx.tokens.revocations().apply([&entry]);
        cx.keys.remove(key_id);
        tracing::info!(client_id = %found.client.id, key_id = %key_id, "API key revoked");
        Ok(())
    }

    /// Sets and unsets static claims of any client (`sesame client claims`, the operator
    /// only): `set` is `NAME=JSON` each. Tokens issued from then on carry them (within a
    /// key-cache lifetime on other instances).
    pub async fn set_claims(&self, id: &str, set: &[String], unset: &[String]) -> Result<StaticClaims> {
        let cx = self.0;
        for _ in 0..8 {
            let found = self.find(id).await?;
            let from = found.client.claims;
            let to = from
                .edited(set, unset)
                .map_err(|e| CoreError::validation("claims", e.to_string()))?;
            if cx.store.clients.set_client_claims(&found.client.id, &from, &to).await? {
                cx.keys.remove_client(&found.client.id);
                tracing::info!(client_id = %found.client.id, "static claims changed");
                return Ok(to);
            }
        }
        Err(CoreError::internal(std::io::Error::other(
            "the client's claims kept changing under this command; try again",
        )))
    }

    /// Every client, or one owner's, with its keys (the operator's list).
    pub async fn list_all(&self, owner: Option<UserId>) -> Result<Vec<ClientView>> {
        match owner {
            Some(owner) => self.list(owner).await,
            None => {
                let found = self.0.store.clients.list_all_clients().await?;
                Ok(found.into_iter().map(ClientView::from).collect())
            }
        }
    }

    /// The owner of a client, for the operator's commands; [`CoreError::NotFound`] if
    /// there is no such client.
    pub async fn owner_of(&self, id: &str) -> Result<UserId> {
        Ok(self.find(id).await?.client.owner_id)
    }

    /// Deletes a client: all its keys and tokens stop working at once.
    pub async fn delete(&self, owner: UserId, id: &str) -> Result<()> {
        let cx = self.0;
        let id = ClientId::parse(id).ok_or(CoreError::NotFound)?;
        let entry = cx.tokens.revocation(RevocationKind::Client, id.as_str().to_owned());
        if !cx.store.clients.delete_client(owner, &id, &entry).await? {
            return Err(CoreError::NotFound);
        }
        cx.tokens.revocations().apply([&entry]);
        cx.keys.remove_client(&id);
        tracing::info!(client_id = %id, owner_id = %owner, "client deleted");
        Ok(())
    }
}
