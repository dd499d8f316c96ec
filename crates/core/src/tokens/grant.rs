//! Token requests: one type for every grant `POST /login` serves (client credentials
//! today; the authorization code and refresh grants and `resource` slot in here), and the
//! client authentication it carried, decided here rather than in the HTTP layer.

use secrecy::SecretString;

use super::PresentedClient;

/// How a client proved itself in a request (RFC 6749 §2.3.1). Its `Debug` hides the
/// secrets.
#[derive(Debug)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`): a failure is answered with a Basic challenge.
    Basic { client_id: String, secret: SecretString },
    /// `client_id` and `client_secret` in the body (`client_secret_post`); the id may be
    /// left out, the key naming its client.
    Post {
        client_id: Option<String>,
        secret: SecretString,
    },
    /// sesame's JSON body, `{"api_key": …}`.
    ApiKey { secret: SecretString },
    /// `client_id` alone (`none`): how a public client identifies itself (§10).
    None { client_id: String },
}

impl ClientAuth {
    /// Whether the client used HTTP Basic.
    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    pub(crate) fn presented(&self) -> PresentedClient {
        match self {
            Self::Basic { client_id, secret } => PresentedClient {
                client_id: Some(client_id.clone()),
                secret: secret.clone(),
            },
            Self::Post { client_id, secret } => PresentedClient {
                client_id: client_id.clone(),
                secret: secret.clone(),
            },
            Self::ApiKey { secret } => PresentedClient {
                client_id: None,
                secret: secret.clone(),
            },
            // No secret: never authenticates a confidential client.
            Self::None { client_id } => PresentedClient {
                client_id: Some(client_id.clone()),
                secret: SecretString::default(),
            },
        }
    }
}

/// The grant a token request asks for.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.4: the client acts as itself.
    ClientCredentials,
    /// RFC 6749 §4.1.3 with RFC 7636: a code the user's browser brought back.
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    /// RFC 6749 §6: a refresh token, rotated.
    RefreshToken { refresh_token: String },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials => f.write_str("ClientCredentials"),
            Self::AuthorizationCode { redirect_uri, .. } => f
                .debug_struct("AuthorizationCode")
                .field("redirect_uri", redirect_uri)
                .finish_non_exhaustive(),
            Self::RefreshToken { .. } => f.write_str("RefreshToken([redacted])"),
        }
    }
}

/// One token request, as parsed from any body `POST /login` accepts for tokens.
#[derive(Debug)]
pub struct GrantRequest {
    pub grant: Grant,
    pub client: ClientAuth,
    /// Space-separated scopes to narrow the token to; all the client's when absent.
    pub scope: Option<String>,
    /// RFC 8707 `resource`s the token is for (its `aud`); `SESAME_AUDIENCE` when none.
    pub resources: Vec<String>,
}

/// A token response (RFC 6749 §5.1).
pub struct GrantResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    /// The next refresh token of a delegated grant's family (§10).
    pub refresh_token: Option<String>,
}

impl From<super::IssuedToken> for GrantResponse {
    fn from(issued: super::IssuedToken) -> Self {
        Self {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: issued.claims.scope,
            refresh_token: None,
        }
    }
}

impl From<crate::authorizations::Delegated> for GrantResponse {
    fn from(delegated: crate::authorizations::Delegated) -> Self {
        Self {
            refresh_token: Some(delegated.refresh.expose().to_owned()),
            ..delegated.issued.into()
        }
    }
}

impl std::fmt::Debug for GrantResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}
