-- The same schema as migrations/postgres, in SQLite's types: ids are hyphenated UUID
-- text, timestamps are integer microseconds since the Unix epoch (UTC) so that they
-- compare and index as numbers.

-- People who sign in with an email and a password.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    -- Normalized (trimmed, lower-cased) by the application before it gets here.
    email         TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    -- argon2id PHC string; upgraded in place when the cost parameters change.
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Set by `sesame user disable`; a disabled user cannot sign in.
    disabled_at   INTEGER
) STRICT;

-- First-party sessions. Only the SHA-256 of the cookie's handle is kept.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handle_hash  BLOB NOT NULL CONSTRAINT sessions_handle_hash_key UNIQUE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Written at most once a minute per session (coalesced), never per request.
    last_seen_at INTEGER NOT NULL,
    user_agent   TEXT,
    ip           TEXT
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_last_seen_at_idx ON sessions (last_seen_at);
CREATE INDEX sessions_created_at_idx ON sessions (created_at);

-- Failed login attempts, one row per throttle key charged.
CREATE TABLE login_failures (
    key       TEXT NOT NULL,
    failed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failures_key_failed_at_idx ON login_failures (key, failed_at);
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);
