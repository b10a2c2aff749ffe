//! Recording breakout rooms in the room core, on a virtual clock: the main room's plan says
//! which rooms record ([`Output::RecordRoom`]), and a breakout room records while it is
//! wanted and someone has come, until it is no longer wanted or it closes.

use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    BreakoutMode, BreakoutRequest, BreakoutStatus, ClientMessage, ParticipantId, RecordingState,
    ServerMessage,
};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, RoomName};

use super::test_class::{Class, refusal};
use super::*;
use crate::media::PeerIds;

const LESSON: LessonId = LessonId(14);

fn open(rooms: u32, mode: BreakoutMode, record: bool) -> ClientMessage {
    ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms,
            mode,
            assignment: Vec::new(),
            duration_seconds: None,
            warning_seconds: None,
            record,
        },
    }
}

fn room_name(index: u32) -> RoomName {
    RoomName::for_breakout(LESSON, 1, index)
}

/// The main room with a teacher (user 1), an assistant (user 2: moderates, does not record)
/// and `students` students (users 3, ...).
fn main_room(students: i64) -> (Class, ParticipantId, ParticipantId) {
    let mut class = Class::with_room(LESSON, |room| room.with_media(PeerIds::default()));
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (assistant, _) = class.join(2, ParticipantRole::Assistant);
    for i in 0..students {
        class.join(3 + i, ParticipantRole::Student);
    }
    (class, teacher, assistant)
}

/// The `record_room` outputs of a step, in order.
fn record_rooms(out: &[Output]) -> Vec<(RoomName, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::RecordRoom { room, on } => Some((room.clone(), *on)),
            _ => None,
        })
        .collect()
}

/// Which rooms the last `breakouts` sent to `to` shows recorded.
fn recorded_for(out: &[Output], to: ParticipantId) -> Option<Vec<bool>> {
    out.iter().rev().find_map(|o| match o {
        Output::Send {
            to: t,
            message:
                ServerMessage::Breakouts {
                    breakouts: Some(BreakoutStatus { rooms, .. }),
                },
        } if *t == to => Some(rooms.iter().map(|r| r.recording).collect()),
        _ => None,
    })
}

#[test]
fn a_round_opened_to_record_tells_every_room_before_anyone_moves_there() {
    let (mut class, teacher, _) = main_room(4);
    let out = class.say(teacher, open(2, BreakoutMode::Random, true));
    assert_eq!(refusal(&out), None, "{out:?}");
    assert_eq!(
        record_rooms(&out),
        [(room_name(0), true), (room_name(1), true)]
    );
    let first_record = out
        .iter()
        .position(|o| matches!(o, Output::RecordRoom { .. }));
    let first_move = out
        .iter()
        .position(|o| matches!(o, Output::Transfer { .. }));
    assert!(
        first_record < first_move,
        "the rooms record before the first student arrives"
    );
    assert_eq!(recorded_for(&out, teacher), Some(vec![true, true]));
}

#[test]
fn the_breakout_panel_turns_one_rooms_recording_on_and_off_with_the_record_grant() {
    let (mut class, teacher, assistant) = main_room(2);
    let out = class.say(teacher, ClientMessage::RecordBreakout { room: 0, on: true });
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::BreakoutState),
        "no round yet"
    );
    class.say(teacher, open(3, BreakoutMode::Choose, false));

    let out = class.say(teacher, ClientMessage::RecordBreakout { room: 1, on: true });
    assert_eq!(refusal(&out), None, "{out:?}");
    assert_eq!(record_rooms(&out), [(room_name(1), true)]);
    assert_eq!(recorded_for(&out, teacher), Some(vec![false, true, false]));
    assert!(
        recorded_for(&out, assistant).is_some(),
        "everyone of the lesson sees which rooms record"
    );

    let again = class.say(teacher, ClientMessage::RecordBreakout { room: 1, on: true });
    assert_eq!(refusal(&again), None);
    assert!(
        record_rooms(&again).is_empty(),
        "already recorded: {again:?}"
    );

    let out = class.say(
        assistant,
        ClientMessage::RecordBreakout { room: 0, on: true },
    );
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant), "no `record`");
    let out = class.say(teacher, ClientMessage::RecordBreakout { room: 3, on: true });
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidBreakout));

    let out = class.say(
        teacher,
        ClientMessage::RecordBreakout { room: 1, on: false },
    );
    assert_eq!(record_rooms(&out), [(room_name(1), false)]);
    assert_eq!(recorded_for(&out, teacher), Some(vec![false, false, false]));
}

#[test]
fn opening_a_recorded_round_needs_the_record_grant() {
    let (mut class, teacher, assistant) = main_room(2);
    let out = class.say(assistant, open(2, BreakoutMode::Random, true));
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Transfer { .. })),
        "a refused round opens nothing"
    );
    let out = class.say(assistant, open(2, BreakoutMode::Random, false));
    assert_eq!(refusal(&out), None, "an assistant opens unrecorded rooms");
    let _ = teacher;
}

/// Breakout room 0 of round 1, on its own clock.
struct Breakout {
    room: Room,
    now: Instant,
}

impl Breakout {
    fn new() -> Self {
        let now = Instant::now();
        let room = Room::new(room_name(0), LESSON, RoomConfig::default(), now)
            .with_media(PeerIds::default());
        Breakout { room, now }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.now += Duration::from_millis(100);
        self.room.handle_input(self.now, input);
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    /// `user` is moved in (with `role`), on connection `user`.
    fn arrive(&mut self, user: i64, role: ParticipantRole) -> (ParticipantId, Vec<Output>) {
        let mut claims = test_claims(user, role, LESSON, CourseId(1), &format!("b{user}"));
        claims.room = room_name(0);
        let out = self.input(Input::Join {
            connection: ConnectionId(user as u64),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(self.now),
            edge: None,
            go_live: false,
        });
        let id = out
            .iter()
            .find_map(|o| match o {
                Output::JoinDecided { result: Ok(id), .. } => Some(*id),
                _ => None,
            })
            .expect("moved in");
        (id, out)
    }
}

/// The recording effects and the `recording` broadcasts of a step.
fn recording_news(out: &[Output]) -> (Vec<RecordingEffect>, Vec<RecordingState>) {
    let effects = out
        .iter()
        .filter_map(|o| match o {
            Output::Recording(effect) => Some(*effect),
            _ => None,
        })
        .collect();
    let states = out
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                message: ServerMessage::Recording { state },
                ..
            } => Some(*state),
            _ => None,
        })
        .collect();
    (effects, states)
}

#[test]
fn a_wanted_breakout_room_records_from_its_first_arrival_until_the_main_room_stops_it() {
    let mut breakout = Breakout::new();
    let out = breakout.input(Input::RecordRoom { on: true });
    assert_eq!(
        recording_news(&out),
        (vec![], vec![]),
        "an empty room makes no recording"
    );

    let (student, out) = breakout.arrive(5, ParticipantRole::Student);
    assert_eq!(
        recording_news(&out),
        (
            vec![RecordingEffect::Started],
            vec![RecordingState::Recording]
        ),
        "the first one in starts it, and sees the indicator"
    );
    let present = out.iter().find_map(|o| match o {
        Output::Activity(RoomActivity::Participants(present)) => Some(present.clone()),
        _ => None,
    });
    assert_eq!(
        present.map(|p| p.iter().map(|p| p.id).collect::<Vec<_>>()),
        Some(vec![student]),
        "the recorder hears who is there"
    );
    let chat = breakout.input(Input::Message {
        participant: student,
        connection: ConnectionId(5),
        id: None,
        message: ClientMessage::Chat {
            text: "our answer".into(),
        },
    });
    assert!(
        chat.iter().any(|o| matches!(
            o,
            Output::Activity(RoomActivity::Broadcast(ServerMessage::Chat { .. }))
        )),
        "the room's chat is recorded: {chat:?}"
    );

    // A teacher visiting sees the indicator in `joined`; the room's own controls stay the
    // main room's.
    let (teacher, out) = breakout.arrive(1, ParticipantRole::Teacher);
    assert!(out.iter().any(|o| matches!(o,
        Output::Send { to, message: ServerMessage::Joined { recording: RecordingState::Recording, .. } }
            if *to == teacher)));
    let out = breakout.input(Input::Message {
        participant: teacher,
        connection: ConnectionId(1),
        id: Some(2),
        message: ClientMessage::StopRecording,
    });
    assert_eq!(refusal(&out), Some(ErrorCode::RecordingState));
    assert_eq!(breakout.room.recording(), RecordingState::Recording);

    // Everyone leaves for a moment: the recording goes on (they may come back).
    for (participant, connection) in [(student, 5), (teacher, 1)] {
        breakout.input(Input::Departed {
            participant,
            connection: ConnectionId(connection),
        });
    }
    assert_eq!(breakout.room.recording(), RecordingState::Recording);

    let out = breakout.input(Input::RecordRoom { on: false });
    assert_eq!(
        recording_news(&out),
        (vec![RecordingEffect::Stopped], vec![RecordingState::Off])
    );
    let out = breakout.input(Input::RecordRoom { on: false });
    assert_eq!(recording_news(&out), (vec![], vec![]), "once");
}

#[test]
fn a_recorded_breakout_room_that_closes_with_its_round_stops_its_recording() {
    let mut breakout = Breakout::new();
    breakout.input(Input::RecordRoom { on: true });
    breakout.arrive(5, ParticipantRole::Student);
    let out = breakout.input(Input::Closed);
    assert_eq!(
        recording_news(&out).0,
        [RecordingEffect::Stopped],
        "its replay can be made: {out:?}"
    );
    // An unwanted room closing says nothing of a recording.
    let mut quiet = Breakout::new();
    quiet.arrive(6, ParticipantRole::Student);
    let out = quiet.input(Input::Closed);
    assert_eq!(recording_news(&out), (vec![], vec![]));
}

#[test]
fn the_main_room_ignores_a_breakout_rooms_recording_word() {
    let (mut class, _, _) = main_room(1);
    let out = class.input(Input::RecordRoom { on: true });
    assert_eq!(recording_news(&out), (vec![], vec![]));
    assert_eq!(class.room.recording(), RecordingState::Off);
}
