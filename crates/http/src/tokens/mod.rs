//! Access tokens (RFC 9068 JWTs): signing keys, issuing, verifying, and the in-memory
//! revocation set that keeps every instance's bearer checks free of database reads.

pub mod keys;
pub mod revocation;
pub mod service;

pub use keys::SigningAlg;
pub use revocation::RevocationSet;
pub use service::{AccessClaims, IssuedToken, LoadError, TokenError, TokenService, TokenSettings};
