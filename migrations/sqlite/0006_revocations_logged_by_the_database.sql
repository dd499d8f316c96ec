-- When the database logged a revocation, by its own clock (microseconds since the
-- epoch): instances poll by this, so that no instance's clock decides whether an entry
-- is seen. SQLite adds a column with such a default only to a new table.
CREATE TABLE revocations_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'key', 'client', 'owner')),
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    logged_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;
INSERT INTO revocations_new (seq, kind, subject, created_at, expires_at, logged_at)
    SELECT seq, kind, subject, created_at, expires_at, created_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
CREATE INDEX revocations_logged_at_idx ON revocations (logged_at);
