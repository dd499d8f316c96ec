//! Accounts: registration, password changes, disabling.

use sesame_domain::password::Verification;
use sesame_domain::principal::UserSession;
use sesame_domain::{Email, Password, User, UserId};
use sesame_storage::{RevocationKind, UserRecord};

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
        cx.store
            .users
            .change_password(session.user.id, &new_hash, session.session_id)
            .await?;
        cx.sessions.remove_user(session.user.id, Some(session.session_id));
        tracing::info!(user_id = %session.user.id, ip = %ip, "password changed; other sessions ended");
        Ok(())
    }

    /// Disables a user, and ends at once everything that acts for them: their sessions,
    /// their clients' keys (refused while the user is disabled) and every token issued
    /// to their clients before now (an owner revocation, seen by other instances within
    /// their next poll).
    pub async fn disable(&self, email: &str) -> Result<UserId> {
        let cx = self.0;
        let email = Email::parse(email).map_err(|e| CoreError::validation("email", e.to_string()))?;
        let keep_until = cx.tokens.revocation(RevocationKind::Owner, String::new()).expires_at;
        let disabled = cx
            .store
            .users
            .disable_user(&email, cx.clock.now(), keep_until)
            .await?
            .ok_or(CoreError::NotFound)?;
        cx.tokens.revocations().apply([&disabled.revocation]);
        cx.sessions.remove_user(disabled.id, None);
        cx.keys.remove_owner(disabled.id);
        tracing::info!(user_id = %disabled.id, "user disabled; sessions, client keys and tokens ended");
        Ok(disabled.id)
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
