-- §10: a client is confidential (API keys) or public (no secret: client_id alone, PKCE),
-- and may register redirect URIs (RFC 8252 rules, checked by the application; stored
-- space-separated, as a URI never contains a space).
ALTER TABLE clients ADD COLUMN client_type TEXT NOT NULL DEFAULT 'confidential';
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
