//! The client's IP address, as throttling and logs see it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The address of the client: the peer of the TCP connection, or, when
/// `SESAME_TRUST_PROXY` is on, the address the nearest proxy appended to
/// `X-Forwarded-For` (the rightmost entry: the only one a client cannot forge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

// Without the connection's peer address every client would share one throttle budget, so
// a router served without it (and without `SESAME_TRUST_PROXY`) refuses every request
// that needs the address, with a `500` and a log line saying how to serve it:
// `into_make_service_with_connect_info::<SocketAddr>()`.
extractor!(ClientIp, |parts, state| {
    let state = AppState::from_ref(state);
    if state.config.trust_proxy
        && let Some(ip) = forwarded_for(parts)
    {
        return Ok(Self(ip.to_string()));
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical().to_string());
    match peer {
        Some(peer) => Ok(Self(peer)),
        None if state.config.trust_proxy => Ok(Self("unknown".to_owned())),
        None => Err(ApiError::internal(std::io::Error::other(
            "the client's address is unknown: serve sesame's router with \
             `into_make_service_with_connect_info::<SocketAddr>()` (or set SESAME_TRUST_PROXY \
             behind a proxy that sets X-Forwarded-For)",
        ))),
    }
});

fn forwarded_for(parts: &Parts) -> Option<IpAddr> {
    let last_header = parts.headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?.trim();
    last_entry.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}
