//! A large room's participant list (`roster.rs`), on a virtual clock.

use classroom_protocol::signal::{ClientMessage, ParticipantId, ServerMessage};
use classroom_protocol::{ErrorCode, LessonId, ParticipantRole, RoomName};

use super::test_class::{Class, refusal};
use super::{Output, Room, RoomConfig};

const LESSON: LessonId = LessonId(61);

/// A class whose roster turns partial past `limit` participants.
fn class(limit: usize) -> Class {
    Class::with_room(LESSON, |room| {
        let config = RoomConfig {
            full_roster_limit: limit,
            ..RoomConfig::default()
        };
        Room::new(RoomName::for_lesson(LESSON), LESSON, config, room.opened_at)
    })
}

/// Who hears of participant `about` in `out`: `None` for everyone (a broadcast), else the
/// participants it was sent to.
fn heard_of(out: &[Output], about: ParticipantId) -> Option<Vec<ParticipantId>> {
    let mut to = Vec::new();
    for o in out {
        let (target, message) = match o {
            Output::Broadcast { message, .. } => (None, message),
            Output::Send { to, message } => (Some(*to), message),
            _ => continue,
        };
        let subject = match message {
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant } => participant.id,
            ServerMessage::ParticipantLeft { participant, .. } => *participant,
            _ => continue,
        };
        if subject == about {
            match target {
                None => return None,
                Some(id) => to.push(id),
            }
        }
    }
    Some(to)
}

fn counts(out: &[Output]) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                message: ServerMessage::ParticipantCount { count },
                ..
            } => Some(*count),
            _ => None,
        })
        .collect()
}

fn roster(joined: &ServerMessage) -> (Vec<ParticipantId>, u32, bool) {
    let ServerMessage::Joined {
        participants,
        participant_count,
        partial_roster,
        ..
    } = joined
    else {
        panic!("not a joined: {joined:?}");
    };
    let ids = participants.iter().map(|p| p.id).collect();
    (ids, *participant_count, *partial_roster)
}

#[test]
fn a_small_room_tells_everyone_of_everyone_and_sends_no_count() {
    let mut class = class(3);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (_, out) = class.enter(2, ParticipantRole::Student, true);
    let (sam, joined) = class.join(3, ParticipantRole::Student);
    let (ids, count, partial) = roster(&joined);
    assert_eq!((ids.len(), count, partial), (3, 3, false));
    assert!(counts(&out).is_empty());
    let out = class.say(sam, ClientMessage::Leave);
    assert_eq!(heard_of(&out, sam), None, "broadcast");
    assert!(counts(&out).is_empty());
    assert!(teacher.0 > 0);
}

#[test]
fn past_the_limit_students_hear_of_the_notable_and_the_count_moderators_of_everyone() {
    let mut class = class(3);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (ann, _) = class.join(2, ParticipantRole::Student);
    let (ben, _) = class.join(3, ParticipantRole::Student);
    // The fourth joins: the room outgrows the limit. Everyone heard of this join (it was
    // told before the roster turned partial); the count goes out at once.
    class.at(10);
    let (cat, out) = class.enter(4, ParticipantRole::Student, true);
    assert_eq!(heard_of(&out, cat), None);
    assert_eq!(counts(&out), vec![4]);

    // The fifth is told to the moderators only; the count is held back for a second.
    class.at(200);
    let (dan, out) = class.enter(5, ParticipantRole::Student, true);
    assert_eq!(heard_of(&out, dan), Some(vec![teacher]));
    assert!(counts(&out).is_empty(), "held back");
    assert!(class.tick().is_empty(), "not due yet");
    class.at(1010);
    assert_eq!(counts(&class.tick()), vec![5]);

    // Dan's `joined` lists the notable (the teacher) and himself, with the head count.
    class.at(1020);
    let (eve, joined) = class.join(6, ParticipantRole::Student);
    assert_eq!(roster(&joined), (vec![teacher, eve], 6, true));

    // A hand raised makes Dan notable: everyone hears of him from then on, his leaving too.
    let out = class.say(dan, ClientMessage::RaiseHand);
    assert_eq!(heard_of(&out, dan), None);
    let out = class.say(dan, ClientMessage::LowerHand { participant: None });
    assert_eq!(heard_of(&out, dan), None, "announced once, heard after");
    class.at(2100);
    assert_eq!(
        counts(&class.tick()),
        vec![6],
        "Eve's join, held back, then due"
    );
    class.at(3200);
    let out = class.say(dan, ClientMessage::Leave);
    assert_eq!(heard_of(&out, dan), None);
    assert_eq!(counts(&out), vec![5]);
    // Eve was never announced: her leaving is the moderators'.
    class.at(4300);
    let out = class.say(eve, ClientMessage::Leave);
    assert_eq!(heard_of(&out, eve), Some(vec![teacher]));
    assert_eq!(counts(&out), vec![4]);
    // Those told of before the roster turned partial are heard of as they leave.
    let out = class.say(ann, ClientMessage::Leave);
    assert_eq!(heard_of(&out, ann), None);
    // The roster stays partial as the room shrinks (nobody is sent the list again).
    class.at(6000);
    let (_, joined) = class.join(7, ParticipantRole::Student);
    let (ids, count, partial) = roster(&joined);
    assert!(partial);
    assert_eq!(count, 4);
    assert!(!ids.contains(&ben));
}

#[test]
fn moderators_page_through_the_list_and_students_may_not() {
    let mut class = class(2);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let mut students = Vec::new();
    for user in 2..=8 {
        students.push(class.join(user, ParticipantRole::Student).0);
    }
    let page = |out: &[Output]| {
        out.iter()
            .find_map(|o| match o {
                Output::Send {
                    to,
                    message: ServerMessage::ParticipantsPage { participants, next },
                } if *to == teacher => {
                    Some((participants.iter().map(|p| p.id).collect::<Vec<_>>(), *next))
                }
                _ => None,
            })
            .expect("a page")
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let out = class.say(
            teacher,
            ClientMessage::ListParticipants {
                after,
                limit: Some(3),
            },
        );
        let (ids, next) = page(&out);
        assert!(ids.len() <= 3);
        seen.extend(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut all = vec![teacher];
    all.extend(&students);
    assert_eq!(seen, all, "every participant once, in order");

    let out = class.say(
        students[0],
        ClientMessage::ListParticipants {
            after: None,
            limit: None,
        },
    );
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    for limit in [0, 501] {
        let out = class.say(
            teacher,
            ClientMessage::ListParticipants {
                after: None,
                limit: Some(limit),
            },
        );
        assert_eq!(refusal(&out), Some(ErrorCode::InvalidMessage), "{limit}");
    }
}
