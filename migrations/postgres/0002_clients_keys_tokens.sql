-- Third-party clients, registered by a user (their owner).
CREATE TABLE clients (
    -- `cli_` + 128 random bits; never equal to a user id.
    id         text PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    -- Space-separated, sorted.
    scopes     text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX clients_owner_id_idx ON clients (owner_id);

-- API keys. Only the SHA-256 of the whole key is kept; the key embeds its id so that it
-- is found without scanning.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    client_id    text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    -- Written at most once a minute per key (coalesced).
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_client_id_idx ON api_keys (client_id);

-- Token signing keys (PKCS#8 DER). The newest is used for signing; older ones stay
-- published in the JWKS until every token they signed has expired.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    alg         text NOT NULL,
    private_der bytea NOT NULL,
    created_at  timestamptz NOT NULL
);

-- Revoked tokens (by jti), API keys and deleted clients, as an append-only log that
-- every instance polls into memory, so bearer checks need no database read. An entry
-- can be forgotten once every token it could concern has expired.
CREATE TABLE revocations (
    seq        bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('token', 'key', 'client')),
    subject    text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
