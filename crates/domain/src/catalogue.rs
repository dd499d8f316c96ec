//! The scope catalogue: which scopes exist, which any user may put on a client
//! (self-service), and which only the users the operator granted them to (restricted).

use std::collections::BTreeMap;

use crate::client::{Scope, Scopes};

/// One declared scope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeInfo {
    /// Shown on the consent page and in metadata.
    pub description: Option<String>,
    /// Only users granted it may hold it.
    pub restricted: bool,
}

/// The operator's scope catalogue, or none (the development default: every well-formed
/// scope exists and is self-service).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Catalogue {
    #[default]
    Open,
    Declared(BTreeMap<Scope, ScopeInfo>),
}

/// What a user holds: every scope (no catalogue), or exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Every,
    Only(Scopes),
}

impl Held {
    pub fn contains(&self, scope: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Only(scopes) => scopes.contains(scope),
        }
    }

    /// The scopes of `scopes` held, in their order.
    pub fn keep(&self, scopes: &Scopes) -> Scopes {
        match self {
            Self::Every => scopes.clone(),
            Self::Only(held) => scopes.filter(|s| held.contains(s.as_str())),
        }
    }
}

impl Catalogue {
    /// A catalogue of the given self-service and restricted scopes (a scope in both is
    /// restricted).
    pub fn declared(entries: impl IntoIterator<Item = (Scope, ScopeInfo)>) -> Self {
        Self::Declared(entries.into_iter().collect())
    }

    pub fn is_declared(&self) -> bool {
        matches!(self, Self::Declared(_))
    }

    /// The declared scopes, in order; none without a catalogue.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Open => Vec::new(),
            Self::Declared(entries) => entries.keys().map(|s| s.as_str().to_owned()).collect(),
        }
    }

    pub fn get(&self, scope: &str) -> Option<&ScopeInfo> {
        match self {
            Self::Open => None,
            Self::Declared(entries) => entries.iter().find(|(s, _)| s.as_str() == scope).map(|(_, info)| info),
        }
    }

    /// Whether the scope exists: any well-formed scope without a catalogue.
    pub fn contains(&self, scope: &str) -> bool {
        !self.is_declared() || self.get(scope).is_some()
    }

    /// Whether the scope is one only granted users hold.
    pub fn is_restricted(&self, scope: &str) -> bool {
        self.get(scope).is_some_and(|info| info.restricted)
    }

    /// Whether any declared scope is restricted.
    pub fn has_restricted(&self) -> bool {
        match self {
            Self::Open => false,
            Self::Declared(entries) => entries.values().any(|info| info.restricted),
        }
    }

    /// The first of `scopes` outside the catalogue, if any.
    pub fn unknown<'a>(&self, scopes: &'a Scopes) -> Option<&'a Scope> {
        scopes.iter().find(|s| !self.contains(s.as_str()))
    }

    /// What a user holds: every self-service scope, and the restricted ones among
    /// `granted` (the operator's grants; a grant of a scope no longer in the catalogue, or
    /// no longer restricted, adds nothing).
    pub fn held(&self, granted: &Scopes) -> Held {
        match self {
            Self::Open => Held::Every,
            Self::Declared(entries) => Held::Only(Scopes::from_scopes(
                entries
                    .iter()
                    .filter(|(scope, info)| !info.restricted || granted.contains(scope.as_str()))
                    .map(|(scope, _)| scope.clone()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).expect("valid")
    }

    fn catalogue() -> Catalogue {
        Catalogue::declared([
            (scope("notes:read"), ScopeInfo::default()),
            (
                scope("admin"),
                ScopeInfo {
                    description: Some("Administer".into()),
                    restricted: true,
                },
            ),
        ])
    }

    #[test]
    fn without_a_catalogue_every_scope_exists_and_is_held() {
        let open = Catalogue::Open;
        assert!(open.contains("anything"));
        assert!(!open.is_restricted("admin"));
        assert_eq!(open.held(&Scopes::default()), Held::Every);
        assert!(open.names().is_empty());
    }

    #[test]
    fn a_catalogue_names_its_scopes_and_holds_restricted_ones_only_when_granted() {
        let catalogue = catalogue();
        assert_eq!(catalogue.names(), ["admin", "notes:read"]);
        assert!(catalogue.contains("admin") && !catalogue.contains("notes:write"));
        let asked = Scopes::from_list(["notes:read", "notes:write"]).expect("valid");
        assert_eq!(catalogue.unknown(&asked).map(Scope::as_str), Some("notes:write"));

        let none = catalogue.held(&Scopes::default());
        assert!(none.contains("notes:read") && !none.contains("admin"));
        let granted = Scopes::from_list(["admin", "gone"]).expect("valid");
        let held = catalogue.held(&granted);
        assert!(held.contains("admin") && !held.contains("gone"));
        let both = Scopes::from_list(["admin", "notes:read"]).expect("valid");
        assert_eq!(none.keep(&both).to_text(), "notes:read");
    }
}
