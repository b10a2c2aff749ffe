//! The tokio side of signaling: one task per room owning its [`Room`], and the registry that
//! finds or opens a room for a join. Sessions (`session.rs`) talk to a room task through a
//! command channel; the room task answers through each connection's bounded outbox.
//!
//! With a media port ([`Rooms::with_media`]) the room task also negotiates media: it handles
//! `offer` and `answer` itself, applies the room's media effects to the port in the order the
//! room emits them (so forwarding stops before anyone hears of a revoked stage), and relays
//! what the media plane reports ([`Rooms::deliver_media`]) to the peer's connection. Media
//! calls are awaited in the room task: they are short, and awaiting them keeps every peer's
//! permissions in step with the room's grants without locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use classroom_protocol::signal::{
    ClientMessage, EncoderState, MediaKind, ParticipantId, ParticipantInfo, QualityUpdate,
    RecordingState, ServerMessage,
};
use classroom_protocol::{
    AccessChange, AccessDenied, CloseReason, ErrorCode, JoinClaims, LessonId, ParticipantRole,
    RoomName, TrackSource, UserId,
};
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::media::{MediaError, MediaFuture, MediaNotice, MediaPort, PeerAccess, PeerId};
use crate::room::{
    ConnectionId, EncoderIdentity, JoinError, LessonEffect, MediaEffect, Output, RecordingEffect,
    Room, RoomConfig,
};
use crate::stats::{SignalingSnapshot, SignalingStats};

/// Limits of signaling connections.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    pub room: RoomConfig,
    /// Larger text messages are refused with an error (the connection stays).
    pub max_message_bytes: usize,
    /// Messages per second per connection, on average.
    pub messages_per_second: u32,
    /// Messages a connection may send at once.
    pub message_burst: u32,
    /// Time to send `join` after opening the WebSocket.
    pub join_timeout: Duration,
    /// The server pings this often.
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is dead.
    pub idle_timeout: Duration,
    /// Messages queued for a slow client before it is disconnected.
    pub outbox_capacity: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            room: RoomConfig::default(),
            max_message_bytes: 16 * 1024,
            messages_per_second: 20,
            message_burst: 40,
            join_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            outbox_capacity: 512,
        }
    }
}

/// Checks join tokens; the server implements it with its token secret, its clock and its
/// database.
pub trait TokenVerifier: Send + Sync + 'static {
    /// The claims of a valid join token, or a message saying why it is not.
    fn verify(&self, token: &str) -> Result<JoinClaims, String>;

    /// Whether the holder of verified `claims` may enter now, by what the database holds: the
    /// account (exists, enabled), the membership (still in the course), the lesson (neither
    /// ended nor cancelled) and removals. A token issued before any of them changed is
    /// refused here.
    fn admit<'a>(&'a self, claims: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>>;
}

/// Why [`TokenVerifier::admit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("{}", .0.message())]
    Denied(AccessDenied),
    /// The database could not be asked; the client may try again.
    #[error("the server cannot check your access right now; try again in a moment")]
    Unavailable,
}

/// What the outside world hears from rooms: lesson changes, media changes, and for the
/// recorder, the recording's changes and what happens in a recorded room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Lesson(LessonEffect),
    Media {
        room: RoomName,
        effect: MediaEffect,
    },
    Recording {
        room: RoomName,
        lesson: LessonId,
        effect: RecordingEffect,
    },
    /// Reported only while the room is recording (or paused), after `Recording` started it.
    Activity {
        room: RoomName,
        activity: RoomActivity,
    },
}

/// What the recorder keeps of a room besides media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomActivity {
    /// A message sent to everyone: chat, participants joining, leaving or changing (stage,
    /// hand, mute), the hand queue, the chat lock, the recording state.
    Broadcast(ServerMessage),
    /// Who is in the room when the recording starts.
    Participants(Vec<ParticipantInfo>),
    /// A media peer (the SFU's peer id), its participant and what each of its sending
    /// m-lines carries; on each offer, and for every peer when the recording starts.
    Publisher {
        peer: PeerId,
        participant: ParticipantId,
        sources: BTreeMap<String, TrackSource>,
    },
}

/// What a room task sends to one connection.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    Text(Utf8Bytes),
    Close(CloseReason),
}

pub(crate) enum RoomCommand {
    Join {
        /// The request id of the client's `join`, answered after the `joined` snapshot.
        id: Option<u64>,
        claims: Box<JoinClaims>,
        connection: ConnectionId,
        /// When the WebSocket opened: the start of the join time the media plane measures.
        opened_at: std::time::Instant,
        outbox: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<ParticipantId, JoinError>>,
    },
    Message {
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        message: ClientMessage,
    },
    Disconnected {
        participant: ParticipantId,
        connection: ConnectionId,
    },
    Media(MediaNotice),
    /// The server starts recording (the course records by default).
    StartRecording,
    /// Who may be here changed in the database.
    Access(AccessChange),
    /// The user may not be here after all (their join raced a change of access).
    Revoke {
        user: UserId,
        why: AccessDenied,
    },
    Encoder(EncoderCommand),
}

/// What the RTMP ingest tells a room about the lesson's encoder.
pub(crate) enum EncoderCommand {
    Started {
        identity: EncoderIdentity,
        mids: Vec<String>,
        reply: oneshot::Sender<Result<PeerId, EncoderError>>,
    },
    Changed {
        state: EncoderState,
        reason: Option<String>,
    },
}

/// Why an encoder could not enter its lesson's room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncoderError {
    #[error("{0}")]
    Refused(#[from] JoinError),
    #[error("this server runs without media")]
    NoMedia,
    #[error("the lesson's room closed")]
    RoomClosed,
}

#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) commands: mpsc::Sender<RoomCommand>,
    ended: Arc<AtomicBool>,
}

impl RoomHandle {
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// The rooms of this node. In-memory; a multi-node deployment puts a router in front.
pub struct Rooms {
    config: SignalingConfig,
    rooms: DashMap<RoomName, RoomHandle>,
    events: mpsc::UnboundedSender<RoomEvent>,
    next_connection: AtomicU64,
    media: Option<Arc<MediaShared>>,
    stats: Arc<SignalingStats>,
    /// Counts access changes, so that a join can tell whether one arrived while its own
    /// check was under way (see `session.rs`).
    access_changes: AtomicU64,
}

/// The media port and the peers of every room, shared by the room tasks.
struct MediaShared {
    port: Arc<dyn MediaPort>,
    next_peer: AtomicU64,
    /// The room task of each peer; weak, so that rooms end when the registry drops them.
    peers: DashMap<PeerId, mpsc::WeakSender<RoomCommand>>,
    /// Who publishes on each peer and what its m-lines carry, for in-process subscribers
    /// (the restream chooses its main view by it).
    published: DashMap<PeerId, (ParticipantRole, BTreeMap<String, TrackSource>)>,
}

impl Rooms {
    /// Rooms without media: `offer` is refused with `media_unavailable`.
    pub fn new(config: SignalingConfig, events: mpsc::UnboundedSender<RoomEvent>) -> Self {
        Rooms {
            config,
            rooms: DashMap::new(),
            events,
            next_connection: AtomicU64::new(1),
            media: None,
            stats: Arc::default(),
            access_changes: AtomicU64::new(0),
        }
    }

    /// Rooms whose participants negotiate media with `port`.
    pub fn with_media(
        config: SignalingConfig,
        events: mpsc::UnboundedSender<RoomEvent>,
        port: Arc<dyn MediaPort>,
    ) -> Self {
        let media = MediaShared {
            port,
            next_peer: AtomicU64::new(1),
            peers: DashMap::new(),
            published: DashMap::new(),
        };
        Rooms {
            media: Some(Arc::new(media)),
            ..Rooms::new(config, events)
        }
    }

    /// Relays what the media plane reports to the room of the peer it concerns. Notices about
    /// peers no room knows (already removed) are dropped.
    pub async fn deliver_media(&self, notice: MediaNotice) {
        let Some(media) = &self.media else { return };
        let room = match (&notice, notice.peer()) {
            (MediaNotice::Speakers { room, .. }, _) => {
                self.rooms.get(room).map(|r| r.commands.clone())
            }
            (_, Some(peer)) => media.peers.get(&peer).and_then(|r| r.upgrade()),
            (_, None) => None,
        };
        if let Some(room) = room {
            let _ = room.send(RoomCommand::Media(notice)).await;
        }
    }

    pub fn config(&self) -> &SignalingConfig {
        &self.config
    }

    /// Follows a change of who may be where, stored by the courses layer: the rooms concerned
    /// close out those who lost access (their connection closes with the reason's code, their
    /// media peer is removed) or let a removed user back in. A lesson's changes go to its
    /// room; a user's to every open room (a school has tens, and each looks the user up).
    pub async fn access_changed(&self, change: AccessChange) {
        // Counted before any room hears of it: a join that checked the database before the
        // change and enters after it sees the count move and checks again.
        self.access_changes.fetch_add(1, Ordering::SeqCst);
        let rooms: Vec<mpsc::Sender<RoomCommand>> = match change {
            AccessChange::LessonCancelled(lesson) | AccessChange::Readmitted { lesson, .. } => self
                .rooms
                .get(&RoomName::for_lesson(lesson))
                .map(|r| r.commands.clone())
                .into_iter()
                .collect(),
            AccessChange::AccountDisabled(_) | AccessChange::LeftCourse { .. } => self
                .rooms
                .iter()
                .filter(|r| !r.is_ended())
                .map(|r| r.commands.clone())
                .collect(),
        };
        for room in rooms {
            let _ = room.send(RoomCommand::Access(change)).await;
        }
    }

    /// How many access changes have arrived so far.
    pub(crate) fn access_changes_seen(&self) -> u64 {
        self.access_changes.load(Ordering::SeqCst)
    }

    /// The role of the participant on media peer `peer`, and what its m-line `mid` carries as
    /// the client declared it (`None` for an undeclared m-line); `None` for a peer signaling
    /// does not know (an in-process publisher, or one gone).
    pub fn track_source(
        &self,
        peer: PeerId,
        mid: &str,
    ) -> Option<(ParticipantRole, Option<TrackSource>)> {
        let media = self.media.as_ref()?;
        let entry = media.published.get(&peer)?;
        let (role, sources) = entry.value();
        Some((*role, sources.get(mid).copied()))
    }

    /// Starts recording `room` on the server's behalf (its course records by default), as if
    /// its teacher had asked; nothing happens for a room that is not open or already records.
    pub async fn start_recording(&self, room: &RoomName) {
        let commands = self.rooms.get(room).map(|r| r.commands.clone());
        if let Some(commands) = commands {
            let _ = commands.send(RoomCommand::StartRecording).await;
        }
    }

    /// The signaling counters of this node.
    pub fn stats(&self) -> SignalingSnapshot {
        self.stats.snapshot()
    }

    pub(crate) fn stats_handle(&self) -> &Arc<SignalingStats> {
        &self.stats
    }

    /// Rooms open on this node (ended ones are kept as tombstones and not counted).
    pub fn open_rooms(&self) -> usize {
        self.rooms.iter().filter(|r| !r.is_ended()).count()
    }

    /// The lesson's RTMP encoder starts publishing (or starts again after it stopped): it
    /// enters the lesson's room, opened if needed, as a participant of its own, which makes
    /// the lesson live. Returns the media peer its in-process publisher must use; the tracks
    /// it publishes on `mids` are announced with the source `encoder`.
    pub async fn encoder_started(
        &self,
        lesson: LessonId,
        identity: EncoderIdentity,
        mids: Vec<String>,
    ) -> Result<PeerId, EncoderError> {
        let room = self.open_room(&RoomName::for_lesson(lesson), lesson);
        let (reply, response) = oneshot::channel();
        let command = RoomCommand::Encoder(EncoderCommand::Started {
            identity,
            mids,
            reply,
        });
        room.commands
            .send(command)
            .await
            .map_err(|_| EncoderError::RoomClosed)?;
        response.await.map_err(|_| EncoderError::RoomClosed)?
    }

    /// The lesson's encoder was interrupted, stopped (its participant leaves) or refused;
    /// moderators hear of it. Nothing happens when the lesson has no open room.
    pub async fn encoder_changed(
        &self,
        lesson: LessonId,
        state: EncoderState,
        reason: Option<String>,
    ) {
        let room = self
            .rooms
            .get(&RoomName::for_lesson(lesson))
            .map(|r| r.commands.clone());
        if let Some(room) = room {
            let command = RoomCommand::Encoder(EncoderCommand::Changed { state, reason });
            let _ = room.send(command).await;
        }
    }

    pub(crate) fn next_connection(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// The room of `claims`, opened on first use. An ended room stays ended, so a join token
    /// issued before the end cannot reopen it.
    pub(crate) fn room_for(&self, claims: &JoinClaims) -> RoomHandle {
        self.open_room(&claims.room, claims.lesson)
    }

    /// The room `name` of `lesson`, opened on first use.
    fn open_room(&self, name: &RoomName, lesson: LessonId) -> RoomHandle {
        self.rooms
            .entry(name.clone())
            .or_insert_with(|| {
                let (commands, inbox) = mpsc::channel(1024);
                let ended = Arc::new(AtomicBool::new(false));
                let room = Room::new(
                    name.clone(),
                    lesson,
                    self.config.room.clone(),
                    Instant::now().into_std(),
                );
                let media = self.media.clone().map(|shared| RoomMedia {
                    shared,
                    room: commands.downgrade(),
                    peers: Peers::default(),
                });
                tokio::spawn(run_room(
                    room,
                    inbox,
                    ended.clone(),
                    self.events.clone(),
                    media,
                    self.stats.clone(),
                ));
                RoomHandle { commands, ended }
            })
            .clone()
    }
}

/// The task that owns one room.
async fn run_room(
    mut room: Room,
    mut inbox: mpsc::Receiver<RoomCommand>,
    ended: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<RoomEvent>,
    mut media: Option<RoomMedia>,
    stats: Arc<SignalingStats>,
) {
    let mut connections = Connections::default();
    let mut counted_participants = 0i64;
    loop {
        let deadline = room.poll_timeout().map(Instant::from_std);
        let outputs = tokio::select! {
            command = inbox.recv() => {
                let Some(command) = command else { break };
                let now = Instant::now().into_std();
                match command {
                    RoomCommand::Join { id, claims, connection, opened_at, outbox, reply } => {
                        match room.join(&claims, connection) {
                            Ok((participant, mut outputs)) => {
                                connections.attach(participant, connection, outbox);
                                connections.opened_at.insert(connection, opened_at);
                                let _ = reply.send(Ok(participant));
                                // Through the same outbox, so the ok cannot overtake `joined`.
                                if let Some(id) = id {
                                    outputs.push(Output::Send { to: participant, message: ServerMessage::Ok { id } });
                                }
                                outputs
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                                Vec::new()
                            }
                        }
                    }
                    RoomCommand::Message { participant, connection, id, message } => match (message, media.as_mut()) {
                        (ClientMessage::Offer { sdp, sources }, Some(media)) => {
                            let opened_at = connections.opened_at.get(&connection).copied();
                            let reply = media.offer(&room, participant, (connection, opened_at), id, sdp, sources).await;
                            connections.send_to_connection(connection, &reply);
                            if room.recording() != RecordingState::Off
                                && matches!(reply, ServerMessage::Answer { .. })
                            {
                                media.report_publishers(&room, &events, Some(connection));
                            }
                            Vec::new()
                        }
                        (ClientMessage::VideoSize { mid, height, .. }, Some(media)) => {
                            let reply = media.video_size(connection, id, mid, height).await;
                            if let Some(reply) = reply {
                                connections.send_to_connection(connection, &reply);
                            }
                            Vec::new()
                        }
                        (ClientMessage::Answer { sdp }, Some(media)) => {
                            if let Some(reply) = media.answer(connection, id, sdp).await {
                                connections.send_to_connection(connection, &reply);
                            }
                            Vec::new()
                        }
                        (message, _) => room.handle(now, participant, id, message),
                    },
                    RoomCommand::Disconnected { participant, connection } => {
                        connections.detach(connection);
                        if let Some(media) = media.as_mut() {
                            media.connection_gone(connection).await;
                        }
                        room.disconnected(now, participant, connection)
                    }
                    RoomCommand::Media(MediaNotice::Speakers { peers, .. }) => {
                        if let Some(media) = media.as_ref() {
                            let speakers = media.participants_of(&peers);
                            connections.broadcast(None, &ServerMessage::Speakers { speakers });
                        }
                        Vec::new()
                    }
                    RoomCommand::Media(MediaNotice::Quality { peer, quality }) => {
                        if let Some(participant) = media.as_ref().and_then(|m| m.participant_of(peer)) {
                            let update = QualityUpdate { participant, quality };
                            connections.broadcast(None, &ServerMessage::ConnectionQuality { updates: vec![update] });
                        }
                        Vec::new()
                    }
                    RoomCommand::StartRecording => room.start_recording(),
                    RoomCommand::Access(change) => room.access_changed(change),
                    RoomCommand::Revoke { user, why } => room.revoke(user, why),
                    RoomCommand::Encoder(command) => encoder_command(&mut room, media.as_mut(), command),
                    RoomCommand::Media(notice) => {
                        if let Some((connection, message)) = media.as_mut().and_then(|m| m.notice(notice)) {
                            connections.send_to_connection(connection, &message);
                        }
                        Vec::new()
                    }
                }
            }
            _ = sleep_until(deadline) => room.handle_timeout(Instant::now().into_std()),
        };
        for output in outputs {
            match output {
                Output::Send { to, message } => connections.send(to, &message),
                Output::Broadcast { except, message } => {
                    connections.broadcast(except, &message);
                    if room.recording() != RecordingState::Off
                        || matches!(message, ServerMessage::Recording { .. })
                    {
                        let activity = RoomActivity::Broadcast(message);
                        let _ = events.send(RoomEvent::Activity {
                            room: room.name().clone(),
                            activity,
                        });
                    }
                }
                Output::Recording(effect) => {
                    let _ = events.send(RoomEvent::Recording {
                        room: room.name().clone(),
                        lesson: room.lesson(),
                        effect,
                    });
                    if effect == RecordingEffect::Started {
                        let activity = RoomActivity::Participants(room.participants());
                        let _ = events.send(RoomEvent::Activity {
                            room: room.name().clone(),
                            activity,
                        });
                        if let Some(media) = media.as_ref() {
                            media.report_publishers(&room, &events, None);
                        }
                    }
                }
                Output::Close { connection, why } => {
                    connections.close(connection, why);
                    if let Some(media) = media.as_mut() {
                        media.connection_gone(connection).await;
                    }
                }
                Output::Media(effect) => {
                    if let Some(media) = media.as_mut() {
                        media.apply(&effect).await;
                    }
                    let _ = events.send(RoomEvent::Media {
                        room: room.name().clone(),
                        effect,
                    });
                }
                Output::Lesson(effect) => {
                    let _ = events.send(RoomEvent::Lesson(effect));
                }
            }
        }
        // Slow clients whose outbox overflowed are treated as dropped connections.
        for (participant, connection) in connections.take_overflowed() {
            if let Some(media) = media.as_mut() {
                media.connection_gone(connection).await;
            }
            let outputs = room.disconnected(Instant::now().into_std(), participant, connection);
            for output in outputs {
                if let Output::Broadcast { except, message } = output {
                    connections.broadcast(except, &message);
                }
            }
        }
        let participants = i64::try_from(room.participant_count()).unwrap_or(i64::MAX);
        stats.participants_changed(participants - counted_participants);
        counted_participants = participants;
        if room.is_ended() {
            ended.store(true, Ordering::Release);
            break;
        }
    }
    stats.participants_changed(-counted_participants);
    if let Some(media) = media.as_mut() {
        media.close().await;
    }
    tracing::info!(room = %room.name(), "room closed");
}

/// Carries out what the ingest says about the lesson's encoder.
fn encoder_command(
    room: &mut Room,
    media: Option<&mut RoomMedia>,
    command: EncoderCommand,
) -> Vec<Output> {
    match command {
        EncoderCommand::Started {
            identity,
            mids,
            reply,
        } => {
            let Some(media) = media else {
                let _ = reply.send(Err(EncoderError::NoMedia));
                return Vec::new();
            };
            match room.encoder_started(&identity) {
                Ok((participant, outputs)) => {
                    let peer = media.register_encoder(participant, mids);
                    let _ = reply.send(Ok(peer));
                    outputs
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    Vec::new()
                }
            }
        }
        EncoderCommand::Changed { state, reason } => room.encoder_changed(state, reason),
    }
}

/// The connection an encoder's peer is filed under: connections count from 1, so nothing is
/// ever sent to it (an encoder has no WebSocket).
const ENCODER_CONNECTION: ConnectionId = ConnectionId(0);

/// The media side of one room task: its peers and the shared port.
struct RoomMedia {
    shared: Arc<MediaShared>,
    /// This room's command channel, registered for each of its peers.
    room: mpsc::WeakSender<RoomCommand>,
    peers: Peers,
}

/// The media peers of one room: at most one per connection.
#[derive(Default)]
struct Peers {
    by_connection: HashMap<ConnectionId, PeerId>,
    by_peer: HashMap<PeerId, (ConnectionId, ParticipantId)>,
    /// What each peer said its sending m-lines carry, by mid.
    sources: HashMap<PeerId, BTreeMap<String, TrackSource>>,
}

impl RoomMedia {
    /// A client `offer`: opens the connection's peer, or renegotiates it. The reply is the
    /// answer, or an error; a refused offer changes nothing.
    async fn offer(
        &mut self,
        room: &Room,
        participant: ParticipantId,
        (connection, opened_at): (ConnectionId, Option<std::time::Instant>),
        id: Option<u64>,
        sdp: String,
        sources: BTreeMap<String, TrackSource>,
    ) -> ServerMessage {
        let port = self.shared.port.clone();
        if let Some(refused) = room.grants(participant).and_then(|grants| {
            let missing = sources.values().find(|s| !grants.publish.contains(s))?;
            Some(ServerMessage::Error {
                id,
                code: ErrorCode::MissingGrant,
                message: format!("you may not publish a {} track", missing.as_str()),
                grant: Some(format!("publish:{}", missing.as_str())),
            })
        }) {
            return refused;
        }
        if let Some(&peer) = self.peers.by_connection.get(&connection) {
            match port.accept_offer(peer, sdp.clone()).await {
                Ok(answer) => {
                    // Each offer describes the whole session, so its sources replace the last
                    // ones (and a client cannot grow them offer after offer).
                    self.publish_sources(room, participant, peer, &sources);
                    self.peers.sources.insert(peer, sources);
                    return ServerMessage::Answer { id, sdp: answer };
                }
                // The media plane dropped the peer (connection failed): open a new one.
                Err(MediaError::NoPeer) => self.forget(peer),
                Err(e) => return media_error(id, &e),
            }
        }
        let Some(grants) = room.grants(participant) else {
            return ServerMessage::Error {
                id,
                code: ErrorCode::NotJoined,
                message: "join the room first".into(),
                grant: None,
            };
        };
        if !grants.subscribe && grants.publish.is_empty() {
            return ServerMessage::Error {
                id,
                code: ErrorCode::MissingGrant,
                message: "you need the `subscribe` grant to receive media".into(),
                grant: Some("subscribe".into()),
            };
        }
        let access = PeerAccess {
            publish: !grants.publish.is_empty(),
            audio_muted: room.is_muted(participant),
            connection_opened: opened_at,
        };
        let peer = PeerId(self.shared.next_peer.fetch_add(1, Ordering::Relaxed));
        // Registered first: the media plane reports the new peer's tracks while adding it.
        self.shared.peers.insert(peer, self.room.clone());
        match port.add_peer(peer, room.name(), sdp, access).await {
            Ok(answer) => {
                self.peers.by_connection.insert(connection, peer);
                self.peers.by_peer.insert(peer, (connection, participant));
                self.publish_sources(room, participant, peer, &sources);
                self.peers.sources.insert(peer, sources);
                tracing::debug!(%participant, %peer, ?access, "media peer opened");
                ServerMessage::Answer { id, sdp: answer }
            }
            Err(e) => {
                self.shared.peers.remove(&peer);
                media_error(id, &e)
            }
        }
    }

    /// Files a new media peer for the encoder's in-process publisher; every track it
    /// publishes (on `mids`) has the source `encoder`. An earlier encoder peer of the
    /// participant is forgotten (the ingest removes it from the media plane itself).
    fn register_encoder(&mut self, participant: ParticipantId, mids: Vec<String>) -> PeerId {
        for old in self.peers_of(participant) {
            self.forget(old);
        }
        let peer = PeerId(self.shared.next_peer.fetch_add(1, Ordering::Relaxed));
        self.shared.peers.insert(peer, self.room.clone());
        self.peers
            .by_peer
            .insert(peer, (ENCODER_CONNECTION, participant));
        let sources = mids
            .into_iter()
            .map(|mid| (mid, TrackSource::Encoder))
            .collect();
        self.peers.sources.insert(peer, sources);
        tracing::debug!(%participant, %peer, "encoder peer filed");
        peer
    }

    /// A client `answer` to the media plane's offer; the reply is `ok` or an error.
    async fn answer(
        &mut self,
        connection: ConnectionId,
        id: Option<u64>,
        sdp: String,
    ) -> Option<ServerMessage> {
        let Some(&peer) = self.peers.by_connection.get(&connection) else {
            return Some(media_error(id, &MediaError::NoPendingOffer));
        };
        match self.shared.port.accept_answer(peer, sdp).await {
            Ok(()) => id.map(|id| ServerMessage::Ok { id }),
            Err(e) => {
                if e == MediaError::NoPeer {
                    self.forget(peer);
                }
                Some(media_error(id, &e))
            }
        }
    }

    /// A client `video_size`: the reply is `ok` or an error.
    async fn video_size(
        &mut self,
        connection: ConnectionId,
        id: Option<u64>,
        mid: String,
        height: u32,
    ) -> Option<ServerMessage> {
        let Some(&peer) = self.peers.by_connection.get(&connection) else {
            return Some(media_error(id, &MediaError::NoPeer));
        };
        match self.shared.port.set_video_size(peer, mid, height).await {
            Ok(()) => id.map(|id| ServerMessage::Ok { id }),
            Err(e) => {
                if e == MediaError::NoPeer {
                    self.forget(peer);
                }
                Some(media_error(id, &e))
            }
        }
    }

    /// Applies a room's media effect to the peers of the participant it names.
    async fn apply(&mut self, effect: &MediaEffect) {
        let participant = match effect {
            MediaEffect::PublishAllowed { participant, .. }
            | MediaEffect::PublishRevoked { participant }
            | MediaEffect::AudioMuted { participant }
            | MediaEffect::AudioUnmuted { participant }
            | MediaEffect::ParticipantGone { participant } => *participant,
        };
        let port = self.shared.port.clone();
        for peer in self.peers_of(participant) {
            match effect {
                MediaEffect::PublishAllowed { .. } => port.set_publish_allowed(peer, true).await,
                MediaEffect::PublishRevoked { .. } => port.set_publish_allowed(peer, false).await,
                MediaEffect::AudioMuted { .. } => port.set_audio_muted(peer, true).await,
                MediaEffect::AudioUnmuted { .. } => port.set_audio_muted(peer, false).await,
                MediaEffect::ParticipantGone { .. } => {
                    self.forget(peer);
                    port.remove_peer(peer).await;
                }
            }
        }
    }

    /// A connection ended: its peer goes with it.
    async fn connection_gone(&mut self, connection: ConnectionId) {
        if let Some(&peer) = self.peers.by_connection.get(&connection) {
            self.forget(peer);
            self.shared.port.remove_peer(peer).await;
        }
    }

    /// What to send to which connection for a notice from the media plane.
    fn notice(&mut self, notice: MediaNotice) -> Option<(ConnectionId, ServerMessage)> {
        let (connection, _) = *self.peers.by_peer.get(&notice.peer()?)?;
        let message = match notice {
            MediaNotice::Offer { sdp, .. } => ServerMessage::Offer { sdp },
            MediaNotice::TrackStarted {
                mid,
                publisher,
                publisher_mid,
                kind,
                ..
            } => {
                let (_, participant) = *self.peers.by_peer.get(&publisher)?;
                let source = self
                    .peers
                    .sources
                    .get(&publisher)
                    .and_then(|sources| sources.get(&publisher_mid))
                    .copied()
                    .unwrap_or(match kind {
                        MediaKind::Audio => TrackSource::Microphone,
                        MediaKind::Video => TrackSource::Camera,
                    });
                ServerMessage::Track {
                    mid,
                    participant,
                    kind,
                    source,
                }
            }
            MediaNotice::TrackEnded { mid, .. } => ServerMessage::TrackEnded { mid },
            MediaNotice::PeerGone { peer } => {
                tracing::debug!(%peer, "the media plane dropped a peer");
                self.forget(peer);
                return None;
            }
            MediaNotice::Speakers { .. } | MediaNotice::Quality { .. } => return None,
        };
        Some((connection, message))
    }

    /// Tells the recorder which participant each peer is and what its m-lines carry: every
    /// peer, or the one of `connection`.
    fn report_publishers(
        &self,
        room: &Room,
        events: &mpsc::UnboundedSender<RoomEvent>,
        connection: Option<ConnectionId>,
    ) {
        let mut peers: Vec<(&PeerId, &(ConnectionId, ParticipantId))> =
            self.peers.by_peer.iter().collect();
        peers.sort_by_key(|(peer, _)| **peer);
        for (peer, (peer_connection, participant)) in peers {
            if connection.is_some_and(|c| c != *peer_connection) {
                continue;
            }
            let activity = RoomActivity::Publisher {
                peer: *peer,
                participant: *participant,
                sources: self.peers.sources.get(peer).cloned().unwrap_or_default(),
            };
            let _ = events.send(RoomEvent::Activity {
                room: room.name().clone(),
                activity,
            });
        }
    }

    fn participant_of(&self, peer: PeerId) -> Option<ParticipantId> {
        self.peers
            .by_peer
            .get(&peer)
            .map(|(_, participant)| *participant)
    }

    /// The participants of these peers, in order, each once (a participant may have a peer
    /// per tab).
    fn participants_of(&self, peers: &[PeerId]) -> Vec<ParticipantId> {
        let mut participants: Vec<ParticipantId> = Vec::new();
        for peer in peers {
            match self.peers.by_peer.get(peer) {
                Some((_, participant)) if !participants.contains(participant) => {
                    participants.push(*participant);
                }
                _ => {}
            }
        }
        participants
    }

    /// Removes every peer of the room (the room closed).
    async fn close(&mut self) {
        let peers: Vec<PeerId> = self.peers.by_peer.keys().copied().collect();
        for peer in peers {
            self.forget(peer);
            self.shared.port.remove_peer(peer).await;
        }
    }

    fn peers_of(&self, participant: ParticipantId) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .peers
            .by_peer
            .iter()
            .filter(|(_, (_, p))| *p == participant)
            .map(|(peer, _)| *peer)
            .collect();
        peers.sort();
        peers
    }

    fn forget(&mut self, peer: PeerId) {
        if let Some((connection, _)) = self.peers.by_peer.remove(&peer) {
            self.peers.by_connection.remove(&connection);
        }
        self.peers.sources.remove(&peer);
        self.shared.peers.remove(&peer);
        self.shared.published.remove(&peer);
    }

    /// Shares what a peer publishes with [`Rooms::track_source`].
    fn publish_sources(
        &self,
        room: &Room,
        participant: ParticipantId,
        peer: PeerId,
        sources: &BTreeMap<String, TrackSource>,
    ) {
        if let Some(role) = room.role(participant) {
            self.shared.published.insert(peer, (role, sources.clone()));
        }
    }
}

fn media_error(id: Option<u64>, error: &MediaError) -> ServerMessage {
    ServerMessage::Error {
        id,
        code: error.code(),
        message: error.to_string(),
        grant: None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The connections of one room, by participant and by connection.
#[derive(Default)]
struct Connections {
    by_connection: HashMap<ConnectionId, (ParticipantId, mpsc::Sender<Outbound>)>,
    by_participant: HashMap<ParticipantId, ConnectionId>,
    /// When each connection's WebSocket opened.
    opened_at: HashMap<ConnectionId, std::time::Instant>,
    overflowed: Vec<(ParticipantId, ConnectionId)>,
}

impl Connections {
    fn attach(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        outbox: mpsc::Sender<Outbound>,
    ) {
        self.by_connection.insert(connection, (participant, outbox));
        self.by_participant.insert(participant, connection);
    }

    fn detach(&mut self, connection: ConnectionId) {
        self.opened_at.remove(&connection);
        if let Some((participant, _)) = self.by_connection.remove(&connection)
            && self.by_participant.get(&participant) == Some(&connection)
        {
            self.by_participant.remove(&participant);
        }
    }

    /// Sends to one connection (media replies go to the connection that negotiated).
    fn send_to_connection(&mut self, connection: ConnectionId, message: &ServerMessage) {
        let text = encode(message);
        self.push(connection, Outbound::Text(text));
    }

    fn send(&mut self, to: ParticipantId, message: &ServerMessage) {
        let Some(connection) = self.by_participant.get(&to).copied() else {
            return;
        };
        let text = encode(message);
        self.push(connection, Outbound::Text(text));
    }

    fn broadcast(&mut self, except: Option<ParticipantId>, message: &ServerMessage) {
        let text = encode(message); // once, shared by every connection
        let targets: Vec<ConnectionId> = self
            .by_participant
            .iter()
            .filter(|(p, _)| Some(**p) != except)
            .map(|(_, c)| *c)
            .collect();
        for connection in targets {
            self.push(connection, Outbound::Text(text.clone()));
        }
    }

    fn close(&mut self, connection: ConnectionId, why: CloseReason) {
        if let Some((_, outbox)) = self.by_connection.get(&connection) {
            // A full outbox still closes: the session notices its channel is dropped.
            let _ = outbox.try_send(Outbound::Close(why));
        }
        self.detach(connection);
    }

    fn push(&mut self, connection: ConnectionId, outbound: Outbound) {
        let Some((participant, outbox)) = self.by_connection.get(&connection) else {
            return;
        };
        if outbox.try_send(outbound).is_err() {
            tracing::warn!(%participant, "client too slow to read signaling; disconnecting it");
            self.overflowed.push((*participant, connection));
            self.detach(connection);
        }
    }

    fn take_overflowed(&mut self) -> Vec<(ParticipantId, ConnectionId)> {
        std::mem::take(&mut self.overflowed)
    }
}

pub(crate) fn encode(message: &ServerMessage) -> Utf8Bytes {
    // Serializing our own enum of strings and numbers cannot fail.
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_else(|_| String::from("{}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use classroom_protocol::{CourseId, LessonId, ParticipantRole};

    use super::*;
    use crate::media::MediaFuture;

    /// A media port that records what it is told.
    #[derive(Default)]
    struct FakePort {
        calls: Mutex<Vec<String>>,
    }

    impl FakePort {
        fn record(&self, call: String) {
            self.calls.lock().expect("not poisoned").push(call);
        }

        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().expect("not poisoned"))
        }
    }

    impl MediaPort for FakePort {
        fn add_peer<'a>(
            &'a self,
            peer: PeerId,
            _room: &'a RoomName,
            offer: String,
            access: PeerAccess,
        ) -> MediaFuture<'a, Result<String, MediaError>> {
            Box::pin(async move {
                if offer == "bad" {
                    return Err(MediaError::InvalidSdp("not SDP".into()));
                }
                self.record(format!(
                    "add {peer} publish={} muted={}",
                    access.publish, access.audio_muted
                ));
                Ok(format!("answer {peer}"))
            })
        }

        fn accept_offer(
            &self,
            peer: PeerId,
            _offer: String,
        ) -> MediaFuture<'_, Result<String, MediaError>> {
            Box::pin(async move {
                self.record(format!("renegotiate {peer}"));
                Ok(format!("answer {peer} again"))
            })
        }

        fn accept_answer(
            &self,
            peer: PeerId,
            _answer: String,
        ) -> MediaFuture<'_, Result<(), MediaError>> {
            Box::pin(async move {
                self.record(format!("answer {peer}"));
                Ok(())
            })
        }

        fn remove_peer(&self, peer: PeerId) -> MediaFuture<'_, ()> {
            Box::pin(async move { self.record(format!("remove {peer}")) })
        }

        fn set_publish_allowed(&self, peer: PeerId, allowed: bool) -> MediaFuture<'_, ()> {
            Box::pin(async move { self.record(format!("publish {peer} {allowed}")) })
        }

        fn set_audio_muted(&self, peer: PeerId, muted: bool) -> MediaFuture<'_, ()> {
            Box::pin(async move { self.record(format!("mute {peer} {muted}")) })
        }

        fn set_video_size(
            &self,
            peer: PeerId,
            mid: String,
            height: u32,
        ) -> MediaFuture<'_, Result<(), MediaError>> {
            Box::pin(async move {
                self.record(format!("size {peer} {mid} {height}"));
                Ok(())
            })
        }
    }

    fn claims(user: i64, role: ParticipantRole) -> JoinClaims {
        crate::room::test_claims(user, role, LessonId(1), CourseId(1), &format!("t{user}"))
    }

    struct Member {
        participant: ParticipantId,
        connection: ConnectionId,
        outbox: mpsc::Receiver<Outbound>,
    }

    async fn join(rooms: &Rooms, claims: JoinClaims) -> (RoomHandle, Member) {
        let room = rooms.room_for(&claims);
        let connection = rooms.next_connection();
        let (outbox, outbound) = mpsc::channel(64);
        let (reply, joined) = oneshot::channel();
        let join = RoomCommand::Join {
            id: None,
            claims: Box::new(claims),
            connection,
            opened_at: std::time::Instant::now(),
            outbox,
            reply,
        };
        room.commands.send(join).await.expect("the room runs");
        let participant = joined.await.expect("a reply").expect("joined");
        (
            room,
            Member {
                participant,
                connection,
                outbox: outbound,
            },
        )
    }

    async fn say(room: &RoomHandle, member: &Member, id: u64, message: ClientMessage) {
        let command = RoomCommand::Message {
            participant: member.participant,
            connection: member.connection,
            id: Some(id),
            message,
        };
        room.commands.send(command).await.expect("the room runs");
    }

    /// The reply to request `id`, skipping other messages.
    async fn reply(member: &mut Member, id: u64) -> ServerMessage {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), member.outbox.recv()).await;
            let Ok(Some(Outbound::Text(text))) = next else {
                panic!("no reply to {id}")
            };
            let message: ServerMessage = serde_json::from_str(&text).expect("a server message");
            match &message {
                ServerMessage::Ok { id: got } if *got == id => return message,
                ServerMessage::Answer { id: Some(got), .. }
                | ServerMessage::Error { id: Some(got), .. }
                    if *got == id =>
                {
                    return message;
                }
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn peers_follow_connections_and_grants() {
        let port = Arc::new(FakePort::default());
        let (events, _events) = mpsc::unbounded_channel();
        let rooms = Rooms::with_media(SignalingConfig::default(), events, port.clone());
        let (room, mut teacher) = join(&rooms, claims(1, ParticipantRole::Teacher)).await;
        let (_, mut student) = join(&rooms, claims(2, ParticipantRole::Student)).await;

        // A bad offer is refused and opens nothing (its peer id is spent, never reused).
        say(
            &room,
            &student,
            1,
            ClientMessage::Offer {
                sdp: "bad".into(),
                sources: Default::default(),
            },
        )
        .await;
        let refused = reply(&mut student, 1).await;
        assert!(
            matches!(&refused, ServerMessage::Error { code, .. } if *code == ErrorCode::InvalidSdp),
            "{refused:?}"
        );
        assert!(port.take().is_empty());

        // Teachers publish from the start, students not until on stage.
        say(
            &room,
            &teacher,
            2,
            ClientMessage::Offer {
                sdp: "v=0".into(),
                sources: Default::default(),
            },
        )
        .await;
        let answer = reply(&mut teacher, 2).await;
        assert_eq!(
            answer,
            ServerMessage::Answer {
                id: Some(2),
                sdp: "answer peer2".into()
            }
        );
        say(
            &room,
            &student,
            3,
            ClientMessage::Offer {
                sdp: "v=0".into(),
                sources: Default::default(),
            },
        )
        .await;
        reply(&mut student, 3).await;
        assert_eq!(
            port.take(),
            [
                "add peer2 publish=true muted=false",
                "add peer3 publish=false muted=false"
            ]
        );

        // A second offer renegotiates the same peer; an answer goes to it too.
        say(
            &room,
            &student,
            4,
            ClientMessage::Offer {
                sdp: "v=0".into(),
                sources: Default::default(),
            },
        )
        .await;
        reply(&mut student, 4).await;
        say(
            &room,
            &student,
            5,
            ClientMessage::Answer { sdp: "v=0".into() },
        )
        .await;
        assert_eq!(reply(&mut student, 5).await, ServerMessage::Ok { id: 5 });
        assert_eq!(port.take(), ["renegotiate peer3", "answer peer3"]);

        // Stage and mute reach the media plane before the moderator's ok.
        for (id, message) in [
            (
                6,
                ClientMessage::InviteToStage {
                    participant: student.participant,
                },
            ),
            (
                7,
                ClientMessage::Mute {
                    participant: student.participant,
                },
            ),
            (
                8,
                ClientMessage::RemoveFromStage {
                    participant: student.participant,
                },
            ),
        ] {
            say(&room, &teacher, id, message).await;
            assert_eq!(reply(&mut teacher, id).await, ServerMessage::Ok { id });
        }
        assert_eq!(
            port.take(),
            [
                "publish peer3 true",
                "mute peer3 true",
                "publish peer3 false"
            ]
        );

        // Media notices reach the peer's connection, naming participants.
        rooms
            .deliver_media(MediaNotice::TrackStarted {
                subscriber: PeerId(3),
                mid: "3".into(),
                publisher: PeerId(2),
                publisher_mid: "0".into(),
                kind: classroom_protocol::signal::MediaKind::Audio,
            })
            .await;
        let track = loop {
            let Some(Outbound::Text(text)) = student.outbox.recv().await else {
                panic!("closed")
            };
            if text.contains("\"track\"") {
                break serde_json::from_str::<ServerMessage>(&text).expect("a message");
            }
        };
        assert_eq!(
            track,
            ServerMessage::Track {
                mid: "3".into(),
                participant: teacher.participant,
                kind: classroom_protocol::signal::MediaKind::Audio,
                source: TrackSource::Microphone,
            }
        );

        // A dropped connection takes its peer; the reconnect gets a new one, still muted.
        let dropped = RoomCommand::Disconnected {
            participant: student.participant,
            connection: student.connection,
        };
        room.commands.send(dropped).await.expect("the room runs");
        let (_, mut again) = join(&rooms, claims(2, ParticipantRole::Student)).await;
        say(
            &room,
            &again,
            9,
            ClientMessage::Offer {
                sdp: "v=0".into(),
                sources: Default::default(),
            },
        )
        .await;
        reply(&mut again, 9).await;
        assert_eq!(
            port.take(),
            ["remove peer3", "add peer4 publish=false muted=true"]
        );

        // Leaving removes the peer.
        say(&room, &again, 10, ClientMessage::Leave).await;
        say(&room, &teacher, 11, ClientMessage::Ping).await;
        reply(&mut teacher, 11).await;
        assert_eq!(port.take(), ["remove peer4"]);
    }

    #[tokio::test]
    async fn the_recorder_hears_the_recording_and_the_room_while_it_records() {
        let port = Arc::new(FakePort::default());
        let (events, mut heard) = mpsc::unbounded_channel();
        let rooms = Rooms::with_media(SignalingConfig::default(), events, port);
        let (room, mut teacher) = join(&rooms, claims(1, ParticipantRole::Teacher)).await;
        let (_, mut student) = join(&rooms, claims(2, ParticipantRole::Student)).await;
        let sources = BTreeMap::from([("1".to_string(), TrackSource::Screen)]);
        let offer = ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: sources.clone(),
        };
        say(&room, &teacher, 1, offer).await;
        reply(&mut teacher, 1).await;
        let chat = |text: &str| ClientMessage::Chat { text: text.into() };
        say(&room, &student, 2, chat("before")).await;
        reply(&mut student, 2).await;

        // The course's default starts it, as the server does when the lesson goes live.
        rooms
            .start_recording(&RoomName::for_lesson(LessonId(1)))
            .await;
        say(&room, &student, 3, chat("during")).await;
        reply(&mut student, 3).await;
        say(&room, &teacher, 4, ClientMessage::StopRecording).await;
        reply(&mut teacher, 4).await;
        say(&room, &student, 5, chat("after")).await;
        reply(&mut student, 5).await;

        let mut seen = Vec::new();
        while let Ok(event) = heard.try_recv() {
            match event {
                RoomEvent::Recording { effect, .. } => seen.push(format!("{effect:?}")),
                RoomEvent::Activity { activity, .. } => seen.push(match activity {
                    RoomActivity::Participants(p) => format!("participants {}", p.len()),
                    RoomActivity::Publisher {
                        peer,
                        participant,
                        sources: s,
                    } => {
                        assert_eq!(s, sources);
                        format!("publisher {peer} {participant}")
                    }
                    RoomActivity::Broadcast(ServerMessage::Chat { message }) => {
                        format!("chat {}", message.text)
                    }
                    RoomActivity::Broadcast(ServerMessage::Recording { state }) => {
                        format!("state {}", state.as_str())
                    }
                    RoomActivity::Broadcast(other) => format!("{other:?}"),
                }),
                _ => {}
            }
        }
        assert_eq!(
            seen,
            [
                "Started",
                "participants 2",
                "publisher peer1 p1",
                "state recording",
                "chat during",
                "Stopped",
                "state off"
            ]
        );
    }
}
