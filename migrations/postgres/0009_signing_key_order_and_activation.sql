-- Two-phase rotation: a new key is published at once and signs only from `signs_from`
-- (the database's clock plus the publish delay), so that every resource server has
-- fetched it first. Keys are ordered by `seq`, a sequence of the database, never by a
-- host's clock. Existing keys keep their order and sign at once (`signs_from` NULL).
ALTER TABLE signing_keys ADD COLUMN seq bigserial;
UPDATE signing_keys s SET seq = o.n
    FROM (SELECT kid, row_number() OVER (ORDER BY created_at, kid) AS n FROM signing_keys) o
    WHERE s.kid = o.kid;
SELECT setval(pg_get_serial_sequence('signing_keys', 'seq'), COALESCE((SELECT max(seq) FROM signing_keys), 0) + 1, false);
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_seq_key UNIQUE (seq);
ALTER TABLE signing_keys ADD COLUMN signs_from timestamptz;
