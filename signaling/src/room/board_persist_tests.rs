//! The whiteboard kept across a restore: only the pages that changed are handed over, at most
//! once a second, a cleared page is handed over as gone, and a room opened from what was
//! stored shows the same board, with erased strokes still there for redo and stroke ids that
//! go on after the kept ones.

use classroom_protocol::signal::{
    BoardPage, ClientMessage, Colour, Point, ServerMessage, Stroke, StrokeId, Tool,
};
use classroom_protocol::{LessonId, ParticipantRole};

use super::test_class::{Class, snapshot};
use super::*;

const LESSON: LessonId = LessonId(52);

fn blank(page: u32) -> BoardPage {
    BoardPage {
        document: None,
        page,
    }
}

fn pen(points: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::Draw {
        tool: Tool::Pen,
        colour: Colour([0, 0, 0]),
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

fn drawn(out: &[Output]) -> StrokeId {
    out.iter()
        .find_map(|o| match o {
            Output::Broadcast {
                message: ServerMessage::Stroke { stroke },
                ..
            } => Some(stroke.id),
            _ => None,
        })
        .expect("a stroke")
}

fn visible(board: &KeptBoard) -> Vec<(StrokeId, bool)> {
    board
        .strokes
        .iter()
        .map(|k| (k.stroke.id, k.visible))
        .collect()
}

/// A teacher drawing on pages 1 and 2 of the blank board of a room that keeps its boards.
fn drawing_class() -> (Class, ParticipantId) {
    let mut class = Class::new(LESSON);
    class.room.keep_boards();
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    class.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    (class, teacher)
}

#[test]
fn changed_pages_are_handed_over_once_a_second_and_only_those() {
    let (mut class, teacher) = drawing_class();
    assert!(class.room.take_board_changes(class.now).is_empty());
    let first = drawn(&class.say(teacher, pen(&[(10, 10), (20, 20)])));
    // The room wakes up for it a second later, not before.
    let due = class.room.poll_timeout().expect("a deadline for the board");
    assert_eq!(due, class.now + BOARD_SAVE_INTERVAL);
    class.at(400);
    class.say(teacher, more(&[(30, 30)]));
    assert!(class.room.take_board_changes(class.now).is_empty());
    assert_eq!(class.room.poll_timeout(), Some(due), "not pushed back");

    class.at(1_000);
    class.tick();
    let changes = class.room.take_board_changes(class.now);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].page, blank(1));
    let board = changes[0].board.as_ref().expect("page 1 has a board");
    assert_eq!(visible(board), [(first, true)]);
    assert_eq!(board.strokes[0].stroke.points.len(), 3, "draw_more is in");
    assert!(class.room.take_board_changes(class.now).is_empty());
    assert_eq!(class.room.poll_timeout(), None, "nothing more to wake for");

    // Page 2 changes; page 1 is not written again.
    class.say(teacher, ClientMessage::ShowBlankBoard { page: 2 });
    class.say(teacher, pen(&[(1, 1)]));
    class.at(2_500);
    let changes = class.room.take_board_changes(class.now);
    let pages: Vec<BoardPage> = changes.iter().map(|c| c.page).collect();
    assert_eq!(pages, [blank(2)]);
}

#[test]
fn erasing_undoing_and_clearing_are_handed_over_too() {
    let (mut class, teacher) = drawing_class();
    let first = drawn(&class.say(teacher, pen(&[(10, 10)])));
    let second = drawn(&class.say(teacher, pen(&[(50, 50)])));
    class.say(teacher, ClientMessage::Erase { stroke: first });
    class.say(teacher, ClientMessage::Undo); // the erase: `first` is back
    class.say(teacher, ClientMessage::Undo); // the second stroke: hidden, kept for redo
    let changes = class.room.flush_board_changes();
    let board = changes[0].board.as_ref().expect("a board");
    assert_eq!(visible(board), [(first, true), (second, false)]);

    class.say(teacher, ClientMessage::ClearBoard);
    let changes = class.room.flush_board_changes();
    assert_eq!(
        changes,
        [BoardChange {
            page: blank(1),
            board: None
        }]
    );
}

#[test]
fn a_room_that_does_not_keep_its_boards_never_wakes_up_for_them() {
    let mut class = Class::new(LESSON);
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    class.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    class.say(teacher, pen(&[(10, 10)]));
    assert_eq!(class.room.poll_timeout(), None);
    assert!(class.room.flush_board_changes().is_empty());
}

#[test]
fn a_restored_room_shows_the_board_as_it_was_and_goes_on_numbering() {
    let (mut class, teacher) = drawing_class();
    let first = drawn(&class.say(teacher, pen(&[(10, 10), (20, 20)])));
    let second = drawn(&class.say(teacher, pen(&[(50, 50)])));
    class.say(teacher, ClientMessage::Erase { stroke: second });
    class.say(teacher, ClientMessage::ShowBlankBoard { page: 3 });
    let on_three = drawn(&class.say(teacher, pen(&[(5, 5)])));
    let now = class.now;
    let mut state = class.room.state(now);
    assert_eq!(state.blank_board, Some(3));
    // What the store gives back: the state's JSON and the boards beside it.
    let json = serde_json::to_string(&state).expect("encodes");
    assert!(!json.contains("\"boards\""), "boards are stored apart");
    state = serde_json::from_str(&json).expect("decodes");
    state.boards = class
        .room
        .flush_board_changes()
        .into_iter()
        .filter_map(|c| c.board)
        .collect();

    let mut again = Class::new(LESSON);
    again.room.keep_boards();
    let now = again.now;
    again.room.restore(now, state);
    let (teacher, out) = again.enter(1, ParticipantRole::Teacher, true);
    let ServerMessage::Joined { board, .. } = snapshot(out, teacher) else {
        panic!("a snapshot");
    };
    assert_eq!(
        board.page,
        Some(blank(3)),
        "the blank board's page is shown again"
    );
    let ids: Vec<StrokeId> = board.strokes.iter().map(|s: &Stroke| s.id).collect();
    assert_eq!(ids, [on_three]);

    let out = again.say(teacher, ClientMessage::ShowBlankBoard { page: 1 });
    let shown = out.iter().find_map(|o| match o {
        Output::Broadcast {
            message: ServerMessage::Board { board },
            ..
        } => Some(board.strokes.iter().map(|s| s.id).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(shown, Some(vec![first]), "the erased stroke stays hidden");
    // Stroke ids go on after the kept ones; nothing was marked changed by the restore.
    assert!(again.room.flush_board_changes().is_empty());
    let next = drawn(&again.say(teacher, pen(&[(70, 70)])));
    assert!(next > on_three, "{next:?} after {on_three:?}");
    // The restored points count against the room's limit as before.
    assert_eq!(again.room.board_points(), 5);
}
