-- §9: the restricted scopes the operator granted a user (space-separated, sorted), and
-- the version of the user's clients' tokens. Taking a scope away, or disabling the user,
-- bumps the token version and logs an owner revocation: every token issued under an older
-- version stops working. Sessions keep their own credential version, so neither ends a
-- session by itself.
ALTER TABLE users ADD COLUMN granted_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0;
-- Tokens issued so far carry the credential version as their owner version.
UPDATE users SET token_version = credential_version;
