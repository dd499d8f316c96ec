-- People who sign in with an email and a password.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- Normalized (trimmed, lower-cased) by the application before it gets here.
    email         text NOT NULL CONSTRAINT users_email_key UNIQUE,
    -- argon2id PHC string; upgraded in place when the cost parameters change.
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    -- Set by `sesame user disable`; a disabled user cannot sign in.
    disabled_at   timestamptz
);

-- First-party sessions. Only the SHA-256 of the cookie's handle is kept, so this table
-- is no use to someone who steals it.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handle_hash  bytea NOT NULL CONSTRAINT sessions_handle_hash_key UNIQUE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL,
    -- Written at most once a minute per session (coalesced), never per request.
    last_seen_at timestamptz NOT NULL,
    user_agent   text,
    ip           text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_last_seen_at_idx ON sessions (last_seen_at);
CREATE INDEX sessions_created_at_idx ON sessions (created_at);

-- Failed login attempts, one row per throttle key charged. Shared by every instance;
-- rows older than the longest window are pruned.
CREATE TABLE login_failures (
    key       text NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX login_failures_key_failed_at_idx ON login_failures (key, failed_at);
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);
