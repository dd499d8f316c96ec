//! A registered client, its kind, and its redirect URIs (RFC 6749 §3.1.2, RFC 8252,
//! RFC 9700).

use std::fmt;

/// A registered third-party client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: crate::ClientId,
    pub owner_id: crate::UserId,
    pub name: String,
    pub scopes: crate::Scopes,
    pub created_at: time::OffsetDateTime,
    /// Copied into each of its tokens (§9).
    pub claims: crate::StaticClaims,
    pub client_type: ClientType,
    /// Where the authorization endpoint may send the browser back to (§10).
    pub redirect_uris: Vec<RedirectUri>,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientType {
    /// Holds API keys (`client_secret_basic`, `client_secret_post`).
    #[default]
    Confidential,
    /// Holds no secret (a native or browser app): `client_id` alone, PKCE always, and
    /// never the client-credentials grant.
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "confidential" => Some(Self::Confidential),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// The most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// The longest redirect URI accepted.
const MAX_URI_LENGTH: usize = 2_000;

/// A registered redirect URI: `https://` with a host; loopback `http://127.0.0.1` or
/// `http://[::1]` (any port at request time, RFC 8252 §7.3); or a private-use scheme
/// with a dot in it, such as `com.example.app:/callback` (RFC 8252 §7.1). Never a
/// fragment, a wildcard, `localhost` (RFC 8252 §8.3), or whitespace.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("{0:?} is not an absolute URI")]
    NotAbsolute(String),
    #[error("{0:?} has a fragment")]
    Fragment(String),
    #[error("{0:?} has a wildcard")]
    Wildcard(String),
    #[error("{0:?}: plain http is allowed only to the loopback addresses 127.0.0.1 and [::1]")]
    PlainHttp(String),
    #[error("{0:?}: use 127.0.0.1 or [::1], not localhost (RFC 8252 §8.3)")]
    Localhost(String),
    #[error("{0:?}: a custom scheme must be reverse-domain, such as com.example.app:/callback")]
    Scheme(String),
    #[error("at most {MAX_REDIRECT_URIS} redirect URIs")]
    TooMany,
}

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        let shown = || raw.chars().take(80).collect::<String>();
        if raw.len() > MAX_URI_LENGTH || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RedirectUriError::NotAbsolute(shown()));
        }
        let url = url::Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute(shown()))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(RedirectUriError::Fragment(shown()));
        }
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard(shown()));
        }
        match url.scheme() {
            "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(RedirectUriError::NotAbsolute(shown()));
                }
                if url.host_str() == Some("localhost") {
                    return Err(RedirectUriError::Localhost(shown()));
                }
            }
            "http" => match url.host_str() {
                Some("127.0.0.1" | "[::1]") => {}
                Some("localhost") => return Err(RedirectUriError::Localhost(shown())),
                _ => return Err(RedirectUriError::PlainHttp(shown())),
            },
            scheme => {
                if !scheme.contains('.') {
                    return Err(RedirectUriError::Scheme(shown()));
                }
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a loopback URI, whose port is chosen by the app at request time.
    fn loopback(&self) -> Option<url::Url> {
        let url = url::Url::parse(&self.0).ok()?;
        (url.scheme() == "http").then_some(url)
    }

    /// Whether `presented` is this URI: the exact string, except that a loopback URI
    /// matches on any port (RFC 8252 §7.3).
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        let (Some(mut registered), Ok(mut asked)) = (self.loopback(), url::Url::parse(presented)) else {
            return false;
        };
        if asked.scheme() != "http" || presented.contains('#') {
            return false;
        }
        // Compare with both ports removed, and the rest as written.
        let cleared = registered.set_port(None).is_ok() && asked.set_port(None).is_ok();
        cleared && registered.as_str() == asked.as_str() && same_text_but_port(&self.0, presented)
    }
}

/// Whether two loopback URIs are the same text once the `:port` after the host is taken
/// out of each (so no normalisation by the parser can make two different strings match).
fn same_text_but_port(registered: &str, presented: &str) -> bool {
    fn without_port(uri: &str) -> Option<String> {
        let rest = uri.strip_prefix("http://")?;
        let host_end = if rest.starts_with('[') {
            rest.find(']')? + 1
        } else {
            rest.find([':', '/', '?']).unwrap_or(rest.len())
        };
        let (host, after) = rest.split_at(host_end);
        let after = match after.strip_prefix(':') {
            Some(port_and_rest) => {
                let digits = port_and_rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(port_and_rest.len());
                if digits == 0 {
                    return None;
                }
                &port_and_rest[digits..]
            }
            None => after,
        };
        Some(format!("http://{host}{after}"))
    }
    without_port(registered).is_some_and(|r| Some(r) == without_port(presented))
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.0)
    }
}

/// Checks a client's redirect URIs: each valid, at most [`MAX_REDIRECT_URIS`], duplicates
/// dropped.
pub fn parse_redirect_uris<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Vec<RedirectUri>, RedirectUriError> {
    let mut uris: Vec<RedirectUri> = Vec::new();
    for text in raw {
        let uri = RedirectUri::parse(text)?;
        if !uris.contains(&uri) {
            uris.push(uri);
        }
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(RedirectUriError::TooMany);
        }
    }
    Ok(uris)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_8252_kinds_are_accepted_and_everything_else_refused() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?tenant=1",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8400/callback",
            "http://[::1]:53000/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app:callback",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/callback",
            "app.example.com/callback",
            "https://app.example.com/cb#frag",
            "https://*.example.com/cb",
            "https://app.example.com/cb/*",
            "http://app.example.com/cb",
            "http://localhost:8080/cb",
            "https://localhost/cb",
            "myapp:/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://app.example.com/a b",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("https://app.example.com/{i}")).collect();
        assert_eq!(
            parse_redirect_uris(many.iter().map(String::as_str)),
            Err(RedirectUriError::TooMany)
        );
    }

    #[test]
    fn matching_is_exact_except_for_the_loopback_port() {
        // Each registered URI, what it matches, and what it does not.
        let cases: [(&str, &[&str], &[&str]); 2] = [
            (
                "https://app.example.com/cb",
                &["https://app.example.com/cb"],
                &[
                    "https://app.example.com/cb/",
                    "https://APP.example.com/cb",
                    "https://app.example.com:443/cb",
                    "https://app.example.com/cb?x=1",
                ],
            ),
            (
                "http://127.0.0.1/cb",
                &["http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"],
                &[
                    "http://127.0.0.1:51234/cb2",
                    "http://127.0.0.1:51234/cb?x=1",
                    "http://[::1]:51234/cb",
                    "http://localhost:51234/cb",
                    "https://127.0.0.1:51234/cb",
                    "http://127.0.0.1:51234/cb#f",
                    "http://127.0.0.1:/cb",
                ],
            ),
        ];
        for (registered, matched, refused) in cases {
            let uri = RedirectUri::parse(registered).expect("valid");
            for other in matched {
                assert!(uri.matches(other), "{registered} ~ {other}");
            }
            for other in refused {
                assert!(!uri.matches(other), "{registered} !~ {other}");
            }
        }
        let v6 = RedirectUri::parse("http://[::1]:8000/cb").expect("valid");
        assert!(v6.matches("http://[::1]:9000/cb"));
        let native = RedirectUri::parse("com.example.app:/cb").expect("valid");
        assert!(native.matches("com.example.app:/cb") && !native.matches("com.example.app:/cb2"));
    }
}
