-- §10: what a user consented to each client (one row per user and client, scopes only
-- ever added by consent), and the single-use authorization codes (only their SHA-256
-- kept), each bound to its client, user, redirect URI, PKCE challenge, scopes and
-- resources. A code spent twice revokes the token it was exchanged for (`issued_jti`).
CREATE TABLE grants (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- Space-separated, sorted.
    scopes       text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX grants_client_id_idx ON grants (client_id);

CREATE TABLE authorization_codes (
    code_hash      bytea PRIMARY KEY,
    client_id      text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,
    scopes         text NOT NULL,
    -- Space-separated absolute URIs (RFC 8707); empty for none.
    resources      text NOT NULL,
    auth_time      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    spent_at       timestamptz,
    issued_jti     text
);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);
