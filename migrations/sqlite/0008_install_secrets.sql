-- Random secrets made once per installation and shared by every instance: e.g. the key
-- that throttle records name accounts by (a keyed hash), so that what a person typed as
-- an email (a password, by mistake) is never stored as typed.
CREATE TABLE install_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
