//! Breakout rooms in the room core, on a virtual clock: the main room moves sessions out and
//! back ([`Output::Transfer`]) and keeps everyone's place; a breakout room lets students
//! speak and reports nothing of the lesson.

use std::time::Instant;

use classroom_protocol::signal::{
    BreakoutMode, BreakoutRequest, BreakoutStatus, ClientMessage, LeaveReason, ParticipantId,
    RecordingState, ServerMessage,
};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, RoomName, TrackSource};

use super::test_class::{Class, refusal};
use super::*;
use crate::media::PeerIds;

const LESSON: LessonId = LessonId(12);

fn request(rooms: u32, mode: BreakoutMode) -> ClientMessage {
    ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms,
            mode,
            assignment: Vec::new(),
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    }
}

/// A live class: a teacher (user 1) and `students` students (users 2, 3, ...).
fn class(students: i64) -> (Class, ParticipantId, Vec<ParticipantId>) {
    let mut class = Class::with_room(LESSON, |room| room.with_media(PeerIds::default()));
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let students = (0..students)
        .map(|i| class.join(2 + i, ParticipantRole::Student).0)
        .collect();
    (class, teacher, students)
}

/// The transfers in `out`: who goes where.
fn transfers(out: &[Output]) -> Vec<(ParticipantId, Option<RoomName>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transfer {
                participant, to, ..
            } => Some((*participant, to.clone())),
            _ => None,
        })
        .collect()
}

/// The last `breakouts` status sent to `to` in `out`.
fn status_for(out: &[Output], to: ParticipantId) -> Option<Option<BreakoutStatus>> {
    out.iter().rev().find_map(|o| match o {
        Output::Send {
            to: t,
            message: ServerMessage::Breakouts { breakouts },
        } if *t == to => Some(breakouts.clone()),
        _ => None,
    })
}

fn breakout(index: u32) -> Option<RoomName> {
    Some(RoomName::for_breakout(LESSON, 1, index))
}

#[test]
fn random_rooms_move_every_student_on_their_own_connection_and_everyone_sees_who_is_where() {
    let (mut class, teacher, students) = class(4);
    let out = class.say(teacher, request(2, BreakoutMode::Random));
    assert_eq!(refusal(&out), None, "{out:?}");
    let moved = transfers(&out);
    assert_eq!(moved.len(), 4, "every student moves: {moved:?}");
    for student in &students {
        let (_, to) = moved.iter().find(|(p, _)| p == student).expect("moved");
        assert!(to == &breakout(0) || to == &breakout(1), "{to:?}");
        // Their own connection, and they hear of it.
        assert!(out.iter().any(|o| matches!(o,
            Output::Transfer { participant, connection, .. }
                if participant == student && *connection == ConnectionId(student.0))));
        assert!(out.iter().any(|o| matches!(o,
            Output::Send { to, message: ServerMessage::Moved { to: Some(_) } } if to == student)));
    }
    let in_room = |i| moved.iter().filter(|(_, to)| *to == breakout(i)).count();
    assert_eq!((in_room(0), in_room(1)), (2, 2));
    let status = status_for(&out, teacher)
        .flatten()
        .expect("the teacher sees the rooms");
    assert_eq!(status.rooms.len(), 2);
    assert_eq!(
        status.rooms.iter().map(|r| r.members.len()).sum::<usize>(),
        4
    );
    assert!(
        status_for(&out, students[0]).flatten().is_some(),
        "students too"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Close { .. })),
        "nobody's connection closes"
    );
    assert_eq!(
        class.room.participant_count(),
        5,
        "everyone keeps their place"
    );
}

#[test]
fn closing_brings_everyone_back_with_a_fresh_snapshot_and_ends_the_rooms() {
    let (mut class, teacher, students) = class(3);
    class.say(teacher, request(3, BreakoutMode::Random));
    let out = class.say(teacher, ClientMessage::CloseBreakouts);
    assert_eq!(refusal(&out), None);
    let back = transfers(&out);
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|(_, to)| to.is_none()), "{back:?}");
    for student in &students {
        let position = |f: &dyn Fn(&Output) -> bool| out.iter().position(f);
        let transfer = position(
            &|o| matches!(o, Output::Transfer { participant, .. } if participant == student),
        );
        let moved = position(
            &|o| matches!(o, Output::Send { to, message: ServerMessage::Moved { to: None } } if to == student),
        );
        let joined = position(
            &|o| matches!(o, Output::Send { to, message: ServerMessage::Joined { .. } } if to == student),
        );
        assert!(
            transfer < moved,
            "the session moves before the client hears of it"
        );
        assert!(moved < joined, "then the main room's snapshot");
    }
    let closed = out.iter().find_map(|o| match o {
        Output::CloseRooms(names) => Some(names.clone()),
        _ => None,
    });
    assert_eq!(
        closed,
        Some(vec![
            RoomName::for_breakout(LESSON, 1, 0),
            RoomName::for_breakout(LESSON, 1, 1),
            RoomName::for_breakout(LESSON, 1, 2)
        ])
    );
    assert_eq!(status_for(&out, teacher), Some(None), "no rooms open");
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Attendance(AttendanceEvent::Left { .. }))),
        "one stay in the lesson throughout"
    );
    // A second round has rooms of its own.
    let out = class.say(teacher, request(1, BreakoutMode::Random));
    let names: Vec<_> = transfers(&out).into_iter().map(|(_, to)| to).collect();
    assert!(
        names
            .iter()
            .all(|to| *to == Some(RoomName::for_breakout(LESSON, 2, 0)))
    );
}

#[test]
fn the_timer_warns_everyone_then_brings_them_back_on_the_virtual_clock() {
    let (mut class, teacher, students) = class(2);
    let open = ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms: 2,
            mode: BreakoutMode::Random,
            assignment: Vec::new(),
            duration_seconds: Some(300),
            warning_seconds: Some(60),
            record: false,
        },
    };
    let out = class.say(teacher, open);
    let status = status_for(&out, teacher).flatten().expect("open");
    assert_eq!(status.seconds_left, Some(300));
    class.at(239_000);
    assert!(class.tick().is_empty(), "nothing before the warning");
    class.at(240_000);
    let out = class.tick();
    for p in [teacher, students[0], students[1]] {
        assert!(
            out.iter().any(|o| matches!(o,
                Output::Send { to, message: ServerMessage::BreakoutsEnding { seconds_left: 60 } } if *to == p)),
            "{p} is warned, wherever they are: {out:?}"
        );
    }
    class.at(299_999);
    assert!(class.tick().is_empty());
    class.at(300_000);
    let out = class.tick();
    assert_eq!(transfers(&out).len(), 2, "back when the time is up");
    assert!(out.iter().any(|o| matches!(o, Output::CloseRooms(_))));
    assert_eq!(class.room.poll_timeout(), None, "no timer left");
}

#[test]
fn only_moderators_run_the_rooms_and_a_refused_request_changes_nothing() {
    let (mut class, teacher, students) = class(2);
    let out = class.say(students[0], request(2, BreakoutMode::Random));
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    let out = class.say(teacher, ClientMessage::CloseBreakouts);
    assert_eq!(refusal(&out), Some(ErrorCode::BreakoutState));
    let out = class.say(teacher, request(0, BreakoutMode::Random));
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidBreakout));
    assert!(transfers(&out).is_empty());

    let out = class.say(teacher, request(2, BreakoutMode::Choose));
    assert_eq!(refusal(&out), None);
    assert!(transfers(&out).is_empty(), "choosing: nobody moves yet");
    let out = class.say(teacher, request(2, BreakoutMode::Choose));
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::BreakoutState),
        "one round at a time"
    );
    let move_teacher = ClientMessage::MoveToBreakout {
        participant: teacher,
        room: Some(0),
    };
    let out = class.say(teacher, move_teacher);
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::InvalidBreakout),
        "moderators visit"
    );
    let no_room = ClientMessage::MoveToBreakout {
        participant: students[0],
        room: Some(2),
    };
    let out = class.say(teacher, no_room);
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidBreakout));
    assert!(transfers(&out).is_empty());
    let by_student = ClientMessage::MoveToBreakout {
        participant: students[1],
        room: Some(0),
    };
    let out = class.say(students[0], by_student);
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
}

#[test]
fn students_choose_a_room_when_allowed_and_call_the_teacher_from_it() {
    let (mut class, teacher, students) = class(2);
    let out = class.say(students[0], ClientMessage::ChooseBreakout { room: 0 });
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::BreakoutState),
        "nothing open"
    );
    let out = class.say(students[0], ClientMessage::CallTeacher);
    assert_eq!(refusal(&out), Some(ErrorCode::BreakoutState));
    class.say(teacher, request(2, BreakoutMode::Choose));
    let out = class.say(students[0], ClientMessage::ChooseBreakout { room: 1 });
    assert_eq!(transfers(&out), vec![(students[0], breakout(1))]);
    let out = class.say(students[0], ClientMessage::ChooseBreakout { room: 1 });
    assert!(transfers(&out).is_empty(), "already there");
    let out = class.say(teacher, ClientMessage::ChooseBreakout { room: 0 });
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidBreakout));

    let out = class.say(students[0], ClientMessage::CallTeacher);
    let called: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                message:
                    ServerMessage::TeacherCalled {
                        participant, room, ..
                    },
            } => Some((*to, *participant, *room)),
            _ => None,
        })
        .collect();
    assert_eq!(called, vec![(teacher, students[0], 1)], "moderators only");
    let out = class.say(students[1], ClientMessage::CallTeacher);
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::BreakoutState),
        "not in a room"
    );
}

#[test]
fn a_teacher_visits_moves_a_student_and_speaks_to_every_room() {
    let (mut class, teacher, students) = class(2);
    let mut by_hand = BreakoutRequest {
        rooms: 2,
        mode: BreakoutMode::ByHand,
        assignment: vec![vec![students[0]], vec![students[1]]],
        duration_seconds: None,
        warning_seconds: None,
        record: false,
    };
    let out = class.say(
        teacher,
        ClientMessage::OpenBreakouts {
            request: by_hand.clone(),
        },
    );
    assert_eq!(
        transfers(&out),
        vec![(students[0], breakout(0)), (students[1], breakout(1))]
    );
    let out = class.say(teacher, ClientMessage::VisitBreakout { room: Some(1) });
    assert_eq!(transfers(&out), vec![(teacher, breakout(1))]);
    let status = status_for(&out, teacher).flatten().expect("status");
    assert_eq!(status.rooms[1].members, vec![teacher, students[1]]);

    let move_over = ClientMessage::MoveToBreakout {
        participant: students[0],
        room: Some(1),
    };
    assert_eq!(
        transfers(&class.say(teacher, move_over)),
        vec![(students[0], breakout(1))]
    );
    let home = ClientMessage::MoveToBreakout {
        participant: students[1],
        room: None,
    };
    let out = class.say(teacher, home);
    assert_eq!(transfers(&out), vec![(students[1], None)]);

    let out = class.say(
        teacher,
        ClientMessage::BroadcastToBreakouts {
            text: "Five minutes left".into(),
        },
    );
    let heard: Vec<ParticipantId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                message: ServerMessage::BreakoutMessage { text, .. },
            } if text == "Five minutes left" => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(heard.len(), 3, "everyone, wherever they are: {heard:?}");
    let out = class.say(
        teacher,
        ClientMessage::BroadcastToBreakouts { text: " ".into() },
    );
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidMessage));

    // An assignment naming the teacher is refused.
    class.say(teacher, ClientMessage::CloseBreakouts);
    by_hand.assignment = vec![vec![teacher]];
    let out = class.say(teacher, ClientMessage::OpenBreakouts { request: by_hand });
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidBreakout));
}

#[test]
fn moving_out_removes_the_students_media_peer_in_the_main_room() {
    let (mut class, teacher, students) = class(1);
    let offer = ClientMessage::Offer {
        sdp: "v=0".into(),
        sources: Default::default(),
    };
    let out = class.input(Input::Message {
        participant: students[0],
        connection: ConnectionId(students[0].0),
        id: Some(1),
        message: offer,
    });
    let (asked, peer) = out
        .iter()
        .find_map(|o| match o {
            Output::ToMedia(MediaCommand::AddPeer { request, peer, .. }) => Some((*request, *peer)),
            _ => None,
        })
        .expect("a peer asked for");
    class.input(Input::MediaReply(MediaReply::Answer {
        request: asked,
        result: Ok("answer".into()),
    }));
    let out = class.say(teacher, request(1, BreakoutMode::Random));
    let removed = out.iter().position(
        |o| matches!(o, Output::ToMedia(MediaCommand::RemovePeer { peer: p }) if *p == peer),
    );
    let transfer = out
        .iter()
        .position(|o| matches!(o, Output::Transfer { .. }));
    assert!(removed.is_some(), "the main room's peer goes: {out:?}");
    assert!(removed < transfer, "before the session moves");
}

#[test]
fn a_placed_student_who_reconnects_is_moved_to_their_room_again() {
    let (mut class, teacher, students) = class(1);
    class.say(teacher, request(1, BreakoutMode::Random));
    class.input(Input::Disconnected {
        participant: students[0],
        connection: ConnectionId(students[0].0),
    });
    let (again, out) = class.enter(2, ParticipantRole::Student, true);
    assert_eq!(again, students[0], "the same place");
    assert_eq!(transfers(&out), vec![(students[0], breakout(0))]);
    // A student who leaves for good is in no room any more.
    let out = class.say(students[0], ClientMessage::Leave);
    let status = status_for(&out, teacher).flatten().expect("status");
    assert!(status.rooms[0].members.is_empty());
}

#[test]
fn a_breakout_room_is_live_lets_students_speak_and_says_nothing_of_the_lesson() {
    let now = Instant::now();
    let name = RoomName::for_breakout(LESSON, 1, 0);
    let mut room =
        Room::new(name.clone(), LESSON, RoomConfig::default(), now).with_media(PeerIds::default());
    assert_eq!(room.kind(), RoomKind::Breakout);
    let mut claims = test_claims(5, ParticipantRole::Student, LESSON, CourseId(1), "b5");
    claims.room = name;
    room.handle_input(
        now,
        Input::Join {
            connection: ConnectionId(5),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(now),
            edge: None,
            go_live: false,
        },
    );
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    let student = match out.first() {
        Some(Output::JoinDecided { result: Ok(id), .. }) => *id,
        other => panic!("joined first: {other:?}"),
    };
    let Some(ServerMessage::Joined {
        you, grants, live, ..
    }) = out.iter().find_map(|o| match o {
        Output::Send { message, .. } => Some(message.clone()),
        _ => None,
    })
    else {
        panic!("a snapshot: {out:?}")
    };
    assert!(live, "live from the start");
    assert!(you.on_stage);
    assert!(grants.publish.contains(&TrackSource::Microphone));
    assert!(grants.publish.contains(&TrackSource::Camera));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Media(MediaEffect::PublishAllowed { .. }))),
        "the media plane forwards them"
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Attendance(_) | Output::Lesson(_))),
        "the main room reports the lesson: {out:?}"
    );

    room.handle_input(
        now,
        Input::Departed {
            participant: student,
            connection: ConnectionId(5),
        },
    );
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert!(room.is_empty(), "gone at once, no grace");
    assert!(
        !out.iter().any(|o| matches!(o, Output::Close { .. })),
        "the connection stays open: {out:?}"
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            message: ServerMessage::ParticipantLeft {
                reason: LeaveReason::Moved,
                ..
            },
            ..
        }
    )));
    // A stale departure (another connection) changes nothing.
    room.handle_input(
        now,
        Input::Departed {
            participant: student,
            connection: ConnectionId(5),
        },
    );
    assert_eq!(room.poll_output(), None);
}

#[test]
fn a_student_moved_out_is_recorded_in_attendance_with_the_room() {
    let (mut class, teacher, students) = class(1);
    let out = class.say(teacher, request(1, BreakoutMode::Random));
    let user = classroom_protocol::UserId(2);
    assert!(out.contains(&Output::Attendance(AttendanceEvent::Breakout {
        user,
        room: Some(0)
    })));
    let out = class.say(teacher, ClientMessage::VisitBreakout { room: Some(0) });
    assert!(
        !out.iter().any(|o| matches!(o, Output::Attendance(_))),
        "a teacher's visit is not a student's room"
    );
    let out = class.say(teacher, ClientMessage::CloseBreakouts);
    assert!(out.contains(&Output::Attendance(AttendanceEvent::Breakout {
        user,
        room: None
    })));
    let _ = students;
}

#[test]
fn a_breakout_room_takes_its_recording_only_from_the_main_room() {
    let now = Instant::now();
    let name = RoomName::for_breakout(LESSON, 1, 0);
    let mut room = Room::new(name.clone(), LESSON, RoomConfig::default(), now);
    let mut claims = test_claims(1, ParticipantRole::Teacher, LESSON, CourseId(1), "r1");
    claims.room = name;
    let teacher = room
        .join(&claims, ConnectionId(1))
        .map(|(id, _)| id)
        .expect("a teacher visits");
    room.handle_input(
        now,
        Input::Message {
            participant: teacher,
            connection: ConnectionId(1),
            id: Some(1),
            message: ClientMessage::StartRecording,
        },
    );
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert_eq!(refusal(&out), Some(ErrorCode::RecordingState));
    room.handle_input(now, Input::StartRecording);
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert!(
        !out.iter().any(|o| matches!(o, Output::Recording(_))),
        "nor on the server's initiative: {out:?}"
    );
    assert_eq!(room.recording(), RecordingState::Off);
}

#[test]
fn a_peer_that_opens_after_its_student_moved_out_is_removed_not_kept() {
    let (mut class, teacher, students) = class(1);
    let offer = ClientMessage::Offer {
        sdp: "v=0".into(),
        sources: Default::default(),
    };
    let out = class.input(Input::Message {
        participant: students[0],
        connection: ConnectionId(students[0].0),
        id: Some(1),
        message: offer.clone(),
    });
    let (asked, peer) = out
        .iter()
        .find_map(|o| match o {
            Output::ToMedia(MediaCommand::AddPeer { request, peer, .. }) => Some((*request, *peer)),
            _ => None,
        })
        .expect("a peer asked for");
    // The rooms open while the media plane opens the peer.
    class.say(teacher, request(1, BreakoutMode::Random));
    let out = class.input(Input::MediaReply(MediaReply::Answer {
        request: asked,
        result: Ok("answer".into()),
    }));
    assert!(
        out.contains(&Output::ToMedia(MediaCommand::RemovePeer { peer })),
        "the late peer goes: {out:?}"
    );
    assert_eq!(class.room.peer_participant(peer), None);
    // An offer still on its way to the main room opens nothing there.
    let out = class.input(Input::Message {
        participant: students[0],
        connection: ConnectionId(students[0].0),
        id: Some(2),
        message: offer,
    });
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::ToMedia(MediaCommand::AddPeer { .. }))),
        "{out:?}"
    );
}

/// Found by fuzzing breakout moves: two offers sent before the first was answered opened two
/// peers for one connection, and the earlier one stayed behind when the student moved out.
#[test]
fn two_offers_before_the_first_answer_leave_one_peer_per_connection() {
    let (mut class, teacher, students) = class(1);
    let offer = || Input::Message {
        participant: students[0],
        connection: ConnectionId(students[0].0),
        id: None,
        message: ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    };
    let asked = |out: &[Output]| {
        out.iter()
            .find_map(|o| match o {
                Output::ToMedia(MediaCommand::AddPeer { request, peer, .. }) => {
                    Some((*request, *peer))
                }
                _ => None,
            })
            .expect("a peer asked for")
    };
    let (first_request, first) = asked(&class.input(offer()));
    let (second_request, second) = asked(&class.input(offer()));
    let answer = |request| {
        Input::MediaReply(MediaReply::Answer {
            request,
            result: Ok("answer".into()),
        })
    };
    class.input(answer(first_request));
    let out = class.input(answer(second_request));
    assert!(
        out.contains(&Output::ToMedia(MediaCommand::RemovePeer { peer: first })),
        "the earlier peer goes: {out:?}"
    );
    assert_eq!(class.room.peer_participant(first), None);
    assert_eq!(class.room.peer_participant(second), Some(students[0]));
    let out = class.say(teacher, request(1, BreakoutMode::Random));
    assert!(out.contains(&Output::ToMedia(MediaCommand::RemovePeer { peer: second })));
    assert_eq!(
        class.room.peer_participant(second),
        None,
        "no peer left behind"
    );
}
