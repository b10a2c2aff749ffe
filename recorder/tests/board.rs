//! The slides and the whiteboard in the replay, through real ffmpeg: a recording made by hand
//! in which the teacher's camera (dark grey) runs the whole lesson, a slide (a green page with
//! a title) is shown at 0.5 s, a red stroke is drawn on it from 1.0 s, undone at 2.0 s and
//! redone at 2.5 s, the next page (whose image is missing) is shown at 3.0 s, and the slides
//! are closed at 4.0 s. Frames of the replay, taken by ffmpeg at chosen times, show each of
//! these at its time, with the camera small in the corner under the slide as live; the
//! chapters name the slides. Then hostile input: page images that are not what they claim,
//! a stroke list no room would hold, and a time limit that runs out.

mod common;

use std::path::Path;
use std::process::Command;

use classroom_protocol::signal::{
    BoardPage, BoardSnapshot, Colour, ParticipantId, Point, ServerMessage, Slide, Stroke, StrokeId,
    Tool,
};
use classroom_protocol::{DocumentId, LessonId, RoomName};
use classroom_recorder::RecorderConfig;
use classroom_recorder::events::{self, Event, TimedEvent};
use classroom_recorder::pipeline::{self, ProcessError};
use common::video_track;

const DOCUMENT: DocumentId = DocumentId(7);
const GREEN: [u8; 3] = [40, 160, 80];
const RED: [u8; 3] = [0xe0, 0x31, 0x31];
const GREY: [u8; 3] = [0x30, 0x30, 0x30];
const WIDTH: usize = 320;
const HEIGHT: usize = 180;

fn slide(page: u32) -> ServerMessage {
    ServerMessage::Slide {
        slide: Some(Slide {
            document: DOCUMENT,
            page,
            pages: 2,
            by: ParticipantId(1),
            browse: false,
        }),
    }
}

fn board(page: Option<u32>, strokes: Vec<Stroke>) -> ServerMessage {
    ServerMessage::Board {
        board: BoardSnapshot {
            page: page.map(|page| BoardPage {
                document: Some(DOCUMENT),
                page,
            }),
            blank_pages: None,
            strokes,
            pens: vec![],
        },
    }
}

fn red_line(points: &[(u16, u16)]) -> Stroke {
    Stroke {
        id: StrokeId(1),
        by: ParticipantId(1),
        tool: Tool::Pen,
        colour: Colour(RED),
        width: 150,
        points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
        text: None,
    }
}

/// A 4:3 page image of one colour (poppler's would be 1600 pixels wide).
fn page_png(colour: [u8; 3]) -> Vec<u8> {
    let mut page = tiny_skia::Pixmap::new(800, 600).expect("a page");
    page.fill(tiny_skia::Color::from_rgba8(
        colour[0], colour[1], colour[2], 255,
    ));
    page.encode_png().expect("encodes")
}

/// A course's document folder with page 1's image and the text of both pages; page 2 has
/// no image.
fn documents(root: &Path) -> std::path::PathBuf {
    let documents = root.join("documents");
    let pages = documents.join(DOCUMENT.to_string()).join("pages");
    std::fs::create_dir_all(&pages).expect("a folder");
    std::fs::write(pages.join("page-1.png"), page_png(GREEN)).expect("the page");
    std::fs::write(
        pages.join("text.json"),
        r#"["  Photosynthesis\nLight and leaves", "Roots"]"#,
    )
    .expect("the text");
    documents
}

fn write_events(recording: &Path, timed: Vec<(u64, Event)>) {
    std::fs::create_dir_all(recording).expect("a folder");
    let mut all = vec![(
        0,
        Event::Started {
            lesson: LessonId(1),
            room: RoomName::for_lesson(LessonId(1)),
            started_at_ms: 0,
        },
    )];
    all.extend(timed);
    let lines: String = all
        .into_iter()
        .map(|(t_ms, event)| events::line(&TimedEvent { t_ms, event }))
        .collect();
    std::fs::write(recording.join("events.jsonl"), lines).expect("the events");
}

fn room(message: ServerMessage) -> Event {
    Event::Room { message }
}

/// The replay's picture at `seconds`, as RGB.
fn frame_at(mp4: &Path, seconds: f64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(mp4)
        .args(["-ss", &format!("{seconds:.3}"), "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert_eq!(
        out.stdout.len(),
        WIDTH * HEIGHT * 3,
        "a frame at {seconds} s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn pixel(frame: &[u8], x: usize, y: usize) -> [u8; 3] {
    let at = (y * WIDTH + x) * 3;
    [frame[at], frame[at + 1], frame[at + 2]]
}

/// Near, after H.264's colour conversion.
fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(a, b)| a.abs_diff(b) <= 40)
}

#[test]
fn the_replay_shows_the_slide_and_the_drawing_at_their_times() {
    let dir = tempfile::tempdir().expect("a folder");
    let documents = documents(dir.path());
    let recording = dir.path().join("lesson-1-1");
    std::fs::create_dir_all(&recording).expect("a folder");
    video_track(&recording, 1, "0x303030", 5.0, 0);
    write_events(
        &recording,
        vec![
            (
                0,
                Event::TrackStarted {
                    track: 1,
                    peer: 10,
                    mid: "cam".into(),
                    video: true,
                },
            ),
            (500, room(slide(1))),
            (500, room(board(Some(1), vec![]))),
            // Drawn in three chunks, left to right across the page's middle.
            (
                1000,
                room(ServerMessage::Stroke {
                    stroke: red_line(&[(2000, 5000)]),
                }),
            ),
            (
                1050,
                room(ServerMessage::StrokePoints {
                    id: StrokeId(1),
                    points: vec![Point(5000, 5000)],
                }),
            ),
            (
                1100,
                room(ServerMessage::StrokePoints {
                    id: StrokeId(1),
                    points: vec![Point(8000, 5000)],
                }),
            ),
            // Undone, then redone.
            (2000, room(ServerMessage::StrokeErased { id: StrokeId(1) })),
            (
                2500,
                room(ServerMessage::Stroke {
                    stroke: red_line(&[(2000, 5000), (5000, 5000), (8000, 5000)]),
                }),
            ),
            (3000, room(slide(2))),
            (3000, room(board(Some(2), vec![]))),
            (4000, room(ServerMessage::Slide { slide: None })),
            (4000, room(board(None, vec![]))),
            (5000, Event::Stopped { recovered: false }),
        ],
    );
    let config = RecorderConfig {
        height: HEIGHT as u32,
        ..RecorderConfig::default()
    };
    let out = dir.path().join("replay");
    let replay =
        pipeline::process(&config, &recording, &documents, &out).expect("the replay is made");
    assert_eq!(replay.duration_ms, 5000);
    let titles: Vec<(u64, &str)> = replay
        .chapters
        .iter()
        .map(|c| (c.at_ms, c.title.as_str()))
        .collect();
    assert_eq!(
        titles,
        [(0, "Lesson"), (500, "Photosynthesis"), (3000, "Roots")]
    );
    assert!(!out.join("work").exists(), "the frames are cleaned up");

    let mp4 = out.join("replay.mp4");
    // The 4:3 page lies in the 16:9 picture from x = 40 to 280; the line runs at y = 90
    // from x = 40 + 48 to 40 + 192.
    let camera = frame_at(&mp4, 0.3);
    assert!(
        near(pixel(&camera, 160, 90), GREY),
        "the camera before the slide"
    );
    let shown = frame_at(&mp4, 0.8);
    assert!(
        near(pixel(&shown, 160, 90), GREEN),
        "the slide: {:?}",
        pixel(&shown, 160, 90)
    );
    assert!(near(pixel(&shown, 10, 10), [0, 0, 0]), "black beside it");
    assert!(
        near(pixel(&shown, 270, 150), GREY),
        "the camera in the corner: {:?}",
        pixel(&shown, 270, 150)
    );
    let drawn = frame_at(&mp4, 1.5);
    for x in [100, 160, 220] {
        assert!(
            near(pixel(&drawn, x, 90), RED),
            "the stroke at x = {x}: {:?}",
            pixel(&drawn, x, 90)
        );
    }
    assert!(
        near(pixel(&drawn, 160, 80), GREEN),
        "the page above the line"
    );
    let undone = frame_at(&mp4, 2.2);
    assert!(
        near(pixel(&undone, 160, 90), GREEN),
        "undone: {:?}",
        pixel(&undone, 160, 90)
    );
    let redone = frame_at(&mp4, 2.8);
    assert!(near(pixel(&redone, 160, 90), RED), "redone");
    // Page 2 has no image: a blank page, not a failed replay.
    let blank = frame_at(&mp4, 3.5);
    assert!(
        near(pixel(&blank, 160, 90), [255, 255, 255]),
        "blank: {:?}",
        pixel(&blank, 160, 90)
    );
    let closed = frame_at(&mp4, 4.5);
    assert!(
        near(pixel(&closed, 160, 90), GREY),
        "the camera again once the slides closed"
    );
}

#[test]
fn hostile_pages_and_strokes_degrade_and_a_board_too_slow_to_draw_fails_for_good() {
    let dir = tempfile::tempdir().expect("a folder");
    let documents = documents(dir.path());
    let pages = documents.join(DOCUMENT.to_string()).join("pages");
    // Page 2: a PNG header that claims 65536 x 65536 pixels, then nothing.
    let mut huge = page_png(GREEN);
    huge[16..24].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
    huge.truncate(64);
    std::fs::write(pages.join("page-2.png"), huge).expect("the page");
    // Text that is not a list of strings: titles fall back to the page number.
    std::fs::write(pages.join("text.json"), b"{\"not\": \"a list\"}").expect("the text");
    // A board no room would send: 3,000 strokes (a page holds 2,000), most points off the
    // page, widths past any limit.
    let strokes: Vec<Stroke> = (0..3_000u64)
        .map(|i| Stroke {
            id: StrokeId(i),
            width: u16::MAX,
            points: (0..60u16)
                .map(|p| Point(p.wrapping_mul(97), if p % 3 == 0 { 100 } else { u16::MAX }))
                .collect(),
            ..red_line(&[])
        })
        .collect();
    let recording = dir.path().join("lesson-1-2");
    write_events(
        &recording,
        vec![
            (100, room(slide(2))),
            (100, room(board(Some(2), strokes))),
            (
                200,
                room(ServerMessage::StrokePoints {
                    id: StrokeId(999_999),
                    points: vec![Point(1, 1)],
                }),
            ),
            (1000, Event::Stopped { recovered: false }),
        ],
    );
    let config = RecorderConfig {
        height: HEIGHT as u32,
        ..RecorderConfig::default()
    };
    let out = dir.path().join("replay");
    let replay =
        pipeline::process(&config, &recording, &documents, &out).expect("the replay is made");
    assert!(
        replay
            .chapters
            .iter()
            .any(|c| c.at_ms == 100 && c.title == "Slide 2"),
        "{:?}",
        replay.chapters
    );
    let frame = frame_at(&out.join("replay.mp4"), 0.5);
    // The strokes kept, along the page's top, over a blank page (not a failed replay).
    assert!(
        near(pixel(&frame, 50, 5), RED),
        "{:?}",
        pixel(&frame, 50, 5)
    );
    assert!(
        near(pixel(&frame, 160, 120), [255, 255, 255]),
        "{:?}",
        pixel(&frame, 160, 120)
    );

    // No time at all to draw: the job fails with the reason, and is not retried.
    let config = RecorderConfig {
        board_time_limit_secs: 0,
        ..config
    };
    let failed = pipeline::process(&config, &recording, &documents, &out)
        .expect_err("the board cannot be drawn in no time");
    assert!(matches!(failed, ProcessError::Board(_)), "{failed}");
    assert!(!failed.is_retryable());
    assert!(failed.to_string().contains("0 seconds"), "{failed}");
}
