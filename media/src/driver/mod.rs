//! The tokio layer around [`Sfu`]: media workers, and the handle that routes commands to them.
//!
//! A *worker* ([`worker`]) is one OS thread running a current-thread tokio runtime that owns
//! its own [`Sfu`], UDP socket, ICE-TCP listener and connections ([`crate::tcp`]), timers and
//! queues. It waits for whichever comes first — a datagram, a TCP connection or frame, a
//! command, or the core's deadline — feeds it to the core with `Instant::now()`, then drains
//! the core: datagrams go out on its socket (or as frames on their TCP connection), events go
//! out on one unbounded channel shared by all workers (events are per peer or per track, never
//! per packet, so the channel cannot grow faster than signaling produces work). Forwarding
//! between browsers stays inside one worker, with no lock, channel hop or allocation per packet
//! beyond the core's own; in-process subscribers get their packets on a bounded channel each (a
//! slow one loses packets, counted, and never holds up the worker), and in-process publishers
//! send theirs through their worker's command channel.
//!
//! The [`MediaHandle`] the rest of the server uses routes each command: one that adds a peer
//! (a browser, or an in-process publisher or subscriber) to the home worker of its room, chosen
//! when the room's first peer arrives ([`crate::placement`]: the least-loaded worker), and
//! every other to the worker its peer was placed on. A room's peers share one worker, and its
//! forwarding never crosses threads, unless its home carries the per-worker peer limit
//! ([`DriverConfig::worker_peer_limit`]): then further peers go to another worker, and the two
//! get a relay link for the room ([`crate::relay`]), made by the handle and given to both as
//! [`MediaCommand::AddRelay`] in the same step as the peer's own command. Each worker is woken
//! by a batch on any of its links (one wake-up per batch, not per packet); a worker whose last
//! peer of a room left ends its links of that room, and the other side removes what came over
//! them.
//!
//! # Ports
//!
//! Worker `i` binds UDP port `bind.port() + i` and, with ICE-TCP, TCP port
//! `tcp_bind.port() + i` (port 0: a free port each), and announces exactly those (or
//! `advertised_port + i`) as the candidates of its peers. So the media ports are a small
//! consecutive range per protocol, one port per worker, and a peer's packets reach its worker
//! directly from the kernel: no steering, no hand-over between threads. A datagram that
//! arrives at another worker's socket finds no peer there (neither its source address nor
//! its ICE ufrag is known to that worker): it is dropped and counted there
//! (`unknown_source`, `unknown_ufrag`), never forwarded. One worker is exactly the single
//! port of old.
//!
//! Workers end when every [`MediaHandle`] is dropped, on [`MediaWorkers::stop`], or (each) on
//! a socket error it cannot recover.

mod handle;
mod udp;
mod worker;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use classroom_protocol::RoomName;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::warn;

use crate::placement::{Placement, WorkerId};
pub use crate::tcp::TcpLimits;
use crate::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, ConfigError, LocalEvent, LocalPacket,
    LocalTrack, MediaEvent, Mid, PeerId, Sfu, SfuConfig, SfuStats, UnknownPeer, VideoSizeError,
};
pub use handle::{LocalDrops, LocalPublisher, LocalSubscription, MediaHandle, WorkerStats};

/// Largest datagram we read; WebRTC keeps datagrams under ~1200 bytes.
const RECV_BUFFER: usize = 2048;
/// Datagrams read in one go before the core's output is polled (and sent). Larger batches
/// spare more passes through subscribers' sessions; each holds back the first datagram's
/// copies until the batch is read, at most this many datagrams' fan-out.
const RECV_BATCH: usize = 32;
/// Commands waiting for a worker; senders wait when it is full.
const COMMAND_QUEUE: usize = 256;
/// Batches waiting on a relay link in each direction: a worker that falls this far behind
/// another loses whole batches (counted), and the sender never waits.
pub(crate) const RELAY_QUEUE: usize = 64;
/// Packets waiting for one local subscriber, unless it asks otherwise: about two seconds of
/// a large room's media (ten seconds of a teacher's camera and voice).
pub const LOCAL_PACKET_QUEUE: usize = 2048;

/// The media socket's kernel buffers. One worker reads its socket and also fans every packet
/// out, so while it sends a keyframe to hundreds of subscribers nothing is read; with Linux's
/// default 208 KiB, the datagrams arriving meanwhile (the teacher's media, every subscriber's
/// RTCP) overflowed it: a 250-student lecture lost 1.2% (`RcvbufErrors` in /proc/net/snmp),
/// none with 4 MiB. The kernel caps the request at `net.core.rmem_max` / `wmem_max`.
pub const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Where the workers listen and what they tell peers.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UDP socket address of worker 0; worker `i` binds the port after it by `i`. Port 0
    /// picks a free port for each.
    pub bind: SocketAddr,
    /// TCP address of worker 0's ICE-TCP listener, the others' following it like UDP's; port
    /// 0 picks a free port for each; `None`: no ICE-TCP.
    pub tcp_bind: Option<SocketAddr>,
    /// The IP peers reach us on, advertised as the ICE host candidates with the bound ports.
    pub advertised_ip: IpAddr,
    /// The UDP port advertised for worker 0 (worker `i`: `i` more); 0 for the bound ports.
    /// Another port when something in between forwards it to ours (a NAT's port forward, a
    /// test's relay).
    pub advertised_port: u16,
    /// Whether the UDP candidate is announced (see [`SfuConfig::advertise_udp`]).
    pub advertise_udp: bool,
    pub tcp_limits: TcpLimits,
    /// Media workers (threads), at least one.
    pub workers: usize,
    /// How long a browser's keyframe is kept to start new subscribers from (see
    /// [`SfuConfig::first_frame_max_age`]); zero turns the cache off.
    pub first_frame_max_age: Duration,
    /// Peers a worker takes before a room's further peers go to another worker (joined to the
    /// room's home by a relay link); `None`: no limit, a room stays on its home.
    pub worker_peer_limit: Option<u64>,
    /// The longest burst a subscriber's pacer lets out at once (see
    /// [`SfuConfig::pacer_burst`]).
    pub pacer_burst: Duration,
    /// How long sent packets are kept for resends (see [`SfuConfig::resend_history`]).
    pub resend_history: Duration,
}

impl DriverConfig {
    /// One worker on UDP `bind`, no ICE-TCP, advertised on `advertised_ip` with the bound
    /// port.
    pub fn udp(bind: SocketAddr, advertised_ip: IpAddr) -> Self {
        DriverConfig {
            bind,
            tcp_bind: None,
            advertised_ip,
            advertised_port: 0,
            advertise_udp: true,
            tcp_limits: TcpLimits::default(),
            workers: 1,
            first_frame_max_age: Duration::from_secs(1),
            worker_peer_limit: None,
            pacer_burst: crate::sfu::PACER_BURST,
            resend_history: crate::sfu::RESEND_HISTORY,
        }
    }
}

/// Starting the driver failed.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot bind the media socket: {0}")]
    Bind(#[from] io::Error),
    #[error("cannot listen on TCP {addr} for ICE-TCP: {error}")]
    TcpBind { addr: SocketAddr, error: io::Error },
    /// A worker's port would be past 65535.
    #[error("{what} port {base} + {workers} workers runs past port 65535")]
    PortRange {
        what: &'static str,
        base: u16,
        workers: usize,
    },
    #[error("cannot start media worker {worker}: {error}")]
    Worker { worker: usize, error: io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A command failed, or never reached the core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError<E> {
    /// The worker has ended.
    #[error("the media driver has stopped")]
    Stopped,
    #[error(transparent)]
    Failed(E),
}

/// A command to the core, with the channel its reply goes back on.
#[derive(Debug)]
pub enum MediaCommand {
    AddPeer {
        peer: PeerId,
        room: RoomName,
        offer: String,
        /// The peer's initial publish permission (see [`Sfu::add_peer_with`]).
        publish_allowed: bool,
        /// Set for a peer that takes no offers (see [`Sfu::set_pins`]).
        pins: Option<Vec<(PeerId, Mid)>>,
        reply: oneshot::Sender<Result<String, AddPeerError>>,
    },
    SetPins {
        peer: PeerId,
        pins: Vec<(PeerId, Mid)>,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    AcceptOffer {
        peer: PeerId,
        offer: String,
        reply: oneshot::Sender<Result<String, AcceptOfferError>>,
    },
    AcceptAnswer {
        peer: PeerId,
        answer: String,
        reply: oneshot::Sender<Result<(), AcceptAnswerError>>,
    },
    RemovePeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    SetPublishAllowed {
        peer: PeerId,
        allowed: bool,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    SetAudioMuted {
        peer: PeerId,
        muted: bool,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    /// The peer's audio to every breakout room of `lesson` too, or (`None`) no more.
    SetVoiceBroadcast {
        peer: PeerId,
        lesson: Option<classroom_protocol::LessonId>,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
    SetVideoSize {
        peer: PeerId,
        mid: Mid,
        height: u32,
        reply: oneshot::Sender<Result<(), VideoSizeError>>,
    },
    AddLocalPublisher {
        peer: PeerId,
        room: RoomName,
        tracks: Vec<LocalTrack>,
        publish_allowed: bool,
        reply: oneshot::Sender<Result<(), AddPeerError>>,
    },
    /// One packet of a local publisher; no reply (a refused write is logged).
    WriteLocal {
        peer: PeerId,
        mid: Mid,
        packet: LocalPacket,
    },
    AddLocalSubscriber {
        peer: PeerId,
        room: RoomName,
        sink: LocalSink,
        reply: oneshot::Sender<Result<(), AddPeerError>>,
    },
    /// A local subscriber asks for a keyframe of a video track; no reply (throttled).
    RequestKeyframe {
        publisher: PeerId,
        mid: Mid,
    },
    /// The worker's end of a relay link for `room` to another worker (see [`Sfu::add_relay`]);
    /// `home`: this worker is the room's home.
    AddRelay {
        room: RoomName,
        end: crate::relay::SfuRelayEnd,
        home: bool,
    },
}

/// Where the driver delivers a local subscriber's events. Track events go on an unbounded
/// channel (they are per track, rare); packets on a bounded one, and a subscriber that does
/// not keep up loses packets (counted), never stalls forwarding to anyone else.
#[derive(Debug)]
pub struct LocalSink {
    control: mpsc::UnboundedSender<LocalEvent>,
    packets: mpsc::Sender<LocalEvent>,
    dropped: Arc<AtomicU64>,
}

/// The running driver: a handle to command it, the stream of its workers' events, and the
/// workers themselves.
pub struct MediaDriver {
    pub handle: MediaHandle,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    pub workers: MediaWorkers,
}

/// The worker threads, to stop them.
#[derive(Debug)]
pub struct MediaWorkers {
    stop: Vec<oneshot::Sender<()>>,
    /// Each closes when its thread has let go of its sockets.
    done: Vec<oneshot::Receiver<()>>,
}

impl MediaWorkers {
    /// Stops every worker now (peers, sockets and connections closed, whoever holds a
    /// handle) and waits until their ports are free.
    pub async fn stop(self) {
        for stop in self.stop {
            let _ = stop.send(());
        }
        for done in self.done {
            let _ = done.await;
        }
    }
}

/// What one worker is given at start: its sockets, bound (so that a port in use fails the
/// start), to be registered with the worker's own runtime in its thread.
struct Bound {
    socket: std::net::UdpSocket,
    candidate: SocketAddr,
    /// The ICE-TCP listener, with its advertised candidate.
    listener: Option<(std::net::TcpListener, SocketAddr)>,
    tcp_limits: TcpLimits,
    sfu: Sfu,
}

/// Binds every worker's sockets, then starts their threads and waits until each runs.
pub async fn start(config: DriverConfig) -> Result<MediaDriver, StartError> {
    let count = config.workers.max(1);
    let mut bound = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    for index in 0..count {
        let (worker, port) = bind(&config, index).await?;
        bound.push(worker);
        ports.push(port);
    }
    let placement = Arc::new(Mutex::new(Placement::with_limit(
        count,
        config.worker_peer_limit,
    )));
    let wakes: Vec<Arc<Notify>> = (0..count).map(|_| Arc::new(Notify::new())).collect();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let mut workers = MediaWorkers {
        stop: Vec::with_capacity(count),
        done: Vec::with_capacity(count),
    };
    let mut commands = Vec::with_capacity(count);
    let mut ready = Vec::with_capacity(count);
    for (index, worker) in bound.into_iter().enumerate() {
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let spawned = worker::spawn(
            WorkerId(index),
            worker,
            worker::Channels {
                commands: command_rx,
                events: event_tx.clone(),
                placement: Arc::clone(&placement),
                relays: Arc::clone(&wakes[index]),
                stop: stop_rx,
                done: done_tx,
                ready: ready_tx,
            },
        );
        if let Err(error) = spawned {
            workers.stop().await;
            return Err(StartError::Worker {
                worker: index,
                error,
            });
        }
        commands.push(command_tx);
        workers.done.push(done_rx);
        workers.stop.push(stop_tx);
        ready.push(ready_rx);
    }
    for (index, ready) in ready.into_iter().enumerate() {
        let started = ready
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the worker's thread ended before it ran")));
        if let Err(error) = started {
            workers.stop().await;
            return Err(StartError::Worker {
                worker: index,
                error,
            });
        }
    }
    Ok(MediaDriver {
        handle: MediaHandle::new(commands, ports, wakes, placement),
        events: event_rx,
        workers,
    })
}

/// Worker `index`'s port after `base` (0 stays 0: a free port).
fn nth_port(
    what: &'static str,
    base: u16,
    index: usize,
    workers: usize,
) -> Result<u16, StartError> {
    if base == 0 {
        return Ok(0);
    }
    u16::try_from(index)
        .ok()
        .and_then(|index| base.checked_add(index))
        .ok_or(StartError::PortRange {
            what,
            base,
            workers,
        })
}

/// Binds worker `index`'s sockets.
async fn bind(
    config: &DriverConfig,
    index: usize,
) -> Result<(Bound, handle::WorkerAddrs), StartError> {
    let workers = config.workers.max(1);
    let mut udp_bind = config.bind;
    udp_bind.set_port(nth_port("UDP", config.bind.port(), index, workers)?);
    let socket = UdpSocket::bind(udp_bind).await?.into_std()?;
    enlarge_buffers(&socket);
    let local_addr = socket.local_addr()?;
    let port = match config.advertised_port {
        0 => local_addr.port(),
        port => nth_port("advertised", port, index, workers)?,
    };
    let candidate = SocketAddr::new(config.advertised_ip, port);
    let mut sfu_config = SfuConfig::new(candidate);
    sfu_config.advertise_udp = config.advertise_udp;
    sfu_config.first_frame_max_age = config.first_frame_max_age;
    sfu_config.pacer_burst = config.pacer_burst;
    sfu_config.resend_history = config.resend_history;
    let mut listener = None;
    let mut tcp_local_addr = None;
    if let Some(base) = config.tcp_bind {
        let mut addr = base;
        addr.set_port(nth_port("TCP", base.port(), index, workers)?);
        let bound = async {
            let listener = TcpListener::bind(addr).await?;
            let local = listener.local_addr()?;
            Ok::<_, io::Error>((listener.into_std()?, local))
        };
        let (std_listener, local) = bound
            .await
            .map_err(|error| StartError::TcpBind { addr, error })?;
        let tcp_candidate = SocketAddr::new(config.advertised_ip, local.port());
        sfu_config.tcp_candidate = Some(tcp_candidate);
        tcp_local_addr = Some(local);
        listener = Some((std_listener, tcp_candidate));
    }
    let sfu = Sfu::new(Instant::now(), sfu_config)?;
    Ok((
        Bound {
            socket,
            candidate,
            listener,
            tcp_limits: config.tcp_limits,
            sfu,
        },
        handle::WorkerAddrs {
            udp: local_addr,
            tcp: tcp_local_addr,
        },
    ))
}

/// Asks for [`UDP_SOCKET_BUFFER`] each way, and says so when the kernel gives less (Linux
/// reports twice what it grants, for its bookkeeping).
fn enlarge_buffers(socket: &std::net::UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let _ = socket.set_recv_buffer_size(UDP_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_SOCKET_BUFFER);
    let granted = (socket.recv_buffer_size(), socket.send_buffer_size());
    if let (Ok(recv), Ok(send)) = granted
        && (recv < UDP_SOCKET_BUFFER || send < UDP_SOCKET_BUFFER)
    {
        warn!(
            recv,
            send,
            wanted = UDP_SOCKET_BUFFER,
            "the media socket's buffers are smaller than asked for; large lessons may lose \
             packets in bursts: raise net.core.rmem_max and net.core.wmem_max (sysctl) to 4194304"
        );
    }
}
