-- §9: a client's static claims, copied into each of its tokens at issue: a JSON object
-- (compact, at most 1 KiB, no registered or sesame claim name), set by the operator.
ALTER TABLE clients ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';
