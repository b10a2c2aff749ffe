//! A breakout room recorded end to end: the teacher opens a round "recording every room", a
//! student moved there publishes real VP8 and Opus (the load tester's str0m client) and chats;
//! the room's recording becomes a replay of its own when the rooms close, listed under the
//! lesson and in the course's library with its round and room, made by real ffmpeg. On SQLite
//! and PostgreSQL (the replay's link to its room is stored by both); and once cut by `kill -9`,
//! recovered on restart with its link.

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{BreakoutMode, BreakoutRequest, ParticipantId};
use classroom_tests::media::Participant;

use super::*;

/// The lesson's main room: the teacher (Tess) and the student (Sam), both on signaling only.
async fn class(base: &str, school: &School, lesson: i64) -> (Ws, Ws) {
    let (teacher, _) = Ws::join(base, &join_token(&school.teacher, lesson).await).await;
    let (student, _) = Ws::join(base, &join_token(&school.student, lesson).await).await;
    (teacher, student)
}

/// The teacher opens one breakout room with the student in it, recording every room.
async fn open_recorded_room(teacher: &mut Ws, student: ParticipantId) {
    teacher
        .ok(ClientMessage::OpenBreakouts {
            request: BreakoutRequest {
                rooms: 1,
                mode: BreakoutMode::ByHand,
                assignment: vec![vec![student]],
                duration_seconds: None,
                warning_seconds: None,
                record: true,
            },
        })
        .await;
}

/// The student follows the move into the breakout room, sees the recording indicator there,
/// publishes the clip and says something in the room's chat. Returns once media flows.
async fn in_the_room(mut ws: Ws) -> Participant {
    ws.recv_where(|m| matches!(m, ServerMessage::Moved { to: Some(_) }))
        .await;
    let joined = ws
        .recv_where(|m| matches!(m, ServerMessage::Joined { .. }))
        .await;
    if let ServerMessage::Joined { you, .. } = &joined {
        ws.me = Some(you.id);
    }
    let recording = matches!(
        joined,
        ServerMessage::Joined {
            recording: RecordingState::Recording,
            ..
        }
    );
    if !recording {
        ws.recv_where(|m| {
            matches!(
                m,
                ServerMessage::Recording {
                    state: RecordingState::Recording
                }
            )
        })
        .await;
    }
    ws.ok(ClientMessage::Chat {
        text: "Group answer: x = 4".into(),
    })
    .await;
    let student = Participant::connect(ws, Sending::AUDIO_VIDEO, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while student.packets_sent() < 100 {
        assert!(Instant::now() < deadline, "the student's media flows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    student
}

/// The only replay of the lesson (the main room is not recorded), once made, as the teacher
/// lists it; it names the breakout room of round 1, index 0.
async fn breakout_replay(teacher: &Client, lesson: i64) -> Value {
    let replay = settled_replay(teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");
    assert_eq!(
        replay["breakout"],
        json!({"round": 1, "room": 0}),
        "{replay}"
    );
    assert_eq!(replay["title"], "Group work", "{replay}");
    let listed = teacher
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await;
    assert_eq!(
        listed.expect(200)["items"].as_array().map(Vec::len),
        Some(1),
        "only the breakout room was recorded"
    );
    replay
}

async fn recorded_breakout_room(backend: Backend) {
    let Some(server) = TestServer::start(backend, small).await else {
        return;
    };
    let school = School::new(&server).await;
    let lesson = school.lesson("Group work").await;
    let (mut teacher, student) = class(&server.base, &school, lesson).await;
    let sam = student.me.expect("joined");
    open_recorded_room(&mut teacher, sam).await;
    let mut student = in_the_room(student).await;
    let started = Instant::now();
    student.pump_until(Duration::from_secs(3), |_| false).await;
    teacher.ok(ClientMessage::CloseBreakouts).await;
    let recorded = started.elapsed();
    student.peer.stop();

    let replay = breakout_replay(&school.teacher, lesson).await;
    let duration_ms = replay["duration_ms"].as_i64().expect("a duration");
    assert!(
        duration_ms >= 2500 && duration_ms <= recorded.as_millis() as i64 + 2000,
        "replay {duration_ms} ms, media for {recorded:?}"
    );
    let dir = replay_dir(&server, &replay);
    assert_eq!(media::codecs(&dir.join("replay.mp4")), ["h264", "aac"]);
    let chat = std::fs::read_to_string(dir.join("chat.json")).expect("chat.json");
    assert!(
        chat.contains("Group answer: x = 4"),
        "the room's chat: {chat}"
    );

    // In the course's library too, and for the student, with the room.
    let library = school
        .student
        .get(&format!("/api/v1/courses/{}/replays", school.course_id))
        .await;
    let items = library.expect(200)["items"].clone();
    assert_eq!(items[0]["id"], replay["id"], "{items}");
    assert_eq!(items[0]["breakout"]["room"], 0, "{items}");
    assert!(items[0]["url"].as_str().is_some(), "playable: {items}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_breakout_room_becomes_a_replay_listed_with_the_lesson_on_sqlite() {
    recorded_breakout_room(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_breakout_room_becomes_a_replay_listed_with_the_lesson_on_postgres() {
    recorded_breakout_room(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakout_rooms_recording_cut_by_kill_9_keeps_its_room_on_restart() {
    let mut server = TestServer::start(Backend::Sqlite, small)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    let lesson = school.lesson("Group work").await;
    if let Some(running) = server.server.take() {
        running.stop().await.expect("stops");
    }
    let mut child = ChildServer::start(env!("CARGO_BIN_EXE_test-server"), &server.data_dir()).await;
    let base = child.base.clone();
    let at_child = School {
        teacher: school.teacher.at(&base),
        student: school.student.at(&base),
        ..school
    };
    let (mut teacher, student) = class(&base, &at_child, lesson).await;
    let sam = student.me.expect("joined");
    open_recorded_room(&mut teacher, sam).await;
    let mut student = in_the_room(student).await;
    student.pump_until(Duration::from_secs(3), |_| false).await;
    child.kill_9();
    student.peer.stop();

    server.restart().await;
    let replay = breakout_replay(&at_child.teacher.at(&server.base), lesson).await;
    assert!(
        replay["duration_ms"].as_i64() >= Some(2000),
        "what was written before the kill: {replay}"
    );
    server.stop().await;
}
