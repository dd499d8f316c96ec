-- The user's credential version a session was made under. A password change, a disable
-- and "log out everywhere" bump the user's version: a session is created only if the
-- version its login read is still current (one statement), and a session older than the
-- user's version is refused, so nothing made from the credential as it was survives.
ALTER TABLE sessions ADD COLUMN credential_version bigint NOT NULL DEFAULT 0;
