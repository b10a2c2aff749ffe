//! The driver's ICE-TCP side: one listening port for every peer that cannot use UDP (RFC 6544
//! passive candidates, RFC 4571 framing), served by the driver's one task.
//!
//! Every connection is read in that task: the task waits on one readiness stream per
//! connection (polled only when its socket wakes it), reads what is there without blocking,
//! and hands each frame to the core like a datagram, with the connection's remote address as
//! the source. So TCP costs no task or channel hop per packet, as UDP does not. Writes are
//! non-blocking too; what a congested connection cannot take is queued, bounded, and frames
//! beyond the bound are dropped whole (as UDP would lose them) so the framing stays intact.
//!
//! Hostile connections are bounded ([`TcpLimits`]): a connection must send a STUN binding
//! request that passes a peer's integrity check within the handshake timeout, and nothing but
//! binding requests before it does; at most so many connections wait for that at once (the
//! oldest is closed for a new one, so a flood cannot keep a real participant out for long),
//! and at most so many are open. A frame longer than any packet closes its connection. A
//! connection whose peer has left is closed.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use futures_util::stream::{FuturesUnordered, SelectAll, Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing::debug;

use crate::{Sfu, Transport, stun_binding_server_ufrag};
use classroom_protocol::tcp_framing::{FrameReader, frame_header};

/// Bounds on the TCP connections of the media port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections at most; more are closed as they are accepted.
    pub max_connections: usize,
    /// Connections that have not yet passed a STUN integrity check, at most.
    pub max_unverified: usize,
    /// A connection must pass the STUN integrity check this soon after it is accepted.
    pub handshake_timeout: Duration,
    /// Frames a connection may send before it passes the check.
    pub max_unverified_frames: u32,
    /// Bytes queued for a connection that reads too slowly; further frames are dropped.
    pub max_queued_bytes: usize,
    /// A connection that takes nothing for this long is closed.
    pub write_stall: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 512,
            max_unverified: 64,
            handshake_timeout: Duration::from_secs(10),
            max_unverified_frames: 16,
            max_queued_bytes: 256 * 1024,
            write_stall: Duration::from_secs(5),
        }
    }
}

/// Reads per wake-up of one connection before others get their turn.
const READS_PER_WAKE: usize = 4;
/// How often deadlines are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Counters of the TCP side, read with the core's stats (open connections are counted then).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TcpStats {
    accepted: u64,
    /// Closed before they were accepted: the connection limit was reached, or one from the
    /// same address is open.
    refused: u64,
    /// Closed for breaking the rules: garbage, an absurd frame, no STUN in time, evicted.
    closed_hostile: u64,
    /// Frames not sent because the connection's queue was full.
    frames_dropped: u64,
}

/// What woke the TCP side.
pub(crate) enum TcpEvent {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Readable(SocketAddr),
    Writable(SocketAddr),
    Sweep,
}

struct Conn {
    stream: Arc<TcpStream>,
    reader: FrameReader,
    /// Bytes not yet written, from `queued_from` on.
    queued: Vec<u8>,
    queued_from: usize,
    /// Since when writes have been blocked.
    blocked_since: Option<Instant>,
    write_waiting: bool,
    verified: bool,
    accepted_at: Instant,
    unverified_frames: u32,
    /// Dropping it ends the connection's readiness stream, which holds the other handle to
    /// the socket: the socket closes with the last one.
    _close: oneshot::Sender<()>,
}

impl Conn {
    fn queued_len(&self) -> usize {
        self.queued.len() - self.queued_from
    }
}

/// The listening port and its connections.
pub(crate) struct TcpConnections {
    listener: TcpListener,
    /// The advertised candidate: the destination the core expects on every frame.
    candidate: SocketAddr,
    limits: TcpLimits,
    /// foldhash, seeded: looked up per frame, keyed by remote addresses.
    conns: HashMap<SocketAddr, Conn, RandomState>,
    /// Connections waiting for their first verified STUN request, oldest first.
    unverified: VecDeque<SocketAddr>,
    readable: SelectAll<ReadReady>,
    writable: FuturesUnordered<Pin<Box<dyn Future<Output = SocketAddr> + Send>>>,
    sweep: tokio::time::Interval,
    stats: TcpStats,
}

impl TcpConnections {
    pub(crate) fn new(listener: TcpListener, candidate: SocketAddr, limits: TcpLimits) -> Self {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        TcpConnections {
            listener,
            candidate,
            limits,
            conns: HashMap::default(),
            unverified: VecDeque::new(),
            readable: SelectAll::new(),
            writable: FuturesUnordered::new(),
            sweep,
            stats: TcpStats::default(),
        }
    }

    /// Writes the TCP side's counters into the SFU's.
    pub(crate) fn fill(&self, stats: &mut crate::SfuStats) {
        stats.tcp_connections_open = self.conns.len() as u64;
        stats.tcp_connections_accepted = self.stats.accepted;
        stats.tcp_connections_refused = self.stats.refused;
        stats.tcp_connections_closed_hostile = self.stats.closed_hostile;
        stats.tcp_frames_dropped = self.stats.frames_dropped;
    }

    /// Waits for the next thing to do. Cancel-safe: every branch is.
    pub(crate) async fn next(&mut self) -> TcpEvent {
        tokio::select! {
            accepted = self.listener.accept() => TcpEvent::Accepted(accepted),
            Some(addr) = self.readable.next(), if !self.readable.is_empty() => TcpEvent::Readable(addr),
            Some(addr) = self.writable.next(), if !self.writable.is_empty() => TcpEvent::Writable(addr),
            _ = self.sweep.tick() => TcpEvent::Sweep,
        }
    }

    /// Takes a new connection, within the limits.
    pub(crate) fn accept(&mut self, now: Instant, stream: TcpStream, addr: SocketAddr) {
        if self.conns.len() >= self.limits.max_connections {
            self.stats.refused += 1;
            debug!(%addr, "media TCP connection refused: too many open");
            return;
        }
        if self.conns.contains_key(&addr) {
            self.stats.refused += 1;
            debug!(%addr, "media TCP connection refused: one from this address is already open");
            return;
        }
        while self.unverified.len() >= self.limits.max_unverified.max(1) {
            let Some(oldest) = self.unverified.pop_front() else {
                break;
            };
            self.stats.closed_hostile += 1;
            self.close(oldest, "evicted before its STUN check");
        }
        // Media packets are small and latency matters more than throughput.
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let (close, closed) = oneshot::channel();
        self.readable.push(ReadReady {
            addr,
            stream: Arc::clone(&stream),
            closed,
        });
        self.conns.insert(
            addr,
            Conn {
                stream,
                reader: FrameReader::new(),
                queued: Vec::new(),
                queued_from: 0,
                blocked_since: None,
                write_waiting: false,
                verified: false,
                accepted_at: now,
                unverified_frames: 0,
                _close: close,
            },
        );
        self.unverified.push_back(addr);
        self.stats.accepted += 1;
    }

    /// Reads what connection `addr` has sent and hands its frames to the core.
    pub(crate) fn read(&mut self, now: Instant, addr: SocketAddr, sfu: &mut Sfu) {
        let Some(conn) = self.conns.get_mut(&addr) else {
            return;
        };
        let mut closing: Option<(&'static str, bool)> = None;
        'reads: for _ in 0..READS_PER_WAKE {
            let read = conn.stream.try_read(conn.reader.spare());
            match read {
                Ok(0) => {
                    closing = Some(("closed by the peer", false));
                    break;
                }
                Ok(len) => conn.reader.filled(len),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closing = Some(("read failed", false));
                    break;
                }
            }
            loop {
                let frame = match conn.reader.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => {
                        closing = Some(("a frame longer than any packet", true));
                        break 'reads;
                    }
                };
                if !conn.verified {
                    conn.unverified_frames += 1;
                    if stun_binding_server_ufrag(frame).is_none() {
                        closing = Some(("not a STUN binding request first", true));
                        break 'reads;
                    }
                    if conn.unverified_frames > self.limits.max_unverified_frames {
                        closing = Some(("too many frames before a valid STUN request", true));
                        break 'reads;
                    }
                }
                sfu.handle_tcp_frame(now, addr, self.candidate, frame);
                if !conn.verified && sfu.knows_source(Transport::Tcp, addr) {
                    conn.verified = true;
                    self.unverified.retain(|a| *a != addr);
                }
            }
        }
        if let Some((why, hostile)) = closing {
            if hostile {
                self.stats.closed_hostile += 1;
            }
            self.close(addr, why);
        }
    }

    /// Sends one packet as a frame on connection `addr`, or queues it if the socket is full.
    pub(crate) fn send(&mut self, now: Instant, addr: SocketAddr, packet: &[u8]) {
        let Some(conn) = self.conns.get_mut(&addr) else {
            return;
        };
        let Some(header) = frame_header(packet) else {
            self.stats.frames_dropped += 1;
            return;
        };
        let frame_len = header.len() + packet.len();
        let written = if conn.queued_len() > 0 {
            0
        } else {
            let slices = [IoSlice::new(&header), IoSlice::new(packet)];
            match conn.stream.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(_) => {
                    self.close(addr, "write failed");
                    return;
                }
            }
        };
        if written == frame_len {
            return;
        }
        // Only whole frames are dropped: a frame partly written must be completed.
        if written == 0 && conn.queued_len() + frame_len > self.limits.max_queued_bytes {
            self.stats.frames_dropped += 1;
            return;
        }
        let rest = header.iter().chain(packet).skip(written);
        conn.queued.extend(rest);
        conn.blocked_since.get_or_insert(now);
        self.wait_writable(addr);
    }

    /// The socket of `addr` can take more: writes what is queued.
    pub(crate) fn flush(&mut self, now: Instant, addr: SocketAddr) {
        let Some(conn) = self.conns.get_mut(&addr) else {
            return;
        };
        conn.write_waiting = false;
        let before = conn.queued_from;
        while conn.queued_len() > 0 {
            match conn.stream.try_write(&conn.queued[conn.queued_from..]) {
                Ok(n) => conn.queued_from += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(addr, "write failed");
                    return;
                }
            }
        }
        if conn.queued_len() == 0 {
            conn.queued.clear();
            conn.queued_from = 0;
            conn.blocked_since = None;
            return;
        }
        if conn.queued_from > before {
            // A slow link that keeps reading is not stalled: the clock restarts with progress.
            conn.blocked_since = Some(now);
        }
        if conn.queued_from > conn.queued.len() / 2 {
            // Keep the buffer to what is unwritten: a link always a little behind must not
            // grow it without bound (`max_queued_bytes` counts only the unwritten part).
            conn.queued.drain(..conn.queued_from);
            conn.queued_from = 0;
        }
        if conn
            .blocked_since
            .is_some_and(|since| now.saturating_duration_since(since) >= self.limits.write_stall)
        {
            self.close(addr, "takes nothing we send");
            return;
        }
        self.wait_writable(addr);
    }

    /// Closes connections past their handshake deadline, and those whose peer has gone.
    pub(crate) fn sweep(&mut self, now: Instant, sfu: &Sfu) {
        let timeout = self.limits.handshake_timeout;
        let expired: Vec<(SocketAddr, bool)> = self
            .conns
            .iter()
            .filter_map(|(addr, conn)| {
                if !conn.verified {
                    let late = now.saturating_duration_since(conn.accepted_at) >= timeout;
                    late.then_some((*addr, true))
                } else {
                    let gone = !sfu.knows_source(Transport::Tcp, *addr);
                    gone.then_some((*addr, false))
                }
            })
            .collect();
        for (addr, hostile) in expired {
            if hostile {
                self.stats.closed_hostile += 1;
                self.close(addr, "no valid STUN request in time");
            } else {
                self.close(addr, "its peer has left");
            }
        }
    }

    fn wait_writable(&mut self, addr: SocketAddr) {
        let Some(conn) = self.conns.get_mut(&addr) else {
            return;
        };
        if conn.write_waiting {
            return;
        }
        conn.write_waiting = true;
        let stream = Arc::clone(&conn.stream);
        // Bounded, so that the handle it holds is released even if the peer never reads.
        let stall = self.limits.write_stall;
        self.writable.push(Box::pin(async move {
            let _ = tokio::time::timeout(stall, stream.writable()).await;
            addr
        }));
    }

    fn close(&mut self, addr: SocketAddr, why: &str) {
        if self.conns.remove(&addr).is_some() {
            debug!(%addr, why, "media TCP connection closed");
        }
        self.unverified.retain(|a| *a != addr);
    }
}

/// Yields the connection's address whenever its socket has something to read; ends when the
/// connection is closed (its [`Conn`] dropped).
struct ReadReady {
    addr: SocketAddr,
    stream: Arc<TcpStream>,
    closed: oneshot::Receiver<()>,
}

impl Stream for ReadReady {
    type Item = SocketAddr;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SocketAddr>> {
        let this = self.get_mut();
        if Pin::new(&mut this.closed).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        // An error is ready too: the read that follows sees it and closes the connection.
        match this.stream.poll_read_ready(cx) {
            Poll::Ready(_) => Poll::Ready(Some(this.addr)),
            Poll::Pending => Poll::Pending,
        }
    }
}
