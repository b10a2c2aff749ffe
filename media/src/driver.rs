//! The tokio layer around [`Sfu`]: one UDP socket, one TCP listener for ICE-TCP, and one task
//! that owns the core and every TCP connection ([`crate::tcp`]).
//!
//! The task waits for whichever comes first — a datagram, a TCP connection or frame, a
//! command, or the core's deadline — feeds it to the core with `Instant::now()`, then drains
//! the core: datagrams go out on the socket (or as frames on their TCP connection), events go out on an unbounded channel (events are per peer or per track, never per
//! packet, so the channel cannot grow faster than signaling produces work). Forwarding between
//! browsers stays inside this one task; in-process subscribers get their packets on a bounded
//! channel each (a slow one loses packets, counted, and never holds up the task), and
//! in-process publishers send theirs through the command channel.
//!
//! The task ends when every [`MediaHandle`] is dropped, or on a socket error it cannot recover.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub use crate::tcp::TcpLimits;
use crate::tcp::{TcpConnections, TcpEvent};
use crate::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, ConfigError, LocalEvent, LocalPacket,
    LocalTrack, MediaEvent, Mid, Output, PeerId, Sfu, SfuConfig, SfuStats, Transport, UnknownPeer,
    VideoSizeError,
};

/// Largest datagram we read; WebRTC keeps datagrams under ~1200 bytes.
const RECV_BUFFER: usize = 2048;
/// Datagrams read in one go before the core's output is polled (and sent). Larger batches
/// spare more passes through subscribers' sessions; each holds back the first datagram's
/// copies until the batch is read, at most this many datagrams' fan-out.
const RECV_BATCH: usize = 32;
/// Commands waiting for the task; senders wait when it is full.
const COMMAND_QUEUE: usize = 256;
/// Packets waiting for one local subscriber, unless it asks otherwise: about two seconds of
/// a large room's media (ten seconds of a teacher's camera and voice).
pub const LOCAL_PACKET_QUEUE: usize = 2048;

/// The media socket's kernel buffers. One task reads the socket and also fans every packet
/// out, so while it sends a keyframe to hundreds of subscribers nothing is read; with Linux's
/// default 208 KiB, the datagrams arriving meanwhile (the teacher's media, every subscriber's
/// RTCP) overflowed it: a 250-student lecture lost 1.2% (`RcvbufErrors` in /proc/net/snmp),
/// none with 4 MiB. The kernel caps the request at `net.core.rmem_max` / `wmem_max`.
pub const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Where the driver listens and what it tells peers.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UDP socket address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// TCP address to listen on for ICE-TCP; port 0 picks a free port; `None`: no ICE-TCP.
    pub tcp_bind: Option<SocketAddr>,
    /// The IP peers reach us on, advertised as the ICE host candidates with the bound ports.
    pub advertised_ip: IpAddr,
    /// The UDP port advertised with it; 0 for the bound port. Another port when something in
    /// between forwards it to ours (a NAT's port forward, a test's relay).
    pub advertised_port: u16,
    /// Whether the UDP candidate is announced (see [`SfuConfig::advertise_udp`]).
    pub advertise_udp: bool,
    pub tcp_limits: TcpLimits,
}

impl DriverConfig {
    /// UDP on `bind`, no ICE-TCP, advertised on `advertised_ip` with the bound port.
    pub fn udp(bind: SocketAddr, advertised_ip: IpAddr) -> Self {
        DriverConfig {
            bind,
            tcp_bind: None,
            advertised_ip,
            advertised_port: 0,
            advertise_udp: true,
            tcp_limits: TcpLimits::default(),
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
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A command failed, or never reached the core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError<E> {
    /// The driver task has ended.
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
        reply: oneshot::Sender<Result<String, AddPeerError>>,
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

/// The running driver: a handle to command it and the stream of its events.
pub struct MediaDriver {
    pub handle: MediaHandle,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    pub task: JoinHandle<()>,
}

/// Cheap to clone; one per signaling task that needs the media plane.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::Sender<MediaCommand>,
    local_addr: SocketAddr,
    tcp_local_addr: Option<SocketAddr>,
}

/// Binds the socket and spawns the driver task on the current tokio runtime.
pub async fn start(config: DriverConfig) -> Result<MediaDriver, StartError> {
    let socket = UdpSocket::bind(config.bind).await?;
    enlarge_buffers(&socket);
    let local_addr = socket.local_addr()?;
    let port = match config.advertised_port {
        0 => local_addr.port(),
        port => port,
    };
    let candidate = SocketAddr::new(config.advertised_ip, port);
    let mut sfu_config = SfuConfig::new(candidate);
    sfu_config.advertise_udp = config.advertise_udp;
    let mut tcp = None;
    let mut tcp_local_addr = None;
    if let Some(addr) = config.tcp_bind {
        let bound = async {
            let listener = TcpListener::bind(addr).await?;
            let local = listener.local_addr()?;
            Ok::<_, io::Error>((listener, local))
        };
        let (listener, local) = bound
            .await
            .map_err(|error| StartError::TcpBind { addr, error })?;
        let tcp_candidate = SocketAddr::new(config.advertised_ip, local.port());
        sfu_config.tcp_candidate = Some(tcp_candidate);
        tcp_local_addr = Some(local);
        tcp = Some(TcpConnections::new(
            listener,
            tcp_candidate,
            config.tcp_limits,
        ));
    }
    let sfu = Sfu::new(Instant::now(), sfu_config)?;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(socket, candidate, tcp, sfu, command_rx, event_tx));
    Ok(MediaDriver {
        handle: MediaHandle {
            commands: command_tx,
            local_addr,
            tcp_local_addr,
        },
        events: event_rx,
        task,
    })
}

impl MediaHandle {
    /// The address the media socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the ICE-TCP listener is bound to, if there is one.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp_local_addr
    }

    /// Adds a peer from its SDP offer; returns the SDP answer.
    pub async fn add_peer(
        &self,
        peer: PeerId,
        room: RoomName,
        offer: String,
    ) -> Result<String, CommandError<AddPeerError>> {
        self.add_peer_with(peer, room, offer, true).await
    }

    /// Adds a peer with its initial publish permission; returns the SDP answer.
    pub async fn add_peer_with(
        &self,
        peer: PeerId,
        room: RoomName,
        offer: String,
        publish_allowed: bool,
    ) -> Result<String, CommandError<AddPeerError>> {
        self.call(|reply| MediaCommand::AddPeer {
            peer,
            room,
            offer,
            publish_allowed,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    /// A client renegotiation; returns the SDP answer.
    pub async fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> Result<String, CommandError<AcceptOfferError>> {
        self.call(|reply| MediaCommand::AcceptOffer { peer, offer, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    /// The client's answer to a [`MediaEvent::OfferCreated`].
    pub async fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> Result<(), CommandError<AcceptAnswerError>> {
        self.call(|reply| MediaCommand::AcceptAnswer {
            peer,
            answer,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    pub async fn remove_peer(&self, peer: PeerId) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::RemovePeer { peer, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    pub async fn set_publish_allowed(
        &self,
        peer: PeerId,
        allowed: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::SetPublishAllowed {
            peer,
            allowed,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    pub async fn set_audio_muted(
        &self,
        peer: PeerId,
        muted: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::SetAudioMuted { peer, muted, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    pub async fn stats(&self) -> Result<SfuStats, CommandError<std::convert::Infallible>> {
        self.call(|reply| MediaCommand::Stats { reply }).await
    }

    /// The height at which the peer shows the video of its m-line `mid`.
    pub async fn set_video_size(
        &self,
        peer: PeerId,
        mid: Mid,
        height: u32,
    ) -> Result<(), CommandError<VideoSizeError>> {
        self.call(|reply| MediaCommand::SetVideoSize {
            peer,
            mid,
            height,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    /// Adds an in-process publisher (see [`crate::local`]); it is removed when the returned
    /// handle is dropped or closed.
    pub async fn add_local_publisher(
        &self,
        peer: PeerId,
        room: RoomName,
        tracks: Vec<LocalTrack>,
        publish_allowed: bool,
    ) -> Result<LocalPublisher, CommandError<AddPeerError>> {
        self.call(|reply| MediaCommand::AddLocalPublisher {
            peer,
            room,
            tracks,
            publish_allowed,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)?;
        Ok(LocalPublisher {
            peer,
            commands: self.commands.clone(),
        })
    }

    /// Adds an in-process subscriber of every track in `room`; it is removed when the
    /// returned subscription is dropped.
    pub async fn add_local_subscriber(
        &self,
        peer: PeerId,
        room: RoomName,
    ) -> Result<LocalSubscription, CommandError<AddPeerError>> {
        self.add_local_subscriber_with_queue(peer, room, LOCAL_PACKET_QUEUE)
            .await
    }

    /// [`MediaHandle::add_local_subscriber`] with `queue` packets of room for a subscriber
    /// that falls behind (the recorder's is configurable).
    pub async fn add_local_subscriber_with_queue(
        &self,
        peer: PeerId,
        room: RoomName,
        queue: usize,
    ) -> Result<LocalSubscription, CommandError<AddPeerError>> {
        let (control_tx, control) = mpsc::unbounded_channel();
        let (packets_tx, packets) = mpsc::channel(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = LocalSink {
            control: control_tx,
            packets: packets_tx,
            dropped: Arc::clone(&dropped),
        };
        self.call(|reply| MediaCommand::AddLocalSubscriber {
            peer,
            room,
            sink,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)?;
        Ok(LocalSubscription {
            peer,
            control,
            packets,
            dropped,
            commands: self.commands.clone(),
        })
    }

    async fn call<T, E>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> MediaCommand,
    ) -> Result<T, CommandError<E>> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        response.await.map_err(|_| CommandError::Stopped)
    }
}

/// An in-process publisher's handle. Dropping it removes the publisher (its tracks end).
#[derive(Debug)]
pub struct LocalPublisher {
    peer: PeerId,
    commands: mpsc::Sender<MediaCommand>,
}

impl LocalPublisher {
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Forwards one packet of the track `mid`; waits while the driver's queue is full.
    pub async fn write(&self, mid: Mid, packet: LocalPacket) -> Result<(), CommandError<()>> {
        let command = MediaCommand::WriteLocal {
            peer: self.peer,
            mid,
            packet,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| CommandError::Stopped)
    }
}

impl Drop for LocalPublisher {
    fn drop(&mut self) {
        remove_on_drop(&self.commands, self.peer);
    }
}

/// An in-process subscriber's stream of [`LocalEvent`]s. Dropping it removes the subscriber.
#[derive(Debug)]
pub struct LocalSubscription {
    peer: PeerId,
    control: mpsc::UnboundedReceiver<LocalEvent>,
    packets: mpsc::Receiver<LocalEvent>,
    dropped: Arc<AtomicU64>,
    commands: mpsc::Sender<MediaCommand>,
}

impl LocalSubscription {
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The next event; `None` once the driver stopped. A track's `TrackStarted` always comes
    /// before its packets: track events are checked first, and the driver sends a track's
    /// event before any of its packets.
    pub async fn recv(&mut self) -> Option<LocalEvent> {
        tokio::select! {
            biased;
            Some(event) = self.control.recv() => Some(event),
            Some(event) = self.packets.recv() => Some(event),
            else => None,
        }
    }

    /// Asks the publisher of a video track (as named by [`LocalEvent::TrackStarted`]) for a
    /// keyframe, e.g. when this subscriber starts showing it. Throttled like any request; a
    /// local publisher is not asked (its GOP cache serves). Never waits: a full command queue
    /// drops the request.
    pub fn request_keyframe(&self, publisher: PeerId, mid: Mid) {
        let _ = self
            .commands
            .try_send(MediaCommand::RequestKeyframe { publisher, mid });
    }

    /// Packets lost because this subscriber did not keep up.
    pub fn dropped_packets(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A reader of [`LocalSubscription::dropped_packets`] for another task: the recorder
    /// watches its losses from outside its writer, which may be blocked on a slow disk.
    pub fn drop_counter(&self) -> LocalDrops {
        LocalDrops(Arc::clone(&self.dropped))
    }
}

/// The count of packets a local subscriber lost, readable from anywhere.
#[derive(Debug, Clone)]
pub struct LocalDrops(Arc<AtomicU64>);

impl LocalDrops {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        remove_on_drop(&self.commands, self.peer);
    }
}

/// Asks for [`UDP_SOCKET_BUFFER`] each way, and says so when the kernel gives less (Linux
/// reports twice what it grants, for its bookkeeping).
fn enlarge_buffers(socket: &UdpSocket) {
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

/// Asks the driver to remove a peer without waiting (from `Drop`). If the queue is full the
/// driver still removes the peer: a local subscriber whose sink is gone is removed when its
/// next event cannot be delivered, and a publisher simply stops sending.
fn remove_on_drop(commands: &mpsc::Sender<MediaCommand>, peer: PeerId) {
    let (reply, _) = oneshot::channel();
    let _ = commands.try_send(MediaCommand::RemovePeer { peer, reply });
}

async fn run(
    socket: UdpSocket,
    candidate: SocketAddr,
    mut tcp: Option<TcpConnections>,
    mut sfu: Sfu,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut buf = vec![0; RECV_BUFFER];
    let mut sinks: FxHashMap<PeerId, LocalSink> = FxHashMap::default();
    loop {
        // One clock read per drain, not per packet: only TCP's stall timer needs it.
        let drained_at = Instant::now();
        let deadline = loop {
            match sfu.poll_output() {
                Output::Transmit {
                    transport: Transport::Udp,
                    destination,
                    bytes,
                } => {
                    if let Err(error) = socket.send_to(&bytes, destination).await {
                        // A full buffer or an unreachable peer loses one datagram, as UDP does.
                        debug!(%destination, %error, "media send failed");
                    }
                }
                Output::Transmit {
                    transport: Transport::Tcp,
                    destination,
                    bytes,
                } => {
                    if let Some(tcp) = tcp.as_mut() {
                        tcp.send(drained_at, destination, &bytes);
                    }
                }
                Output::Event(event) => {
                    if let MediaEvent::PeerDisconnected { peer } = &event {
                        sinks.remove(peer);
                    }
                    // Nobody listening is not our problem; the media keeps flowing.
                    let _ = events.send(event);
                }
                Output::Local { subscriber, event } => {
                    if !deliver_local(&sinks, subscriber, event) {
                        sinks.remove(&subscriber);
                        let _ = sfu.remove_peer(Instant::now(), subscriber);
                    }
                }
                Output::Timeout(at) => break at,
            }
        };

        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => execute(&mut sfu, &mut sinks, tcp.as_ref(), command),
                None => return,
            },
            event = next_tcp(&mut tcp) => {
                let now = Instant::now();
                let Some(tcp) = tcp.as_mut() else { continue };
                match event {
                    TcpEvent::Accepted(Ok((stream, addr))) => tcp.accept(now, stream, addr),
                    TcpEvent::Accepted(Err(error)) => {
                        // Out of file descriptors, say: the connections we have go on.
                        debug!(%error, "media TCP accept failed");
                    }
                    TcpEvent::Readable(addr) => tcp.read(now, addr, &mut sfu),
                    TcpEvent::Writable(addr) => tcp.flush(now, addr),
                    TcpEvent::Sweep => tcp.sweep(now, &sfu),
                }
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, source)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    sfu.handle_datagram(Instant::now(), source, candidate, datagram);
                    // What else waits is read before the output is polled: the core serves
                    // each subscriber once for the whole batch (see `Sfu::poll_output`).
                    for _ in 1..RECV_BATCH {
                        let Ok((len, source)) = socket.try_recv_from(&mut buf) else {
                            break;
                        };
                        let datagram = buf.get(..len).unwrap_or_default();
                        // Its own arrival time: publishers' TWCC feedback reports it.
                        sfu.handle_datagram(Instant::now(), source, candidate, datagram);
                    }
                }
                Err(error) if is_transient(&error) => {
                    debug!(%error, "media receive failed");
                }
                Err(error) => {
                    warn!(%error, "media socket failed; driver stops");
                    return;
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => sfu.handle_timeout(Instant::now()),
        }
    }
}

fn execute(
    sfu: &mut Sfu,
    sinks: &mut FxHashMap<PeerId, LocalSink>,
    tcp: Option<&TcpConnections>,
    command: MediaCommand,
) {
    let now = Instant::now();
    // A dropped reply receiver means the caller gave up; the command still took effect.
    match command {
        MediaCommand::AddPeer {
            peer,
            room,
            offer,
            publish_allowed,
            reply,
        } => {
            let _ = reply.send(sfu.add_peer_with(now, peer, room, &offer, publish_allowed));
        }
        MediaCommand::AcceptOffer { peer, offer, reply } => {
            let _ = reply.send(sfu.accept_offer(now, peer, &offer));
        }
        MediaCommand::AcceptAnswer {
            peer,
            answer,
            reply,
        } => {
            let _ = reply.send(sfu.accept_answer(now, peer, &answer));
        }
        MediaCommand::RemovePeer { peer, reply } => {
            let _ = reply.send(sfu.remove_peer(now, peer));
        }
        MediaCommand::SetPublishAllowed {
            peer,
            allowed,
            reply,
        } => {
            let _ = reply.send(sfu.set_publish_allowed(now, peer, allowed));
        }
        MediaCommand::SetAudioMuted { peer, muted, reply } => {
            let _ = reply.send(sfu.set_audio_muted(now, peer, muted));
        }
        MediaCommand::Stats { reply } => {
            let mut stats = sfu.stats();
            if let Some(tcp) = tcp {
                tcp.fill(&mut stats);
            }
            let _ = reply.send(stats);
        }
        MediaCommand::SetVideoSize {
            peer,
            mid,
            height,
            reply,
        } => {
            let _ = reply.send(sfu.set_video_size(now, peer, &mid, height));
        }
        MediaCommand::AddLocalPublisher {
            peer,
            room,
            tracks,
            publish_allowed,
            reply,
        } => {
            let _ = reply.send(sfu.add_local_publisher(now, peer, room, tracks, publish_allowed));
        }
        MediaCommand::WriteLocal { peer, mid, packet } => {
            if let Err(error) = sfu.write_local(now, peer, &mid, packet) {
                debug!(%peer, %error, "local packet refused");
            }
        }
        MediaCommand::AddLocalSubscriber {
            peer,
            room,
            sink,
            reply,
        } => {
            let result = sfu.add_local_subscriber(now, peer, room);
            // A refused subscriber (an id in use) must not take over the sink of that id; the
            // core queues its first events in its output, so the sink is in place in time.
            if result.is_ok() {
                sinks.insert(peer, sink);
            }
            let _ = reply.send(result);
        }
        MediaCommand::RequestKeyframe { publisher, mid } => {
            sfu.request_local_keyframe(now, publisher, &mid);
        }
    }
}

/// Hands one event to a local subscriber; false when the subscriber is gone.
fn deliver_local(
    sinks: &FxHashMap<PeerId, LocalSink>,
    subscriber: PeerId,
    event: LocalEvent,
) -> bool {
    let Some(sink) = sinks.get(&subscriber) else {
        return true;
    };
    match event {
        LocalEvent::Packet { .. } => match sink.packets.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        },
        event => sink.control.send(event).is_ok(),
    }
}

/// The next event of the TCP side; never, without one.
async fn next_tcp(tcp: &mut Option<TcpConnections>) -> TcpEvent {
    match tcp {
        Some(tcp) => tcp.next().await,
        None => std::future::pending().await,
    }
}

/// Errors after which the socket still works (ICMP feedback surfacing on a later receive).
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
