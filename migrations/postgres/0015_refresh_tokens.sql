-- §10 refresh tokens. A family starts when a code is redeemed and holds what every token
-- of it is bound to (client, user, scopes, resources, sign-in time, grant version); each
-- rotation spends one token and adds the next (only SHA-256 hashes kept). A family ends by
-- deletion (its tokens go with it), logging a token-kind revocation whose subject is the
-- family id: every access token issued from it carries that id and stops working.
CREATE TABLE refresh_families (
    id            uuid PRIMARY KEY,
    client_id     text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated, sorted.
    scopes        text NOT NULL,
    -- Space-separated absolute URIs (RFC 8707); empty for none.
    resources     text NOT NULL,
    auth_time     timestamptz NOT NULL,
    grant_version bigint NOT NULL,
    -- When the code was issued: the absolute lifetime counts from here.
    created_at    timestamptz NOT NULL,
    -- The idle lifetime counts from here.
    last_used_at  timestamptz NOT NULL
);
CREATE INDEX refresh_families_user_client_idx ON refresh_families (user_id, client_id);
CREATE INDEX refresh_families_client_id_idx ON refresh_families (client_id);
CREATE INDEX refresh_families_last_used_at_idx ON refresh_families (last_used_at);
CREATE INDEX refresh_families_created_at_idx ON refresh_families (created_at);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id  uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

-- A code presented twice ends the family its first redemption started.
ALTER TABLE authorization_codes ADD COLUMN family_id uuid;
