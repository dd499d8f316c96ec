-- One row that readiness checks write, so that a database that answers but cannot take
-- writes (read-only, in recovery, out of disk) is reported as not ready.
CREATE TABLE readiness (
    id         integer PRIMARY KEY CHECK (id = 1),
    checked_at timestamptz NOT NULL
);
INSERT INTO readiness (id, checked_at) VALUES (1, now());
