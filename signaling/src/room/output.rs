//! What the room asks of the world ([`Output`]): messages to participants, commands to the
//! media plane, and events for the rest of the server (the lesson store, the recorder). The
//! room task carries them out in the order the room emits them; the room never waits for
//! any of them, except that the media plane's replies come back as an
//! [`Input::MediaReply`](super::Input::MediaReply).

use std::collections::BTreeMap;

use classroom_protocol::signal::{ClosedPoll, ParticipantId, ParticipantInfo, ServerMessage};
use classroom_protocol::{CloseReason, LessonId, ParticipantRole, RoomName, TrackSource, UserId};

use super::{AttendanceEvent, ConnectionId, EncoderError, JoinError};
use crate::media::{Mid, PeerAccess, PeerId};

/// What the room asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to one participant's current connection.
    Send {
        to: ParticipantId,
        message: ServerMessage,
    },
    /// Send to one connection (media replies go to the connection that negotiated, even if
    /// its participant has a newer one).
    SendToConnection {
        connection: ConnectionId,
        message: ServerMessage,
    },
    /// Send to every connected participant, but `except`.
    Broadcast {
        except: Option<ParticipantId>,
        message: ServerMessage,
    },
    /// Close a connection (after the messages before it were sent), saying why.
    Close {
        connection: ConnectionId,
        why: CloseReason,
    },
    /// Move the session of `participant` on `connection` to breakout room `to`, or back to
    /// this room (`None`): the session leaves the room it is in ([`super::Input::Departed`])
    /// and joins `to`. From here, a participant away gets only what is sent to them.
    Transfer {
        participant: ParticipantId,
        connection: ConnectionId,
        to: Option<RoomName>,
    },
    /// Tell the session of `connection` whether its participant speaks to every breakout
    /// room: it carries that into each room it moves to ([`Input::Voice`] there).
    ///
    /// [`Input::Voice`]: super::Input::Voice
    Voice { connection: ConnectionId, on: bool },
    /// A breakout room's speakers changed (users, loudest first): for its lesson's main room
    /// ([`super::Input::BreakoutSpeakers`] there).
    RoomSpeakers {
        users: Vec<classroom_protocol::UserId>,
    },
    /// A round of breakout rooms closed: these rooms end (everyone was moved back first).
    CloseRooms(Vec<RoomName>),
    /// Breakout room `room` of this lesson is to be recorded (`on`), or no more: for that
    /// room ([`super::Input::RecordRoom`] there), opened if nobody has been moved there yet.
    RecordRoom { room: RoomName, on: bool },
    /// The decision on the join of `connection` ([`super::Input::Join`]), before anything is
    /// sent to it: on success the connection becomes the participant's.
    JoinDecided {
        connection: ConnectionId,
        result: Result<ParticipantId, JoinError>,
    },
    /// The decision on an [`super::Input::EncoderStarted`] (one per such input, in order):
    /// the media peer the encoder's in-process publisher must use.
    EncoderAdmitted(Result<PeerId, EncoderError>),
    /// A command to the media plane, carried out before the outputs after it.
    ToMedia(MediaCommand),
    /// A change to the node's directory of media peers (which room a peer's notices go to,
    /// who publishes on it).
    Filing(PeerFiling),
    /// For the rest of the server: a participant's media permissions changed (the media plane
    /// was told by the [`Output::ToMedia`] commands before it).
    Media(MediaEffect),
    /// For the lesson store: the lesson's state changes.
    Lesson(LessonEffect),
    /// For the recorder: the recording changes, and it must follow in the same step.
    Recording(RecordingEffect),
    /// For the recorder: what happens in the room while it records.
    Activity(RoomActivity),
    /// For the attendance store: who came, left, took the stage, raised a hand, chatted.
    Attendance(AttendanceEvent),
    /// For the lesson's store: a poll closed (by a moderator, its timer, a new poll, the
    /// lesson's end or the room closing), with every answer.
    PollClosed(Box<ClosedPoll>),
}

/// Changes to the lesson's recording, for the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEffect {
    Started,
    Paused,
    Resumed,
    /// Stopped by a teacher or because the lesson ended: the replay can be prepared.
    Stopped,
}

/// Changes to a participant's media permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEffect {
    /// The participant may now publish these sources (on stage).
    PublishAllowed {
        participant: ParticipantId,
        sources: Vec<TrackSource>,
    },
    /// Publishing is revoked: stop forwarding the participant's tracks now.
    PublishRevoked {
        participant: ParticipantId,
    },
    /// Stop forwarding the participant's microphone until they unmute.
    AudioMuted {
        participant: ParticipantId,
    },
    AudioUnmuted {
        participant: ParticipantId,
    },
    /// The participant is gone: drop their peer connection.
    ParticipantGone {
        participant: ParticipantId,
    },
}

impl MediaEffect {
    /// The participant whose peers the effect applies to.
    pub fn participant(&self) -> ParticipantId {
        match self {
            MediaEffect::PublishAllowed { participant, .. }
            | MediaEffect::PublishRevoked { participant }
            | MediaEffect::AudioMuted { participant }
            | MediaEffect::AudioUnmuted { participant }
            | MediaEffect::ParticipantGone { participant } => *participant,
        }
    }
}

/// Changes to the lesson the room belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LessonEffect {
    /// A teacher is in the room: the lesson is live.
    WentLive(LessonId),
    Ended(LessonId),
    /// A moderator (`by`) removed `user` from the lesson: it must be stored, so that no join
    /// token lets them back until a teacher does.
    UserRemoved {
        lesson: LessonId,
        user: UserId,
        by: UserId,
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

/// Names one media command that is answered ([`super::MediaReply`]), within one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// What the room tells the media plane ([`crate::MediaPort`], one method each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Open `peer` from the client's offer with `access` in force; answered with
    /// [`super::MediaReply::Answer`].
    AddPeer {
        request: RequestId,
        peer: PeerId,
        offer: String,
        access: PeerAccess,
    },
    /// A client renegotiation; answered with [`super::MediaReply::Answer`].
    AcceptOffer {
        request: RequestId,
        peer: PeerId,
        offer: String,
    },
    /// The client's answer to the media plane's offer; answered with
    /// [`super::MediaReply::Done`].
    AcceptAnswer {
        request: RequestId,
        peer: PeerId,
        answer: String,
    },
    /// The height the client shows the video of its m-line `mid` at; answered with
    /// [`super::MediaReply::Done`].
    SetVideoSize {
        request: RequestId,
        peer: PeerId,
        mid: Mid,
        height: u32,
    },
    RemovePeer {
        peer: PeerId,
    },
    SetPublishAllowed {
        peer: PeerId,
        allowed: bool,
    },
    SetAudioMuted {
        peer: PeerId,
        muted: bool,
    },
    /// The peer's audio to every breakout room of `lesson` too (`None`: no more).
    SetVoiceBroadcast {
        peer: PeerId,
        lesson: Option<classroom_protocol::LessonId>,
    },
}

/// The node's directory of media peers: the media plane's notices about a peer are routed to
/// its room, and in-process subscribers (the restream) look up who publishes on a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFiling {
    /// Notices about `peer` go to this room (filed before the peer is added: the media plane
    /// reports its tracks while adding it).
    Routed(PeerId),
    /// A participant with `role` publishes on `peer`; its m-lines carry `sources`.
    Published {
        peer: PeerId,
        role: ParticipantRole,
        sources: BTreeMap<String, TrackSource>,
    },
    /// The peer is gone from this room.
    Forgotten(PeerId),
}
