//! Random operation sequences on the signaling `Room` state machine: joins (with any role,
//! grants, room and token id), client messages, disconnects, time passing, and the lesson's
//! RTMP encoder starting, dropping, stopping or being refused, and changes of access from the
//! database (an account disabled, a user leaving the course, the lesson cancelled, a removed
//! user let back in). Invariants: no panic; never more participants than the configured
//! maximum; a refused join or a refused action changes no participant's grants, mute state or
//! the participant count; a user whose access was revoked has no place left.

#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use classroom_protocol::UserId;
use classroom_protocol::signal::{ClientMessage, EncoderState, ParticipantId, ServerMessage};
use classroom_protocol::{
    AccessChange, CourseId, Grants, JOIN_TOKEN_AUDIENCE, JoinClaims, LessonId, ParticipantRole,
    RoomName, TrackSource,
};
use classroom_signaling::room::{ConnectionId, EncoderIdentity, Output, Room, RoomConfig};
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
    Offer(String),
    Answer(String),
    StartRecording,
    PauseRecording,
    ResumeRecording,
    StopRecording,
    /// The server starts recording (the course's default).
    ServerStartsRecording,
}

impl Message {
    fn client(self) -> ClientMessage {
        match self {
            Message::Join => ClientMessage::Join { token: "t".into() },
            Message::Ping => ClientMessage::Ping,
            Message::RaiseHand => ClientMessage::RaiseHand,
            Message::LowerHand => ClientMessage::LowerHand,
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
            Message::Offer(sdp) => ClientMessage::Offer {
                sdp,
                sources: Default::default(),
            },
            Message::Answer(sdp) => ClientMessage::Answer { sdp },
            Message::StartRecording | Message::ServerStartsRecording => {
                ClientMessage::StartRecording
            }
            Message::PauseRecording => ClientMessage::PauseRecording,
            Message::ResumeRecording => ClientMessage::ResumeRecording,
            Message::StopRecording => ClientMessage::StopRecording,
        }
    }
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
        id: Option<u64>,
        message: Message,
    },
    Disconnected {
        who: Who,
        connection: u8,
    },
    Advance {
        secs: u8,
    },
    EncoderStarted {
        user: u8,
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
struct Input {
    max_participants: u8,
    chat_history: u8,
    max_chat_chars: u8,
    ops: Vec<Op>,
}

/// Everything a refusal must leave alone, as seen through the public API.
fn observable(room: &Room) -> (usize, BTreeMap<u64, (Grants, bool)>) {
    let participants = (0..16)
        .filter_map(|i| {
            let id = ParticipantId(i);
            room.grants(id)
                .map(|grants| (i, (grants.clone(), room.is_muted(id))))
        })
        .collect();
    (room.participant_count(), participants)
}

fn publish_sources(bits: u8) -> Vec<TrackSource> {
    [
        TrackSource::Camera,
        TrackSource::Microphone,
        TrackSource::Screen,
        TrackSource::ScreenAudio,
        TrackSource::Encoder,
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| bits & (1 << i) != 0)
    .map(|(_, source)| source)
    .collect()
}

fuzz_target!(|input: Input| {
    let config = RoomConfig {
        max_participants: usize::from(input.max_participants % 8),
        chat_history: usize::from(input.chat_history % 8),
        max_chat_chars: usize::from(input.max_chat_chars),
        reconnect_grace: Duration::from_secs(20),
    };
    let max = config.max_participants;
    let name = RoomName::for_lesson(LESSON);
    let mut now = Instant::now();
    let mut room = Room::new(name.clone(), LESSON, config, now);

    for op in input.ops.into_iter().take(MAX_OPS) {
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
                match room.join(&claims, ConnectionId(u64::from(connection % 4))) {
                    Ok((id, _out)) => {
                        assert!(room.grants(id).is_some(), "joined without a place");
                    }
                    Err(error) => {
                        assert!(!error.code().is_empty());
                        assert_eq!(observable(&room), before, "a refused join changed the room");
                    }
                }
            }
            Op::Handle {
                message: Message::ServerStartsRecording,
                ..
            } => {
                let _ = room.start_recording();
            }
            Op::Handle { from, id, message } => {
                let from = from.id();
                let out = room.handle(now, from, id, message.client());
                let refused = matches!(
                    out.as_slice(),
                    [Output::Send { to, message: ServerMessage::Error { .. } }] if *to == from
                );
                if refused {
                    assert_eq!(
                        observable(&room),
                        before,
                        "a refused action changed the room"
                    );
                }
            }
            Op::Disconnected { who, connection } => {
                room.disconnected(now, who.id(), ConnectionId(u64::from(connection % 4)));
            }
            Op::EncoderStarted { user } => {
                let identity = EncoderIdentity {
                    user: UserId(i64::from(user % 10)),
                    name: "encoder".into(),
                };
                match room.encoder_started(&identity) {
                    Ok((id, _out)) => {
                        assert_eq!(room.encoder_participant(), Some(id));
                        assert!(room.grants(id).is_some(), "an encoder without a place");
                    }
                    Err(_) => assert_eq!(
                        observable(&room),
                        before,
                        "a refused encoder changed the room"
                    ),
                }
            }
            Op::EncoderChanged { state, reason } => {
                let state = match state % 4 {
                    0 => EncoderState::Live,
                    1 => EncoderState::Interrupted,
                    2 => EncoderState::Stopped,
                    _ => EncoderState::Refused,
                };
                room.encoder_changed(state, reason.then(|| "why".to_owned()));
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
                room.access_changed(change);
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
                    room.handle_timeout(now);
                }
                assert!(
                    room.poll_timeout().is_none_or(|at| at > now),
                    "a timeout is still due after handle_timeout"
                );
            }
        }
        assert!(
            room.participant_count() <= max,
            "{} participants in a room for {max}",
            room.participant_count()
        );
    }
});
