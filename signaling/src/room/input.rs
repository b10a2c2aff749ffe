//! What happens to the room ([`Input`]): connections joining and going, client messages, the
//! media plane's replies and events, changes of access, the encoder, and time passing.

use classroom_protocol::signal::{ClientMessage, EncoderState, ParticipantId};
use classroom_protocol::{AccessChange, AccessDenied, JoinClaims, UserId};

use super::{ConnectionId, EncoderIdentity, RequestId};
use crate::media::{MediaError, MediaNotice};

/// One thing that happened to the room, for [`super::Room::handle_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `connection` asks to join with verified `claims`; answered with
    /// [`super::Output::JoinDecided`], then the `joined` snapshot, then `ok` for `id`.
    Join {
        connection: ConnectionId,
        id: Option<u64>,
        claims: Box<JoinClaims>,
        /// When the connection's WebSocket opened: the media plane measures the join time
        /// of the connection's peer from here.
        opened_at: Option<std::time::Instant>,
        /// The connection came over an edge's signaling link: its peer is to live in that
        /// edge's SFU.
        edge: Option<crate::media::EdgeId>,
        /// A teacher's join makes the lesson live (the `join` message's `go_live`).
        go_live: bool,
    },
    /// A client message of `participant` on `connection`, with its request id.
    Message {
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        message: ClientMessage,
    },
    /// The connection dropped (or could not keep up); its participant keeps their place for
    /// the reconnect grace period.
    Disconnected {
        participant: ParticipantId,
        connection: ConnectionId,
    },
    /// The session of `participant` moved to another room of the lesson (the main room moved
    /// it to or from a breakout room): their place here is given up at once, with their
    /// media peer; the connection stays open.
    Departed {
        participant: ParticipantId,
        connection: ConnectionId,
    },
    /// The main room says `participant` (here: moved in from it) speaks to every breakout
    /// room (`on`) or stops: their peers here carry it.
    Voice {
        participant: ParticipantId,
        on: bool,
    },
    /// Who speaks in breakout room `room` of this lesson now (users, loudest first).
    BreakoutSpeakers {
        room: classroom_protocol::RoomName,
        users: Vec<classroom_protocol::UserId>,
    },
    /// The media plane's reply to a [`super::MediaCommand`] that asked for one.
    MediaReply(MediaReply),
    /// Something the media plane reports about one of the room's peers, or the room.
    MediaEvent(MediaNotice),
    /// The server starts recording (the course records by default).
    StartRecording,
    /// A breakout room: the lesson's main room wants it recorded (`on`), or no more.
    RecordRoom { on: bool },
    /// Who may be here changed in the database.
    Access(AccessChange),
    /// `user` may not be here after all (their join raced a change of access).
    Revoke { user: UserId, why: AccessDenied },
    /// The lesson's RTMP encoder starts publishing, on these m-lines of its publisher;
    /// answered with [`super::Output::EncoderAdmitted`].
    EncoderStarted {
        identity: EncoderIdentity,
        mids: Vec<String>,
    },
    /// The encoder was interrupted, stopped or refused.
    EncoderChanged {
        state: EncoderState,
        reason: Option<String>,
    },
    /// The time of [`super::Room::poll_timeout`] has come.
    Timeout,
    /// The room task ends: every media peer left is removed.
    Closed,
}

/// The media plane's reply to the command `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaReply {
    /// To `AddPeer` and `AcceptOffer`: the SDP answer.
    Answer {
        request: RequestId,
        result: Result<String, MediaError>,
    },
    /// To `AcceptAnswer` and `SetVideoSize`.
    Done {
        request: RequestId,
        result: Result<(), MediaError>,
    },
}
