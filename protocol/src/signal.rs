//! Signaling messages: JSON over the WebSocket at `/ws`, one message type per action.
//! `docs/protocol.md` documents each one; this module is the single definition that the
//! server, the web client's expectations and the load tester share.
//!
//! Every client message is an envelope `{"v": 1, "id": N, "type": "...", ...fields}`. `id` is
//! chosen by the client; the server answers each message that carries one with either
//! `{"type": "ok", "id": N}` or `{"type": "error", "id": N, "code": "...", ...}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::ErrorCode;
use crate::{DocumentId, Grants, ParticipantRole, TrackSource, UserId};

pub use crate::board::{
    BoardPage, BoardSnapshot, Colour, PAGE_UNITS, Point, Stroke, StrokeId, Tool,
};
pub use crate::breakout::{
    BreakoutMode, BreakoutPlace, BreakoutRequest, BreakoutRoomInfo, BreakoutStatus,
};
pub use crate::poll::{
    ClosedPoll, NamedAnswer, PollAnswer, PollId, PollInfo, PollKind, PollQuestion, PollResults,
    QuickPoll, StoredAnswer, ValueTally,
};

/// A participant of one room. Stable for the participant's whole stay, across reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// What a client sends, with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEnvelope {
    /// Protocol version; must be [`crate::PROTOCOL_VERSION`].
    pub v: u32,
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// The actions a client can ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message: enter the room with a join token. Joining again while the earlier
    /// connection is still remembered (a network drop) takes the same place in the room.
    ///
    /// A teacher's join makes the lesson live (students get their media, the recording
    /// starts if the course records by default) unless `go_live` is `false`: the teacher is
    /// then in the room, students see that the lesson has not started, nobody's media is
    /// forwarded yet, and the lesson goes live with [`ClientMessage::GoLive`] (or when the
    /// lesson's encoder starts publishing).
    Join {
        token: String,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        go_live: bool,
    },
    /// Moderators: start the lesson ([`ServerMessage::LessonLive`] to everyone). Answered
    /// with `ok`; nothing changes when it is live already.
    GoLive,
    /// Keeps the session alive and measures the round trip.
    Ping,
    RaiseHand,
    /// Lower one's own hand; moderators may name another participant's.
    LowerHand {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<ParticipantId>,
    },
    Chat {
        text: String,
    },
    /// Moderators: bring a participant on stage (grant publish of camera and microphone).
    InviteToStage {
        participant: ParticipantId,
    },
    /// Moderators: take a participant off stage; their tracks stop being forwarded at once.
    RemoveFromStage {
        participant: ParticipantId,
    },
    /// A student on stage leaves it (or declines an invitation) by themselves; a no-op for
    /// anyone else.
    LeaveStage,
    /// Moderators: mute one participant's microphone.
    Mute {
        participant: ParticipantId,
    },
    /// Moderators: mute every microphone but their own.
    MuteAll,
    /// Turn one's own microphone back on after a moderator muted it.
    Unmute,
    /// Moderators: remove a participant from the lesson: they cannot join it again, with any
    /// join token, until a teacher lets them back in (REST `DELETE
    /// /api/v1/lessons/{id}/removals/{user_id}`).
    RemoveParticipant {
        participant: ParticipantId,
    },
    /// Moderators: only moderators may chat while locked.
    LockChat {
        locked: bool,
    },
    /// Moderators: end the lesson for everyone.
    EndLesson,
    /// Leave for good (no resume).
    Leave,
    /// Moderators: a page of the participant list, in participant-id order, starting after
    /// `after` (from the first when absent), at most `limit` (default and cap
    /// [`PARTICIPANTS_PAGE_MAX`]). Answered with [`ServerMessage::ParticipantsPage`], then
    /// `ok`. A large room's `joined` lists only the notable participants (docs/protocol.md,
    /// "Large rooms"); moderators page in the rest.
    ListParticipants {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ParticipantId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Teachers (`record` grant): start recording the lesson. Everyone gets `recording`.
    StartRecording,
    /// Teachers: pause the recording; the paused part is left out of the replay.
    PauseRecording,
    /// Teachers: resume a paused recording (the same replay goes on).
    ResumeRecording,
    /// Teachers: stop recording; the replay is prepared from what was recorded.
    StopRecording,
    /// The client's WebRTC offer. The first one on a connection opens its media session
    /// (one peer connection per WebSocket connection); later ones renegotiate it (to add a
    /// camera after being brought on stage, say). Answered with [`ServerMessage::Answer`]
    /// carrying the request id, in place of `ok`; a bad SDP is refused with `invalid_sdp` and
    /// changes nothing. Offer `sendonly` m-lines for what you publish and `recvonly` ones for
    /// what you want to receive; the server forwards a publisher's tracks only while its
    /// grants allow publishing.
    Offer {
        sdp: String,
        /// What each of the client's sending m-lines carries, by mid; every offer lists them
        /// all (a renegotiation replaces the previous list). A video m-line not listed is a
        /// camera, an audio one a microphone.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        sources: BTreeMap<String, TrackSource>,
    },
    /// The client's answer to a server [`ServerMessage::Offer`]. Answered with `ok`.
    Answer {
        sdp: String,
    },
    /// Moderators: show a document of the course's materials to the class, at `page`
    /// (default 1) of its `pages`. Everyone gets [`ServerMessage::Slide`]; the pages are
    /// fetched from the REST API, which lets only the course's members see them.
    OpenDocument {
        document: DocumentId,
        pages: u32,
        #[serde(default = "first_page")]
        page: u32,
    },
    /// Moderators: show page `page` (from 1) of the open document.
    TurnPage {
        page: u32,
    },
    /// Moderators: stop showing the document.
    CloseDocument,
    /// Moderators: let students look at other pages of the shown document on their own, or
    /// no longer (everyone gets [`ServerMessage::Slide`] with `browse`).
    AllowBrowsing {
        allowed: bool,
    },
    /// The size at which the client shows the video arriving on its m-line `mid`, in CSS
    /// pixels times the device pixel ratio. The server picks the simulcast layer that fits
    /// it and the client's bandwidth; `0×0` (hidden) asks for the lowest layer. Answered
    /// with `ok`; until sent, a slot gets the highest layer its bandwidth allows.
    VideoSize {
        mid: String,
        width: u32,
        height: u32,
    },
    // --- Whiteboard (docs/protocol.md, "Whiteboard") -------------------------------------
    // Drawing goes to the board of the page shown now (a document's page, or the blank
    // board's). Moderators may always draw; anyone else only while holding the pen
    // (`give_pen`), else the message is refused with `missing_grant` naming `draw`. Drawing
    // messages share a rate limit per participant (refused with `rate_limited`); a page or
    // room holding all the drawing it may is refused with `board_full`.
    /// Begin a stroke on the shown page; everyone (the drawer too) gets
    /// [`ServerMessage::Stroke`] with its id. A pen or highlighter stroke starts with its
    /// first points (1 to 500) and grows by `draw_more` until `draw_end` (or the next
    /// `draw`); a line, rectangle or ellipse has exactly two points, a text one point and
    /// its `text` (1 to 500 characters).
    Draw {
        tool: Tool,
        colour: Colour,
        /// In [`PAGE_UNITS`]ths of the page's width, 1 to 1000.
        width: u16,
        points: Vec<Point>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// More points (1 to 500) of one's pen or highlighter stroke being drawn; the others get
    /// [`ServerMessage::StrokePoints`]. Send them in chunks (every 50 ms or so), not one
    /// message per point.
    DrawMore {
        points: Vec<Point>,
    },
    /// One's stroke being drawn is finished.
    DrawEnd,
    /// Erase a stroke of the shown page: one's own, or anyone's for moderators. Everyone
    /// gets [`ServerMessage::StrokeErased`].
    Erase {
        stroke: StrokeId,
    },
    /// Undo one's own last drawing or erasing on the shown page.
    Undo,
    /// Redo what one's last `undo` undid (until one draws or erases again).
    Redo,
    /// Moderators: clear the shown page for everyone (not undoable); everyone gets
    /// [`ServerMessage::Board`] with no strokes.
    ClearBoard,
    /// Where one points on the shown page (a laser pointer), `null` to stop; the others get
    /// [`ServerMessage::Pointer`]. Not kept; positions closer together than 40 ms are
    /// dropped. Send it without an `id` (no reply is needed).
    Pointer {
        at: Option<Point>,
    },
    /// Moderators: let a participant draw (give them the pen). Everyone gets
    /// [`ServerMessage::Pens`].
    GivePen {
        participant: ParticipantId,
    },
    /// Moderators: take the pen back; the participant's stroke being drawn ends.
    TakePen {
        participant: ParticipantId,
    },
    /// Moderators: show page `page` (1 to `blank_pages` of the board) of the blank board in
    /// place of any document; everyone gets [`ServerMessage::Board`] (and `slide` `null` if a
    /// document was shown).
    ShowBlankBoard {
        #[serde(default = "first_page")]
        page: u32,
    },
    /// Moderators: stop showing the blank board (its drawings stay for when it is shown
    /// again).
    CloseBlankBoard,
    /// Moderators: ask the class a poll (a quiz when it has a correct answer). A poll still
    /// open is closed first. Everyone gets [`ServerMessage::Poll`]; moderators then get
    /// [`ServerMessage::PollResults`] as answers come in.
    AskPoll {
        poll: PollQuestion,
    },
    /// Moderators: ask a preset poll ("A/B/C/D" or "Yes/No", no question text) in one message.
    AskQuickPoll {
        preset: QuickPoll,
    },
    /// Answer the open poll `poll`; answering again replaces the answer only if the poll is
    /// `changeable`.
    AnswerPoll {
        poll: PollId,
        answer: PollAnswer,
    },
    /// Moderators: close the poll now (its timer would close it too); everyone gets `poll`
    /// with `closed: true`, and the results are stored with the lesson.
    ClosePoll {
        poll: PollId,
    },
    /// Moderators: show the poll's results to the class (tallies and the correct answer,
    /// never who answered what); everyone gets [`ServerMessage::PollResults`].
    ShowPollResults {
        poll: PollId,
    },
    // Breakout rooms (docs/protocol.md, "Breakout rooms"). They go to the lesson's main room
    // wherever the sender is now.
    /// Moderators: split the class into breakout rooms (a new round; one open at a time).
    OpenBreakouts {
        #[serde(flatten)]
        request: BreakoutRequest,
    },
    /// Moderators: move a student to breakout room `room`, or back to the main room (`null`).
    MoveToBreakout {
        participant: ParticipantId,
        room: Option<u32>,
    },
    /// Students, when the rooms are open in `choose` mode: go to room `room`.
    ChooseBreakout {
        room: u32,
    },
    /// Moderators: go and see breakout room `room`, or come back to the main room (`null`).
    VisitBreakout {
        room: Option<u32>,
    },
    /// Moderators: a text shown in every breakout room (and the main room).
    BroadcastToBreakouts {
        text: String,
    },
    /// Moderators: speak to every breakout room (`on`), or stop. While on, the sender's
    /// microphone is heard in every open breakout room, from wherever the sender is (the main
    /// room or visiting a room); the rooms' `breakouts` name who speaks to them (`voice`).
    SpeakToBreakouts {
        on: bool,
    },
    /// Moderators with the `record` grant: record breakout room `room` (`on`), or stop. Its
    /// participants see the indicator as in the main room; its recording becomes a replay of
    /// its own, listed with the lesson's. The room records from when someone is in it.
    RecordBreakout {
        room: u32,
        on: bool,
    },
    /// Students in a breakout room: ask a teacher to come to the room.
    CallTeacher,
    /// Moderators: close every breakout room; everyone comes back to the main room.
    CloseBreakouts,
}

impl ClientMessage {
    /// The `join` of a client that does not hold the lesson back (see [`ClientMessage::Join`]).
    pub fn join(token: impl Into<String>) -> Self {
        ClientMessage::Join {
            token: token.into(),
            go_live: true,
        }
    }
}

fn first_page() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The most participants one [`ServerMessage::ParticipantsPage`] carries.
pub const PARTICIPANTS_PAGE_MAX: u32 = 500;

/// The document shown to the class and its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slide {
    pub document: DocumentId,
    /// The page shown, from 1.
    pub page: u32,
    pub pages: u32,
    /// The moderator who opened it or turned to this page.
    pub by: ParticipantId,
    /// Students may look at other pages of the document on their own (their view only; the
    /// class page stays `page`). Off when a document is opened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub browse: bool,
}

/// What a media track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub user_id: UserId,
    pub name: String,
    pub role: ParticipantRole,
    /// Brought on stage by a moderator (students only; teachers are always on stage).
    pub on_stage: bool,
    pub hand_raised: bool,
    /// Muted by a moderator; the participant may unmute when on stage.
    pub muted: bool,
    /// Connection dropped; waiting for it to resume.
    pub reconnecting: bool,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Increasing within the room.
    pub seq: u64,
    pub from: ParticipantId,
    pub name: String,
    pub text: String,
    /// Milliseconds since the room opened.
    pub at_ms: u64,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    /// The connection dropped and did not come back in time.
    TimedOut,
    /// Moved to another room of the lesson (a breakout room, or back to the main room).
    Moved,
    /// A moderator removed them from the lesson.
    Removed,
    LessonEnded,
    /// The same user joined again from elsewhere.
    Replaced,
    /// The server ended their access: their account was disabled, or they no longer belong
    /// to the course.
    Revoked,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `join`: who you are and the room as it is now.
    Joined {
        v: u32,
        you: ParticipantInfo,
        grants: Grants,
        participants: Vec<ParticipantInfo>,
        /// Everyone in the room now, you included.
        #[serde(default)]
        participant_count: u32,
        /// `participants` lists only the notable participants (moderators, those on stage or
        /// with a hand up, and you): the room is large (docs/protocol.md, "Large rooms").
        #[serde(default, skip_serializing_if = "is_false")]
        partial_roster: bool,
        /// Raised hands, first raised first.
        hands: Vec<ParticipantId>,
        chat_locked: bool,
        /// The most recent chat messages, oldest first.
        chat_history: Vec<ChatMessage>,
        /// Whether the lesson is being recorded now.
        #[serde(default)]
        recording: RecordingState,
        /// The document shown to the class and its page, if one is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slide: Option<Slide>,
        /// Whether the lesson has started (see [`ClientMessage::Join`]'s `go_live`).
        #[serde(default)]
        live: bool,
        /// The board of the page shown now, whole, and who holds the pen (docs/protocol.md,
        /// "Whiteboard"). Boxed: `joined` is the largest message and is sent once.
        #[serde(default)]
        board: Box<BoardSnapshot>,
        /// The open poll, if one is (or the last one, closed, while its results are shown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        poll: Option<Box<PollInfo>>,
        /// Your answer to `poll`, if you gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        poll_answer: Option<Box<PollAnswer>>,
    },
    /// A message with this `id` was carried out.
    Ok {
        id: u64,
    },
    /// A message was refused (with its `id` when it had one); nothing changed.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
        /// The grant the action needs, when a missing grant was the reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant: Option<String>,
    },
    Pong,
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: ParticipantId,
        reason: LeaveReason,
    },
    /// A large room's head count changed (docs/protocol.md, "Large rooms"): at most about
    /// once a second, to everyone.
    ParticipantCount {
        count: u32,
    },
    /// The answer to [`ClientMessage::ListParticipants`]: `next` is the `after` of the next
    /// page, absent on the last one.
    ParticipantsPage {
        participants: Vec<ParticipantInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<ParticipantId>,
    },
    /// The raised hands, first raised first.
    Hands {
        hands: Vec<ParticipantId>,
    },
    Chat {
        message: ChatMessage,
    },
    ChatLocked {
        locked: bool,
    },
    /// Your grants changed (brought on or taken off stage).
    GrantsChanged {
        grants: Grants,
    },
    /// A moderator muted your microphone.
    Muted {
        source: TrackSource,
        by: ParticipantId,
    },
    /// You were removed from the lesson; the connection closes.
    Removed {
        by: ParticipantId,
    },
    /// The lesson has started: a teacher pressed Go live (or its encoder started). Media
    /// flows from here on.
    LessonLive,
    /// The lesson is over; the connection closes.
    LessonEnded,
    /// The document shown to the class, or its page, changed; `null` when none is shown.
    Slide {
        slide: Option<Slide>,
    },
    /// The recording state of the lesson changed (everyone sees an indicator).
    Recording {
        state: RecordingState,
    },
    /// The server's WebRTC answer to the client's `offer` with this `id`: the reply to that
    /// request (no separate `ok` follows).
    Answer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        sdp: String,
    },
    /// The server renegotiates: it adds m-lines to carry more tracks to you. Reply with a
    /// client `answer`.
    Offer {
        sdp: String,
    },
    /// Your m-line `mid` now carries `participant`'s track of this kind.
    Track {
        mid: String,
        participant: ParticipantId,
        kind: MediaKind,
        /// What the publisher said the track carries (camera when it said nothing).
        source: TrackSource,
    },
    /// Your m-line `mid` no longer carries a track (its publisher left or was taken off stage);
    /// it may carry another one later, announced by a new `track`.
    TrackEnded {
        mid: String,
    },
    /// Who is speaking now, loudest first (from the audio level the publishers' browsers
    /// measure); empty in silence. Sent when the list changes, at most a few times a second.
    Speakers {
        speakers: Vec<ParticipantId>,
    },
    /// The quality of some participants' connections changed (from round-trip time, loss and
    /// jitter the server measures on their media); sent on change only, about once a second
    /// at most.
    ConnectionQuality {
        updates: Vec<QualityUpdate>,
    },
    /// Moderators: the state of the lesson's RTMP encoder (OBS, a hardware encoder) changed.
    /// Also sent right after `joined` to a moderator while the lesson has an encoder state.
    Encoder {
        state: EncoderState,
        /// Why it was refused or stopped, written for the person running the encoder (it
        /// names the encoder setting to change); absent when `live`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    // --- Whiteboard (docs/protocol.md, "Whiteboard") -------------------------------------
    /// The board of the page shown now, whole: sent when the page shown changes (a page
    /// turned, a document or the blank board shown or closed) and when the page is cleared.
    /// Replace what you draw with it.
    Board {
        board: BoardSnapshot,
    },
    /// A stroke begun, or brought back by an undo or redo: add it to the shown page, in id
    /// order (later ids lie on top).
    Stroke {
        stroke: Stroke,
    },
    /// More points of a stroke being drawn (not sent to its drawer).
    StrokePoints {
        id: StrokeId,
        points: Vec<Point>,
    },
    /// A stroke erased, or its drawing undone: take it off the page.
    StrokeErased {
        id: StrokeId,
    },
    /// Where a participant points on the shown page; `null` when they stopped.
    Pointer {
        by: ParticipantId,
        at: Option<Point>,
    },
    /// Who holds the pen now (besides the moderators, who may always draw).
    Pens {
        holders: Vec<ParticipantId>,
    },
    /// A moderator asked a poll, or it closed (`closed: true`, by a moderator or its timer).
    Poll {
        poll: Box<PollInfo>,
    },
    /// A poll's results: to moderators as answers come in (at most about twice a second, with
    /// who answered what unless anonymous), and to everyone once a moderator shows them.
    PollResults {
        results: Box<PollResults>,
    },
    /// The lesson's breakout rooms and who is in which, to everyone of the lesson whenever it
    /// changes (`null`: none open).
    Breakouts {
        breakouts: Option<BreakoutStatus>,
    },
    /// You are moved to breakout room `to`, or back to the main room (`null`), on this same
    /// WebSocket: close your media peer; the new room's `joined` follows, then offer again.
    Moved {
        to: Option<BreakoutPlace>,
    },
    /// A moderator's text to every breakout room.
    BreakoutMessage {
        from: ParticipantId,
        name: String,
        text: String,
    },
    /// Your m-line `mid` now carries the voice of a moderator speaking to every breakout room
    /// (`breakouts.voice` says who); it ends with `track_ended` like any track.
    VoiceTrack {
        mid: String,
    },
    /// The breakout rooms close by themselves in `seconds_left` seconds.
    BreakoutsEnding {
        seconds_left: u32,
    },
    /// Moderators: who is speaking in breakout room `room` now, loudest first, by their id in
    /// the main room (empty in silence); sent when it changes.
    BreakoutSpeakers {
        room: u32,
        speakers: Vec<ParticipantId>,
    },
    /// Moderators: a student asks a teacher to come to breakout room `room`.
    TeacherCalled {
        participant: ParticipantId,
        name: String,
        room: u32,
    },
}

/// The state of a lesson's RTMP encoder, as moderators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderState {
    /// Publishing: its tracks (source `encoder`) reach the class.
    Live,
    /// Its connection dropped; its tracks wait a few seconds for it to reconnect.
    Interrupted,
    /// It stopped (or did not come back in time); its tracks are gone.
    Stopped,
    /// A publish was refused (wrong key, another encoder streaming, unsupported settings);
    /// `reason` says what to change. An encoder already live stays live.
    Refused,
}

/// Whether a lesson is being recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    #[default]
    Off,
    Recording,
    /// Started, paused: nothing is recorded until it resumes.
    Paused,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Off => "off",
            RecordingState::Recording => "recording",
            RecordingState::Paused => "paused",
        }
    }
}

/// How well a participant's media connection works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionQuality {
    /// No media for several seconds.
    Lost,
    /// Heavy loss or long delay: video will freeze or drop to its lowest layer.
    Poor,
    Good,
    Excellent,
}

/// One participant's connection quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityUpdate {
    pub participant: ParticipantId,
    pub quality: ConnectionQuality,
}

#[cfg(test)]
mod tests;
