-- One row that readiness checks write, so that a database that answers but cannot take
-- writes (read-only file, disk full) is reported as not ready.
CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
) STRICT;
INSERT INTO readiness (id, checked_at) VALUES (1, 0);
