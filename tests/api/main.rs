//! sesame's black-box suite: every test starts the real server on port 0 with a fresh
//! database of its own and talks to it over HTTP. Tests named in `on_both_backends!`
//! run once on SQLite and once on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod at_rest;
mod audiences;
mod authorize;
mod bad_inputs;
mod bearer;
mod claims;
mod clients;
mod cors;
mod csrf;
mod docs;
mod embedding;
mod errors;
mod exchange;
mod expiry;
mod faults;
mod fixation;
mod forged;
mod forward_auth;
mod frontends;
mod hardening;
mod hardening2;
mod health;
mod instances;
mod jwt;
mod limits;
mod login;
mod logout;
mod me;
mod metrics;
mod oauth;
mod oauth_client;
mod openapi;
mod password_change;
mod registration;
mod responsiveness;
mod scopes;
mod sessions;
mod throttling;
mod tokens;
mod users;
