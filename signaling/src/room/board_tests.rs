//! The whiteboard in the room core: who may draw (the pen, enforced here), strokes streamed to
//! the class, undo and redo, boards per page and the blank board, late joiners, the pointer,
//! and the limits that keep a hostile client from growing the room or slowing the others.

use std::time::Duration;

use classroom_protocol::signal::{
    BoardPage, BoardSnapshot, ClientMessage, Colour, ParticipantId, Point, ServerMessage, Stroke,
    StrokeId, Tool,
};
use classroom_protocol::{DocumentId, ErrorCode, LessonId, ParticipantRole};

use super::test_class::Class;
use super::*;

const LESSON: LessonId = LessonId(9);
const DOC: DocumentId = DocumentId(40);
const BLACK: Colour = Colour([0, 0, 0]);

impl Class {
    fn with_limits(limits: BoardLimits) -> Self {
        Class::with_room(LESSON, |room| room.with_board_limits(limits))
    }

    /// A teacher and a student, the teacher showing page 1 of a document.
    fn presenting() -> (Self, ParticipantId, ParticipantId) {
        let mut class = Class::new(LESSON);
        let (teacher, _) = class.join(1, ParticipantRole::Teacher);
        let (student, _) = class.join(2, ParticipantRole::Student);
        class.say(teacher, open(1));
        (class, teacher, student)
    }
}

fn open(page: u32) -> ClientMessage {
    ClientMessage::OpenDocument {
        document: DOC,
        pages: 10,
        page,
    }
}

fn pen(points: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::Draw {
        tool: Tool::Pen,
        colour: BLACK,
        width: 30,
        points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
        text: None,
    }
}

fn more(points: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::DrawMore {
        points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
    }
}

fn refusal(out: &[Output]) -> Option<(ErrorCode, Option<String>)> {
    out.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Error { code, grant, .. },
            ..
        } => Some((*code, grant.clone())),
        _ => None,
    })
}

fn code(out: &[Output]) -> Option<ErrorCode> {
    refusal(out).map(|(code, _)| code)
}

/// What `out` broadcasts, with whom it leaves out.
fn broadcasts(out: &[Output]) -> Vec<(Option<ParticipantId>, ServerMessage)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { except, message } => Some((*except, message.clone())),
            _ => None,
        })
        .collect()
}

/// The strokes begun (or brought back) in `out`.
fn strokes(out: &[Output]) -> Vec<Stroke> {
    broadcasts(out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::Stroke { stroke } => Some(stroke),
            _ => None,
        })
        .collect()
}

fn erased(out: &[Output]) -> Vec<StrokeId> {
    broadcasts(out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::StrokeErased { id } => Some(id),
            _ => None,
        })
        .collect()
}

fn boards(out: &[Output]) -> Vec<BoardSnapshot> {
    broadcasts(out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::Board { board } => Some(board),
            _ => None,
        })
        .collect()
}

fn board_of(joined: &ServerMessage) -> (BoardSnapshot, Vec<ParticipantId>) {
    match joined {
        ServerMessage::Joined { board, .. } => ((**board).clone(), board.pens.clone()),
        other => panic!("not a joined: {other:?}"),
    }
}

fn ids(strokes: &[Stroke]) -> Vec<StrokeId> {
    strokes.iter().map(|s| s.id).collect()
}

#[test]
fn a_student_draws_only_while_holding_the_pen_the_teacher_gives_and_takes() {
    let (mut class, teacher, student) = Class::presenting();
    let out = class.say(student, pen(&[(10, 10)]));
    assert_eq!(
        refusal(&out),
        Some((ErrorCode::MissingGrant, Some("draw".into())))
    );
    assert!(broadcasts(&out).is_empty());
    for message in [
        ClientMessage::Pointer {
            at: Some(Point(1, 1)),
        },
        ClientMessage::Undo,
        ClientMessage::Erase {
            stroke: StrokeId(1),
        },
    ] {
        let out = class.say(student, message.clone());
        assert_eq!(code(&out), Some(ErrorCode::MissingGrant), "{message:?}");
    }
    // Only moderators hand out the pen, and moderators need none.
    let out = class.say(
        student,
        ClientMessage::GivePen {
            participant: student,
        },
    );
    assert_eq!(
        refusal(&out),
        Some((ErrorCode::MissingGrant, Some("moderate".into())))
    );
    let out = class.say(
        teacher,
        ClientMessage::GivePen {
            participant: teacher,
        },
    );
    assert_eq!(code(&out), Some(ErrorCode::InvalidMessage));
    let out = class.say(
        teacher,
        ClientMessage::GivePen {
            participant: ParticipantId(99),
        },
    );
    assert_eq!(code(&out), Some(ErrorCode::UnknownParticipant));

    let out = class.say(
        teacher,
        ClientMessage::GivePen {
            participant: student,
        },
    );
    assert_eq!(
        broadcasts(&out),
        vec![(
            None,
            ServerMessage::Pens {
                holders: vec![student]
            }
        )]
    );
    let out = class.say(student, pen(&[(10, 10), (20, 20)]));
    assert_eq!(code(&out), None);
    let [stroke] = &strokes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(stroke.by, student);
    // The rest of the stroke reaches the others, not its drawer.
    let out = class.say(student, more(&[(30, 30)]));
    assert_eq!(
        broadcasts(&out),
        vec![(
            Some(student),
            ServerMessage::StrokePoints {
                id: stroke.id,
                points: vec![Point(30, 30)]
            }
        )]
    );

    let out = class.say(
        teacher,
        ClientMessage::TakePen {
            participant: student,
        },
    );
    assert_eq!(
        broadcasts(&out),
        vec![(None, ServerMessage::Pens { holders: vec![] })]
    );
    let before = class.room.board_points();
    for message in [more(&[(40, 40)]), pen(&[(1, 1)])] {
        let out = class.say(student, message);
        assert_eq!(code(&out), Some(ErrorCode::MissingGrant));
        assert!(broadcasts(&out).is_empty());
    }
    assert_eq!(class.room.board_points(), before);
    assert_eq!(class.room.board().strokes[0].points.len(), 3);
}

#[test]
fn late_joiners_get_the_shown_page_whole_and_each_page_keeps_its_own_board() {
    let mut class = Class::new(LESSON);
    let (teacher, joined) = class.join(1, ParticipantRole::Teacher);
    assert_eq!(board_of(&joined).0, BoardSnapshot::default());
    let out = class.say(teacher, pen(&[(1, 1)]));
    assert_eq!(code(&out), Some(ErrorCode::InvalidMessage), "nothing shown");

    let out = class.say(teacher, open(1));
    let page = |n| BoardPage {
        document: Some(DOC),
        page: n,
    };
    assert_eq!(boards(&out)[0].page, Some(page(1)));
    let out = class.say(teacher, pen(&[(100, 100), (200, 200)]));
    let first = strokes(&out).remove(0);
    class.say(teacher, more(&[(300, 300), (400, 400)]));
    class.say(teacher, ClientMessage::DrawEnd);
    let out = class.say(teacher, more(&[(500, 500)]));
    assert_eq!(code(&out), Some(ErrorCode::InvalidMessage), "ended");
    let text = ClientMessage::Draw {
        tool: Tool::Text,
        colour: Colour([0xe0, 0x31, 0x31]),
        width: 300,
        points: vec![Point(5000, 5000)],
        text: Some("mitosis".into()),
    };
    let second = strokes(&class.say(teacher, text)).remove(0);

    // A student joining now sees both strokes, the first with all its points.
    let (_, joined) = class.join(2, ParticipantRole::Student);
    let (board, pens) = board_of(&joined);
    assert_eq!(board.page, Some(page(1)));
    assert_eq!(ids(&board.strokes), vec![first.id, second.id]);
    assert_eq!(board.strokes[0].points.len(), 4);
    assert_eq!(board.strokes[1].text.as_deref(), Some("mitosis"));
    assert!(pens.is_empty());

    // Page 2 has a board of its own; page 1's comes back with it.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 2 });
    assert_eq!(
        boards(&out),
        vec![BoardSnapshot {
            page: Some(page(2)),
            blank_pages: None,
            strokes: vec![],
            pens: vec![],
        }]
    );
    let on_two = strokes(&class.say(teacher, pen(&[(7, 7)]))).remove(0);
    let out = class.say(teacher, ClientMessage::TurnPage { page: 1 });
    assert_eq!(ids(&boards(&out)[0].strokes), vec![first.id, second.id]);
    // Turning to the page shown sends no board again.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 1 });
    assert!(boards(&out).is_empty());

    // The blank board replaces the document, page by page, and gives way to it again.
    let out = class.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    let blank = BoardPage {
        document: None,
        page: 1,
    };
    assert_eq!(
        broadcasts(&out),
        vec![
            (None, ServerMessage::Slide { slide: None }),
            (
                None,
                ServerMessage::Board {
                    board: BoardSnapshot {
                        page: Some(blank),
                        blank_pages: Some(20),
                        strokes: vec![],
                        pens: vec![],
                    }
                }
            ),
        ]
    );
    let on_blank = strokes(&class.say(teacher, pen(&[(9, 9)]))).remove(0);
    let (_, joined) = class.join(3, ParticipantRole::Student);
    assert_eq!(ids(&board_of(&joined).0.strokes), vec![on_blank.id]);
    for bad in [0, 21] {
        let out = class.say(teacher, ClientMessage::ShowBlankBoard { page: bad });
        assert_eq!(code(&out), Some(ErrorCode::InvalidMessage), "page {bad}");
    }
    let out = class.say(teacher, open(2));
    assert_eq!(ids(&boards(&out)[0].strokes), vec![on_two.id]);
    assert_eq!(class.room.board_page(), Some(page(2)));
    let out = class.say(teacher, ClientMessage::CloseDocument);
    assert_eq!(boards(&out)[0], BoardSnapshot::default());
    let out = class.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    assert_eq!(ids(&boards(&out)[0].strokes), vec![on_blank.id], "kept");
    let out = class.say(teacher, ClientMessage::CloseBlankBoard);
    assert_eq!(boards(&out)[0], BoardSnapshot::default());
}

#[test]
fn undo_and_redo_take_back_only_ones_own_changes() {
    let (mut class, teacher, student) = Class::presenting();
    class.say(
        teacher,
        ClientMessage::GivePen {
            participant: student,
        },
    );
    let a = strokes(&class.say(teacher, pen(&[(1, 1)]))).remove(0);
    let b = strokes(&class.say(student, pen(&[(2, 2)]))).remove(0);
    let c = strokes(&class.say(teacher, pen(&[(3, 3)]))).remove(0);

    // The teacher's undo takes back c, then a; never the student's b.
    assert_eq!(erased(&class.say(teacher, ClientMessage::Undo)), vec![c.id]);
    assert_eq!(erased(&class.say(teacher, ClientMessage::Undo)), vec![a.id]);
    let out = class.say(teacher, ClientMessage::Undo);
    assert_eq!((code(&out), broadcasts(&out)), (None, vec![]), "no more");
    assert_eq!(ids(&class.room.board().strokes), vec![b.id]);
    assert_eq!(
        ids(&strokes(&class.say(teacher, ClientMessage::Redo))),
        vec![a.id]
    );

    // A student erases only their own strokes; a moderator anyone's, and may undo it.
    let out = class.say(student, ClientMessage::Erase { stroke: a.id });
    assert_eq!(
        refusal(&out),
        Some((ErrorCode::MissingGrant, Some("moderate".into())))
    );
    let out = class.say(teacher, ClientMessage::Erase { stroke: b.id });
    assert_eq!(erased(&out), vec![b.id]);
    let out = class.say(teacher, ClientMessage::Erase { stroke: b.id });
    assert_eq!(code(&out), Some(ErrorCode::InvalidMessage), "gone already");
    assert_eq!(
        ids(&strokes(&class.say(teacher, ClientMessage::Undo))),
        vec![b.id]
    );
    assert_eq!(erased(&class.say(teacher, ClientMessage::Redo)), vec![b.id]);

    // Drawing anew ends what could be redone.
    class.say(teacher, ClientMessage::Undo);
    class.say(teacher, pen(&[(4, 4)]));
    let out = class.say(teacher, ClientMessage::Redo);
    assert!(broadcasts(&out).is_empty());

    // Clearing is the moderators', and frees the page.
    let out = class.say(student, ClientMessage::ClearBoard);
    assert_eq!(code(&out), Some(ErrorCode::MissingGrant));
    assert!(class.room.board_points() > 0);
    let out = class.say(teacher, ClientMessage::ClearBoard);
    assert_eq!(boards(&out)[0].strokes, vec![]);
    assert_eq!(class.room.board_points(), 0);
    let out = class.say(teacher, ClientMessage::Undo);
    assert!(broadcasts(&out).is_empty(), "a clear is not undone");
}

#[test]
fn the_pointer_reaches_the_others_thinned_and_is_not_kept() {
    let (mut class, teacher, student) = Class::presenting();
    let at = |x| ClientMessage::Pointer {
        at: Some(Point(x, 10)),
    };
    let out = class.say(teacher, at(1));
    assert_eq!(
        broadcasts(&out),
        vec![(
            Some(teacher),
            ServerMessage::Pointer {
                by: teacher,
                at: Some(Point(1, 10))
            }
        )]
    );
    class.now += Duration::from_millis(10);
    assert!(
        broadcasts(&class.say(teacher, at(2))).is_empty(),
        "too soon"
    );
    class.now += Duration::from_millis(40);
    assert_eq!(broadcasts(&class.say(teacher, at(3))).len(), 1);
    let out = class.say(teacher, ClientMessage::Pointer { at: None });
    assert_eq!(broadcasts(&out).len(), 1, "stopping is never dropped");
    let out = class.say(teacher, at(20_000));
    assert_eq!(code(&out), Some(ErrorCode::InvalidMessage));
    assert_eq!(class.room.board_points(), 0);
    let (_, joined) = class.join(3, ParticipantRole::Student);
    assert!(board_of(&joined).0.strokes.is_empty());
    let _ = student;
}

#[test]
fn bad_strokes_are_refused_and_change_nothing() {
    let (mut class, teacher, _) = Class::presenting();
    let shape = |tool, points: Vec<Point>, width, text: Option<&str>| ClientMessage::Draw {
        tool,
        colour: BLACK,
        width,
        points,
        text: text.map(str::to_string),
    };
    let two = vec![Point(1, 1), Point(2, 2)];
    for bad in [
        shape(Tool::Pen, vec![], 30, None),
        shape(Tool::Pen, vec![Point(1, 1); 501], 30, None),
        shape(Tool::Pen, vec![Point(10_001, 1)], 30, None),
        shape(Tool::Pen, vec![Point(1, 1)], 0, None),
        shape(Tool::Pen, vec![Point(1, 1)], 1001, None),
        shape(Tool::Pen, vec![Point(1, 1)], 30, Some("hi")),
        shape(Tool::Line, vec![Point(1, 1)], 30, None),
        shape(Tool::Rectangle, vec![Point(1, 1); 3], 30, None),
        shape(Tool::Text, two.clone(), 30, Some("hi")),
        shape(Tool::Text, vec![Point(1, 1)], 30, None),
        shape(Tool::Text, vec![Point(1, 1)], 30, Some("  ")),
        shape(Tool::Text, vec![Point(1, 1)], 30, Some(&"x".repeat(501))),
        more(&[(1, 1)]),
    ] {
        let out = class.say(teacher, bad.clone());
        assert_eq!(code(&out), Some(ErrorCode::InvalidMessage), "{bad:?}");
        assert!(broadcasts(&out).is_empty(), "{bad:?}");
    }
    assert_eq!(class.room.board_points(), 0);
    for good in [
        shape(Tool::Line, two.clone(), 30, None),
        shape(Tool::Rectangle, two.clone(), 30, None),
        shape(Tool::Ellipse, two, 30, None),
        shape(Tool::Text, vec![Point(1, 1)], 30, Some(&"é".repeat(500))),
        shape(Tool::Highlighter, vec![Point(10_000, 10_000)], 1000, None),
    ] {
        let out = class.say(teacher, good.clone());
        assert_eq!(code(&out), None, "{good:?}");
    }
}

#[test]
fn strokes_pages_and_the_rooms_points_are_bounded() {
    let limits = BoardLimits {
        points_per_stroke: 10,
        strokes_per_page: 3,
        pages: 2,
        room_points: 25,
        ..BoardLimits::default()
    };
    let mut class = Class::with_limits(limits);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    class.say(teacher, open(1));
    // A stroke stops at its points.
    class.say(teacher, pen(&[(1, 1); 6]));
    let out = class.say(teacher, more(&[(2, 2); 5]));
    assert_eq!(code(&out), Some(ErrorCode::BoardFull));
    assert_eq!(class.room.board_points(), 6);
    let out = class.say(teacher, more(&[(2, 2)]));
    assert_eq!(
        code(&out),
        Some(ErrorCode::InvalidMessage),
        "that stroke ended"
    );
    // A page stops at its strokes, erased ones included.
    class.say(teacher, pen(&[(1, 1)]));
    class.say(teacher, ClientMessage::Undo);
    class.say(teacher, pen(&[(1, 1)]));
    let out = class.say(teacher, pen(&[(1, 1)]));
    assert_eq!(code(&out), Some(ErrorCode::BoardFull));
    // The room stops at its pages with drawings...
    class.say(teacher, ClientMessage::TurnPage { page: 2 });
    class.say(teacher, pen(&[(1, 1); 8]));
    class.say(teacher, ClientMessage::TurnPage { page: 3 });
    let out = class.say(teacher, pen(&[(1, 1)]));
    assert_eq!(code(&out), Some(ErrorCode::BoardFull));
    // ...and its points (6 + 1 + 1 + 8 = 16 of 25).
    class.say(teacher, ClientMessage::TurnPage { page: 2 });
    class.say(teacher, pen(&[(1, 1); 5]));
    let out = class.say(teacher, more(&[(1, 1); 5]));
    assert_eq!(code(&out), Some(ErrorCode::BoardFull));
    assert_eq!(class.room.board_points(), 21);
    // Clearing a page makes room again.
    class.say(teacher, ClientMessage::ClearBoard);
    assert_eq!(class.room.board_points(), 8);
    let out = class.say(teacher, ClientMessage::TurnPage { page: 3 });
    assert_eq!(code(&out), None);
    let out = class.say(teacher, pen(&[(1, 1); 10]));
    assert_eq!(code(&out), None);
}

#[test]
fn a_flood_of_drawing_is_refused_memory_stays_bounded_and_the_others_are_heard() {
    let (mut class, teacher, flooder) = Class::presenting();
    let (other, _) = class.join(3, ParticipantRole::Student);
    class.say(
        teacher,
        ClientMessage::GivePen {
            participant: flooder,
        },
    );
    class.say(flooder, pen(&[(1, 1)]));
    // All at once: the burst passes, the rest is refused and kept nowhere.
    let burst = BoardLimits::default().message_burst as usize;
    let mut refused = 0;
    let mut passed = 0;
    for _ in 0..10_000 {
        let out = class.say(flooder, more(&[(5000, 5000)]));
        match code(&out) {
            Some(ErrorCode::RateLimited) => refused += 1,
            None => passed += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(passed, burst - 1, "the burst, less the `draw`");
    assert_eq!(refused, 10_000 - passed);
    assert_eq!(
        class.room.board_points(),
        burst,
        "the burst's points, no more"
    );
    // The others are heard meanwhile.
    let out = class.say(
        other,
        ClientMessage::Chat {
            text: "still here".into(),
        },
    );
    assert!(
        broadcasts(&out)
            .iter()
            .any(|(_, m)| matches!(m, ServerMessage::Chat { .. }))
    );

    // Drawing on at the rate allowed, for as long as it likes, the flooder fills the room's
    // points and no more.
    let mut full = 0;
    for _ in 0..3_000 {
        class.now += Duration::from_millis(40);
        let out = class.say(flooder, pen(&[(5000, 5000); 500]));
        match code(&out) {
            Some(ErrorCode::BoardFull) => full += 1,
            None => {}
            other => panic!("{other:?}"),
        }
        assert!(class.room.board_points() <= BoardLimits::default().room_points);
    }
    assert!(full > 0, "the room filled up");
    let kept: usize = class
        .room
        .board()
        .strokes
        .iter()
        .map(|s| s.points.len())
        .sum();
    assert_eq!(kept, class.room.board_points());
}

#[test]
fn the_recorder_hears_the_board_while_it_records() {
    let (mut class, teacher, _) = Class::presenting();
    class.say(teacher, pen(&[(1, 1)]));
    let out = class.input(Input::StartRecording);
    let snapshot = out.iter().find_map(|o| match o {
        Output::Activity(RoomActivity::Broadcast(ServerMessage::Board { board })) => Some(board),
        _ => None,
    });
    assert_eq!(
        snapshot.map(|b| b.strokes.len()),
        Some(1),
        "the board at the start"
    );
    // The slide under it too, before the board (the replay's chapter and page title).
    let heard: Vec<&ServerMessage> = out
        .iter()
        .filter_map(|o| match o {
            Output::Activity(RoomActivity::Broadcast(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            heard.as_slice(),
            [
                ServerMessage::Slide { slide: Some(_) },
                ServerMessage::Board { .. },
                ..
            ]
        ),
        "{heard:?}"
    );
    let out = class.say(teacher, pen(&[(2, 2)]));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Activity(RoomActivity::Broadcast(ServerMessage::Stroke { .. }))
    )));
}

#[test]
fn a_pen_holder_who_leaves_holds_it_no_more() {
    let (mut class, teacher, student) = Class::presenting();
    class.say(
        teacher,
        ClientMessage::GivePen {
            participant: student,
        },
    );
    class.say(student, pen(&[(1, 1)]));
    assert_eq!(class.room.pens(), vec![student]);
    class.say(student, ClientMessage::Leave);
    assert_eq!(class.room.pens(), vec![]);
    // The page turns: the board everyone gets names no pen holder, and the stroke stays.
    let out = class.say(teacher, ClientMessage::TurnPage { page: 1 });
    assert!(boards(&out).is_empty(), "the same page");
    let out = class.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    assert_eq!(boards(&out)[0].pens, vec![]);
    let out = class.say(teacher, open(1));
    assert_eq!(boards(&out)[0].strokes.len(), 1);
}
