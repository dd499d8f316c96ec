//! sesame's black-box suite: every test starts the real server on port 0 with a fresh
//! database of its own and talks to it over HTTP. Tests named in `on_both_backends!`
//! run once on SQLite and once on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod docs;
mod errors;
mod login;
mod openapi;
mod users;
