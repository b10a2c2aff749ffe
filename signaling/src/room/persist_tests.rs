//! A room's state kept and taken back: a room opened again from what the first one stored
//! (the node restarted, or another took the lesson over) has the chat, the stage, the hands,
//! mute and the recording as they were, and gives each place back to its user only.

use std::time::Duration;

use classroom_protocol::signal::{ClientMessage, RecordingState, ServerMessage};
use classroom_protocol::{LessonId, ParticipantRole, UserId};

use super::test_class::{Class, snapshot};
use super::*;

const LESSON: LessonId = LessonId(31);

/// A lesson under way: a teacher, three students; chat, a locked chat, Bea on stage, Cai and
/// Dan with hands up (Dan first), Bea muted, recording paused by the teacher.
fn lesson_under_way() -> (Class, RoomState) {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (bea, _) = class.enter(2, ParticipantRole::Student, true);
    let (cai, _) = class.enter(3, ParticipantRole::Student, true);
    let (dan, _) = class.enter(4, ParticipantRole::Student, true);
    class.say(
        bea,
        ClientMessage::Chat {
            text: "hello".into(),
        },
    );
    class.say(
        teacher,
        ClientMessage::Chat {
            text: "welcome".into(),
        },
    );
    class.say(teacher, ClientMessage::LockChat { locked: true });
    class.say(teacher, ClientMessage::InviteToStage { participant: bea });
    class.say(teacher, ClientMessage::Mute { participant: bea });
    class.say(dan, ClientMessage::RaiseHand);
    class.say(cai, ClientMessage::RaiseHand);
    class.say(teacher, ClientMessage::StartRecording);
    class.say(teacher, ClientMessage::PauseRecording);
    class.at(5_000);
    let now = class.now;
    let state = class
        .room
        .take_state_change(now)
        .expect("a change to store");
    (class, state)
}

fn restored(state: RoomState) -> (Class, Vec<Output>) {
    let mut class = Class::new(LESSON);
    let now = class.now;
    class.room.restore(now, state);
    let out = std::iter::from_fn(|| class.room.poll_output()).collect();
    (class, out)
}

#[test]
fn the_state_holds_what_the_lesson_had() {
    let (_, state) = lesson_under_way();
    assert!(state.live);
    assert_eq!(state.recording, RecordingState::Paused);
    assert!(state.recording_by_hand);
    assert!(state.chat_locked);
    let texts: Vec<&str> = state.chat.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello", "welcome"]);
    assert_eq!(state.stage, [UserId(2)]);
    assert_eq!(state.muted, [UserId(2)]);
    assert_eq!(state.hands, [UserId(4), UserId(3)]);
    assert_eq!(state.next_participant, 5);
    assert_eq!(state.elapsed_ms, 5_000);
    // Its JSON form reads back the same (the database keeps the JSON).
    let json = serde_json::to_string(&state).expect("json");
    let back: RoomState = serde_json::from_str(&json).expect("read back");
    assert_eq!(back, state);
}

#[test]
fn nothing_to_store_until_something_changes() {
    let (mut class, _) = lesson_under_way();
    let now = class.now;
    assert_eq!(class.room.take_state_change(now), None);
    let (someone, _) = class.enter(5, ParticipantRole::Student, true);
    assert_eq!(
        class.room.take_state_change(now),
        None,
        "a join alone changes nothing kept"
    );
    class.say(someone, ClientMessage::RaiseHand);
    let state = class
        .room
        .take_state_change(now)
        .expect("a raised hand is kept");
    assert_eq!(state.hands, [UserId(4), UserId(3), UserId(5)]);
}

#[test]
fn a_restored_room_is_live_and_records_again_as_it_was() {
    let (_, state) = lesson_under_way();
    let (class, out) = restored(state);
    assert!(out.contains(&Output::Lesson(LessonEffect::WentLive(LESSON))));
    let effects: Vec<&RecordingEffect> = out
        .iter()
        .filter_map(|o| match o {
            Output::Recording(effect) => Some(effect),
            _ => None,
        })
        .collect();
    assert_eq!(
        effects,
        [&RecordingEffect::Started, &RecordingEffect::Paused]
    );
    assert_eq!(class.room.recording, RecordingState::Paused);
}

#[test]
fn a_recording_the_teacher_stopped_is_not_started_again_by_the_server() {
    let (mut class, _) = lesson_under_way();
    let teacher = ParticipantId(1);
    class.say(teacher, ClientMessage::StopRecording);
    let now = class.now;
    let state = class.room.take_state_change(now).expect("stopped");
    let (mut class, out) = restored(state);
    assert!(!out.iter().any(|o| matches!(o, Output::Recording(_))));
    // The course records by default: the server asks when the lesson goes live again.
    let out = class.input(Input::StartRecording);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Recording(_))),
        "{out:?}"
    );
}

#[test]
fn users_get_their_places_back_and_new_ones_start_afresh() {
    let (_, state) = lesson_under_way();
    let (mut class, _) = restored(state);
    class.at(2_000);
    let (teacher, joined) = class.join(1, ParticipantRole::Teacher);
    let ServerMessage::Joined {
        chat_history,
        chat_locked,
        recording,
        live,
        ..
    } = joined
    else {
        unreachable!()
    };
    assert!(chat_locked && live);
    assert_eq!(recording, RecordingState::Paused);
    assert_eq!(chat_history.len(), 2);
    // New ids: the old ones are named in the chat and are not given to anyone else.
    assert!(teacher.0 >= 5, "{teacher:?}");
    // Cai comes back before Dan; Dan's hand was first and stays first.
    let (cai, _) = class.enter(3, ParticipantRole::Student, true);
    let (eve, _) = class.enter(6, ParticipantRole::Student, true);
    class.say(eve, ClientMessage::RaiseHand);
    let (dan, _) = class.enter(4, ParticipantRole::Student, true);
    assert_eq!(
        class.room.hands.iter().copied().collect::<Vec<_>>(),
        [dan, cai, eve]
    );
    // Bea is on stage with her grants, and muted.
    let (bea, out) = class.enter(2, ParticipantRole::Student, true);
    let p = &class.room.participants[&bea];
    assert!(p.info.on_stage && p.info.muted);
    assert!(
        p.grants
            .publish
            .contains(&classroom_protocol::TrackSource::Microphone)
    );
    assert!(out.contains(&Output::Media(MediaEffect::AudioMuted { participant: bea })));
    let ServerMessage::Joined { you, grants, .. } = snapshot(out, bea) else {
        unreachable!()
    };
    assert!(you.on_stage && you.muted && !grants.publish.is_empty());
    // A new chat message goes on from the stored numbering and time.
    class.say(
        teacher,
        ClientMessage::Chat {
            text: "we are back".into(),
        },
    );
    let chat: Vec<(u64, u64)> = class.room.chat.iter().map(|m| (m.seq, m.at_ms)).collect();
    assert!(chat[2].0 > chat[1].0 && chat[2].1 >= 7_000, "{chat:?}");
}

#[test]
fn places_lapse_after_the_reconnect_grace() {
    let (_, state) = lesson_under_way();
    let (mut class, _) = restored(state);
    let grace = RoomConfig::default().reconnect_grace;
    class.now += grace + Duration::from_secs(1);
    let (bea, _) = class.enter(2, ParticipantRole::Student, true);
    let p = &class.room.participants[&bea];
    assert!(!p.info.on_stage && !p.info.muted);
    assert!(class.room.hands.is_empty());
    let now = class.now;
    let state = class
        .room
        .take_state_change(now)
        .expect("the places are gone");
    assert!(state.stage.is_empty() && state.hands.is_empty() && state.muted.is_empty());
}

#[test]
fn an_unreadable_or_empty_state_restores_an_empty_room() {
    let empty: RoomState = serde_json::from_str("{}").expect("every field has a default");
    let (class, out) = restored(empty);
    assert!(out.is_empty(), "{out:?}");
    assert!(!class.room.live);
    assert!(serde_json::from_str::<RoomState>("{\"chat\": 3}").is_err());
}

/// A poll open when the node died: the restored room goes on with it (its timer where it
/// was, the answers given before and after), numbers the next poll after it, and stores it
/// once, with every answer, when it closes.
#[test]
fn an_open_poll_and_its_answers_outlive_the_room() {
    use classroom_protocol::signal::{PollAnswer, PollId, PollKind, PollQuestion};
    let choose = |choice: u32| ClientMessage::AnswerPoll {
        poll: PollId(2),
        answer: PollAnswer::Choices(vec![choice]),
    };
    let question = |timer_secs| PollQuestion {
        kind: PollKind::SingleChoice,
        question: "Which is a prime?".into(),
        options: vec!["4".into(), "7".into(), "9".into()],
        correct: Some(PollAnswer::Choices(vec![1])),
        anonymous: false,
        timer_secs,
        changeable: false,
    };
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    class.enter(3, ParticipantRole::Student, true);
    class.say(
        teacher,
        ClientMessage::AskPoll {
            poll: question(None),
        },
    );
    class.at(1_000);
    class.say(
        teacher,
        ClientMessage::AskPoll {
            poll: question(Some(60)),
        },
    );
    class.at(11_000);
    class.say(ann, choose(1));
    let now = class.now;
    let state = class
        .room
        .take_state_change(now)
        .expect("the answer is a change");
    let kept = state.poll.clone().expect("the open poll is kept");
    assert_eq!((state.polls_asked, kept.id), (2, PollId(2)));
    assert_eq!(kept.closes_at_ms, Some(61_000));
    assert_eq!(kept.answers.len(), 1);
    assert!(class.room.take_state_change(now).is_none(), "nothing new");
    // Through the database's JSON, as a restart reads it back.
    let json = serde_json::to_string(&state).expect("a state serializes");
    let state: RoomState = serde_json::from_str(&json).expect("and reads back");

    let (mut class, out) = restored(state);
    assert!(
        !out.iter().any(|o| matches!(o, Output::PollClosed(_))),
        "not stored yet"
    );
    let (ann, out) = class.enter(2, ParticipantRole::Student, true);
    let ServerMessage::Joined {
        poll, poll_answer, ..
    } = snapshot(out, ann)
    else {
        panic!("a snapshot");
    };
    let poll = poll.expect("the open poll, after the restore");
    assert_eq!((poll.id, poll.closed), (PollId(2), false));
    assert_eq!(
        poll.closes_in_ms,
        Some(50_000),
        "the timer goes on where it was"
    );
    assert_eq!(poll_answer.map(|a| *a), Some(PollAnswer::Choices(vec![1])));
    // Ann answered already (the poll takes one answer each); Bo answers now.
    let out = class.say(ann, choose(2));
    assert_eq!(
        super::test_class::refusal(&out),
        Some(classroom_protocol::ErrorCode::AlreadyAnswered)
    );
    let (bo, _) = class.enter(3, ParticipantRole::Student, true);
    class.say(bo, choose(0));
    // The timer closes it 50 s after the restore: stored once, both answers in it.
    class.at(49_999);
    assert!(
        !class
            .tick()
            .iter()
            .any(|o| matches!(o, Output::PollClosed(_)))
    );
    class.at(50_000);
    let stored: Vec<_> = class
        .tick()
        .into_iter()
        .filter_map(|o| match o {
            Output::PollClosed(poll) => Some(*poll),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, PollId(2));
    let correct: Vec<_> = stored[0].answers.iter().map(|a| a.correct).collect();
    assert_eq!(correct, vec![Some(true), Some(false)]);
    // The next poll is the lesson's third.
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let out = class.say(
        teacher,
        ClientMessage::AskPoll {
            poll: question(None),
        },
    );
    let asked = out.iter().find_map(|o| match o {
        Output::Broadcast {
            message: ServerMessage::Poll { poll },
            ..
        } => Some(poll.id),
        _ => None,
    });
    assert_eq!(asked, Some(PollId(3)));
}

/// A stored poll that no longer passes the checks (damaged, or from elsewhere) is dropped;
/// the room opens without it.
#[test]
fn a_stored_poll_that_fails_the_checks_is_dropped() {
    use classroom_protocol::signal::{PollId, PollKind, PollQuestion};
    let state = RoomState {
        live: true,
        polls_asked: 1,
        poll: Some(KeptPoll {
            id: PollId(1),
            question: PollQuestion {
                kind: PollKind::SingleChoice,
                question: "one option only".into(),
                options: vec!["A".into()],
                correct: None,
                anonymous: false,
                timer_secs: None,
                changeable: true,
            },
            asked_at_ms: 0,
            closes_at_ms: None,
            closed_at_ms: None,
            shown: false,
            answers: vec![],
        }),
        ..RoomState::default()
    };
    let (mut class, _) = restored(state);
    let (ann, out) = class.enter(2, ParticipantRole::Student, true);
    let ServerMessage::Joined { poll, .. } = snapshot(out, ann) else {
        panic!("a snapshot");
    };
    assert!(poll.is_none());
}
