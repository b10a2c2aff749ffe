//! The room's rules, step by step, through its per-concern methods (the outputs each returns
//! before the room follows them up for the media plane and the recorder).

use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    ClientMessage, LeaveReason, ParticipantId, RecordingState, ServerMessage,
};
use classroom_protocol::{
    AccessChange, AccessDenied, CloseReason, CourseId, ErrorCode, Grants, JoinClaims, LessonId,
    ParticipantRole, RoomName, TrackSource, UserId,
};

use super::*;

const ROOM: LessonId = LessonId(7);

fn claims(user: i64, role: ParticipantRole, jti: &str) -> JoinClaims {
    test_claims(user, role, ROOM, CourseId(1), jti)
}

struct Class {
    room: Room,
    now: Instant,
    teacher: ParticipantId,
    ann: ParticipantId,
    bob: ParticipantId,
}

fn class() -> Class {
    let now = Instant::now();
    let mut room = Room::new(RoomName::for_lesson(ROOM), ROOM, RoomConfig::default(), now);
    let (teacher, out) = room
        .join(&claims(1, ParticipantRole::Teacher, "t"), ConnectionId(1))
        .expect("teacher joins");
    assert!(
        out.contains(&Output::Lesson(LessonEffect::WentLive(ROOM))),
        "the teacher makes it live"
    );
    let (ann, _) = room
        .join(&claims(2, ParticipantRole::Student, "a"), ConnectionId(2))
        .expect("ann joins");
    let (bob, _) = room
        .join(&claims(3, ParticipantRole::Student, "b"), ConnectionId(3))
        .expect("bob joins");
    Class {
        room,
        now,
        teacher,
        ann,
        bob,
    }
}

fn error_code(out: &[Output]) -> Option<(ErrorCode, Option<String>)> {
    out.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Error { code, grant, .. },
            ..
        } => Some((*code, grant.clone())),
        _ => None,
    })
}

fn broadcasts(out: &[Output]) -> Vec<&ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn joiners_get_the_room_and_others_hear_of_them() {
    let mut c = class();
    c.room.handle(
        c.now,
        c.ann,
        None,
        ClientMessage::Chat { text: "hi".into() },
    );
    let (carl, out) = c
        .room
        .join(&claims(4, ParticipantRole::Student, "c"), ConnectionId(4))
        .expect("joins");
    let snapshot = out.iter().find_map(|o| match o {
        Output::Send {
            to,
            message:
                ServerMessage::Joined {
                    participants,
                    chat_history,
                    grants,
                    ..
                },
        } if *to == carl => Some((participants.len(), chat_history.len(), grants.clone())),
        _ => None,
    });
    assert_eq!(
        snapshot,
        Some((4, 1, Grants::for_role(ParticipantRole::Student))),
        "late joiners get the chat history"
    );
    assert!(matches!(
        broadcasts(&out)[..],
        [ServerMessage::ParticipantJoined { .. }]
    ));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Lesson(_))),
        "only the first teacher makes it live"
    );
}

#[test]
fn hands_queue_in_order_and_stage_grants_publish_live() {
    let mut c = class();
    c.room.handle(c.now, c.bob, None, ClientMessage::RaiseHand);
    let out = c
        .room
        .handle(c.now, c.ann, Some(5), ClientMessage::RaiseHand);
    assert!(broadcasts(&out).contains(&&ServerMessage::Hands {
        hands: vec![c.bob, c.ann]
    }));
    assert!(out.contains(&Output::Send {
        to: c.ann,
        message: ServerMessage::Ok { id: 5 }
    }));

    // Students cannot run the stage; nothing changes.
    let refused = c.room.handle(
        c.now,
        c.bob,
        Some(6),
        ClientMessage::InviteToStage { participant: c.bob },
    );
    assert_eq!(
        error_code(&refused),
        Some((ErrorCode::MissingGrant, Some("moderate".into())))
    );
    assert_eq!(refused.len(), 1);
    assert!(c.room.grants(c.bob).is_some_and(|g| g.publish.is_empty()));

    let out = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::InviteToStage { participant: c.ann },
    );
    assert_eq!(
        out.first(),
        Some(&Output::Media(MediaEffect::PublishAllowed {
            participant: c.ann,
            sources: vec![TrackSource::Camera, TrackSource::Microphone]
        }))
    );
    assert!(
        broadcasts(&out).contains(&&ServerMessage::Hands { hands: vec![c.bob] }),
        "on stage lowers the hand"
    );
    assert!(
        c.room
            .grants(c.ann)
            .is_some_and(|g| g.may_publish(TrackSource::Camera))
    );

    let out = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::RemoveFromStage { participant: c.ann },
    );
    assert_eq!(
        out.first(),
        Some(&Output::Media(MediaEffect::PublishRevoked {
            participant: c.ann
        })),
        "media first"
    );
    assert!(c.room.grants(c.ann).is_some_and(|g| g.publish.is_empty()));
    let again = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::RemoveFromStage { participant: c.ann },
    );
    assert_eq!(error_code(&again).map(|e| e.0), Some(ErrorCode::NotOnStage));
    let unknown = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::InviteToStage {
            participant: ParticipantId(99),
        },
    );
    assert_eq!(
        error_code(&unknown).map(|e| e.0),
        Some(ErrorCode::UnknownParticipant)
    );
}

#[test]
fn a_student_leaves_the_stage_or_declines_it_by_themselves() {
    let mut c = class();
    c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::InviteToStage { participant: c.ann },
    );
    let on_stage = |room: &Room, id| room.participants().iter().any(|p| p.id == id && p.on_stage);
    assert!(on_stage(&c.room, c.ann));

    let out = c.room.handle(c.now, c.ann, None, ClientMessage::LeaveStage);
    assert_eq!(
        out.first(),
        Some(&Output::Media(MediaEffect::PublishRevoked {
            participant: c.ann
        })),
        "media first"
    );
    assert!(c.room.grants(c.ann).is_some_and(|g| g.publish.is_empty()));
    assert!(!on_stage(&c.room, c.ann));
    assert!(
        broadcasts(&out).iter().any(|m| matches!(m,
            ServerMessage::ParticipantUpdated { participant } if participant.id == c.ann && !participant.on_stage)),
        "everyone sees ann off stage"
    );

    // Again, or from someone who was never on stage, or a teacher: nothing happens.
    for who in [c.ann, c.bob, c.teacher] {
        let out = c.room.handle(c.now, who, None, ClientMessage::LeaveStage);
        assert!(out.is_empty(), "nothing for {who}: {out:?}");
    }
    assert!(
        c.room
            .grants(c.teacher)
            .is_some_and(|g| g.may_publish(TrackSource::Camera)),
        "the teacher keeps their stage"
    );
}

#[test]
fn moderators_lower_a_raised_hand_students_only_their_own() {
    let mut c = class();
    c.room.handle(c.now, c.ann, None, ClientMessage::RaiseHand);
    c.room.handle(c.now, c.bob, None, ClientMessage::RaiseHand);
    let refused = c.room.handle(
        c.now,
        c.bob,
        None,
        ClientMessage::LowerHand {
            participant: Some(c.ann),
        },
    );
    assert_eq!(
        error_code(&refused).map(|e| e.0),
        Some(ErrorCode::MissingGrant)
    );
    let out = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::LowerHand {
            participant: Some(c.ann),
        },
    );
    assert!(broadcasts(&out).contains(&&ServerMessage::Hands { hands: vec![c.bob] }));
    let out = c.room.handle(
        c.now,
        c.bob,
        None,
        ClientMessage::LowerHand { participant: None },
    );
    assert!(broadcasts(&out).contains(&&ServerMessage::Hands { hands: vec![] }));
    let unknown = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::LowerHand {
            participant: Some(ParticipantId(99)),
        },
    );
    assert_eq!(
        error_code(&unknown).map(|e| e.0),
        Some(ErrorCode::UnknownParticipant)
    );
    // The message without `participant`, as clients have always sent it, still parses.
    let parsed: classroom_protocol::signal::ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"lower_hand"}"#).expect("parses");
    assert_eq!(
        parsed.message,
        ClientMessage::LowerHand { participant: None }
    );
}

#[test]
fn chat_lock_and_limits() {
    let mut c = class();
    let out = c
        .room
        .handle(c.now, c.ann, None, ClientMessage::LockChat { locked: true });
    assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::MissingGrant));
    c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::LockChat { locked: true },
    );
    let out = c.room.handle(
        c.now,
        c.ann,
        Some(1),
        ClientMessage::Chat {
            text: "psst".into(),
        },
    );
    assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::ChatLocked));
    let out = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::Chat {
            text: "quiet please".into(),
        },
    );
    assert!(
        matches!(broadcasts(&out)[..], [ServerMessage::Chat { .. }]),
        "moderators still chat"
    );
    c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::LockChat { locked: false },
    );
    let out = c.room.handle(
        c.now,
        c.ann,
        None,
        ClientMessage::Chat {
            text: "x".repeat(2001),
        },
    );
    assert_eq!(
        error_code(&out).map(|e| e.0),
        Some(ErrorCode::InvalidMessage)
    );
    let out = c.room.handle(
        c.now,
        c.ann,
        None,
        ClientMessage::Chat { text: "  ".into() },
    );
    assert_eq!(
        error_code(&out).map(|e| e.0),
        Some(ErrorCode::InvalidMessage)
    );
    for i in 0..150 {
        c.room.handle(
            c.now,
            c.ann,
            None,
            ClientMessage::Chat {
                text: format!("m{i}"),
            },
        );
    }
    let (_, out) = c
        .room
        .join(&claims(9, ParticipantRole::Student, "z"), ConnectionId(9))
        .expect("joins");
    let history = out.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Joined { chat_history, .. },
            ..
        } => Some(chat_history.clone()),
        _ => None,
    });
    let history = history.expect("a snapshot");
    assert_eq!(history.len(), 100, "history is bounded");
    assert_eq!(history.last().map(|m| m.text.as_str()), Some("m149"));
}

#[test]
fn mute_and_a_removal_that_holds_against_new_tokens_until_let_back_in() {
    let mut c = class();
    let out = c
        .room
        .handle(c.now, c.teacher, None, ClientMessage::MuteAll);
    let muted: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Media(MediaEffect::AudioMuted { participant }) => Some(*participant),
            _ => None,
        })
        .collect();
    assert_eq!(muted, vec![c.ann, c.bob], "everyone but the teacher");
    let out = c.room.handle(c.now, c.ann, None, ClientMessage::Unmute);
    assert!(out.contains(&Output::Media(MediaEffect::AudioUnmuted {
        participant: c.ann
    })));

    let refused = c.room.handle(
        c.now,
        c.bob,
        None,
        ClientMessage::RemoveParticipant {
            participant: c.teacher,
        },
    );
    assert_eq!(
        error_code(&refused).map(|e| e.0),
        Some(ErrorCode::MissingGrant)
    );
    let out = c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::RemoveParticipant { participant: c.bob },
    );
    assert!(out.contains(&Output::Send {
        to: c.bob,
        message: ServerMessage::Removed { by: c.teacher }
    }));
    assert!(out.contains(&Output::Close {
        connection: ConnectionId(3),
        why: CloseReason::Denied(AccessDenied::RemovedFromLesson),
    }));
    assert!(out.contains(&Output::Media(MediaEffect::ParticipantGone {
        participant: c.bob
    })));
    assert!(
        out.contains(&Output::Lesson(LessonEffect::UserRemoved {
            lesson: ROOM,
            user: UserId(3),
            by: UserId(1),
        })),
        "the removal is to be stored"
    );
    for token in ["b", "a fresh one"] {
        assert_eq!(
            c.room
                .join(
                    &claims(3, ParticipantRole::Student, token),
                    ConnectionId(30)
                )
                .err(),
            Some(JoinError::Removed)
        );
    }
    // Let back in for another lesson: still out of this one.
    let elsewhere = AccessChange::Readmitted {
        lesson: LessonId(8),
        user: UserId(3),
    };
    assert!(c.room.access_changed(elsewhere).is_empty());
    assert!(
        c.room
            .join(&claims(3, ParticipantRole::Student, "b2"), ConnectionId(31))
            .is_err()
    );
    let back = AccessChange::Readmitted {
        lesson: ROOM,
        user: UserId(3),
    };
    c.room.access_changed(back);
    assert!(
        c.room
            .join(&claims(3, ParticipantRole::Student, "b2"), ConnectionId(31))
            .is_ok(),
        "let back in"
    );
}

#[test]
fn a_dropped_connection_resumes_its_place_or_times_out() {
    let mut c = class();
    c.room.handle(
        c.now,
        c.teacher,
        None,
        ClientMessage::InviteToStage { participant: c.ann },
    );
    let out = c.room.disconnected(c.now, c.ann, ConnectionId(2));
    assert!(
        matches!(broadcasts(&out)[..], [ServerMessage::ParticipantUpdated { participant }] if participant.reconnecting)
    );
    assert_eq!(c.room.poll_timeout(), Some(c.now + Duration::from_secs(20)));

    // Back within the grace period: same participant, still on stage, no duplicate.
    let later = c.now + Duration::from_secs(5);
    let (again, _) = c
        .room
        .join(
            &claims(2, ParticipantRole::Student, "a-new"),
            ConnectionId(20),
        )
        .expect("resumes");
    assert_eq!(again, c.ann);
    assert_eq!(c.room.participant_count(), 3);
    assert!(
        c.room
            .grants(c.ann)
            .is_some_and(|g| g.may_publish(TrackSource::Camera))
    );
    assert_eq!(c.room.poll_timeout(), None);
    // The old connection's late close changes nothing.
    assert!(
        c.room
            .disconnected(later, c.ann, ConnectionId(2))
            .is_empty()
    );

    c.room.disconnected(later, c.bob, ConnectionId(3));
    assert!(
        c.room
            .handle_timeout(later + Duration::from_secs(19))
            .is_empty()
    );
    let out = c.room.handle_timeout(later + Duration::from_secs(20));
    assert!(broadcasts(&out).contains(&&ServerMessage::ParticipantLeft {
        participant: c.bob,
        reason: LeaveReason::TimedOut
    }));
    assert_eq!(c.room.participant_count(), 2);
}

#[test]
fn a_second_tab_replaces_the_first_connection() {
    let mut c = class();
    let (same, out) = c
        .room
        .join(&claims(2, ParticipantRole::Student, "a2"), ConnectionId(22))
        .expect("joins");
    assert_eq!(same, c.ann);
    assert!(out.contains(&Output::Close {
        connection: ConnectionId(2),
        why: CloseReason::Replaced,
    }));
    assert_eq!(c.room.participant_count(), 3);
}

#[test]
fn ending_the_lesson_closes_everyone_and_refuses_joins() {
    let mut c = class();
    let refused = c
        .room
        .handle(c.now, c.ann, Some(1), ClientMessage::EndLesson);
    assert_eq!(
        error_code(&refused).map(|e| e.0),
        Some(ErrorCode::MissingGrant)
    );
    let out = c
        .room
        .handle(c.now, c.teacher, Some(2), ClientMessage::EndLesson);
    assert!(out.contains(&Output::Lesson(LessonEffect::Ended(ROOM))));
    let closed = out
        .iter()
        .filter(|o| matches!(o, Output::Close { .. }))
        .count();
    assert_eq!(closed, 3);
    assert!(c.room.is_ended() && c.room.is_empty());
    assert_eq!(
        c.room
            .join(&claims(5, ParticipantRole::Student, "e"), ConnectionId(5))
            .err(),
        Some(JoinError::LessonEnded)
    );
}

#[test]
fn only_teachers_record_and_everyone_sees_it() {
    let mut c = class();
    let refused = c
        .room
        .handle(c.now, c.ann, Some(1), ClientMessage::StartRecording);
    assert_eq!(
        error_code(&refused),
        Some((ErrorCode::MissingGrant, Some("record".into())))
    );
    let wrong = c
        .room
        .handle(c.now, c.teacher, Some(2), ClientMessage::PauseRecording);
    assert_eq!(
        error_code(&wrong).map(|e| e.0),
        Some(ErrorCode::RecordingState)
    );
    for (message, effect, state) in [
        (
            ClientMessage::StartRecording,
            RecordingEffect::Started,
            RecordingState::Recording,
        ),
        (
            ClientMessage::PauseRecording,
            RecordingEffect::Paused,
            RecordingState::Paused,
        ),
        (
            ClientMessage::ResumeRecording,
            RecordingEffect::Resumed,
            RecordingState::Recording,
        ),
        (
            ClientMessage::StopRecording,
            RecordingEffect::Stopped,
            RecordingState::Off,
        ),
    ] {
        let out = c.room.handle(c.now, c.teacher, None, message);
        assert_eq!(
            out.first(),
            Some(&Output::Recording(effect)),
            "recorder first"
        );
        assert!(broadcasts(&out).contains(&&ServerMessage::Recording { state }));
        assert_eq!(c.room.recording(), state);
    }
    // A teacher has controlled it: the course's default does not start it again.
    assert!(c.room.start_recording().is_empty());
    // Ending the lesson stops it before the end.
    c.room
        .handle(c.now, c.teacher, None, ClientMessage::StartRecording);
    let out = c
        .room
        .handle(c.now, c.teacher, None, ClientMessage::EndLesson);
    let stopped = out
        .iter()
        .position(|o| o == &Output::Recording(RecordingEffect::Stopped));
    let ended = out
        .iter()
        .position(|o| matches!(o, Output::Lesson(LessonEffect::Ended(_))));
    assert!(stopped.is_some() && stopped < ended, "{out:?}");
}

#[test]
fn the_course_default_starts_the_recording_once() {
    let mut c = class();
    assert!(!c.room.start_recording().is_empty());
    assert!(c.room.start_recording().is_empty(), "once");
}

#[test]
fn joins_are_checked() {
    let mut c = class();
    let mut elsewhere = claims(8, ParticipantRole::Student, "x");
    elsewhere.room = RoomName::for_lesson(LessonId(8));
    assert!(matches!(
        c.room.join(&elsewhere, ConnectionId(8)),
        Err(JoinError::WrongRoom(_))
    ));
    let mut small = Room::new(
        RoomName::for_lesson(ROOM),
        ROOM,
        RoomConfig {
            max_participants: 1,
            ..RoomConfig::default()
        },
        c.now,
    );
    assert!(
        small
            .join(&claims(1, ParticipantRole::Student, "1"), ConnectionId(1))
            .is_ok()
    );
    assert_eq!(
        small
            .join(&claims(2, ParticipantRole::Student, "2"), ConnectionId(2))
            .err(),
        Some(JoinError::RoomFull(1))
    );
    let out = c
        .room
        .handle(c.now, ParticipantId(404), Some(1), ClientMessage::Ping);
    assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::NotJoined));
}
