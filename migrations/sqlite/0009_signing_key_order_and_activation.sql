-- Two-phase rotation: a new key is published at once and signs only from `signs_from`
-- (the database's clock plus the publish delay, microseconds), so that every resource
-- server has fetched it first. Keys are ordered by `seq`, given by the database at
-- insert, never by a host's clock. Existing keys keep their order (their insertion
-- order) and sign at once (`signs_from` NULL).
ALTER TABLE signing_keys ADD COLUMN seq INTEGER;
ALTER TABLE signing_keys ADD COLUMN signs_from INTEGER;
UPDATE signing_keys SET seq = rowid;
CREATE UNIQUE INDEX signing_keys_seq_key ON signing_keys (seq);
