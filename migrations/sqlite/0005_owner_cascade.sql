-- Bumped by every change that must end what was made from the user's credentials as they
-- were: a disable now (and later a password change, "log out everywhere"). Tokens of the
-- user's clients carry the version they were issued under, so a disable revokes exactly
-- the tokens issued before it, whatever the instances' clocks say.
ALTER TABLE users ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;

-- 'owner': every token of a user's clients issued under a credential version older than
-- the one in the subject (`<user id>:<version>`). SQLite cannot change a CHECK in place.
CREATE TABLE revocations_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'key', 'client', 'owner')),
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
INSERT INTO revocations_new (seq, kind, subject, created_at, expires_at)
    SELECT seq, kind, subject, created_at, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
