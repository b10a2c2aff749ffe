//! The tokio side of signaling: the registry that finds or opens a room for a join, and one
//! task per room (`task.rs`) pumping its sans-IO [`Room`]. Sessions (`session.rs`) talk to a
//! room task through a command channel; the room task answers through each connection's
//! bounded outbox (`connections.rs`).
//!
//! With a media port ([`Rooms::with_media`]) the room's media commands go to the port, and
//! what the media plane reports ([`Rooms::deliver_media`]) is routed to the room of the peer
//! it concerns, by the directory of peers the rooms keep here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use classroom_protocol::signal::{
    ClientMessage, ClosedPoll, EncoderState, ParticipantId, ServerMessage,
};
use classroom_protocol::{
    AccessChange, AccessDenied, CloseReason, CourseId, DocumentId, JoinClaims, LessonId,
    ParticipantRole, RoomName, TrackSource, UserId,
};
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::media::{MediaFuture, MediaNotice, MediaPort, PeerId, PeerIds};
use crate::room::{
    AttendanceEvent, BoardChange, ConnectionId, EncoderError, EncoderIdentity, JoinError,
    LessonEffect, MediaEffect, RecordingEffect, Room, RoomActivity, RoomConfig, RoomState,
};
use crate::stats::{SignalingSnapshot, SignalingStats};

mod connections;
mod task;

pub(crate) use connections::{Leg, Outbox};

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
    fn verify(&self, token: &str) -> Result<JoinClaims, crate::session::InvalidToken>;

    /// Whether the holder of verified `claims` may enter now, by what the database holds: the
    /// account (exists, enabled), the membership (still in the course), the lesson (neither
    /// ended nor cancelled) and removals. A token issued before any of them changed is
    /// refused here.
    fn admit<'a>(&'a self, claims: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>>;

    /// What the database says of a document a moderator of `course` opens: its page count
    /// when it is one of the course's documents and ready, so that the room shows the pages
    /// the document has whatever the client claims. Without a database: unchecked.
    fn document_pages(
        &self,
        _course: CourseId,
        _document: DocumentId,
    ) -> MediaFuture<'_, Result<DocumentCheck, AdmitError>> {
        Box::pin(async { Ok(DocumentCheck::Unchecked) })
    }

    /// Several nodes, after [`TokenVerifier::admit`] said [`AdmitError::ElsewhereNode`]: a
    /// link to the room's home node when this node serves the room as an edge (the session
    /// then relays the participant's signaling there, `docs/scale-out.md`); `None`: the join
    /// is refused with `wrong_node`, as a single-home cluster does.
    fn home_link<'a>(
        &'a self,
        _claims: &'a JoinClaims,
    ) -> MediaFuture<'a, Option<crate::session::HomeLink>> {
        Box::pin(async { None })
    }
}

/// Where rooms keep what must outlive this process (`room/persist.rs`): the server keeps it
/// in its database, so that a restart, or another node taking the lesson over, finds the chat,
/// the stage, the hands and the recording as they were.
pub trait RoomStates: Send + Sync + 'static {
    /// What `room` kept, if anything; `Err` when the store cannot be asked (the room then
    /// opens empty, as it did before it had a store).
    fn load<'a>(&'a self, room: &'a RoomName)
    -> MediaFuture<'a, Result<Option<RoomState>, String>>;

    /// Keeps `state` for `room`: queued, the latest wins; returns at once.
    fn save(&self, room: &RoomName, lesson: LessonId, state: RoomState);

    /// Keeps one page's board of `room` (or forgets it: cleared), apart from the state:
    /// queued, the latest of each page wins; returns at once. [`RoomStates::load`] gives the
    /// boards back in [`RoomState::boards`].
    fn save_board(&self, room: &RoomName, lesson: LessonId, change: BoardChange);

    /// The lesson of `room` ended: nothing is kept any more.
    fn forget(&self, room: &RoomName);
}

/// The answer of [`TokenVerifier::document_pages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentCheck {
    /// A ready document of the course, with this many pages.
    Pages(u32),
    /// Not a ready document of the course (another course's, still being prepared, failed, or
    /// none): nothing is shown.
    Unknown,
    /// Nobody could say (a server without documents): the client's count stands.
    Unchecked,
}

/// Why [`TokenVerifier::admit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("{}", .0.message())]
    Denied(AccessDenied),
    /// The database could not be asked; the client may try again.
    #[error("the server cannot check your access right now; try again in a moment")]
    Unavailable,
    /// Several nodes: the lesson's room is on another node.
    #[error("this lesson is on another of the school's servers; join again to be sent there")]
    ElsewhereNode,
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
    /// An attendance fact, stamped with the wall time the room task carried it out (the
    /// room's own clock is monotonic and means nothing outside this process).
    Attendance {
        lesson: LessonId,
        at: std::time::SystemTime,
        event: AttendanceEvent,
    },
    /// A poll of the lesson closed: its question and answers, for the lesson's store.
    PollClosed {
        lesson: LessonId,
        poll: Box<ClosedPoll>,
    },
}

/// A publisher of a room, as [`Rooms::publishers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    pub peer: PeerId,
    pub role: ParticipantRole,
    /// What each of its m-lines carries, by mid.
    pub sources: BTreeMap<String, TrackSource>,
}

/// What a room task sends to one connection.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    Text(Utf8Bytes),
    Close(CloseReason),
    /// Move this session to breakout room `.0`, or back to the lesson's main room (`None`).
    Transfer(Option<RoomName>),
    /// The main room says whether this session's participant speaks to every breakout room:
    /// the session tells each breakout room it is in.
    Voice(bool),
}

pub(crate) enum RoomCommand {
    Join {
        /// The request id of the client's `join`, answered after the `joined` snapshot.
        id: Option<u64>,
        claims: Box<JoinClaims>,
        connection: ConnectionId,
        /// When the WebSocket opened: the start of the join time the media plane measures.
        opened_at: std::time::Instant,
        /// The connection came over an edge's signaling link: its media lives in that edge's SFU.
        edge: Option<crate::media::EdgeId>,
        /// The `join` message's `go_live`.
        go_live: bool,
        /// The session's outbox, with its leg for this room.
        outbox: Outbox,
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
    /// The session moved to another room of the lesson: its place here is given up now.
    Departed {
        participant: ParticipantId,
        connection: ConnectionId,
    },
    /// The main room closed this breakout room: the task ends.
    Shut,
    /// Who speaks in breakout room `room` of this lesson (users, loudest first).
    BreakoutSpeakers {
        room: RoomName,
        users: Vec<classroom_protocol::UserId>,
    },
    /// The session of `participant` (moved here) speaks to every breakout room, or stopped.
    Voice {
        participant: ParticipantId,
        on: bool,
    },
    Media(MediaNotice),
    /// The server starts recording (the course records by default).
    StartRecording,
    /// A breakout room: its lesson's main room wants it recorded (`on`), or no more.
    Record {
        on: bool,
    },
    /// Who may be here changed in the database.
    Access(AccessChange),
    /// The user may not be here after all (their join raced a change of access).
    Revoke {
        user: UserId,
        why: AccessDenied,
    },
    Encoder(EncoderCommand),
    /// The node drains: close every connection with [`CloseReason::Draining`] and close the
    /// room without ending the lesson.
    Drain,
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
    /// Shared with the room tasks: a main room closes its breakout rooms through it.
    rooms: Arc<DashMap<RoomName, RoomHandle>>,
    events: mpsc::UnboundedSender<RoomEvent>,
    next_connection: AtomicU64,
    media: Option<Arc<MediaShared>>,
    stats: Arc<SignalingStats>,
    /// Counts access changes, so that a join can tell whether one arrived while its own
    /// check was under way (see `session.rs`).
    access_changes: AtomicU64,
    /// Where rooms keep their state; none: rooms start empty every time.
    states: Option<Arc<dyn RoomStates>>,
    /// The node drains: joins are refused, rooms are closed as they empty.
    draining: AtomicBool,
    /// The same, for sessions that wait on it (an edge's relays to a home node).
    drain_signal: tokio::sync::watch::Sender<bool>,
}

/// The media port and the peers of every room, shared by the room tasks.
struct MediaShared {
    port: Arc<dyn MediaPort>,
    ids: PeerIds,
    /// The room task of each peer; weak, so that rooms end when the registry drops them.
    peers: DashMap<PeerId, mpsc::WeakSender<RoomCommand>>,
    /// Who publishes on each peer and what its m-lines carry, for in-process subscribers
    /// (the restream chooses its main view by it).
    published: DashMap<PeerId, (RoomName, ParticipantRole, BTreeMap<String, TrackSource>)>,
}

impl Rooms {
    /// Rooms without media: `offer` is refused with `media_unavailable`.
    pub fn new(config: SignalingConfig, events: mpsc::UnboundedSender<RoomEvent>) -> Self {
        Rooms {
            config,
            rooms: Arc::default(),
            events,
            next_connection: AtomicU64::new(1),
            media: None,
            stats: Arc::default(),
            access_changes: AtomicU64::new(0),
            states: None,
            draining: AtomicBool::new(false),
            drain_signal: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Rooms that keep their state in `states` and take it back when opened again.
    pub fn with_room_states(mut self, states: Arc<dyn RoomStates>) -> Self {
        self.states = Some(states);
        self
    }

    /// Rooms whose participants negotiate media with `port`.
    pub fn with_media(
        config: SignalingConfig,
        events: mpsc::UnboundedSender<RoomEvent>,
        port: Arc<dyn MediaPort>,
    ) -> Self {
        Self::with_media_ids(config, events, port, PeerIds::default())
    }

    /// [`Rooms::with_media`], with peer ids from `ids` (a cluster's node's, [`PeerIds::for_node`]).
    pub fn with_media_ids(
        config: SignalingConfig,
        events: mpsc::UnboundedSender<RoomEvent>,
        port: Arc<dyn MediaPort>,
        ids: PeerIds,
    ) -> Self {
        let media = MediaShared {
            port,
            ids,
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
        let (_, role, sources) = entry.value();
        Some((*role, sources.get(mid).copied()))
    }

    /// The publishers of `room`, by peer: the role of each one's participant and what its
    /// m-lines carry as declared (the encoder's: `encoder` on every m-line).
    pub fn publishers(&self, room: &RoomName) -> Vec<Publisher> {
        let Some(media) = self.media.as_ref() else {
            return Vec::new();
        };
        let mut publishers: Vec<Publisher> = (media.published.iter())
            .filter(|entry| entry.value().0 == *room)
            .map(|entry| {
                let (_, role, sources) = entry.value();
                Publisher {
                    peer: *entry.key(),
                    role: *role,
                    sources: sources.clone(),
                }
            })
            .collect();
        publishers.sort_by_key(|p| p.peer);
        publishers
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

    /// Whether the lesson's room ended on this node (a room not yet open has not).
    pub fn lesson_ended(&self, lesson: LessonId) -> bool {
        self.rooms
            .get(&RoomName::for_lesson(lesson))
            .is_some_and(|r| r.is_ended())
    }

    /// The source of media peer ids of these rooms, for peers opened outside them (WHEP
    /// players): `None` without media.
    pub fn peer_ids(&self) -> Option<PeerIds> {
        self.media.as_ref().map(|m| m.ids.clone())
    }

    /// The lessons whose rooms are open on this node (a cluster holds their leases).
    pub fn open_lessons(&self) -> Vec<LessonId> {
        self.rooms
            .iter()
            .filter(|r| !r.is_ended())
            .filter_map(|r| r.key().lesson())
            .collect()
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
        if self.is_draining() {
            return Err(EncoderError::RoomClosed);
        }
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

    /// Drains this node: new joins are refused with `server_draining`, and every open room
    /// closes its connections with [`CloseReason::Draining`] (clients join again at once, where
    /// the REST join sends them) and closes, keeping what it stores for the room opened next.
    /// Returns the lessons whose rooms closed, for their leases to be given up.
    pub async fn drain(&self) -> Vec<LessonId> {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_signal.send_replace(true);
        let rooms: Vec<(RoomName, RoomHandle)> = self
            .rooms
            .iter()
            .filter(|r| !r.is_ended())
            .map(|r| (r.key().clone(), r.value().clone()))
            .collect();
        let mut lessons = Vec::new();
        for (name, room) in rooms {
            if room.commands.send(RoomCommand::Drain).await.is_ok()
                && let Some(lesson) = name.lesson()
            {
                lessons.push(lesson);
            }
            self.rooms.remove(&name);
        }
        lessons
    }

    /// Whether [`Rooms::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Changes to true when [`Rooms::drain`] is called.
    pub fn draining_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.drain_signal.subscribe()
    }

    pub(crate) fn next_connection(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// The room of `claims`, opened on first use. An ended room stays ended, so a join token
    /// issued before the end cannot reopen it.
    pub(crate) fn room_for(&self, claims: &JoinClaims) -> RoomHandle {
        self.open_room(&claims.room, claims.lesson)
    }

    /// The room `name` of `lesson` (its main room or a breakout room), opened on first use.
    pub(crate) fn open_room(&self, name: &RoomName, lesson: LessonId) -> RoomHandle {
        self.opener().open_in(&self.rooms, name, lesson)
    }

    fn opener(&self) -> RoomOpener {
        RoomOpener {
            registry: Arc::downgrade(&self.rooms),
            config: self.config.room.clone(),
            events: self.events.clone(),
            media: self.media.clone(),
            states: self.states.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// What opening a room takes, shared by the registry and its room tasks: a main room opens a
/// breakout room it records before anyone is moved there.
#[derive(Clone)]
pub(crate) struct RoomOpener {
    /// The node's rooms; weak, so that dropping the registry still ends every room.
    registry: std::sync::Weak<DashMap<RoomName, RoomHandle>>,
    config: RoomConfig,
    events: mpsc::UnboundedSender<RoomEvent>,
    media: Option<Arc<MediaShared>>,
    states: Option<Arc<dyn RoomStates>>,
    stats: Arc<SignalingStats>,
}

impl RoomOpener {
    /// The room `name` of `lesson` in `registry`, opened (its task spawned) on first use.
    fn open_in(
        &self,
        registry: &DashMap<RoomName, RoomHandle>,
        name: &RoomName,
        lesson: LessonId,
    ) -> RoomHandle {
        registry
            .entry(name.clone())
            .or_insert_with(|| {
                let (commands, inbox) = mpsc::channel(1024);
                let ended = Arc::new(AtomicBool::new(false));
                let mut room = Room::new(
                    name.clone(),
                    lesson,
                    self.config.clone(),
                    Instant::now().into_std(),
                );
                if let Some(shared) = &self.media {
                    room = room.with_media(shared.ids.clone());
                }
                let media = self.media.clone().map(|shared| task::RoomPort {
                    shared,
                    room: commands.downgrade(),
                    name: name.clone(),
                });
                tokio::spawn(task::run_room(
                    room,
                    inbox,
                    ended.clone(),
                    task::RoomLinks {
                        events: self.events.clone(),
                        media,
                        states: self.states.clone(),
                        stats: self.stats.clone(),
                        opener: self.clone(),
                    },
                ));
                RoomHandle { commands, ended }
            })
            .clone()
    }

    /// The room `name` of `lesson`, opened on first use; `None` once the registry is gone.
    pub(crate) fn open(&self, name: &RoomName, lesson: LessonId) -> Option<RoomHandle> {
        let registry = self.registry.upgrade()?;
        Some(self.open_in(&registry, name, lesson))
    }

    pub(crate) fn registry(&self) -> Option<Arc<DashMap<RoomName, RoomHandle>>> {
        self.registry.upgrade()
    }
}

pub(crate) fn encode(message: &ServerMessage) -> Utf8Bytes {
    // Serializing our own enum of strings and numbers cannot fail.
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_else(|_| String::from("{}")))
}

#[cfg(test)]
mod tests;
