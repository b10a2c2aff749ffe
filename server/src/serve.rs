//! The HTTP server's accept loop: the thin driver around [`ConnectionTable`]. It admits a
//! connection only when its address and the server are under their caps, gives hyper a timer
//! so that a connection must send a request's headers within `header_read_timeout` (silent,
//! trickling and idle keep-alive sockets are closed), and drains connections on shutdown.
//!
//! axum's own `serve` sets no header timeout and counts nothing: 290 silent sockets took a
//! 300-descriptor server down for as long as they were held.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service;

use classroom_media::driver::TcpLimits;

use crate::config::Config;
use crate::connections::{
    ConnectionLimits, ConnectionSlot, ConnectionTable, Refusal, Reserved, Throttle,
    http_connection_budget,
};
use crate::descriptors::DescriptorLimit;
use crate::metrics::Metrics;

/// How the accept loop treats connections.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// A connection must send a request's headers within this, from its opening and again
    /// after each response (so an idle keep-alive connection is closed after it too).
    pub header_read_timeout: Duration,
    pub table: ConnectionTable,
}

impl ServeSettings {
    /// The settings `config` asks for; with `http.max_connections = 0`, the global cap that
    /// fits the descriptor limit in force now.
    pub fn from_config(config: &Config) -> ServeSettings {
        let total = if config.http.max_connections > 0 {
            config.http.max_connections
        } else {
            let limit = DescriptorLimit::current();
            let reserved = Reserved {
                media_tcp: if config.media.tcp_addr.is_some() {
                    TcpLimits::default().max_connections as u64
                } else {
                    0
                },
                rtmp: if config.rtmp.enabled {
                    config.rtmp.max_connections as u64
                } else {
                    0
                },
                database: u64::from(config.database.max_connections),
            };
            let (total, room_kept) = http_connection_budget(limit.soft_or_max(), reserved);
            if !room_kept {
                tracing::warn!(
                    soft_limit = ?limit.soft,
                    ?reserved,
                    http_connections = total,
                    "the descriptor limit is too low to keep room for media, RTMP and the \
                     database besides HTTP; raise it (ulimit -n, LimitNOFILE=)"
                );
            }
            total
        };
        let limits = ConnectionLimits {
            per_address: config.http.max_connections_per_address,
            total,
        };
        tracing::info!(
            per_address = limits.per_address,
            total = limits.total,
            header_read_timeout_secs = config.http.header_read_timeout_secs,
            "HTTP connection limits"
        );
        ServeSettings {
            header_read_timeout: Duration::from_secs(config.http.header_read_timeout_secs),
            table: ConnectionTable::new(limits),
        }
    }
}

/// Between two warnings of the same kind; the ones in between are counted in the next.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// After a failed accept (out of descriptors), before trying again: a retry at once would
/// spin, a long pause would keep serving down after descriptors are free again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stopping` turns true, then lets requests in flight
/// finish and returns.
pub async fn run(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
) {
    // Connection tasks hold a receiver each; when all are dropped, every connection is done.
    let (all_closed, connection_open) = watch::channel(());
    let mut refusals = [Throttle::new(WARN_EVERY), Throttle::new(WARN_EVERY)];
    let mut accept_failures = Throttle::new(WARN_EVERY);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                metrics.http_connection_refused("accept_failed");
                if let Some(held_back) = accept_failures.allow(Instant::now()) {
                    tracing::warn!(error = %e, held_back, "accept failed; retrying");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match settings.table.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics.http_connection_refused(refusal.as_str());
                let throttle = match refusal {
                    Refusal::AddressFull => &mut refusals[0],
                    Refusal::ServerFull => &mut refusals[1],
                };
                if let Some(held_back) = throttle.allow(Instant::now()) {
                    let limits = settings.table.limits();
                    tracing::warn!(
                        client = %peer.ip(),
                        reason = refusal.as_str(),
                        per_address = limits.per_address,
                        total = limits.total,
                        held_back,
                        "connection refused: too many open"
                    );
                }
                refuse(&stream, refusal);
                continue;
            }
        };
        metrics.http_connection_opened();
        let io = TokioIo::new(Counted {
            stream,
            _open: Open {
                _slot: slot,
                metrics: metrics.clone(),
            },
        });
        tokio::spawn(serve_connection(
            io,
            peer,
            router.clone(),
            settings.header_read_timeout,
            metrics.clone(),
            stopping.clone(),
            connection_open.clone(),
        ));
    }
    drop(listener);
    drop(connection_open);
    all_closed.closed().await;
}

async fn serve_connection(
    io: TokioIo<Counted>,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    // The handlers read the client's address as axum's `ConnectInfo`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let response: Result<_, Infallible> =
                router.call(request.map(axum::body::Body::new)).await;
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // With upgrades: a WebSocket takes the socket (and its slot) with it.
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics.http_header_timed_out();
                    } else {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                break;
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Tells a refused client why, if the socket takes it at once, and closes it.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let (code, message) = match refusal {
        Refusal::AddressFull => (
            "too_many_connections",
            "too many connections from your address; close some and retry",
        ),
        Refusal::ServerFull => (
            "server_busy",
            "the server holds too many connections; retry soon",
        ),
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 5\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer is empty: this does not block, and a failure costs nothing.
    let _ = stream.try_write(answer.as_bytes());
}

/// Errors of one incoming connection (it went away before we took it), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// An open connection as the metrics and the table count it, until it is dropped.
struct Open {
    _slot: ConnectionSlot,
    metrics: Arc<Metrics>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.http_connection_closed();
    }
}

/// A socket that holds its place in the table for as long as it lives.
struct Counted {
    stream: TcpStream,
    _open: Open,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
