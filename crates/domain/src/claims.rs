//! A client's static claims (§9): JSON values the operator attaches to every token the
//! client is issued, as LexikJWT's `jwt_created` event lets one add data to a JWT.

use serde_json::{Map, Value};

/// The largest claims object, serialized as compact JSON.
pub const MAX_CLAIMS_BYTES: usize = 1024;

/// Names a token already gives a meaning to: registered (RFC 7519, RFC 9068, RFC 8693)
/// and sesame's own. None can be set.
pub const RESERVED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "owner",
    "owner_version",
    "user_version",
    "grant_version",
    "refresh_family",
    "key_id",
    "auth_time",
    "acr",
    "amr",
    "sid",
    "cnf",
    "act",
    "may_act",
];

/// A client's static claims: a JSON object of at most [`MAX_CLAIMS_BYTES`] with no
/// reserved name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticClaims(Map<String, Value>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("claim {0:?} is reserved: tokens already give it a meaning")]
    Reserved(String),
    #[error("a claim name must be 1 to 64 characters, without control characters")]
    BadName,
    #[error("the value of {0:?} is not JSON (a string needs its quotes: '\"acme\"')")]
    NotJson(String),
    #[error("the claims come to {0} bytes as compact JSON; at most {MAX_CLAIMS_BYTES} are allowed")]
    TooLarge(usize),
    #[error("stored claims are not a JSON object")]
    NotAnObject,
}

impl StaticClaims {
    /// Parses stored claims (a JSON object), checking every rule.
    pub fn parse(text: &str) -> Result<Self, ClaimsError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Self::checked(map),
            _ => Err(ClaimsError::NotAnObject),
        }
    }

    fn checked(map: Map<String, Value>) -> Result<Self, ClaimsError> {
        for name in map.keys() {
            check_name(name)?;
        }
        let claims = Self(map);
        let size = claims.to_json().len();
        if size > MAX_CLAIMS_BYTES {
            return Err(ClaimsError::TooLarge(size));
        }
        Ok(claims)
    }

    /// These claims with `set` (`NAME=JSON` each) applied, then `unset` removed.
    pub fn edited(&self, set: &[String], unset: &[String]) -> Result<Self, ClaimsError> {
        let mut map = self.0.clone();
        for assignment in set {
            let (name, json) = assignment.split_once('=').ok_or(ClaimsError::BadName)?;
            check_name(name)?;
            let value = serde_json::from_str(json).map_err(|_| ClaimsError::NotJson(name.to_owned()))?;
            map.insert(name.to_owned(), value);
        }
        for name in unset {
            map.remove(name);
        }
        Self::checked(map)
    }

    /// The compact JSON object, as stored.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn check_name(name: &str) -> Result<(), ClaimsError> {
    if RESERVED.contains(&name) {
        return Err(ClaimsError::Reserved(name.to_owned()));
    }
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ClaimsError::BadName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_set_and_unset_as_json_values() {
        let claims = StaticClaims::default()
            .edited(&["tenant=\"acme\"".into(), "tier=3".into(), "flags=[1,2]".into()], &[])
            .expect("valid");
        assert_eq!(claims.to_json(), r#"{"flags":[1,2],"tenant":"acme","tier":3}"#);
        assert_eq!(StaticClaims::parse(&claims.to_json()), Ok(claims.clone()));
        let fewer = claims.edited(&[], &["flags".into()]).expect("valid");
        assert_eq!(fewer.to_json(), r#"{"tenant":"acme","tier":3}"#);
    }

    #[test]
    fn reserved_names_bad_json_and_oversized_objects_are_refused() {
        let none = StaticClaims::default();
        for name in RESERVED {
            assert_eq!(
                none.edited(&[format!("{name}=1")], &[]),
                Err(ClaimsError::Reserved((*name).to_owned()))
            );
        }
        assert_eq!(
            none.edited(&["tenant=acme".into()], &[]),
            Err(ClaimsError::NotJson("tenant".into()))
        );
        assert_eq!(none.edited(&["tenant".into()], &[]), Err(ClaimsError::BadName));
        assert_eq!(none.edited(&["=1".into()], &[]), Err(ClaimsError::BadName));
        // `{"blob":"…"}` is 11 bytes around its value: 1013 x's make exactly 1024.
        let big = format!("blob=\"{}\"", "x".repeat(1014));
        assert!(matches!(none.edited(&[big], &[]), Err(ClaimsError::TooLarge(_))));
        let fits = format!("blob=\"{}\"", "x".repeat(1013));
        assert!(none.edited(&[fits], &[]).is_ok());
        assert_eq!(StaticClaims::parse("[1]"), Err(ClaimsError::NotAnObject));
        assert_eq!(
            StaticClaims::parse(r#"{"sub":"x"}"#),
            Err(ClaimsError::Reserved("sub".into()))
        );
    }
}
