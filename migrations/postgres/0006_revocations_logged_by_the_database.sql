-- When the database logged a revocation, by its own clock: instances poll by this, so
-- that no instance's clock (however skewed) decides whether an entry is seen.
ALTER TABLE revocations ADD COLUMN logged_at timestamptz NOT NULL DEFAULT clock_timestamp();
CREATE INDEX revocations_logged_at_idx ON revocations (logged_at);
