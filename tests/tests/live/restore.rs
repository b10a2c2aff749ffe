//! A lesson's room outlives its server: after `kill -9` (SQLite) or a restart (PostgreSQL)
//! the room opens again with the chat, its lock, the stage, the raised hands, mute, the live
//! state and the whiteboard as they were, and each user gets their place back when they
//! rejoin.

use std::time::Duration;

use classroom_courses::store::Store;
use classroom_protocol::signal::{
    BoardPage, ClientMessage, Colour, Point, PollAnswer, PollId, QuickPoll, ServerMessage,
    StrokeId, Tool,
};
use classroom_protocol::{RoomName, TrackSource};
use classroom_tests::child::ChildServer;
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};

/// A pen stroke through `points`.
fn pen(points: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::Draw {
        tool: Tool::Pen,
        colour: Colour([200, 0, 0]),
        width: 20,
        points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
        text: None,
    }
}

/// The strokes (ids and points) of a `joined`'s board, and its page.
fn board_of(joined: &ServerMessage) -> (Option<BoardPage>, Vec<(StrokeId, usize)>) {
    let ServerMessage::Joined { board, .. } = joined else {
        panic!("not a joined: {joined:?}");
    };
    let strokes = board.strokes.iter().map(|s| (s.id, s.points.len()));
    (board.page, strokes.collect())
}

/// A lesson under way at `base`: Sam chatted and is on stage, muted; Olga's hand is up and
/// she answered the open poll; the chat is locked; the teacher drew two strokes on page 2 of
/// the blank board and erased the second. Returns once the room has stored all of it. The
/// connections stay open.
async fn lesson_under_way(store: &Store, school: &School, base: &str, lesson: i64) -> Vec<Ws> {
    let teacher = school.teacher.at(base);
    let student = school.student.at(base);
    let outsider = school.outsider.at(base);
    let (mut otto, _) = Ws::join(base, &token(&teacher, lesson).await).await;
    let (mut sam, _) = Ws::join(base, &token(&student, lesson).await).await;
    let (mut olga, _) = Ws::join(base, &token(&outsider, lesson).await).await;
    let sam_id = sam.me.expect("joined");
    sam.ok(ClientMessage::Chat {
        text: "before the crash".into(),
    })
    .await;
    olga.ok(ClientMessage::RaiseHand).await;
    otto.ok(ClientMessage::InviteToStage {
        participant: sam_id,
    })
    .await;
    otto.ok(ClientMessage::Mute {
        participant: sam_id,
    })
    .await;
    otto.ok(ClientMessage::AskQuickPoll {
        preset: QuickPoll::Abcd,
    })
    .await;
    olga.ok(ClientMessage::AnswerPoll {
        poll: PollId(1),
        answer: PollAnswer::Choices(vec![2]),
    })
    .await;
    otto.ok(ClientMessage::ShowBlankBoard { page: 2 }).await;
    otto.ok(pen(&[(100, 100), (200, 200)])).await;
    otto.ok(ClientMessage::DrawMore {
        points: vec![Point(300, 300)],
    })
    .await;
    otto.ok(pen(&[(500, 500)])).await;
    otto.ok(ClientMessage::Erase {
        stroke: StrokeId(2),
    })
    .await;
    otto.ok(ClientMessage::LockChat { locked: true }).await;
    // Written as it changes (the board within a second): wait (bounded) for the last change
    // to be in the database.
    let room = RoomName::for_lesson(classroom_protocol::LessonId(lesson));
    for _ in 0..200 {
        let stored = store
            .room_state(room.as_str())
            .await
            .expect("the store answers");
        let boards = store.room_boards(room.as_str()).await.expect("answers");
        let erased = boards.iter().any(|(_, b)| b.contains("\"visible\":false"));
        if stored.is_some_and(|s| s.contains("\"chat_locked\":true")) && erased {
            return vec![otto, sam, olga];
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the room's state was never stored");
}

/// The board `lesson_under_way` leaves: stroke 1 (three points); stroke 2 erased.
const BOARD: [(StrokeId, usize); 1] = [(StrokeId(1), 3)];

/// Everyone rejoins the server at `base` and finds the lesson as it was, the board showing
/// `strokes` (ids and points).
async fn everyone_finds_their_place(
    school: &School,
    base: &str,
    lesson: i64,
    strokes: &[(StrokeId, usize)],
) {
    let (_otto, joined) = Ws::join(base, &token(&school.teacher.at(base), lesson).await).await;
    let blank = BoardPage {
        document: None,
        page: 2,
    };
    assert_eq!(
        board_of(&joined),
        (Some(blank), strokes.to_vec()),
        "the board's page is shown again with its stroke; the erased one stays erased"
    );
    let ServerMessage::Joined {
        chat_history,
        chat_locked,
        live,
        ..
    } = joined
    else {
        unreachable!()
    };
    assert!(live, "the lesson is live again at once");
    assert!(chat_locked);
    let texts: Vec<&str> = chat_history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before the crash"]);

    let (_sam, joined) = Ws::join(base, &token(&school.student.at(base), lesson).await).await;
    let ServerMessage::Joined { you, grants, .. } = joined else {
        unreachable!()
    };
    assert!(you.on_stage, "Sam is back on stage");
    assert!(you.muted, "and still muted");
    assert!(grants.may_publish(TrackSource::Microphone));

    let (olga, joined) = Ws::join(base, &token(&school.outsider.at(base), lesson).await).await;
    let olga_id = olga.me.expect("joined");
    let ServerMessage::Joined { you, hands, .. } = joined else {
        unreachable!()
    };
    assert!(you.hand_raised);
    assert_eq!(hands, [olga_id]);
}

async fn class_with_outsider(server: &TestServer) -> (School, i64) {
    let school = School::new(server).await;
    let lesson = school.lesson("Kept lesson").await;
    let enroll = format!("/api/v1/courses/{}/enrollments", school.course_id);
    school
        .teacher
        .post(&enroll, serde_json::json!({"user_id": school.outsider_id}))
        .await
        .expect(201);
    (school, lesson)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_comes_back_as_it_was_after_kill_9() {
    let mut server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("sqlite always runs");
    let (school, lesson) = class_with_outsider(&server).await;
    if let Some(running) = server.server.take() {
        running.stop().await.expect("stops");
    }
    // The same database file, read beside the child.
    let db = classroom_courses::db::Db::connect(&server.config.database_url(), 1)
        .await
        .expect("the SQLite file opens");
    let store = Store::new(db, b"only reads room states");
    let mut child = ChildServer::start(env!("CARGO_BIN_EXE_test-server"), &server.data_dir()).await;
    let base = child.base.clone();

    let connections = lesson_under_way(&store, &school, &base, lesson).await;
    child.kill_9();
    drop(connections);

    server.restart().await;
    let base = server.base.clone();
    // The poll was open when the server died: it still is, with Olga's answer. (A server
    // that stops in order closes and stores its room's poll first.)
    let (_olga, joined) = Ws::join(&base, &token(&school.outsider.at(&base), lesson).await).await;
    let ServerMessage::Joined {
        poll, poll_answer, ..
    } = joined
    else {
        unreachable!()
    };
    let poll = poll.expect("the open poll came back");
    assert_eq!((poll.id, poll.closed), (PollId(1), false));
    assert_eq!(poll_answer.map(|a| *a), Some(PollAnswer::Choices(vec![2])));
    everyone_finds_their_place(&school, &base, lesson, &BOARD).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_comes_back_as_it_was_after_a_restart_on_postgres() {
    let Some(mut server) = TestServer::start(Backend::Postgres, |_| {}).await else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let (school, lesson) = class_with_outsider(&server).await;
    let base = server.base.clone();
    let connections = lesson_under_way(&server.store(), &school, &base, lesson).await;
    server.restart().await;
    drop(connections);
    let base = server.base.clone();
    everyone_finds_their_place(&school, &base, lesson, &BOARD).await;

    // The lesson ends: nothing is kept any more.
    let (mut otto, _) = Ws::join(&base, &token(&school.teacher.at(&base), lesson).await).await;
    otto.send(ClientMessage::EndLesson).await;
    let store = server.store();
    let room = RoomName::for_lesson(classroom_protocol::LessonId(lesson));
    let mut gone = false;
    for _ in 0..200 {
        let state = store.room_state(room.as_str()).await.expect("answers");
        let boards = store.room_boards(room.as_str()).await.expect("answers");
        if state.is_none() && boards.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "an ended lesson's room keeps nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_sends_everyone_to_join_again_and_the_room_keeps_its_state() {
    let mut server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("sqlite always runs");
    let (school, lesson) = class_with_outsider(&server).await;
    let base = server.base.clone();
    let mut connections = lesson_under_way(&server.store(), &school, &base, lesson).await;
    // Drawn just before the drain, within the board's second: the drain writes it.
    connections[0].ok(pen(&[(700, 700)])).await;
    let running = server.server.take().expect("running");
    // SIGTERM drains: every participant is told to join again (1012, Service Restart), and
    // the drain is over once they have gone.
    let closes = async {
        let mut codes = Vec::new();
        for ws in &mut connections {
            codes.push(ws.close_code_within(Duration::from_secs(5)).await);
        }
        codes
    };
    let ((), codes) = tokio::join!(running.drain(), closes);
    assert_eq!(codes, [Some(1012); 3]);
    // A join while draining is refused with the reason, and the same close code.
    let mut late = Ws::connect(&base).await;
    late.send(ClientMessage::join(
        token(&school.student.at(&base), lesson).await,
    ))
    .await;
    let refused = late.recv().await;
    assert!(
        matches!(
            refused,
            Some(ServerMessage::Error {
                code: classroom_protocol::ErrorCode::ServerDraining,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        late.close_code_within(Duration::from_secs(5)).await,
        Some(1012)
    );
    // The lesson did not end: after the restart everyone finds it as it was.
    server.server = Some(running);
    server.restart().await;
    let base = server.base.clone();
    let strokes = [(StrokeId(1), 3), (StrokeId(3), 1)];
    everyone_finds_their_place(&school, &base, lesson, &strokes).await;
    server.stop().await;
}
