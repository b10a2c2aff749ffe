//! Slides in the room core: a teacher shows a document and turns its pages, everyone hears
//! each change, late joiners land on the current page, and nobody else steers.

use classroom_protocol::signal::{ClientMessage, ServerMessage, Slide};
use classroom_protocol::{DocumentId, ErrorCode, LessonId, ParticipantRole};

use super::test_class::{Class, refusal};
use super::*;

const LESSON: LessonId = LessonId(8);

/// The slides broadcast to everyone in `out`.
fn shown(out: &[Output]) -> Vec<Option<Slide>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                except: None,
                message: ServerMessage::Slide { slide },
            } => Some(*slide),
            _ => None,
        })
        .collect()
}

fn slide_of(joined: &ServerMessage) -> Option<Slide> {
    match joined {
        ServerMessage::Joined { slide, .. } => *slide,
        _ => None,
    }
}

#[test]
fn the_class_follows_the_teachers_pages_and_late_joiners_land_on_the_current_one() {
    let mut class = Class::new(LESSON);
    let (teacher, joined) = class.join(1, ParticipantRole::Teacher);
    assert_eq!(slide_of(&joined), None);
    let (_student, _) = class.join(2, ParticipantRole::Student);
    let document = DocumentId(40);
    let out = class.say(
        teacher,
        ClientMessage::OpenDocument {
            document,
            pages: 12,
            page: 1,
        },
    );
    let first = Slide {
        document,
        page: 1,
        pages: 12,
        by: teacher,
        browse: false,
    };
    assert_eq!(shown(&out), vec![Some(first)]);
    let out = class.say(teacher, ClientMessage::TurnPage { page: 5 });
    let fifth = Slide { page: 5, ..first };
    assert_eq!(shown(&out), vec![Some(fifth)]);
    assert_eq!(class.room.slide(), Some(fifth));
    // Turning to the page shown changes nothing anyone needs to hear.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 5 });
    assert_eq!(shown(&out), vec![]);
    assert_eq!(refusal(&out), None);

    let (_late, joined) = class.join(3, ParticipantRole::Student);
    assert_eq!(slide_of(&joined), Some(fifth));

    let out = class.say(teacher, ClientMessage::CloseDocument);
    assert_eq!(shown(&out), vec![None]);
    let (_later, joined) = class.join(4, ParticipantRole::Student);
    assert_eq!(slide_of(&joined), None);
}

#[test]
fn only_moderators_steer_and_bad_pages_change_nothing() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (student, _) = class.join(2, ParticipantRole::Student);
    let open = |page| ClientMessage::OpenDocument {
        document: DocumentId(3),
        pages: 4,
        page,
    };
    let out = class.say(student, open(1));
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    assert_eq!(shown(&out), vec![]);
    // No document yet: nothing to turn.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 2 });
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidMessage));
    for bad in [0, 5] {
        let out = class.say(teacher, open(bad));
        assert_eq!(refusal(&out), Some(ErrorCode::InvalidMessage), "page {bad}");
    }
    let out = class.say(
        teacher,
        ClientMessage::OpenDocument {
            document: DocumentId(3),
            pages: 0,
            page: 1,
        },
    );
    assert_eq!(refusal(&out), Some(ErrorCode::InvalidMessage));
    assert_eq!(class.room.slide(), None);

    class.say(teacher, open(2));
    for (who, message) in [
        (student, ClientMessage::TurnPage { page: 3 }),
        (student, ClientMessage::CloseDocument),
        (teacher, ClientMessage::TurnPage { page: 0 }),
        (teacher, ClientMessage::TurnPage { page: 5 }),
        (teacher, ClientMessage::TurnPage { page: u32::MAX }),
    ] {
        let out = class.say(who, message.clone());
        assert!(refusal(&out).is_some(), "{message:?}");
        assert_eq!(shown(&out), vec![], "{message:?}");
        assert_eq!(class.room.slide().map(|s| s.page), Some(2), "{message:?}");
    }
}

#[test]
fn a_teacher_lets_students_browse_ahead_and_a_new_document_starts_without() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (student, _) = class.join(2, ParticipantRole::Student);
    let refused = class.say(teacher, ClientMessage::AllowBrowsing { allowed: true });
    assert_eq!(
        refusal(&refused),
        Some(ErrorCode::InvalidMessage),
        "nothing shown yet"
    );
    let open = ClientMessage::OpenDocument {
        document: DocumentId(4),
        pages: 6,
        page: 2,
    };
    class.say(teacher, open.clone());
    let out = class.say(student, ClientMessage::AllowBrowsing { allowed: true });
    assert_eq!(refusal(&out), Some(ErrorCode::MissingGrant));
    assert_eq!(shown(&out), vec![]);

    let out = class.say(teacher, ClientMessage::AllowBrowsing { allowed: true });
    let [Some(slide)] = shown(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(slide.browse && slide.page == 2, "{slide:?}");
    // Turning pages keeps it; a late joiner learns it; opening a document resets it.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 3 });
    assert!(shown(&out)[0].is_some_and(|s| s.browse && s.page == 3));
    let (_late, joined) = class.join(3, ParticipantRole::Student);
    assert!(slide_of(&joined).is_some_and(|s| s.browse));
    let out = class.say(teacher, open);
    assert!(shown(&out)[0].is_some_and(|s| !s.browse && s.page == 2));
    let out = class.say(teacher, ClientMessage::AllowBrowsing { allowed: false });
    assert_eq!(shown(&out), vec![], "already off: nothing to tell");
}
