-- Ending a grant (DELETE /me/grants/{client_id}) empties its scopes and bumps its version,
-- logging an owner-kind revocation of `<user id>/<client id>:<version>`: every delegated
-- token issued under an older version of that grant stops working, while a later consent
-- starts afresh. Codes carry the version of the grant they were issued under.
ALTER TABLE grants ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE authorization_codes ADD COLUMN grant_version INTEGER NOT NULL DEFAULT 0;
