-- The same schema as migrations/postgres/0015, in SQLite's types.
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY NOT NULL,
    client_id     TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes        TEXT NOT NULL,
    resources     TEXT NOT NULL,
    auth_time     INTEGER NOT NULL,
    grant_version INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_families_user_client_idx ON refresh_families (user_id, client_id);
CREATE INDEX refresh_families_client_id_idx ON refresh_families (client_id);
CREATE INDEX refresh_families_last_used_at_idx ON refresh_families (last_used_at);
CREATE INDEX refresh_families_created_at_idx ON refresh_families (created_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    spent_at   INTEGER
) STRICT;
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

ALTER TABLE authorization_codes ADD COLUMN family_id TEXT;
