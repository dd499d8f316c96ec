//! Serving connections with limits an exposed server needs (SPEC §12): a request's
//! headers must arrive within the header timeout, an idle keep-alive connection closes
//! after the idle timeout, and at most `max_connections` are served at once (the rest wait
//! in the listen backlog). axum's `serve` sets none of these, and hyper's own header
//! timeout does nothing without a timer; so connections are served here, with hyper's
//! HTTP/1 builder and a timer.
//!
//! hyper starts its header timer as soon as it waits for a request, idle time included,
//! so it is given the *idle* timeout; the header timeout proper runs from a request's
//! first byte to the end of its headers, which [`Guarded`] watches on the socket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The connection limits (`SESAME_HEADER_TIMEOUT`, `SESAME_IDLE_TIMEOUT`,
/// `SESAME_MAX_CONNECTIONS`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` turns true, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    loop {
        // A connection past the cap is not accepted: it waits in the listen backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(io::Error::other)?,
            () = stopping(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, never spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopping(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let io = TokioIo::new(Guarded::new(stream, limits.header_timeout));
        let connection = http.serve_connection(io, TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Where a connection is in its current request, as far as the socket can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request (hyper's timer, set to the idle timeout, governs).
    Idle,
    /// A request has begun and its headers have not ended: `deadline` governs. `tail`
    /// holds the last four bytes read.
    Headers { tail: u32 },
    /// The headers are in; the body and the handler are not the header timeout's business.
    Rest,
}

/// A socket that closes a connection whose request headers take longer than the header
/// timeout from their first byte (one byte every few seconds included). A request's
/// headers end at the first empty line; a write (the response) makes the connection idle
/// again.
pub struct Guarded<IO> {
    io: IO,
    timeout: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Follows the bytes just read through the request's head, which ends at the first
    /// empty line (`\r\n\r\n`, or `\n\n` for lenient clients).
    fn saw(&mut self, bytes: &[u8]) {
        const CRLF_CRLF: u32 = u32::from_be_bytes(*b"\r\n\r\n");
        const LF_LF: u32 = u32::from_be_bytes([0, 0, b'\n', b'\n']);
        for &byte in bytes {
            let tail = match self.phase {
                Phase::Rest => return,
                Phase::Idle => {
                    self.deadline.as_mut().reset(Instant::now() + self.timeout);
                    0
                }
                Phase::Headers { tail } => tail,
            };
            let tail = (tail << 8) | u32::from(byte);
            self.phase = if tail == CRLF_CRLF || tail & 0xffff == LF_LF {
                Phase::Rest
            } else {
                Phase::Headers { tail }
            };
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if matches!(this.phase, Phase::Headers { .. }) && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers took longer than the header timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.saw(&buf.filled()[before..]);
        if matches!(this.phase, Phase::Headers { .. }) {
            // Register the deadline's waker before hyper waits for more bytes.
            let _ = this.deadline.as_mut().poll(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        if written > 0 {
            self.phase = Phase::Idle;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            self.phase = Phase::Idle;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}
