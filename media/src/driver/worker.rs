//! One media worker: an OS thread with a current-thread tokio runtime that owns an [`Sfu`],
//! its UDP socket, its ICE-TCP listener and connections, its timers and local subscribers'
//! sinks. Nothing of it is shared with another worker but the event channel (per peer or
//! track, never per packet) and the placement table, which it updates when one of its peers
//! is gone or the core refused one.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustc_hash::FxHashMap;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use super::handle::lock;
use super::udp::UdpIo;
use super::{Bound, LocalSink, MediaCommand, RECV_BATCH};
use crate::placement::{Placement, WorkerId};
use crate::tcp::{TcpConnections, TcpEvent};
use crate::{AddPeerError, LocalEvent, MediaEvent, Output, PeerId, Sfu, Transport};

/// What connects a worker to the rest: its commands in, the shared events out, the placement
/// table, the stop signal, and the signals that it runs and that it has ended.
pub(super) struct Channels {
    pub(super) commands: mpsc::Receiver<MediaCommand>,
    pub(super) events: mpsc::UnboundedSender<MediaEvent>,
    pub(super) placement: Arc<Mutex<Placement>>,
    /// Told when a batch arrives on one of the worker's relay links, or one closes.
    pub(super) relays: Arc<Notify>,
    /// Told when the worker must stop (dropped unsent: never).
    pub(super) stop: oneshot::Receiver<()>,
    /// Dropped when the thread ends, with its sockets.
    pub(super) done: oneshot::Sender<()>,
    /// Whether its runtime and sockets are up.
    pub(super) ready: oneshot::Sender<io::Result<()>>,
}

/// Starts worker `id`'s thread, which builds its runtime, takes its sockets into it and runs.
/// Runtimes are made and dropped in their own thread only (dropping one inside another's
/// task would panic).
pub(super) fn spawn(id: WorkerId, bound: Bound, channels: Channels) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("media-worker-{id}"))
        .spawn(move || {
            let Channels {
                commands,
                events,
                placement,
                relays,
                stop,
                done,
                ready,
            } = channels;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let worker = match Worker::register(bound, placement) {
                    Ok(worker) => worker,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                run(worker, commands, events, relays, stop).await;
            });
            // The runtime goes first, with whatever it still holds of the sockets; then
            // `MediaWorkers::stop` hears that the ports are free.
            drop(runtime);
            drop(done);
            debug!(worker = %id, "media worker stopped");
        })
        .map(|_| ())
}

/// What the worker's loop owns.
struct Worker {
    socket: UdpIo,
    candidate: SocketAddr,
    tcp: Option<TcpConnections>,
    sfu: Sfu,
    placement: Arc<Mutex<Placement>>,
}

impl Worker {
    /// Takes the bound sockets into the current (the worker's) runtime.
    fn register(bound: Bound, placement: Arc<Mutex<Placement>>) -> io::Result<Worker> {
        let socket = UdpIo::new(UdpSocket::from_std(bound.socket)?, RECV_BATCH)?;
        let tcp = match bound.listener {
            Some((listener, candidate)) => {
                let listener = TcpListener::from_std(listener)?;
                Some(TcpConnections::new(listener, candidate, bound.tcp_limits))
            }
            None => None,
        };
        Ok(Worker {
            socket,
            candidate: bound.candidate,
            tcp,
            sfu: bound.sfu,
            placement,
        })
    }
}

/// Resolves when the worker is told to stop; never, once nobody can tell it. Polling a
/// oneshot is an atomic read, no lock, so the loop may poll it on every turn.
async fn stopped(stop: &mut Option<oneshot::Receiver<()>>) -> bool {
    match stop.as_mut() {
        Some(receiver) => {
            let told = receiver.await.is_ok();
            if !told {
                *stop = None;
            }
            told
        }
        None => std::future::pending().await,
    }
}

async fn run(
    worker: Worker,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
    relays: Arc<Notify>,
    stop: oneshot::Receiver<()>,
) {
    let mut stop = Some(stop);
    let Worker {
        mut socket,
        candidate,
        mut tcp,
        mut sfu,
        placement,
    } = worker;
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
                    // Sent at the end of the drain, a subscriber's burst in one GSO send.
                    if socket.queue(destination, &bytes) {
                        socket.flush().await;
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
                        left(&mut sfu, &placement, *peer);
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
        socket.flush().await;

        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => {
                    execute(&mut sfu, &mut sinks, tcp.as_ref(), &placement, command)
                }
                None => return,
            },
            told = stopped(&mut stop) => if told {
                return;
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
            readable = socket.readable() => match readable {
                // What waits is read (up to RECV_BATCH datagrams, one `recvmmsg` a turn)
                // before the output is polled: the core serves each subscriber once for the
                // whole batch (see `Sfu::poll_output`).
                Ok(()) => {
                    let mut read = 0;
                    while read < RECV_BATCH {
                        let received = socket.try_recv(|source, datagram| {
                            // Its own arrival time: publishers' TWCC feedback reports it.
                            sfu.handle_datagram(Instant::now(), source, candidate, datagram);
                        });
                        match received {
                            Ok(count) => read += count.max(1),
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                            Err(error) if is_transient(&error) => {
                                debug!(%error, "media receive failed");
                                break;
                            }
                            Err(error) => {
                                warn!(%error, "media socket failed; driver stops");
                                return;
                            }
                        }
                    }
                }
                Err(error) => {
                    warn!(%error, "media socket failed; driver stops");
                    return;
                }
            },
            () = relays.notified() => sfu.handle_relays(Instant::now()),
            () = tokio::time::sleep_until(deadline.into()) => sfu.handle_timeout(Instant::now()),
        }
    }
}

/// `peer` is gone from this worker: its place is freed, and when it was the last of its room
/// here, the room's relay links end.
fn left(sfu: &mut Sfu, placement: &Mutex<Placement>, peer: PeerId) {
    let left = lock(placement).leave(peer);
    if let Some(left) = left.filter(|l| l.room_left_worker) {
        sfu.end_relays(Instant::now(), &left.room);
    }
}

fn execute(
    sfu: &mut Sfu,
    sinks: &mut FxHashMap<PeerId, LocalSink>,
    tcp: Option<&TcpConnections>,
    placement: &Mutex<Placement>,
    command: MediaCommand,
) {
    let now = Instant::now();
    // The handle placed a peer before sending its command here; a refused one leaves (but
    // not for a duplicate: that id's place is the other peer's).
    let refused = |sfu: &mut Sfu, peer: PeerId, error: &AddPeerError| {
        if !matches!(error, AddPeerError::DuplicatePeer(_)) {
            left(sfu, placement, peer);
        }
    };
    // A dropped reply receiver means the caller gave up; the command still took effect.
    match command {
        MediaCommand::AddPeer {
            peer,
            room,
            offer,
            publish_allowed,
            pins,
            reply,
        } => {
            let result = sfu.add_peer_pinned(now, peer, room, &offer, publish_allowed, pins);
            if let Err(error) = &result {
                refused(sfu, peer, error);
            }
            let _ = reply.send(result);
        }
        MediaCommand::SetPins { peer, pins, reply } => {
            let _ = reply.send(sfu.set_pins(now, peer, pins));
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
        MediaCommand::SetVoiceBroadcast {
            peer,
            lesson,
            reply,
        } => {
            let _ = reply.send(sfu.set_voice_broadcast(now, peer, lesson));
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
            let result = sfu.add_local_publisher(now, peer, room, tracks, publish_allowed);
            if let Err(error) = &result {
                refused(sfu, peer, error);
            }
            let _ = reply.send(result);
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
            match &result {
                Ok(()) => {
                    sinks.insert(peer, sink);
                }
                Err(error) => refused(sfu, peer, error),
            }
            let _ = reply.send(result);
        }
        MediaCommand::RequestKeyframe { publisher, mid } => {
            sfu.request_local_keyframe(now, publisher, &mid);
        }
        MediaCommand::AddRelay { room, end, home } => sfu.add_relay(now, room, end, home),
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
