//! The accept loop: every connection is served as HTTP/1.1 (the only protocol telemetrics-client
//! and nginx speak to the collector) with a deadline on the request head, so a client that
//! trickles its headers cannot hold a connection forever. On shutdown the listener closes
//! first, then every connection finishes its in-flight request and closes. On a handover to a
//! new process (see `listen`) the listener closes and the connections are left alone: a peer
//! (nginx) may send its next request on an idle keep-alive connection at any time, and a
//! connection the server closes under it fails that request (nginx does not retry a POST), so
//! each is served until its peer closes it, up to a drain deadline.
//!
//! The body has its own deadline in the handler (`http::collect`, answered 408).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`): a burst
/// of clients beyond the queue would otherwise be handled with SYN cookies.
pub const LISTEN_BACKLOG: u32 = 4096;

/// The most a connection's read buffer grows to (hyper's default is ~400 KiB): a request head
/// must fit (the real client's is under 1 KiB; larger heads get 431), and a body is copied out
/// of it as it arrives. With the default, 2,000 connections sending large bodies held ~1 GB.
pub const READ_BUFFER_MAX: usize = 16 << 10;

/// How serving ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop accepting; every connection finishes its in-flight request and closes.
    Now,
    /// Another process accepts on the same socket: stop accepting, serve open connections
    /// until their peers close them; after `drain`, stop as `Now` does.
    Handover { drain: Duration },
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for open connections to
/// finish what they are doing (each is bounded by the head and body deadlines).
/// `header_timeout` bounds how long a client may take to send a request head (a real client
/// sends it in one write) and how long an idle keep-alive connection stays open.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = Stop>,
) {
    let graceful = GracefulShutdown::new();
    // While draining after a handover, every answer says `Connection: close`: the peer opens
    // its next connection (to the new process) instead of reusing this one. An idle connection
    // is not closed under its peer.
    let draining = Arc::new(AtomicBool::new(false));
    let flag = draining.clone();
    let app = app.layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let close = flag.load(Ordering::Relaxed);
            async move {
                if close {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        },
    ));
    // Every connection task holds a sender: `recv` answers `None` once all have ended.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let stop = loop {
        // `Listener::accept` retries transient errors (e.g. out of file descriptors) itself.
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            stop = &mut shutdown => break stop,
        };
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            // hyper-util's connection builder, HTTP/1 only (as axum::serve builds it, measured:
            // ~65 MB at 1,000 open connections against ~190 MB with hyper's own http1 builder).
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(READ_BUFFER_MAX);
            let connection = builder.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    };
    drop(listener);
    drop(open_tx);
    if let Stop::Handover { drain } = stop {
        draining.store(true, Ordering::Relaxed);
        // SIGTERM (a service manager stopping the service) cuts the drain short.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = open_rx.recv() => {}
            _ = term.recv() => tracing::info!("handover: SIGTERM, closing open connections"),
            () = tokio::time::sleep(drain) => tracing::warn!(
                "handover: connections still open after {} s; closing them",
                drain.as_secs()
            ),
        }
    }
    graceful.shutdown().await;
}
