//! [`MediaHandle`]: the media plane as the rest of the server sees it. Each command goes to
//! one worker, chosen by [`Placement`]: a new peer to its room's home, anything else to its
//! peer's worker. The table is locked once per command (commands are per peer or per track,
//! never per packet); an in-process publisher's packets go straight to its worker's channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use classroom_protocol::RoomName;
use tokio::sync::{Notify, mpsc, oneshot};

use super::{CommandError, LOCAL_PACKET_QUEUE, LocalSink, MediaCommand, RELAY_QUEUE};
use crate::placement::{Placed, Placement, WorkerId, WorkerLoad};
use crate::relay;
use crate::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, LocalEvent, LocalPacket, LocalTrack, Mid,
    PeerId, SfuStats, UnknownPeer, VideoSizeError,
};

/// Where one worker's sockets are bound.
#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerAddrs {
    pub(super) udp: SocketAddr,
    pub(super) tcp: Option<SocketAddr>,
}

#[derive(Debug)]
struct Worker {
    commands: mpsc::Sender<MediaCommand>,
    addrs: WorkerAddrs,
    /// Wakes the worker for its relay links.
    wake: Arc<Notify>,
}

/// One worker's counters and load, as [`MediaHandle::worker_stats`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub worker: WorkerId,
    /// Rooms whose home it is, and peers placed on it.
    pub load: WorkerLoad,
    /// Its core's counters (with its ICE-TCP side's).
    pub sfu: SfuStats,
}

/// Cheap to clone; one per signaling task that needs the media plane.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    workers: Arc<[Worker]>,
    placement: Arc<Mutex<Placement>>,
}

/// Takes a peer's place back unless its command reached the worker (which then owns the
/// outcome: the worker takes it back itself when the core refuses the peer).
struct PlacedGuard<'a> {
    placement: &'a Mutex<Placement>,
    peer: PeerId,
    sent: bool,
}

impl Drop for PlacedGuard<'_> {
    fn drop(&mut self) {
        if !self.sent {
            lock(self.placement).left(self.peer);
        }
    }
}

/// The table, even if a thread panicked while holding it: it is only ever left consistent.
pub(super) fn lock(placement: &Mutex<Placement>) -> MutexGuard<'_, Placement> {
    placement.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MediaHandle {
    pub(super) fn new(
        commands: Vec<mpsc::Sender<MediaCommand>>,
        addrs: Vec<WorkerAddrs>,
        wakes: Vec<Arc<Notify>>,
        placement: Arc<Mutex<Placement>>,
    ) -> Self {
        let workers = commands
            .into_iter()
            .zip(addrs)
            .zip(wakes)
            .map(|((commands, addrs), wake)| Worker {
                commands,
                addrs,
                wake,
            })
            .collect();
        MediaHandle { workers, placement }
    }

    /// The address worker 0's media socket is bound to (the only one with one worker).
    pub fn local_addr(&self) -> SocketAddr {
        self.workers[0].addrs.udp
    }

    /// The address worker 0's ICE-TCP listener is bound to, if there is one.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.workers[0].addrs.tcp
    }

    /// Every worker's UDP address, by worker index.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addrs.udp).collect()
    }

    /// Every worker's ICE-TCP address, by worker index (empty without ICE-TCP).
    pub fn tcp_local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().filter_map(|w| w.addrs.tcp).collect()
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The worker whose home `room` is, while it has peers.
    pub fn room_worker(&self, room: &RoomName) -> Option<WorkerId> {
        lock(&self.placement).home_of(room)
    }

    /// The worker `peer` lives on.
    pub fn peer_worker(&self, peer: PeerId) -> Option<WorkerId> {
        lock(&self.placement).worker_of(peer)
    }

    /// Gives `end` to `room`'s worker (its home while it has peers, else worker 0) as one of
    /// the room's relay links, whose other end is held outside the workers (a node link,
    /// [`crate::node_link`]) and woken by `wake`; `home`: this node is the room's home.
    /// Returns what wakes that worker, for the other end.
    pub(crate) async fn attach_relay(
        &self,
        room: RoomName,
        mut end: relay::SfuRelayEnd,
        wake: Arc<Notify>,
        home: bool,
    ) -> Result<Arc<Notify>, CommandError<std::convert::Infallible>> {
        let worker = &self.workers[self.room_worker(&room).map_or(0, |w| w.0)];
        end.wake_peer_with(wake);
        worker
            .commands
            .send(MediaCommand::AddRelay { room, end, home })
            .await
            .map_err(|_| CommandError::Stopped)?;
        Ok(Arc::clone(&worker.wake))
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
        self.add_pinned_peer(peer, room, offer, publish_allowed, None)
            .await
    }

    /// Adds a peer that takes no offers of ours (a WHIP publisher, a WHEP player): it
    /// receives only the publications of `pins` (see [`crate::Sfu::set_pins`]).
    pub async fn add_pinned_peer(
        &self,
        peer: PeerId,
        room: RoomName,
        offer: String,
        publish_allowed: bool,
        pins: Option<Vec<(PeerId, Mid)>>,
    ) -> Result<String, CommandError<AddPeerError>> {
        let placed = self.placed(peer, &room);
        self.call_new(peer, &room, placed, |reply| MediaCommand::AddPeer {
            peer,
            room: room.clone(),
            offer,
            publish_allowed,
            pins,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    /// What a pinned peer receives from now on.
    pub async fn set_pins(
        &self,
        peer: PeerId,
        pins: Vec<(PeerId, Mid)>,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call_peer(peer, |reply| MediaCommand::SetPins { peer, pins, reply })
            .await
    }

    /// A client renegotiation; returns the SDP answer.
    pub async fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> Result<String, CommandError<AcceptOfferError>> {
        self.call_peer(peer, |reply| MediaCommand::AcceptOffer {
            peer,
            offer,
            reply,
        })
        .await
    }

    /// The client's answer to a [`crate::MediaEvent::OfferCreated`].
    pub async fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> Result<(), CommandError<AcceptAnswerError>> {
        self.call_peer(peer, |reply| MediaCommand::AcceptAnswer {
            peer,
            answer,
            reply,
        })
        .await
    }

    pub async fn remove_peer(&self, peer: PeerId) -> Result<(), CommandError<UnknownPeer>> {
        self.call_peer(peer, |reply| MediaCommand::RemovePeer { peer, reply })
            .await
    }

    pub async fn set_publish_allowed(
        &self,
        peer: PeerId,
        allowed: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call_peer(peer, |reply| MediaCommand::SetPublishAllowed {
            peer,
            allowed,
            reply,
        })
        .await
    }

    pub async fn set_audio_muted(
        &self,
        peer: PeerId,
        muted: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call_peer(peer, |reply| MediaCommand::SetAudioMuted {
            peer,
            muted,
            reply,
        })
        .await
    }

    /// The peer's audio to every breakout room of `lesson` as well (`None`: its own room
    /// only); the lesson's rooms share the peer's worker ([`crate::placement`]).
    pub async fn set_voice_broadcast(
        &self,
        peer: PeerId,
        lesson: Option<classroom_protocol::LessonId>,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call_peer(peer, |reply| MediaCommand::SetVoiceBroadcast {
            peer,
            lesson,
            reply,
        })
        .await
    }

    /// Every worker's counters added up (gauges too: peers and connections in all workers).
    pub async fn stats(&self) -> Result<SfuStats, CommandError<std::convert::Infallible>> {
        let mut total = SfuStats::default();
        for worker in self.worker_stats().await? {
            total.add(&worker.sfu);
        }
        Ok(total)
    }

    /// Each worker's counters and load, by worker index.
    pub async fn worker_stats(
        &self,
    ) -> Result<Vec<WorkerStats>, CommandError<std::convert::Infallible>> {
        let mut all = Vec::with_capacity(self.workers.len());
        for (index, worker) in self.workers.iter().enumerate() {
            let sfu = call(&worker.commands, |reply| MediaCommand::Stats { reply }).await?;
            all.push(WorkerStats {
                worker: WorkerId(index),
                load: WorkerLoad::default(),
                sfu,
            });
        }
        let placement = lock(&self.placement);
        for (stats, load) in all.iter_mut().zip(placement.loads()) {
            stats.load = *load;
        }
        Ok(all)
    }

    /// The height at which the peer shows the video of its m-line `mid`.
    pub async fn set_video_size(
        &self,
        peer: PeerId,
        mid: Mid,
        height: u32,
    ) -> Result<(), CommandError<VideoSizeError>> {
        self.call_peer(peer, |reply| MediaCommand::SetVideoSize {
            peer,
            mid,
            height,
            reply,
        })
        .await
    }

    /// Adds an in-process publisher (see [`crate::local`]) on its room's worker; it is
    /// removed when the returned handle is dropped or closed.
    pub async fn add_local_publisher(
        &self,
        peer: PeerId,
        room: RoomName,
        tracks: Vec<LocalTrack>,
        publish_allowed: bool,
    ) -> Result<LocalPublisher, CommandError<AddPeerError>> {
        let placed = self.placed(peer, &room).map_err(CommandError::Failed)?;
        let worker = placed.worker;
        self.call_new(peer, &room, Ok(placed), |reply| {
            MediaCommand::AddLocalPublisher {
                peer,
                room: room.clone(),
                tracks,
                publish_allowed,
                reply,
            }
        })
        .await?
        .map_err(CommandError::Failed)?;
        Ok(LocalPublisher {
            peer,
            commands: self.workers[worker.0].commands.clone(),
        })
    }

    /// Adds an in-process subscriber of every track in `room` on the room's worker; it is
    /// removed when the returned subscription is dropped.
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
        let placed = self.placed(peer, &room).map_err(CommandError::Failed)?;
        let worker = placed.worker;
        self.call_new(peer, &room, Ok(placed), |reply| {
            MediaCommand::AddLocalSubscriber {
                peer,
                room: room.clone(),
                sink,
                reply,
            }
        })
        .await?
        .map_err(CommandError::Failed)?;
        Ok(LocalSubscription {
            peer,
            control,
            packets,
            dropped,
            commands: self.workers[worker.0].commands.clone(),
        })
    }

    /// A worker for a new peer of `room`; a peer id in use is refused as the core would.
    fn placed(&self, peer: PeerId, room: &RoomName) -> Result<Placed, AddPeerError> {
        lock(&self.placement)
            .place(peer, room)
            .map_err(|_| AddPeerError::DuplicatePeer(peer))
    }

    /// Sends a command that adds the placed `peer` to its worker, with the relay links its
    /// place needs (the peer is its room's first on a worker the room spans to). Room for
    /// every command is reserved first and all are sent at once, so that a caller giving up
    /// leaves either everything or nothing sent. Until then, giving up (an error, or the
    /// caller's future dropped) takes the place back; after, the worker does when the core
    /// refuses the peer (and then ends the links it was just given).
    async fn call_new<T>(
        &self,
        peer: PeerId,
        room: &RoomName,
        placed: Result<Placed, AddPeerError>,
        command: impl FnOnce(oneshot::Sender<Result<T, AddPeerError>>) -> MediaCommand,
    ) -> Result<Result<T, AddPeerError>, CommandError<AddPeerError>> {
        let placed = placed.map_err(CommandError::Failed)?;
        let mut guard = PlacedGuard {
            placement: &self.placement,
            peer,
            sent: false,
        };
        let worker = &self.workers[placed.worker.0];
        let mut permits = worker
            .commands
            .reserve_many(1 + placed.link_to.len())
            .await
            .map_err(|_| CommandError::Stopped)?;
        let mut others = Vec::with_capacity(placed.link_to.len());
        for other in &placed.link_to {
            let permit = self.workers[other.0]
                .commands
                .reserve()
                .await
                .map_err(|_| CommandError::Stopped)?;
            others.push((*other, permit));
        }
        // The links first: the worker has them before the peer, and ends them if the core
        // refuses the peer.
        for (other, permit) in others {
            let (mut here, mut there) = relay::link(RELAY_QUEUE);
            here.wake_peer_with(Arc::clone(&self.workers[other.0].wake));
            there.wake_peer_with(Arc::clone(&worker.wake));
            if let Some(permit) = permits.next() {
                permit.send(MediaCommand::AddRelay {
                    room: room.clone(),
                    end: here,
                    home: placed.worker == placed.home,
                });
            }
            permit.send(MediaCommand::AddRelay {
                room: room.clone(),
                end: there,
                home: other == placed.home,
            });
        }
        let (reply, response) = oneshot::channel();
        let Some(permit) = permits.next() else {
            return Err(CommandError::Stopped);
        };
        permit.send(command(reply));
        guard.sent = true;
        response.await.map_err(|_| CommandError::Stopped)
    }

    /// Sends a command about `peer` to its worker; a peer no worker has is unknown, as the
    /// core would say.
    async fn call_peer<T, E: From<UnknownPeer>>(
        &self,
        peer: PeerId,
        command: impl FnOnce(oneshot::Sender<Result<T, E>>) -> MediaCommand,
    ) -> Result<T, CommandError<E>> {
        let worker = self.peer_worker(peer);
        let Some(worker) = worker else {
            return Err(CommandError::Failed(E::from(UnknownPeer(peer))));
        };
        call(&self.workers[worker.0].commands, command)
            .await?
            .map_err(CommandError::Failed)
    }
}

async fn call<T, E>(
    commands: &mpsc::Sender<MediaCommand>,
    command: impl FnOnce(oneshot::Sender<T>) -> MediaCommand,
) -> Result<T, CommandError<E>> {
    let (reply, response) = oneshot::channel();
    commands
        .send(command(reply))
        .await
        .map_err(|_| CommandError::Stopped)?;
    response.await.map_err(|_| CommandError::Stopped)
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

/// Asks the driver to remove a peer without waiting (from `Drop`). If the queue is full the
/// driver still removes the peer: a local subscriber whose sink is gone is removed when its
/// next event cannot be delivered, and a publisher simply stops sending.
fn remove_on_drop(commands: &mpsc::Sender<MediaCommand>, peer: PeerId) {
    let (reply, _) = oneshot::channel();
    let _ = commands.try_send(MediaCommand::RemovePeer { peer, reply });
}
