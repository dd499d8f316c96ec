-- The same schema as migrations/postgres/0002, in SQLite's types.

-- Third-party clients, registered by a user (their owner).
CREATE TABLE clients (
    -- `cli_` + 128 random bits; never equal to a user id.
    id         TEXT PRIMARY KEY NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    -- Space-separated, sorted.
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX clients_owner_id_idx ON clients (owner_id);

-- API keys. Only the SHA-256 of the whole key is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_hash     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Written at most once a minute per key (coalesced).
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX api_keys_client_id_idx ON api_keys (client_id);

-- Token signing keys (PKCS#8 DER).
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- Revoked tokens, API keys and deleted clients, polled into memory by every instance.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'key', 'client')),
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
