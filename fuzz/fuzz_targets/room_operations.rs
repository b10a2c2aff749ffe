//! Random operation sequences on the signaling `Room`, driven as its task drives it: every
//! operation is an `Input` to `handle_input`, and every `Output` is drained. Joins (with any
//! role, grants, room and token id), client messages (media negotiation included),
//! disconnects, time passing, the lesson's RTMP encoder starting, dropping, stopping or being
//! refused, changes of access from the database, and a fake media plane: it keeps the peers
//! the room added and removed, with their publish and mute state, answers the room's
//! negotiation commands whenever the fuzzer says (in any order, interleaved with the rest),
//! and reports events about any peer id.
//!
//! Invariants: no panic; never more participants than the configured maximum; a refused join
//! or a refused action changes no participant's grants, mute state or the participant count;
//! a user whose access was revoked has no place left; every peer the media plane holds is one
//! the room knows, of a present participant; a peer forwards media only while its
//! participant's grants allow publishing, and its audio is muted exactly while the
//! participant is. The whiteboard (small limits, so that fuzzing reaches them): its points,
//! strokes and pages never pass their limits, and a refused drawing changes no board.
//! Breakout rooms (the room is a lesson's main room or, as the scenario says, a breakout
//! room): a participant whose session the room moved to a breakout room holds no media peer
//! in it until moved back.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use classroom_protocol::signal::{
    BoardSnapshot, BreakoutMode, BreakoutRequest, ClientMessage, Colour, ConnectionQuality,
    EncoderState, MediaKind, ParticipantId, Point, PollAnswer, PollId, PollKind, PollQuestion,
    QuickPoll, ServerMessage, StrokeId, Tool,
};
use classroom_protocol::{
    AccessChange, CourseId, DocumentId, Grants, JOIN_TOKEN_AUDIENCE, JoinClaims, LessonId,
    ParticipantRole, RoomName, TrackSource, UserId,
};
use classroom_signaling::media::{MediaError, MediaNotice, PeerId, PeerIds};
use classroom_signaling::room::{
    BoardLimits, ConnectionId, EncoderIdentity, Input, MediaCommand, MediaReply, Output, RequestId,
    Room, RoomConfig,
};
use libfuzzer_sys::fuzz_target;

const LESSON: LessonId = LessonId(7);
const MAX_OPS: usize = 256;

#[derive(Debug, Arbitrary)]
enum Role {
    Teacher,
    Assistant,
    Student,
    Observer,
}

impl Role {
    fn role(&self) -> ParticipantRole {
        match self {
            Role::Teacher => ParticipantRole::Teacher,
            Role::Assistant => ParticipantRole::Assistant,
            Role::Student => ParticipantRole::Student,
            Role::Observer => ParticipantRole::Observer,
        }
    }
}

/// A participant as the fuzzer names it: small numbers hit real participants.
#[derive(Debug, Arbitrary)]
struct Who(u8);

impl Who {
    fn id(&self) -> ParticipantId {
        ParticipantId(u64::from(self.0 % 12))
    }
}

/// A media peer as the fuzzer names it: small numbers hit real peers.
fn peer(n: u8) -> PeerId {
    PeerId(u64::from(n % 16))
}

fn source(bits: u8) -> TrackSource {
    match bits % 5 {
        0 => TrackSource::Camera,
        1 => TrackSource::Microphone,
        2 => TrackSource::Screen,
        3 => TrackSource::ScreenAudio,
        _ => TrackSource::Encoder,
    }
}

#[derive(Debug, Arbitrary)]
enum Message {
    Join,
    Ping,
    RaiseHand,
    LowerHand,
    Chat(String),
    InviteToStage(Who),
    RemoveFromStage(Who),
    Mute(Who),
    MuteAll,
    Unmute,
    RemoveParticipant(Who),
    LockChat(bool),
    EndLesson,
    Leave,
    /// An offer declaring what its m-lines carry (mid, source bits).
    Offer(String, Vec<(u8, u8)>),
    Answer(String),
    VideoSize(String, u32),
    StartRecording,
    PauseRecording,
    ResumeRecording,
    StopRecording,
    /// A document (id, pages, page) shown to the class.
    OpenDocument(u8, u32, u32),
    TurnPage(u32),
    CloseDocument,
    GoLive,
    AllowBrowsing(bool),
    /// The whiteboard: a stroke (tool bits, colour, width, points, text).
    Draw(u8, [u8; 3], u16, Vec<(u16, u16)>, Option<String>),
    DrawMore(Vec<(u16, u16)>),
    DrawEnd,
    Erase(u8),
    Undo,
    Redo,
    ClearBoard,
    Pointer(Option<(u16, u16)>),
    GivePen(Who),
    TakePen(Who),
    ShowBlankBoard(u32),
    CloseBlankBoard,
    /// A poll (kind bits, question, options, correct choices, anonymous, timer, changeable).
    AskPoll(
        u8,
        String,
        Vec<String>,
        Option<Vec<u32>>,
        bool,
        Option<u32>,
        bool,
    ),
    /// A preset poll: A/B/C/D when true, else Yes/No.
    AskQuickPoll(bool),
    /// An answer to a poll (small numbers hit real polls): choices, a number or a text.
    AnswerPoll(u8, PollValue),
    ClosePoll(u8),
    ShowPollResults(u8),
    /// Breakout rooms: (rooms, mode bits, assignment, timer seconds, warning seconds).
    OpenBreakouts(u8, u8, Vec<Vec<Who>>, Option<u16>, Option<u16>, bool),
    RecordBreakout(u8, bool),
    /// A page of the participant list (after, limit).
    ListParticipants(Option<Who>, Option<u16>),
    MoveToBreakout(Who, Option<u8>),
    ChooseBreakout(u8),
    VisitBreakout(Option<u8>),
    BroadcastToBreakouts(String),
    CallTeacher,
    CloseBreakouts,
}

fn points(points: Vec<(u16, u16)>) -> Vec<Point> {
    // Mostly on the page (0 to 10,000), sometimes off it.
    points
        .into_iter()
        .take(64)
        .map(|(x, y)| Point(x % 10_050, y % 10_050))
        .collect()
}

fn tool(bits: u8) -> Tool {
    match bits % 6 {
        0 => Tool::Pen,
        1 => Tool::Highlighter,
        2 => Tool::Line,
        3 => Tool::Rectangle,
        4 => Tool::Ellipse,
        _ => Tool::Text,
    }
}

#[derive(Debug, Arbitrary)]
enum PollValue {
    Choices(Vec<u32>),
    Number(f64),
    Text(String),
}

fn poll_kind(bits: u8) -> PollKind {
    match bits % 5 {
        0 => PollKind::SingleChoice,
        1 => PollKind::MultipleChoice,
        2 => PollKind::TrueFalse,
        3 => PollKind::Number,
        _ => PollKind::Text,
    }
}

fn poll_answer(value: PollValue) -> PollAnswer {
    match value {
        PollValue::Choices(choices) => PollAnswer::Choices(choices),
        PollValue::Number(n) => PollAnswer::Number(n),
        PollValue::Text(text) => PollAnswer::Text(text),
    }
}

impl Message {
    fn client(self) -> ClientMessage {
        match self {
            Message::Join => ClientMessage::Join {
                token: "t".into(),
                go_live: true,
            },
            Message::Ping => ClientMessage::Ping,
            Message::RaiseHand => ClientMessage::RaiseHand,
            Message::LowerHand => ClientMessage::LowerHand { participant: None },
            Message::Chat(text) => ClientMessage::Chat { text },
            Message::InviteToStage(w) => ClientMessage::InviteToStage {
                participant: w.id(),
            },
            Message::RemoveFromStage(w) => ClientMessage::RemoveFromStage {
                participant: w.id(),
            },
            Message::Mute(w) => ClientMessage::Mute {
                participant: w.id(),
            },
            Message::MuteAll => ClientMessage::MuteAll,
            Message::Unmute => ClientMessage::Unmute,
            Message::RemoveParticipant(w) => ClientMessage::RemoveParticipant {
                participant: w.id(),
            },
            Message::LockChat(locked) => ClientMessage::LockChat { locked },
            Message::EndLesson => ClientMessage::EndLesson,
            Message::Leave => ClientMessage::Leave,
            Message::Offer(sdp, lines) => ClientMessage::Offer {
                sdp,
                sources: lines
                    .into_iter()
                    .take(4)
                    .map(|(mid, bits)| ((mid % 4).to_string(), source(bits)))
                    .collect(),
            },
            Message::Answer(sdp) => ClientMessage::Answer { sdp },
            Message::VideoSize(mid, height) => ClientMessage::VideoSize {
                mid,
                width: height,
                height,
            },
            Message::StartRecording => ClientMessage::StartRecording,
            Message::PauseRecording => ClientMessage::PauseRecording,
            Message::ResumeRecording => ClientMessage::ResumeRecording,
            Message::StopRecording => ClientMessage::StopRecording,
            Message::OpenDocument(document, pages, page) => ClientMessage::OpenDocument {
                document: DocumentId(i64::from(document)),
                pages,
                page,
            },
            Message::TurnPage(page) => ClientMessage::TurnPage { page },
            Message::CloseDocument => ClientMessage::CloseDocument,
            Message::GoLive => ClientMessage::GoLive,
            Message::AllowBrowsing(allowed) => ClientMessage::AllowBrowsing { allowed },
            Message::Draw(bits, colour, width, at, text) => ClientMessage::Draw {
                tool: tool(bits),
                colour: Colour(colour),
                width,
                points: points(at),
                text,
            },
            Message::DrawMore(at) => ClientMessage::DrawMore { points: points(at) },
            Message::DrawEnd => ClientMessage::DrawEnd,
            Message::Erase(stroke) => ClientMessage::Erase {
                stroke: StrokeId(u64::from(stroke % 32)),
            },
            Message::Undo => ClientMessage::Undo,
            Message::Redo => ClientMessage::Redo,
            Message::ClearBoard => ClientMessage::ClearBoard,
            Message::Pointer(at) => ClientMessage::Pointer {
                at: at.map(|(x, y)| Point(x % 10_050, y % 10_050)),
            },
            Message::GivePen(w) => ClientMessage::GivePen {
                participant: w.id(),
            },
            Message::TakePen(w) => ClientMessage::TakePen {
                participant: w.id(),
            },
            Message::ShowBlankBoard(page) => ClientMessage::ShowBlankBoard { page: page % 24 },
            Message::CloseBlankBoard => ClientMessage::CloseBlankBoard,
            Message::AskPoll(kind, question, options, correct, anonymous, timer, changeable) => {
                ClientMessage::AskPoll {
                    poll: PollQuestion {
                        kind: poll_kind(kind),
                        question,
                        options,
                        correct: correct.map(PollAnswer::Choices),
                        anonymous,
                        timer_secs: timer,
                        changeable,
                    },
                }
            }
            Message::AskQuickPoll(abcd) => ClientMessage::AskQuickPoll {
                preset: if abcd {
                    QuickPoll::Abcd
                } else {
                    QuickPoll::YesNo
                },
            },
            Message::AnswerPoll(poll, value) => ClientMessage::AnswerPoll {
                poll: PollId(u64::from(poll % 4)),
                answer: poll_answer(value),
            },
            Message::ClosePoll(poll) => ClientMessage::ClosePoll {
                poll: PollId(u64::from(poll % 4)),
            },
            Message::ShowPollResults(poll) => ClientMessage::ShowPollResults {
                poll: PollId(u64::from(poll % 4)),
            },
            Message::OpenBreakouts(rooms, mode, assignment, timer, warning, record) => {
                ClientMessage::OpenBreakouts {
                    request: BreakoutRequest {
                        rooms: u32::from(rooms % 5),
                        mode: match mode % 3 {
                            0 => BreakoutMode::Random,
                            1 => BreakoutMode::ByHand,
                            _ => BreakoutMode::Choose,
                        },
                        assignment: assignment
                            .into_iter()
                            .take(5)
                            .map(|room| room.iter().take(8).map(Who::id).collect())
                            .collect(),
                        duration_seconds: timer.map(u32::from),
                        warning_seconds: warning.map(u32::from),
                        record,
                    },
                }
            }
            Message::RecordBreakout(room, on) => ClientMessage::RecordBreakout {
                room: u32::from(room % 5),
                on,
            },
            Message::ListParticipants(after, limit) => ClientMessage::ListParticipants {
                after: after.map(|w| w.id()),
                limit: limit.map(|l| u32::from(l % 600)),
            },
            Message::MoveToBreakout(w, room) => ClientMessage::MoveToBreakout {
                participant: w.id(),
                room: room.map(|r| u32::from(r % 5)),
            },
            Message::ChooseBreakout(room) => ClientMessage::ChooseBreakout {
                room: u32::from(room % 5),
            },
            Message::VisitBreakout(room) => ClientMessage::VisitBreakout {
                room: room.map(|r| u32::from(r % 5)),
            },
            Message::BroadcastToBreakouts(text) => ClientMessage::BroadcastToBreakouts { text },
            Message::CallTeacher => ClientMessage::CallTeacher,
            Message::CloseBreakouts => ClientMessage::CloseBreakouts,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Event {
    TrackStarted {
        subscriber: u8,
        publisher: u8,
        mid: u8,
        audio: bool,
    },
    TrackEnded {
        subscriber: u8,
    },
    Offer {
        peer: u8,
    },
    PeerGone {
        peer: u8,
    },
    Speakers(Vec<u8>),
    Quality {
        peer: u8,
    },
}

#[derive(Debug, Arbitrary)]
enum Op {
    Join {
        user: u8,
        role: Role,
        /// Grants other than the role's (a hand-made or older token).
        custom_grants: Option<(bool, bool, bool, bool, u8)>,
        jti: u8,
        connection: u8,
        wrong_room: bool,
    },
    Handle {
        from: Who,
        connection: u8,
        id: Option<u64>,
        message: Message,
    },
    /// The media plane answers one of the room's outstanding commands.
    MediaReply {
        pick: u8,
        ok: bool,
    },
    MediaEvent(Event),
    ServerStartsRecording,
    Disconnected {
        who: Who,
        connection: u8,
    },
    /// The session moved to another room of the lesson.
    Departed {
        who: Who,
        connection: u8,
    },
    Advance {
        secs: u8,
    },
    EncoderStarted {
        user: u8,
        mids: u8,
    },
    EncoderChanged {
        state: u8,
        reason: bool,
    },
    Access {
        kind: u8,
        user: u8,
        /// Another lesson or course than the room's.
        elsewhere: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Scenario {
    max_participants: u8,
    chat_history: u8,
    max_chat_chars: u8,
    /// The room is a breakout room of the lesson, not its main room.
    breakout_room: bool,
    /// Past this many participants the roster is partial (small, so that it is).
    full_roster_limit: u8,
    ops: Vec<Op>,
}

/// A negotiation step the room asked the fake media plane for.
#[derive(Debug)]
enum Asked {
    Add {
        peer: PeerId,
        publish: bool,
        muted: bool,
    },
    Offer(PeerId),
    Apply(PeerId),
}

/// The media plane as the room sees it: the peers it holds, each with (publish, muted).
#[derive(Debug, Default)]
struct FakeMedia {
    peers: BTreeMap<PeerId, (bool, bool)>,
    asked: Vec<(RequestId, Asked)>,
    /// Participants the room moved to a breakout room (and not back yet).
    away: BTreeSet<ParticipantId>,
}

impl FakeMedia {
    /// Takes in the room's outputs; returns them for the test's own checks.
    fn drain(&mut self, room: &mut Room) -> Vec<Output> {
        let outputs: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
        for output in &outputs {
            match output {
                Output::Transfer {
                    participant, to, ..
                } => {
                    if to.is_some() {
                        self.away.insert(*participant);
                    } else {
                        self.away.remove(participant);
                    }
                }
                // A session that joins again is in the main room until moved again (rooms
                // that closed while it was gone sent it nowhere).
                Output::JoinDecided {
                    result: Ok(participant),
                    ..
                } => {
                    self.away.remove(participant);
                }
                _ => {}
            }
            let Output::ToMedia(command) = output else {
                continue;
            };
            match command {
                MediaCommand::AddPeer {
                    request,
                    peer,
                    access,
                    ..
                } => {
                    assert!(!self.peers.contains_key(peer), "{peer} added twice");
                    let asked = Asked::Add {
                        peer: *peer,
                        publish: access.publish,
                        muted: access.audio_muted,
                    };
                    self.asked.push((*request, asked));
                }
                MediaCommand::AcceptOffer { request, peer, .. } => {
                    self.asked.push((*request, Asked::Offer(*peer)));
                }
                MediaCommand::AcceptAnswer { request, peer, .. }
                | MediaCommand::SetVideoSize { request, peer, .. } => {
                    self.asked.push((*request, Asked::Apply(*peer)));
                }
                MediaCommand::RemovePeer { peer } => {
                    self.peers.remove(peer);
                }
                MediaCommand::SetPublishAllowed { peer, allowed } => {
                    if let Some(state) = self.peers.get_mut(peer) {
                        state.0 = *allowed;
                    }
                }
                MediaCommand::SetAudioMuted { peer, muted } => {
                    if let Some(state) = self.peers.get_mut(peer) {
                        state.1 = *muted;
                    }
                }
                // Speaking to every breakout room changes nothing this model keeps.
                MediaCommand::SetVoiceBroadcast { .. } => {}
            }
        }
        outputs
    }

    /// The reply to one outstanding command: success when `ok` and the peer is there.
    fn reply(&mut self, pick: u8, ok: bool) -> Option<MediaReply> {
        if self.asked.is_empty() {
            return None;
        }
        let (request, asked) = self.asked.remove(usize::from(pick) % self.asked.len());
        let refused = MediaError::InvalidSdp("fuzzed".into());
        Some(match asked {
            Asked::Add {
                peer,
                publish,
                muted,
            } => {
                if ok {
                    self.peers.insert(peer, (publish, muted));
                }
                let result = if ok {
                    Ok("answer".into())
                } else {
                    Err(refused)
                };
                MediaReply::Answer { request, result }
            }
            Asked::Offer(peer) => {
                let result = match (self.peers.contains_key(&peer), ok) {
                    (false, _) => Err(MediaError::NoPeer),
                    (true, true) => Ok("answer".into()),
                    (true, false) => Err(refused),
                };
                MediaReply::Answer { request, result }
            }
            Asked::Apply(peer) => {
                let result = match (self.peers.contains_key(&peer), ok) {
                    (false, _) => Err(MediaError::NoPeer),
                    (true, true) => Ok(()),
                    (true, false) => Err(MediaError::UnknownMid("fuzzed".into())),
                };
                MediaReply::Done { request, result }
            }
        })
    }

    /// Every peer the media plane holds is the room's, of a present participant; it
    /// publishes only with the grant to, and is muted exactly while its participant is.
    fn check(&self, room: &Room) {
        for (peer, (publish, muted)) in &self.peers {
            let participant = room
                .peer_participant(*peer)
                .unwrap_or_else(|| panic!("{peer} is left in the media plane"));
            let grants = room
                .grants(participant)
                .unwrap_or_else(|| panic!("{peer} of {participant}, who is gone"));
            assert!(
                !self.away.contains(&participant),
                "{peer} of {participant}, who is away in a breakout room"
            );
            assert!(
                !publish || !grants.publish.is_empty(),
                "{peer} publishes for {participant} without the grant"
            );
            assert_eq!(
                *muted,
                room.is_muted(participant),
                "{peer}'s audio is not muted as {participant} is"
            );
        }
    }
}

/// Everything a refusal must leave alone, as seen through the public API: who is present
/// with what grants, who is muted, the document shown with its page, and the board.
type Observable = (
    usize,
    BTreeMap<u64, (Grants, bool)>,
    Option<(i64, u32, u32)>,
    (usize, BoardSnapshot),
);

fn observable(room: &Room) -> Observable {
    let participants = (0..16)
        .filter_map(|i| {
            let id = ParticipantId(i);
            room.grants(id)
                .map(|grants| (i, (grants.clone(), room.is_muted(id))))
        })
        .collect();
    let slide = room.slide().map(|s| (s.document.0, s.page, s.pages));
    let board = (room.board_points(), room.board());
    (room.participant_count(), participants, slide, board)
}

/// `seen` without the encoder's participant (the one publishing `encoder`).
fn without_encoders(mut seen: Observable) -> Observable {
    let before = seen.1.len();
    seen.1
        .retain(|_, (grants, _)| !grants.publish.contains(&TrackSource::Encoder));
    seen.0 -= before - seen.1.len();
    seen
}

/// Small enough for the fuzzer to reach every limit within a run.
fn board_limits() -> BoardLimits {
    BoardLimits {
        points_per_message: 16,
        points_per_stroke: 40,
        strokes_per_page: 6,
        pages: 3,
        room_points: 100,
        text_chars: 12,
        messages_per_second: 50,
        message_burst: 20,
        blank_pages: 20,
        ..BoardLimits::default()
    }
}

fn publish_sources(bits: u8) -> Vec<TrackSource> {
    (0..5)
        .filter(|i| bits & (1 << i) != 0)
        .map(source)
        .collect()
}

fn media_event(event: Event, name: &RoomName) -> MediaNotice {
    match event {
        Event::TrackStarted {
            subscriber,
            publisher,
            mid,
            audio,
        } => MediaNotice::TrackStarted {
            subscriber: peer(subscriber),
            mid: "9".into(),
            publisher: peer(publisher),
            publisher_mid: (mid % 4).to_string().into(),
            kind: if audio {
                MediaKind::Audio
            } else {
                MediaKind::Video
            },
        },
        Event::TrackEnded { subscriber } => MediaNotice::TrackEnded {
            subscriber: peer(subscriber),
            mid: "9".into(),
        },
        Event::Offer { peer: p } => MediaNotice::Offer {
            peer: peer(p),
            sdp: "offer".into(),
        },
        Event::PeerGone { peer: p } => MediaNotice::PeerGone { peer: peer(p) },
        Event::Speakers(peers) => MediaNotice::Speakers {
            room: name.clone(),
            peers: peers.into_iter().take(8).map(peer).collect(),
        },
        Event::Quality { peer: p } => MediaNotice::Quality {
            peer: peer(p),
            quality: ConnectionQuality::Poor,
        },
    }
}

fuzz_target!(|scenario: Scenario| {
    let config = RoomConfig {
        max_participants: usize::from(scenario.max_participants % 8),
        chat_history: usize::from(scenario.chat_history % 8),
        max_chat_chars: usize::from(scenario.max_chat_chars),
        reconnect_grace: Duration::from_secs(20),
        full_roster_limit: usize::from(scenario.full_roster_limit % 8),
    };
    let max = config.max_participants;
    let name = if scenario.breakout_room {
        RoomName::for_breakout(LESSON, 1, 0)
    } else {
        RoomName::for_lesson(LESSON)
    };
    let mut now = Instant::now();
    let mut room = Room::new(name.clone(), LESSON, config, now)
        .with_media(PeerIds::default())
        .with_board_limits(board_limits());
    let mut media = FakeMedia::default();
    // The room task stores a lesson's boards: changed pages are taken after every step.
    room.keep_boards();

    for op in scenario.ops.into_iter().take(MAX_OPS) {
        let before = observable(&room);
        match op {
            Op::Join {
                user,
                role,
                custom_grants,
                jti,
                connection,
                wrong_room,
            } => {
                let role = role.role();
                let grants = match custom_grants {
                    None => Grants::for_role(role),
                    Some((join, subscribe, chat, moderate, publish)) => Grants {
                        join,
                        subscribe,
                        publish: publish_sources(publish),
                        chat,
                        moderate,
                        record: false,
                    },
                };
                let claims = JoinClaims {
                    sub: (user % 10).to_string(),
                    aud: JOIN_TOKEN_AUDIENCE.into(),
                    iat: 0,
                    exp: u64::MAX,
                    jti: format!("jti-{}", jti % 10),
                    name: format!("user {user}"),
                    room: if wrong_room {
                        RoomName::for_lesson(LessonId(8))
                    } else {
                        name.clone()
                    },
                    lesson: LESSON,
                    course: CourseId(1),
                    role,
                    grants,
                };
                let input = Input::Join {
                    connection: ConnectionId(u64::from(connection % 4)),
                    id: Some(1),
                    claims: Box::new(claims),
                    opened_at: Some(now),
                    edge: None,
                    // Teachers who hold the lesson back, and those who do not.
                    go_live: jti % 3 != 0,
                };
                room.handle_input(now, input);
                match media.drain(&mut room).first() {
                    Some(Output::JoinDecided { result: Ok(id), .. }) => {
                        assert!(room.grants(*id).is_some(), "joined without a place");
                    }
                    Some(Output::JoinDecided { result: Err(_), .. }) => {
                        assert_eq!(observable(&room), before, "a refused join changed the room");
                    }
                    other => panic!("a join is decided first, got {other:?}"),
                }
            }
            Op::ServerStartsRecording => {
                room.handle_input(now, Input::StartRecording);
                media.drain(&mut room);
            }
            Op::Handle {
                from,
                connection,
                id,
                message,
            } => {
                let from = from.id();
                let input = Input::Message {
                    participant: from,
                    connection: ConnectionId(u64::from(connection % 4)),
                    id,
                    message: message.client(),
                };
                room.handle_input(now, input);
                let out = media.drain(&mut room);
                let refused = matches!(
                    out.as_slice(),
                    [Output::Send { to, message: ServerMessage::Error { .. } }] if *to == from
                ) || matches!(
                    out.as_slice(),
                    [Output::SendToConnection {
                        message: ServerMessage::Error { .. },
                        ..
                    }]
                );
                if refused {
                    assert_eq!(
                        observable(&room),
                        before,
                        "a refused action changed the room"
                    );
                }
            }
            Op::MediaReply { pick, ok } => {
                if let Some(reply) = media.reply(pick, ok) {
                    room.handle_input(now, Input::MediaReply(reply));
                    media.drain(&mut room);
                }
            }
            Op::MediaEvent(event) => {
                if let Event::PeerGone { peer: p } = &event {
                    media.peers.remove(&peer(*p));
                }
                let gone = matches!(event, Event::PeerGone { .. });
                room.handle_input(now, Input::MediaEvent(media_event(event, &name)));
                let out = media.drain(&mut room);
                // The one exception: a WebRTC (WHIP) encoder whose peer is gone stops, and its
                // participant leaves; nothing else may change.
                let after = observable(&room);
                if gone && after != before {
                    assert_eq!(
                        without_encoders(after),
                        without_encoders(before.clone()),
                        "a peer gone changed more than the encoder"
                    );
                } else {
                    assert_eq!(after, before, "a media event changed the room");
                }
                assert!(
                    !out.iter().any(|o| matches!(o, Output::Activity(_))),
                    "media events are not recorded"
                );
            }
            Op::Disconnected { who, connection } => {
                let input = Input::Disconnected {
                    participant: who.id(),
                    connection: ConnectionId(u64::from(connection % 4)),
                };
                room.handle_input(now, input);
                media.drain(&mut room);
            }
            Op::Departed { who, connection } => {
                let input = Input::Departed {
                    participant: who.id(),
                    connection: ConnectionId(u64::from(connection % 4)),
                };
                room.handle_input(now, input);
                media.drain(&mut room);
            }
            Op::EncoderStarted { user, mids } => {
                let identity = EncoderIdentity {
                    user: UserId(i64::from(user % 10)),
                    name: "encoder".into(),
                };
                let mids = (0..mids % 3).map(|m| m.to_string()).collect();
                room.handle_input(now, Input::EncoderStarted { identity, mids });
                let out = media.drain(&mut room);
                match out.iter().find(|o| matches!(o, Output::EncoderAdmitted(_))) {
                    Some(Output::EncoderAdmitted(Ok(peer))) => {
                        let id = room.encoder_participant().expect("an encoder in the room");
                        assert_eq!(room.peer_participant(*peer), Some(id));
                        assert!(room.grants(id).is_some(), "an encoder without a place");
                    }
                    Some(_) => assert_eq!(
                        observable(&room),
                        before,
                        "a refused encoder changed the room"
                    ),
                    None => panic!("the encoder is not answered: {out:?}"),
                }
            }
            Op::EncoderChanged { state, reason } => {
                let state = match state % 4 {
                    0 => EncoderState::Live,
                    1 => EncoderState::Interrupted,
                    2 => EncoderState::Stopped,
                    _ => EncoderState::Refused,
                };
                let reason = reason.then(|| "why".to_owned());
                room.handle_input(now, Input::EncoderChanged { state, reason });
                media.drain(&mut room);
                if state == EncoderState::Stopped {
                    assert_eq!(room.encoder_participant(), None);
                }
            }
            Op::Access {
                kind,
                user,
                elsewhere,
            } => {
                let user = UserId(i64::from(user % 10));
                let (lesson, course) = match elsewhere {
                    true => (LessonId(8), CourseId(2)),
                    false => (LESSON, CourseId(1)),
                };
                let change = match kind % 4 {
                    0 => AccessChange::AccountDisabled(user),
                    1 => AccessChange::LeftCourse { course, user },
                    2 => AccessChange::LessonCancelled(lesson),
                    _ => AccessChange::Readmitted { lesson, user },
                };
                let revokes = match change {
                    AccessChange::AccountDisabled(_) => true,
                    AccessChange::LeftCourse { .. } => !elsewhere,
                    _ => false,
                };
                room.handle_input(now, Input::Access(change));
                media.drain(&mut room);
                let encoder = room.encoder_participant();
                if revokes {
                    assert!(
                        !room
                            .participants()
                            .iter()
                            .any(|p| p.user_id == user && Some(p.id) != encoder),
                        "{user} keeps a place after losing access"
                    );
                }
                if matches!(change, AccessChange::LessonCancelled(_)) && !elsewhere {
                    assert!(room.is_ended() && room.participant_count() == 0);
                }
            }
            Op::Advance { secs } => {
                now += Duration::from_secs(u64::from(secs));
                if room.poll_timeout().is_some_and(|at| at <= now) {
                    room.handle_input(now, Input::Timeout);
                    media.drain(&mut room);
                    check_board_changes(&mut room, now);
                }
                assert!(
                    room.poll_timeout().is_none_or(|at| at > now),
                    "a timeout is still due after handling it"
                );
            }
        }
        media.check(&room);
        check_board_changes(&mut room, now);
        if let Some(slide) = room.slide() {
            assert!(
                (1..=slide.pages).contains(&slide.page),
                "page {} of {} shown",
                slide.page,
                slide.pages
            );
        }
        assert!(
            room.participant_count() <= max,
            "{} participants in a room for {max}",
            room.participant_count()
        );
        let limits = board_limits();
        let board = room.board();
        assert!(
            room.board_points() <= limits.room_points,
            "the room's points"
        );
        assert!(
            board.strokes.len() <= limits.strokes_per_page,
            "a page's strokes"
        );
        assert!(
            board
                .strokes
                .iter()
                .all(|s| s.points.len() <= limits.points_per_stroke),
            "a stroke's points"
        );
        let shown: usize = board.strokes.iter().map(|s| s.points.len()).sum();
        assert!(
            shown <= room.board_points(),
            "strokes shown but not counted"
        );
        if board.page.is_none() {
            assert!(board.strokes.is_empty(), "strokes shown with no page");
        }
    }
    // The task ends: nothing is left in the media plane.
    room.handle_input(now, Input::Closed);
    media.drain(&mut room);
    assert!(media.peers.is_empty(), "peers left: {:?}", media.peers);
});

/// Takes the boards' changes as the room task does after every step: each page at most once,
/// and a page handed over with a board holds no more than the room's limits allow.
fn check_board_changes(room: &mut Room, now: Instant) {
    let changes = room.take_board_changes(now);
    let mut pages: Vec<_> = changes.iter().map(|c| c.page).collect();
    pages.sort_unstable();
    pages.dedup();
    assert_eq!(pages.len(), changes.len(), "a page handed over twice");
    for board in changes.iter().filter_map(|c| c.board.as_ref()) {
        assert!(board.strokes.len() <= board_limits().strokes_per_page);
    }
}
