//! Slides and the whiteboard in the replay, through the real server and its job queue: the
//! teacher uploads a PDF (poppler makes its pages), the course records by default, the
//! teacher shows page 1 and draws a red line across it, turns to page 2 and ends the lesson.
//! The replay job draws the board into the video: a frame taken by ffmpeg while page 1 was
//! shown has the page (white, with its text) and the line where it was drawn; after the turn
//! the line is gone; the chapters name each page by its first line.

use std::time::{Duration, Instant};

use classroom_protocol::DocumentId;
use classroom_protocol::signal::{
    ClientMessage, Colour, Point, RecordingState, ServerMessage, Tool,
};
use classroom_tests::school::join_token;
use classroom_tests::ws::Ws;

use super::*;

const RED: [u8; 3] = [0xe0, 0x31, 0x31];
/// The recorder's picture in this test.
const HEIGHT: usize = 360;
const WIDTH: usize = 640;

/// The replay's picture at `seconds`, as RGB.
fn frame_at(mp4: &std::path::Path, seconds: f64) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(mp4)
        .args(["-ss", &format!("{seconds:.3}"), "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert_eq!(
        out.stdout.len(),
        WIDTH * HEIGHT * 3,
        "a frame at {seconds} s"
    );
    out.stdout
}

/// The pixels near `colour` (after H.264) along row `y`, as fractions of the width.
fn along(frame: &[u8], y: usize, colour: [u8; 3]) -> Vec<f64> {
    (0..WIDTH)
        .filter(|x| {
            let at = (y * WIDTH + x) * 3;
            frame[at..at + 3]
                .iter()
                .zip(colour)
                .all(|(a, b)| a.abs_diff(b) <= 45)
        })
        .map(|x| x as f64 / WIDTH as f64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_shows_the_slides_and_the_drawing_at_their_times() {
    let Some(server) = TestServer::start(classroom_tests::Backend::Sqlite, |c| {
        c.recorder.height = HEIGHT as u32;
    })
    .await
    else {
        return;
    };
    let school = School::new(&server).await;
    let course = school.course_id;
    let pages = ["Photosynthesis", "Roots and water"]
        .map(String::from)
        .to_vec();
    let document = id(&upload(&school.teacher, course, "Leaves.pdf", PDF, pdf(&pages)).await);
    let ready = settled(&school.teacher, document, Duration::from_secs(60)).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    school
        .teacher
        .patch(
            &format!("/api/v1/courses/{course}"),
            json!({"record_by_default": true}),
        )
        .await
        .expect(200);
    let lesson = school.lesson("Leaves").await;

    let (mut teacher, joined) =
        Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
    if !matches!(
        joined,
        ServerMessage::Joined {
            recording: RecordingState::Recording,
            ..
        }
    ) {
        teacher
            .recv_where(|m| {
                matches!(
                    m,
                    ServerMessage::Recording {
                        state: RecordingState::Recording
                    }
                )
            })
            .await;
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    teacher
        .ok(ClientMessage::OpenDocument {
            document: DocumentId(document),
            pages: 2,
            page: 1,
        })
        .await;
    let shown_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A red line across the middle of the page, in two chunks.
    let drawn_at = started.elapsed();
    teacher
        .ok(ClientMessage::Draw {
            tool: Tool::Pen,
            colour: Colour(RED),
            width: 100,
            points: vec![Point(2000, 5000), Point(4000, 5000)],
            text: None,
        })
        .await;
    teacher
        .ok(ClientMessage::DrawMore {
            points: vec![Point(6000, 5000), Point(8000, 5000)],
        })
        .await;
    teacher.ok(ClientMessage::DrawEnd).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let turned_at = started.elapsed();
    teacher.ok(ClientMessage::TurnPage { page: 2 }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    teacher.send(ClientMessage::EndLesson).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let replay = loop {
        let reply = school
            .teacher
            .get(&format!("/api/v1/lessons/{lesson}/replays"))
            .await;
        let items = reply.expect(200)["items"].clone();
        if let Some(replay) = items
            .as_array()
            .and_then(|items| items.iter().find(|r| r["state"] != "processing"))
        {
            break replay.clone();
        }
        assert!(Instant::now() < deadline, "the replay is still processing");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(replay["state"], "ready", "{replay}");
    let chapters: Vec<(i64, String)> = replay["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| {
            (
                c["at_ms"].as_i64().unwrap_or(-1),
                c["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    eprintln!(
        "chapters {chapters:?}; shown at {shown_at:?}, drawn at {drawn_at:?}, turned at {turned_at:?}"
    );
    let near = |at: i64, live: Duration| (at - live.as_millis() as i64).abs() <= 300;
    assert!(
        chapters
            .iter()
            .any(|(at, t)| t == "Photosynthesis" && near(*at, shown_at)),
        "{chapters:?}"
    );
    assert!(
        chapters
            .iter()
            .any(|(at, t)| t == "Roots and water" && near(*at, turned_at)),
        "{chapters:?}"
    );

    let mp4 = server
        .data_dir()
        .join("replays")
        .join(replay["id"].as_i64().expect("an id").to_string())
        .join("replay.mp4");
    // The page is portrait (612 x 792 points): 278 pixels wide in the 640 x 360 picture,
    // from x = 181 to 459. The line runs from a fifth to four fifths of it, at y = 180.
    let before = frame_at(&mp4, (drawn_at.as_secs_f64() - 0.4).max(0.0));
    assert!(
        along(&before, 180, RED).is_empty(),
        "no line before it was drawn"
    );
    let white = along(&before, 300, [255, 255, 255]);
    assert!(white.len() > 200, "the white page: {} pixels", white.len());
    let drawn = frame_at(&mp4, drawn_at.as_secs_f64() + 0.7);
    let red = along(&drawn, 180, RED);
    let (first, last) = (red.first().copied(), red.last().copied());
    eprintln!("the line runs from {first:?} to {last:?} of the picture's width");
    let page = |fraction: f64| (181.0 + 278.0 * fraction) / WIDTH as f64;
    assert!(
        first.is_some_and(|x| (x - page(0.2)).abs() < 0.02)
            && last.is_some_and(|x| (x - page(0.8)).abs() < 0.02),
        "the line where it was drawn: {first:?} to {last:?}"
    );
    let after = frame_at(&mp4, turned_at.as_secs_f64() + 0.7);
    assert!(along(&after, 180, RED).is_empty(), "page 2 has no line");
    server.stop().await;
}
