//! Accounts: registration, password changes, disabling.

use sesame_domain::password::Verification;
use sesame_domain::principal::UserSession;
use sesame_domain::{Email, Password, Scopes, User, UserId};
use sesame_storage::{GrantChange, GrantOutcome, RevocationKind, UserRecord};

use crate::Context;
use crate::error::{CoreError, FieldError, Result};
use crate::hashing::Lane;

/// Who is creating an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registrar<'a> {
    /// The person themselves (`POST /users`) from this client IP: refused when
    /// registration is closed, and throttled per IP.
    SelfService { ip: &'a str },
    /// An operator (`sesame user add`): always allowed.
    Operator,
}

/// The account service.
pub struct Accounts<'a>(pub(crate) &'a Context);

impl Accounts<'_> {
    /// Checks the email and password (each field's problem reported), hashes the password
    /// and stores a new user. A taken email is [`CoreError::EmailTaken`].
    ///
    /// A self-service registration is charged to its IP's budget before anything else,
    /// whatever its outcome (a taken email or an invalid field included), and a taken
    /// email is answered before any hashing.
    pub async fn register(&self, email: &str, password: String, by: Registrar<'_>) -> Result<User> {
        let cx = self.0;
        if let Registrar::SelfService { ip } = by {
            if !cx.settings.registration_open {
                return Err(CoreError::RegistrationClosed);
            }
            cx.throttle.registration(ip).reserve().await?;
        }
        let email = Email::parse(email);
        let password = cx.settings.passwords.parse_new(password);
        let (email, password) = match (email, password) {
            (Ok(email), Ok(password)) => (email, password),
            (email, password) => {
                let mut errors = Vec::new();
                if let Err(e) = email {
                    errors.push(FieldError::new("email", e.to_string()));
                }
                if let Err(e) = password {
                    errors.push(FieldError::new("password", e.to_string()));
                }
                return Err(CoreError::Validation(errors));
            }
        };
        if cx.store.users.find_user_by_email(&email).await?.is_some() {
            return Err(CoreError::EmailTaken);
        }
        let password_hash = cx.hashing.hash(password).await?;
        let user = User {
            id: UserId::new(),
            email,
            created_at: cx.clock.now(),
        };
        cx.store.users.create_user(&user, &password_hash).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// A user by email, enabled or not.
    /// An active user by id ([`CoreError::NotFound`] if there is none, or they are
    /// disabled).
    pub async fn active_by_id(&self, id: UserId) -> Result<User> {
        let found = self.0.store.users.find_user_by_id(id).await?;
        found
            .filter(|record| !record.is_disabled())
            .map(|record| record.user)
            .ok_or(CoreError::NotFound)
    }

    pub async fn find(&self, email: &str) -> Result<UserRecord> {
        let email = Email::parse(email).map_err(|e| CoreError::validation("email", e.to_string()))?;
        self.0
            .store
            .users
            .find_user_by_email(&email)
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// Changes the signed-in user's password after checking the current one (throttled
    /// like a login: a stolen session must not become a password oracle), and ends every
    /// other session of theirs.
    pub async fn change_password(&self, session: &UserSession, current: String, new: String, ip: &str) -> Result<()> {
        let cx = self.0;
        let new_password = cx
            .settings
            .passwords
            .parse_new(new)
            .map_err(|e| CoreError::validation("new_password", e.to_string()))?;
        let current = Password::for_login(current).map_err(|_| CoreError::WrongCurrentPassword)?;
        let attempt = cx.throttle.password(session.user.email.as_str(), ip);
        attempt.reserve().await?;
        let record = cx
            .store
            .users
            .find_user_by_id(session.user.id)
            .await?
            .ok_or(CoreError::SessionEnded)?;
        let stored = record.password_hash;
        let verification = cx
            .hashing
            .run_in(Lane::Other, move |h| h.verify(&current, &stored))
            .await?;
        if verification == Verification::Mismatch {
            attempt.failed().await;
            return Err(CoreError::WrongCurrentPassword);
        }
        attempt.succeeded().await;
        let new_hash = cx.hashing.hash(new_password).await?;
        let entry = cx.tokens.revocation(RevocationKind::Owner, String::new());
        let revoked = cx
            .store
            .users
            .change_password(session.user.id, &new_hash, session.session_id, entry)
            .await?;
        cx.tokens.revocations().apply(&revoked);
        cx.sessions.remove_user(session.user.id, Some(session.session_id));
        tracing::info!(user_id = %session.user.id, ip = %ip, "password changed; other sessions, refresh families and delegated tokens ended");
        Ok(())
    }

    /// Disables a user, and ends at once everything that acts for them: their sessions,
    /// their clients' keys (refused while the user is disabled) and every token issued
    /// to their clients before now (an owner revocation, seen by other instances within
    /// their next poll).
    pub async fn disable(&self, email: &str) -> Result<UserId> {
        let cx = self.0;
        let email = Email::parse(email).map_err(|e| CoreError::validation("email", e.to_string()))?;
        let revocation = cx.tokens.revocation(RevocationKind::Owner, String::new());
        let disabled = cx
            .store
            .users
            .disable_user(&email, revocation)
            .await?
            .ok_or(CoreError::NotFound)?;
        cx.tokens.revocations().apply([&disabled.revocation]);
        cx.sessions.remove_user(disabled.id, None);
        cx.keys.remove_owner(disabled.id);
        tracing::info!(user_id = %disabled.id, "user disabled; sessions, client keys and tokens ended");
        Ok(disabled.id)
    }

    /// Gives a user restricted scopes of the catalogue (`sesame user grant`); the
    /// scopes they now hold, with the granted ones.
    pub async fn grant_scopes(&self, email: &str, scopes: &[String]) -> Result<Scopes> {
        let catalogue = &self.0.settings.scopes;
        let asked = Self::restricted_scopes(catalogue, scopes)?;
        self.change_grants(email, |granted| {
            Scopes::from_scopes(granted.iter().chain(asked.iter()).cloned())
        })
        .await
    }

    /// Takes restricted scopes away from a user (`sesame user revoke`): no token issued
    /// afterwards to their clients carries them, and their clients' earlier tokens are
    /// revoked at once here and within a poll elsewhere.
    pub async fn revoke_scopes(&self, email: &str, scopes: &[String]) -> Result<Scopes> {
        let asked = Scopes::from_list(scopes.iter().map(String::as_str))
            .map_err(|e| CoreError::validation("scopes", e.to_string()))?;
        self.change_grants(email, |granted| granted.filter(|s| !asked.contains(s.as_str())))
            .await
    }

    /// The scopes asked for, each of which must be a restricted scope of the catalogue.
    fn restricted_scopes(catalogue: &sesame_domain::Catalogue, scopes: &[String]) -> Result<Scopes> {
        let asked = Scopes::from_list(scopes.iter().map(String::as_str))
            .map_err(|e| CoreError::validation("scopes", e.to_string()))?;
        if !catalogue.is_declared() {
            return Err(CoreError::validation(
                "scopes",
                "there is no scope catalogue: every user holds every scope (set SESAME_SCOPES and SESAME_RESTRICTED_SCOPES)",
            ));
        }
        if let Some(scope) = asked.iter().find(|s| !catalogue.is_restricted(s.as_str())) {
            let why = if catalogue.contains(scope.as_str()) {
                "is self-service: every user holds it"
            } else {
                "is not in the catalogue"
            };
            return Err(CoreError::validation(
                "scopes",
                format!("scope {:?} {why}", scope.as_str()),
            ));
        }
        Ok(asked)
    }

    /// Applies `change` to a user's granted scopes, retrying if another change lands
    /// between the read and the write; taking any away revokes their clients' tokens.
    async fn change_grants(&self, email: &str, change: impl Fn(&Scopes) -> Scopes) -> Result<Scopes> {
        let cx = self.0;
        for _ in 0..8 {
            let record = self.find(email).await?;
            let from = record.granted_scopes;
            let to = change(&from);
            if to == from {
                return Ok(to);
            }
            let takes_away = from.iter().any(|s| !to.contains(s.as_str()));
            let revoke = takes_away.then(|| cx.tokens.revocation(RevocationKind::Owner, String::new()));
            let outcome = cx
                .store
                .users
                .change_granted_scopes(&GrantChange {
                    user: record.user.id,
                    from: &from,
                    to: &to,
                    revoke,
                })
                .await?;
            let GrantOutcome::Changed { revocation } = outcome else {
                continue;
            };
            if let Some(revocation) = revocation {
                cx.tokens.revocations().apply([&revocation]);
                cx.keys.remove_owner(record.user.id);
            }
            // Sessions hold what their user holds: read again on the next request.
            cx.sessions.forget_user(record.user.id);
            tracing::info!(user_id = %record.user.id, granted = %to.to_text(), "granted scopes changed");
            return Ok(to);
        }
        Err(CoreError::internal(std::io::Error::other(
            "the user's scopes kept changing under this command; try again",
        )))
    }

    /// Lifts a disable: the user may sign in again and their clients' keys that were not
    /// revoked work again. Nothing the disable ended comes back.
    pub async fn enable(&self, email: &str) -> Result<UserId> {
        let cx = self.0;
        let email = Email::parse(email).map_err(|e| CoreError::validation("email", e.to_string()))?;
        let id = cx.store.users.enable_user(&email).await?.ok_or(CoreError::NotFound)?;
        tracing::info!(user_id = %id, "user enabled");
        Ok(id)
    }
}
