//! Polls in the room core: a teacher asks, students answer, moderators see results live (and
//! throttled), the timer closes the poll on the virtual clock, the class sees results only
//! when shown, late joiners find the open poll and their answer, and closed polls leave the
//! room for the store. Bad input is refused with a typed code and changes nothing.

use std::time::Duration;

use classroom_protocol::signal::{
    ClientMessage, ClosedPoll, ParticipantId, PollAnswer, PollId, PollInfo, PollKind, PollQuestion,
    PollResults, QuickPoll, ServerMessage,
};
use classroom_protocol::{ErrorCode, LessonId, ParticipantRole, UserId};

use super::polls::{MAX_POLLS, RESULTS_INTERVAL};
use super::test_class::{Class, refusal};
use super::*;

const LESSON: LessonId = LessonId(9);

/// The polls broadcast to everyone.
fn polls_broadcast(out: &[Output]) -> Vec<PollInfo> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                except: None,
                message: ServerMessage::Poll { poll },
            } => Some((**poll).clone()),
            _ => None,
        })
        .collect()
}

/// The results sent to `to` alone.
fn results_to(out: &[Output], to: ParticipantId) -> Vec<PollResults> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: t,
                message: ServerMessage::PollResults { results },
            } if *t == to => Some((**results).clone()),
            _ => None,
        })
        .collect()
}

fn results_broadcast(out: &[Output]) -> Vec<PollResults> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                message: ServerMessage::PollResults { results },
                ..
            } => Some((**results).clone()),
            _ => None,
        })
        .collect()
}

fn closed(out: &[Output]) -> Vec<ClosedPoll> {
    out.iter()
        .filter_map(|o| match o {
            Output::PollClosed(poll) => Some((**poll).clone()),
            _ => None,
        })
        .collect()
}

fn choice_poll(correct: Option<u32>, changeable: bool) -> PollQuestion {
    PollQuestion {
        kind: PollKind::SingleChoice,
        question: "Which is a prime?".into(),
        options: vec!["4".into(), "7".into(), "9".into()],
        correct: correct.map(|c| PollAnswer::Choices(vec![c])),
        anonymous: false,
        timer_secs: None,
        changeable,
    }
}

fn choose(poll: u64, choice: u32) -> ClientMessage {
    ClientMessage::AnswerPoll {
        poll: PollId(poll),
        answer: PollAnswer::Choices(vec![choice]),
    }
}

#[test]
fn a_quiz_from_question_to_results_shown_and_stored() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    let (bob, _) = class.enter(3, ParticipantRole::Student, true);
    let out = class.say(
        teacher,
        ClientMessage::AskPoll {
            poll: choice_poll(Some(1), false),
        },
    );
    assert_eq!(refusal(&out), None);
    let asked = polls_broadcast(&out);
    assert_eq!(asked.len(), 1);
    assert!(asked[0].quiz && !asked[0].closed);
    // The class is told a quiz runs, never its answer.
    let text = serde_json::to_string(&asked[0]).expect("serializes");
    assert!(!text.contains("correct"), "{text}");
    assert_eq!(results_to(&out, teacher).len(), 1);

    class.at(1000);
    let out = class.say(ann, choose(1, 1));
    assert_eq!(refusal(&out), None);
    // Only the moderator hears of an answer; the class hears nothing.
    assert!(out.iter().all(|o| !matches!(o, Output::Broadcast { .. })));
    let live = results_to(&out, teacher);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].tallies, vec![0, 1, 0]);
    assert_eq!(live[0].correct_count, Some(1));
    let named = live[0].answers.as_ref().expect("named poll");
    assert_eq!(named[0].user_id, UserId(2));

    class.at(2000);
    class.say(bob, choose(1, 0));
    // Answering once: a second answer is refused and the first stays.
    let out = class.say(bob, choose(1, 2));
    assert_eq!(refusal(&out), Some(ErrorCode::AlreadyAnswered));

    class.at(3000);
    let out = class.say(teacher, ClientMessage::ClosePoll { poll: PollId(1) });
    assert_eq!(refusal(&out), None);
    assert!(polls_broadcast(&out)[0].closed);
    let stored = closed(&out);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].answers.len(), 2);
    let bobs = stored[0]
        .answers
        .iter()
        .find(|a| a.user_id == Some(UserId(3)))
        .expect("bob's answer stored with his user");
    assert_eq!(bobs.correct, Some(false));
    assert_eq!(bobs.answer, PollAnswer::Choices(vec![0]));
    assert_eq!(
        stored[0].question.correct,
        Some(PollAnswer::Choices(vec![1]))
    );
    assert_eq!(stored[0].closed_at_ms, 3000);

    let out = class.say(ann, choose(1, 1));
    assert_eq!(refusal(&out), Some(ErrorCode::PollClosed));

    let out = class.say(teacher, ClientMessage::ShowPollResults { poll: PollId(1) });
    let shown = results_broadcast(&out);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].tallies, vec![1, 1, 0]);
    assert_eq!(shown[0].correct, Some(PollAnswer::Choices(vec![1])));
    assert_eq!(
        shown[0].answers, None,
        "the class never sees who answered what"
    );

    // A late joiner sees the shown (closed) poll in `joined`.
    let (_, out) = class.enter(4, ParticipantRole::Student, true);
    let joined_poll = out.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Joined { poll, .. },
            ..
        } => Some(poll.clone()),
        _ => None,
    });
    assert_eq!(joined_poll.flatten().map(|p| p.closed), Some(true));
}

#[test]
fn live_results_reach_moderators_at_most_twice_a_second_however_many_answer() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let students: Vec<ParticipantId> = (2..=201)
        .map(|u| class.enter(u, ParticipantRole::Student, true).0)
        .collect();
    class.say(
        teacher,
        ClientMessage::AskPoll {
            poll: choice_poll(None, false),
        },
    );
    let mut sent = 0;
    let mut last = None;
    // 200 answers within one second.
    for (i, student) in students.iter().enumerate() {
        class.at(i as u64 * 5);
        let mut out = class.tick();
        out.extend(class.say(*student, choose(1, (i % 3) as u32)));
        assert!(out.iter().all(|o| !matches!(o, Output::Broadcast { .. })));
        let to_others = out.iter().filter(|o| match o {
            Output::Send { to, .. } => *to != teacher && *to != *student,
            _ => true,
        });
        assert_eq!(to_others.count(), 0, "nothing reaches the other students");
        let results = results_to(&out, teacher);
        sent += results.len();
        last = results.last().cloned().or(last);
    }
    assert!(sent <= 3, "{sent} results messages in one second");
    // The last answers reach the moderator when the interval is up.
    let due = class.room.poll_timeout().expect("results are due");
    assert!(due <= class.now + RESULTS_INTERVAL);
    class.now = due;
    let out = class.tick();
    let results = results_to(&out, teacher);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].answered, 200);
    assert_eq!(results[0].tallies.iter().sum::<u32>(), 200);
    assert_eq!(class.room.poll_timeout(), None);
    let _ = last;
}

#[test]
fn the_timer_closes_the_poll_on_the_virtual_clock() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    let mut question = choice_poll(None, true);
    question.timer_secs = Some(30);
    let out = class.say(teacher, ClientMessage::AskPoll { poll: question });
    assert_eq!(polls_broadcast(&out)[0].closes_at_ms, Some(30_000));
    assert_eq!(
        class.room.poll_timeout(),
        Some(class.start + Duration::from_secs(30))
    );
    class.at(10_000);
    class.say(ann, choose(1, 0));
    // Changeable: the later answer replaces the first.
    class.say(ann, choose(1, 2));
    class.at(29_999);
    let out = class.tick();
    assert!(polls_broadcast(&out).is_empty());
    class.at(30_000);
    let out = class.tick();
    let polls = polls_broadcast(&out);
    assert_eq!(polls.len(), 1);
    assert!(polls[0].closed);
    let stored = closed(&out);
    assert_eq!(stored[0].answers.len(), 1);
    assert_eq!(stored[0].answers[0].answer, PollAnswer::Choices(vec![2]));
    assert_eq!(class.room.poll_timeout(), None);
}

#[test]
fn late_joiners_get_the_open_poll_and_their_own_answer() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    class.say(
        teacher,
        ClientMessage::AskQuickPoll {
            preset: QuickPoll::Abcd,
        },
    );
    class.say(ann, choose(1, 3));
    // Ann reloads: she is back with her answer.
    class.input(Input::Disconnected {
        participant: ann,
        connection: ConnectionId(2),
    });
    let (_, out) = class.enter(2, ParticipantRole::Student, true);
    let (poll, answer) = out
        .iter()
        .find_map(|o| match o {
            Output::Send {
                message:
                    ServerMessage::Joined {
                        poll, poll_answer, ..
                    },
                ..
            } => Some((poll.clone(), poll_answer.clone().map(|a| *a))),
            _ => None,
        })
        .expect("a snapshot");
    let poll = poll.expect("the open poll");
    assert_eq!(poll.options, vec!["A", "B", "C", "D"]);
    assert_eq!(answer, Some(PollAnswer::Choices(vec![3])));
    // A moderator who joins gets the results at once.
    let (assistant, out) = class.enter(5, ParticipantRole::Assistant, true);
    assert_eq!(results_to(&out, assistant)[0].answered, 1);
}

#[test]
fn bad_polls_and_answers_are_refused_with_their_codes_and_change_nothing() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    let ask = |poll| ClientMessage::AskPoll { poll };
    // A student cannot ask.
    let out = class.say(ann, ask(choice_poll(None, false)));
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    let long = "x".repeat(501);
    let too_many: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    let bad_questions = [
        PollQuestion {
            question: long,
            ..choice_poll(None, false)
        },
        PollQuestion {
            options: too_many,
            ..choice_poll(None, false)
        },
        PollQuestion {
            options: vec!["only".into()],
            ..choice_poll(None, false)
        },
        PollQuestion {
            options: vec!["a".into(), "  ".into()],
            ..choice_poll(None, false)
        },
        PollQuestion {
            kind: PollKind::Number,
            ..choice_poll(None, false)
        },
        choice_poll(Some(3), false),
        PollQuestion {
            timer_secs: Some(1),
            ..choice_poll(None, false)
        },
        PollQuestion {
            kind: PollKind::Text,
            options: vec![],
            correct: Some(PollAnswer::Number(1.0)),
            ..choice_poll(None, false)
        },
    ];
    for question in bad_questions {
        let out = class.say(teacher, ask(question.clone()));
        assert_eq!(refusal(&out), Some(ErrorCode::InvalidPoll), "{question:?}");
        assert!(polls_broadcast(&out).is_empty());
    }
    assert_eq!(class.room.poll_for_joined(UserId(2)), (None, None));

    // No poll yet.
    let out = class.say(ann, choose(1, 0));
    assert_eq!(refusal(&out), Some(ErrorCode::PollClosed));

    let multiple = PollQuestion {
        kind: PollKind::MultipleChoice,
        ..choice_poll(None, false)
    };
    class.say(teacher, ask(multiple));
    let bad_answers = [
        (ann, choose(1, 3), ErrorCode::InvalidAnswer),
        (ann, choose(1, u32::MAX), ErrorCode::InvalidAnswer),
        (
            ann,
            ClientMessage::AnswerPoll {
                poll: PollId(1),
                answer: PollAnswer::Choices(vec![0, 0]),
            },
            ErrorCode::InvalidAnswer,
        ),
        (
            ann,
            ClientMessage::AnswerPoll {
                poll: PollId(1),
                answer: PollAnswer::Choices(vec![]),
            },
            ErrorCode::InvalidAnswer,
        ),
        (
            ann,
            ClientMessage::AnswerPoll {
                poll: PollId(1),
                answer: PollAnswer::Text("7".into()),
            },
            ErrorCode::InvalidAnswer,
        ),
        (ann, choose(2, 0), ErrorCode::PollClosed),
        (teacher, choose(1, 0), ErrorCode::InvalidAnswer),
        (
            ann,
            ClientMessage::ClosePoll { poll: PollId(1) },
            ErrorCode::MissingGrant,
        ),
        (
            ann,
            ClientMessage::ShowPollResults { poll: PollId(1) },
            ErrorCode::MissingGrant,
        ),
    ];
    for (who, message, code) in bad_answers {
        let out = class.say(who, message.clone());
        assert_eq!(refusal(&out), Some(code), "{message:?}");
        assert!(closed(&out).is_empty());
    }
    let out = class.say(
        ann,
        ClientMessage::AnswerPoll {
            poll: PollId(1),
            answer: PollAnswer::Choices(vec![2, 0]),
        },
    );
    assert_eq!(refusal(&out), None);

    // Text answers have a limit too.
    class.say(
        teacher,
        ask(PollQuestion {
            kind: PollKind::Text,
            options: vec![],
            ..choice_poll(None, false)
        }),
    );
    let out = class.say(
        ann,
        ClientMessage::AnswerPoll {
            poll: PollId(2),
            answer: PollAnswer::Text("y".repeat(201)),
        },
    );
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidAnswer));
}

#[test]
fn a_lesson_asks_at_most_its_limit_of_polls_and_each_new_one_closes_the_last() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let quick = ClientMessage::AskQuickPoll {
        preset: QuickPoll::YesNo,
    };
    let out = class.say(teacher, quick.clone());
    assert!(closed(&out).is_empty());
    for n in 2..=MAX_POLLS {
        let out = class.say(teacher, quick.clone());
        assert_eq!(refusal(&out), None);
        // The previous poll closed and was stored.
        assert_eq!(
            closed(&out).iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![PollId(u64::from(n - 1))]
        );
    }
    let out = class.say(teacher, quick);
    assert_eq!(refusal(&out), Some(ErrorCode::TooManyPolls));
    assert!(closed(&out).is_empty(), "a refused poll closes nothing");
}

#[test]
fn the_open_poll_is_stored_when_the_lesson_ends_or_the_room_closes_and_anonymous_ones_keep_no_user()
{
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    let (ann, _) = class.enter(2, ParticipantRole::Student, true);
    let number = PollQuestion {
        kind: PollKind::Number,
        question: "How many?".into(),
        options: vec![],
        correct: Some(PollAnswer::Number(42.0)),
        anonymous: true,
        timer_secs: None,
        changeable: false,
    };
    class.say(teacher, ClientMessage::AskPoll { poll: number });
    let out = class.say(
        ann,
        ClientMessage::AnswerPoll {
            poll: PollId(1),
            answer: PollAnswer::Number(42.0),
        },
    );
    let live = &results_to(&out, teacher);
    // Anonymous: not even moderators see who answered what.
    if let Some(live) = live.first() {
        assert_eq!(live.answers, None);
    }
    let out = class.say(teacher, ClientMessage::EndLesson);
    let stored = closed(&out);
    assert_eq!(stored.len(), 1);
    let at = |want: fn(&Output) -> bool| out.iter().position(want);
    assert!(
        at(|o| matches!(o, Output::PollClosed(_)))
            < at(|o| matches!(o, Output::Lesson(LessonEffect::Ended(_)))),
        "the poll is stored before the lesson ends"
    );
    assert_eq!(stored[0].answers[0].user_id, None);
    assert_eq!(stored[0].answers[0].name, None);
    assert_eq!(stored[0].answers[0].correct, Some(true));

    // A room that closes with a poll open stores it too.
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.enter(1, ParticipantRole::Teacher, true);
    class.say(
        teacher,
        ClientMessage::AskQuickPoll {
            preset: QuickPoll::Abcd,
        },
    );
    let out = class.input(Input::Closed);
    assert_eq!(closed(&out).len(), 1);
}
