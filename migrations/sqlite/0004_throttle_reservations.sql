-- An attempt reserves its place in every budget before it is verified: its rows are
-- written first, inside one write transaction, and count as failures until the attempt
-- succeeds (then they are deleted by this id). An attempt whose client hangs up stays
-- charged.
ALTER TABLE login_failures ADD COLUMN attempt TEXT;
CREATE INDEX login_failures_attempt_idx ON login_failures (attempt) WHERE attempt IS NOT NULL;
