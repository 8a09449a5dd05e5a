//! The accept loop: HTTP/1.1 connections with a header-read timeout, a cap on open
//! connections, and graceful shutdown.
//!
//! `axum::serve` has neither limit: a client trickling one header line every few seconds kept
//! its connection for minutes, and a thousand half-open connections all stayed. Here:
//! - **Header-read timeout.** A connection that has not sent a complete request head within
//!   [`ConnectionLimits::header_read_timeout`] is closed. hyper starts that timer whenever the
//!   connection waits for a request head, including between requests, so it is also the
//!   idle keep-alive limit: an idle keep-alive connection is closed after it as well.
//! - **Connection cap.** At most [`ConnectionLimits::max_connections`] connections are served
//!   at once. Past it the server stops accepting: new connections wait in the kernel's listen
//!   backlog and are served, in order, as open ones close (or are refused by the kernel when
//!   the backlog is full). Waiting rather than closing keeps well-behaved clients working
//!   through a burst, while slow or idle holders of a slot are bounded by the timeout.
//! - **Shutdown.** When the shutdown future resolves, accepting stops, every connection is
//!   asked to finish its in-flight request and close, and the call returns when all have.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Limits on the connections [`serve`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a connection has to send a complete request head (also the idle keep-alive
    /// limit). Default 10 s.
    pub header_read_timeout: Duration,
    /// Connections served at once; past it new ones wait in the listen backlog. Default
    /// 1,024.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

impl ConnectionLimits {
    /// The limits of the `http` settings.
    pub fn from_config(http: &crate::config::HttpConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            max_connections: http.max_connections,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets in-flight
/// requests finish. Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    // At most u32::MAX, so the final drain below can take every permit in one call.
    let max_permits = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
    let max = u32::try_from(limits.max_connections)
        .unwrap_or(u32::MAX)
        .clamp(1, max_permits);
    let slots = Arc::new(Semaphore::new(max as usize));
    let stop = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Per-connection errors (reset before accept) and descriptor exhaustion
                    // alike: pause briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Timeouts and resets by clients are routine.
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    stop.cancel();
    // Every open connection holds a permit: all of them back means all have closed.
    let _ = slots.acquire_many(max).await;
    Ok(())
}
