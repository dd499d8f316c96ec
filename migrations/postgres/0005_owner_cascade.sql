-- Bumped by every change that must end what was made from the user's credentials as they
-- were: a disable now (and later a password change, "log out everywhere"). Tokens of the
-- user's clients carry the version they were issued under, so a disable revokes exactly
-- the tokens issued before it, whatever the instances' clocks say.
ALTER TABLE users ADD COLUMN credential_version bigint NOT NULL DEFAULT 0;

-- 'owner': every token of a user's clients issued under a credential version older than
-- the one in the subject (`<user id>:<version>`).
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'key', 'client', 'owner'));
