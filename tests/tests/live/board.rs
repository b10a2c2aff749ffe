//! The whiteboard through the real server: a teacher draws on the blank board, streaming each
//! pen stroke as the web client does (`draw`, then `draw_more` chunks every 60 ms), and fifty
//! students on their own WebSockets each get every chunk; the time from the teacher's send to
//! each student's receipt is measured (printed, and held to 100 ms at the 95th percentile on
//! loopback). A student joining afterwards gets the whole board in `joined`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use classroom_protocol::UserRole;
use classroom_protocol::signal::{ClientMessage, Colour, Point, ServerMessage, Tool};
use classroom_tests::school::{School, id, join_token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use serde_json::json;
use tokio::sync::mpsc;

const STUDENTS: usize = 50;
const STROKES: u16 = 10;
const CHUNKS: u16 = 5;

/// Each message's first point names it: `[stroke * 100, chunk]`.
fn key(points: &[Point]) -> Option<(u16, u16)> {
    points.first().map(|p| (p.0, p.1))
}

// SQLite only: the database plays no part in drawing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_students_get_each_stroke_as_it_is_drawn() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("the server starts");
    let school = School::new(&server).await;
    let course = school.course_id;
    let lesson = school.lesson("Board").await;
    let (mut teacher, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
    teacher.ok(ClientMessage::ShowBlankBoard { page: 1 }).await;

    let (heard, mut hearing) = mpsc::unbounded_channel();
    let mut students = Vec::new();
    for i in 0..STUDENTS {
        let (client, user) = server
            .user(
                UserRole::Student,
                &format!("b{i}@school.edu"),
                &format!("Student {i}"),
            )
            .await;
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{course}/enrollments"),
                json!({"user_id": id(&user)}),
            )
            .await
            .expect(201);
        let (mut ws, _) = Ws::join(&server.base, &join_token(&client, lesson).await).await;
        let heard = heard.clone();
        students.push(tokio::spawn(async move {
            while let Some(message) = ws.recv().await {
                let points = match &message {
                    ServerMessage::Stroke { stroke } => &stroke.points,
                    ServerMessage::StrokePoints { points, .. } => points,
                    _ => continue,
                };
                if let Some(key) = key(points) {
                    let _ = heard.send((key, Instant::now()));
                }
            }
        }));
    }

    let mut sent = HashMap::new();
    for stroke in 1..=STROKES {
        let x = stroke * 100;
        sent.insert((x, 0), Instant::now());
        teacher
            .send(ClientMessage::Draw {
                tool: Tool::Pen,
                colour: Colour([0xe0, 0x31, 0x31]),
                width: 30,
                points: vec![Point(x, 0)],
                text: None,
            })
            .await;
        for chunk in 1..=CHUNKS {
            // A chunk's worth of pointer movement; well inside the connection's rate limit.
            tokio::time::sleep(Duration::from_millis(60)).await;
            sent.insert((x, chunk), Instant::now());
            let points: Vec<[u16; 2]> = (0..6).map(|j| [x, chunk + j * 10]).collect();
            let text = json!({"v": 1, "type": "draw_more", "points": points}).to_string();
            teacher.send_text(&text).await;
        }
        teacher.send_text(r#"{"v":1,"type":"draw_end"}"#).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    let expected = STUDENTS * sent.len();
    let mut latencies = Vec::with_capacity(expected);
    while latencies.len() < expected {
        let (key, when) = tokio::time::timeout(Duration::from_secs(5), hearing.recv())
            .await
            .expect("every student gets every chunk")
            .expect("students listening");
        let at = sent.get(&key).expect("a chunk the teacher sent");
        latencies.push(when.duration_since(*at));
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "board strokes to {STUDENTS} students, {} deliveries: p50 {:?}, p95 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.95),
        p(1.0)
    );
    assert!(p(0.95) <= Duration::from_millis(100), "p95 {:?}", p(0.95));

    let (late_client, late_user) = server
        .user(UserRole::Student, "late@school.edu", "Late Student")
        .await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{course}/enrollments"),
            json!({"user_id": id(&late_user)}),
        )
        .await
        .expect(201);
    let (_late, joined) = Ws::join(&server.base, &join_token(&late_client, lesson).await).await;
    let ServerMessage::Joined { board, .. } = joined else {
        panic!("not a snapshot: {joined:?}")
    };
    assert_eq!(board.strokes.len(), usize::from(STROKES));
    let points = 1 + usize::from(CHUNKS) * 6;
    assert!(board.strokes.iter().all(|s| s.points.len() == points));
    for student in students {
        student.abort();
    }
    server.stop().await;
}
