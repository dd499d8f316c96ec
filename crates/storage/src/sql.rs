//! The statements both backends run as they are. sqlx binds `$N` placeholders on SQLite
//! too, and the two schemas name every table and column alike, so only what the dialects
//! really disagree on (array parameters, the database's own clock) stays in a backend's
//! module.
//!
//! Column lists are macros so that every statement stays a `&'static str` (sqlx's guard
//! against SQL built from runtime strings). Selected columns are aliased where a join
//! would repeat a name; `shared.rs` reads them by these names.

macro_rules! user_columns {
    () => {
        "u.id, u.email, u.password_hash, u.created_at, u.disabled_at, u.credential_version, u.granted_scopes, \
         u.token_version"
    };
}
macro_rules! session_columns {
    () => {
        "s.id AS s_id, s.user_id, s.csrf_token, s.created_at AS s_created_at, s.last_seen_at, s.user_agent, s.ip, \
         s.credential_version AS s_credential_version, s.frontend"
    };
}
macro_rules! client_columns {
    () => {
        "c.id AS c_id, c.owner_id, c.name, c.scopes, c.created_at AS c_created_at, c.claims, c.client_type, \
         c.redirect_uris"
    };
}
macro_rules! key_columns {
    () => {
        "k.id AS k_id, k.client_id, k.key_hash, k.created_at AS k_created_at, k.last_used_at, k.revoked_at"
    };
}

// Users.

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const USER_BY_EMAIL: &str = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = $1");
pub(crate) const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1");
pub(crate) const UPDATE_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
/// A rehash at login: only over the hash it verified (compare-and-swap), never over a
/// password changed meanwhile.
pub(crate) const REHASH_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3";
pub(crate) const BUMP_CREDENTIAL_VERSION: &str =
    "UPDATE users SET credential_version = credential_version + 1 WHERE id = $1 RETURNING credential_version";
pub(crate) const SET_SESSION_VERSION: &str = "UPDATE sessions SET credential_version = $2 WHERE id = $1";
/// Keeps the first time a user was disabled; every disable bumps the credential version,
/// so the tokens issued before it are told apart from those issued after an enable.
pub(crate) const DISABLE_USER: &str = "UPDATE users SET disabled_at = COALESCE(disabled_at, $2), \
     credential_version = credential_version + 1, token_version = token_version + 1 WHERE email = $1 \
     RETURNING id, token_version";
/// Changes the granted scopes only if they are still what the caller read (no lost update
/// between two operators); `$4` is 1 to bump the token version (a scope taken away).
pub(crate) const SET_GRANTED_SCOPES: &str = "UPDATE users SET granted_scopes = $3, token_version = token_version + $4 \
     WHERE id = $1 AND granted_scopes = $2 RETURNING token_version";
pub(crate) const ENABLE_USER: &str = "UPDATE users SET disabled_at = NULL WHERE email = $1 RETURNING id";

// Sessions.

/// Only while the user's credential version is still the one the login verified
/// against, and the user is not disabled: a password change, disable or "log out
/// everywhere" committed during the login's hashing leaves it without a session.
pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id, user_id, handle_hash, csrf_token, created_at, last_seen_at, user_agent, ip, credential_version, frontend) \
     SELECT $1, $2, $3, $4, $5, $5, $6, $7, $8, $9 WHERE EXISTS \
     (SELECT 1 FROM users WHERE id = $2 AND credential_version = $8 AND disabled_at IS NULL)";
pub(crate) const SESSION_BY_HASH: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", ",
    user_columns!(),
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.handle_hash = $1"
);
/// Only ever moves `last_seen_at` forward, whatever order concurrent touches land in.
pub(crate) const TOUCH_SESSION: &str = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2";
pub(crate) const DELETE_SESSION_BY_HASH: &str = "DELETE FROM sessions WHERE handle_hash = $1 RETURNING user_id";
pub(crate) const DELETE_USER_SESSION: &str = "DELETE FROM sessions WHERE user_id = $1 AND id = $2";
pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";
pub(crate) const DELETE_USER_SESSIONS_BUT: &str = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2";
pub(crate) const LIST_USER_SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = $1 AND s.last_seen_at > $2 AND s.created_at > $3 \
     ORDER BY s.created_at DESC, s.id DESC"
);
pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE last_seen_at <= $1 OR created_at <= $2";

// Login failures.

pub(crate) const CLEAR_FAILURES: &str = "DELETE FROM login_failures WHERE key = $1 AND attempt IS NULL";
pub(crate) const RELEASE_ATTEMPT: &str = "DELETE FROM login_failures WHERE attempt = $1";
pub(crate) const SETTLE_ATTEMPT: &str = "UPDATE login_failures SET attempt = NULL WHERE attempt = $1";
pub(crate) const COUNT_FAILURES: &str = "SELECT count(*) AS n FROM login_failures WHERE key = $1 AND failed_at > $2";
pub(crate) const INSERT_RESERVATION: &str = "INSERT INTO login_failures (key, failed_at, attempt) VALUES ($1, $2, $3)";
pub(crate) const PRUNE_FAILURES: &str = "DELETE FROM login_failures WHERE failed_at <= $1";

// Clients and their keys.

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (id, owner_id, name, scopes, created_at, claims, client_type, redirect_uris) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// Only if the claims are still what the caller read (no lost update between operators).
pub(crate) const SET_CLIENT_CLAIMS: &str = "UPDATE clients SET claims = $3 WHERE id = $1 AND claims = $2";
pub(crate) const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, client_id, key_hash, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const LIST_CLIENTS: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients c WHERE c.owner_id = $1 ORDER BY c.created_at, c.id"
);
/// The keys of every client of an owner, in one query for the whole list.
pub(crate) const KEYS_OF_OWNER: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k JOIN clients c ON c.id = k.client_id WHERE c.owner_id = $1 ORDER BY k.created_at, k.id"
);
pub(crate) const KEYS_OF_CLIENT: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k WHERE k.client_id = $1 ORDER BY k.created_at, k.id"
);
pub(crate) const CLIENT_BY_ID: &str = concat!("SELECT ", client_columns!(), " FROM clients c WHERE c.id = $1");
/// Its keys go with it (`ON DELETE CASCADE`).
pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE id = $1 AND owner_id = $2";
/// Keeps the first revocation time of a key revoked twice.
pub(crate) const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND client_id = $2";
/// With the owner's state: a disabled owner's keys are refused.
pub(crate) const KEY_BY_ID: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", ",
    client_columns!(),
    ", u.disabled_at AS owner_disabled_at, u.token_version AS owner_version, u.granted_scopes AS owner_granted",
    " FROM api_keys k JOIN clients c ON c.id = k.client_id JOIN users u ON u.id = c.owner_id WHERE k.id = $1"
);
pub(crate) const LIST_ALL_CLIENTS: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients c ORDER BY c.created_at, c.id"
);
pub(crate) const ALL_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k ORDER BY k.created_at, k.id"
);
/// Only ever moves `last_used_at` forward, whatever order concurrent touches land in.
pub(crate) const TOUCH_KEY: &str =
    "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

// Authorization codes and grants (§10).

macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, redirect_uri, code_challenge, scopes, resources, auth_time, created_at, \
         expires_at, issued_jti, grant_version"
    };
}
pub(crate) const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, \
     code_challenge, scopes, resources, auth_time, created_at, expires_at, grant_version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// The first redemption wins: the statement itself decides, whatever runs concurrently.
pub(crate) const REDEEM_CODE: &str = concat!(
    "UPDATE authorization_codes SET spent_at = $2 WHERE code_hash = $1 AND spent_at IS NULL RETURNING ",
    code_columns!()
);
pub(crate) const CODE_BY_HASH: &str = concat!(
    "SELECT ",
    code_columns!(),
    ", CAST(family_id AS TEXT) AS family_id FROM authorization_codes WHERE code_hash = $1"
);
pub(crate) const SET_CODE_ISSUED: &str =
    "UPDATE authorization_codes SET issued_jti = $2, family_id = $3 WHERE code_hash = $1";
pub(crate) const DELETE_EXPIRED_CODES: &str = "DELETE FROM authorization_codes WHERE expires_at <= $1";
pub(crate) const GRANT_SCOPES: &str = "SELECT scopes, version FROM grants WHERE user_id = $1 AND client_id = $2";
/// A user's live grants (an ended one keeps its row, with no scopes, for its version).
pub(crate) const LIST_GRANTS: &str = "SELECT g.client_id, c.name, g.scopes, g.created_at, g.last_used_at \
     FROM grants g JOIN clients c ON c.id = g.client_id WHERE g.user_id = $1 AND g.scopes <> '' \
     ORDER BY g.created_at, g.client_id";
/// A disabled user's grants all end (their tokens are revoked through the user's token
/// version; the versions make a later consent start afresh).
pub(crate) const END_USER_GRANTS: &str =
    "UPDATE grants SET scopes = '', version = version + 1 WHERE user_id = $1 AND scopes <> ''";
/// A password change ends what was delegated under each live grant, keeping the consent.
pub(crate) const BUMP_USER_GRANTS: &str =
    "UPDATE grants SET version = version + 1 WHERE user_id = $1 AND scopes <> '' RETURNING client_id, version";
pub(crate) const END_GRANT: &str = "UPDATE grants SET scopes = '', version = version + 1 \
     WHERE user_id = $1 AND client_id = $2 AND scopes <> '' RETURNING version";
/// A first grant; a concurrent first grant makes this insert nothing (the caller reads
/// again and widens it instead).
pub(crate) const INSERT_GRANT: &str = "INSERT INTO grants (user_id, client_id, scopes, created_at, last_used_at) \
     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO NOTHING";
/// Widens a grant only from the scopes the caller read (no lost consent between two
/// approvals at once).
pub(crate) const WIDEN_GRANT: &str = "UPDATE grants SET scopes = $4, last_used_at = $5, \
     created_at = CASE WHEN scopes = '' THEN $5 ELSE created_at END \
     WHERE user_id = $1 AND client_id = $2 AND scopes = $3 RETURNING version";

// Refresh-token families (§10).

pub(crate) const INSERT_FAMILY: &str = "INSERT INTO refresh_families (id, client_id, user_id, auth_time, \
     grant_version, created_at, last_used_at, scopes, resources) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (token_hash, family_id, created_at) VALUES ($1, $2, $3)";
/// A token, its family, and whether the family's grant is still the live one.
pub(crate) const FIND_REFRESH: &str = "SELECT t.spent_at, f.id, f.client_id, f.user_id, f.scopes, f.resources, \
     f.auth_time, f.grant_version, f.created_at, f.last_used_at, \
     CAST(CASE WHEN g.version = f.grant_version AND g.scopes <> '' THEN 1 ELSE 0 END AS BIGINT) AS grant_live \
     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
     LEFT JOIN grants g ON g.user_id = f.user_id AND g.client_id = f.client_id WHERE t.token_hash = $1";
/// The first rotation wins: the statement itself decides.
pub(crate) const SPEND_REFRESH: &str =
    "UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1 AND spent_at IS NULL";
pub(crate) const REFRESH_SPENT_AT: &str = "SELECT spent_at FROM refresh_tokens WHERE token_hash = $1";
/// Marks a family used (only ever later), locking its row: a family ended meanwhile
/// matches nothing, and one being ended waits for this transaction (or this for it).
pub(crate) const TOUCH_FAMILY: &str = "UPDATE refresh_families \
     SET last_used_at = CASE WHEN last_used_at < $2 THEN $2 ELSE last_used_at END WHERE id = $1";
pub(crate) const END_FAMILY: &str = "DELETE FROM refresh_families WHERE id = $1";
pub(crate) const END_USER_FAMILIES: &str = "DELETE FROM refresh_families WHERE user_id = $1";
pub(crate) const END_GRANT_FAMILIES: &str = "DELETE FROM refresh_families WHERE user_id = $1 AND client_id = $2";
pub(crate) const DELETE_STALE_FAMILIES: &str =
    "DELETE FROM refresh_families WHERE last_used_at <= $1 OR created_at <= $2";

// Signing keys.

/// In the database's order (`seq`), never a host's clock.
pub(crate) const SIGNING_KEYS: &str =
    "SELECT kid, alg, private_der, created_at, signs_from FROM signing_keys ORDER BY seq";
pub(crate) const REPLACE_SIGNING_KEY: &str = "UPDATE signing_keys SET private_der = $2 WHERE kid = $1";

// Revocations.

pub(crate) const INSERT_REVOCATION: &str =
    "INSERT INTO revocations (kind, subject, created_at, expires_at) VALUES ($1, $2, $3, $4)";
pub(crate) const REVOCATIONS_SINCE: &str =
    "SELECT kind, subject, created_at, expires_at FROM revocations WHERE created_at > $1 AND expires_at > $2";
/// By the database's clock (`logged_at`), never an instance's; from `since` inclusive
/// (SQLite's clock has millisecond steps: an entry logged in the step the clock was read
/// is read again rather than missed).
pub(crate) const REVOCATIONS_LOGGED_SINCE: &str =
    "SELECT kind, subject, created_at, expires_at FROM revocations WHERE logged_at >= $1 AND expires_at > $2";
pub(crate) const PRUNE_REVOCATIONS: &str = "DELETE FROM revocations WHERE expires_at <= $1";

// Install secrets.

/// Keeps the first value written under a name, whichever instance wrote it.
pub(crate) const INSERT_INSTALL_SECRET: &str =
    "INSERT INTO install_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
pub(crate) const INSTALL_SECRET: &str = "SELECT value FROM install_secrets WHERE name = $1";
