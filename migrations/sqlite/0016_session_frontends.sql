-- §11 cookie profiles: the front end (a [frontends.<name>] of the configuration) whose
-- cookie carries a session; NULL for the default profile. A session answers only through
-- its own profile's cookie.
ALTER TABLE sessions ADD COLUMN frontend TEXT;
