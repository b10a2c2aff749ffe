//! H.264 with B-frames (x264's and OBS's default) is transcoded to a stream without them, or
//! refused with the encoder setting to change when ffmpeg is missing.
#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

mod common;

use classroom_codec::annexb::write_annexb;
use classroom_rtmp::session::B_FRAMES_REFUSAL;
use classroom_rtmp::{IngestEvent, IngestTrack, TrackKind};
use common::{Ingest, clip, nal_type, nal_units, push};

const LESSON: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames_are_transcoded_away() {
    let ingest = Ingest::start(&[("k", LESSON)], |_| {}).await;
    let status = push(&clip(2), &ingest.url("k"), false)
        .wait()
        .await
        .unwrap();
    assert!(status.success());
    ingest
        .wait_for("unpublish", |e| {
            e.iter().any(|e| matches!(e, IngestEvent::Unpublish { .. }))
        })
        .await;
    let events = ingest.events();
    assert!(matches!(
        &events[0],
        IngestEvent::Publish { tracks, .. } if matches!(tracks[0], IngestTrack::H264 { .. })
    ));
    let video = ingest.packets(LESSON, TrackKind::Video);
    let units = nal_units(&video);
    // Parameter sets lead, and every picture is in presentation order (no reordering).
    assert_eq!(nal_type(&units[0]), 7);
    let mut timestamps: Vec<u32> = video.iter().map(|p| p.timestamp).collect();
    timestamps.dedup();
    assert!(
        timestamps
            .windows(2)
            .all(|w| (w[1].wrapping_sub(w[0]) as i32) > 0)
    );

    // ffprobe on the rebuilt Annex-B stream: no B pictures, nearly all 90 pictures.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.h264");
    std::fs::write(&path, write_annexb(&units)).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_frames", "-select_streams", "v"])
        .arg(&path)
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&probe.stdout);
    let pictures = frames.matches("pict_type=").count();
    assert_eq!(frames.matches("pict_type=B").count(), 0);
    // The last pictures may still sit in the transcoder when the encoder stops.
    assert!(pictures >= 80, "{pictures} pictures decoded");
    assert_eq!(timestamps.len(), pictures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffmpeg_b_frames_are_refused_with_the_setting_to_change() {
    let ingest = Ingest::start(&[("k", LESSON)], |c| {
        c.ffmpeg = Some("/nonexistent/ffmpeg".into());
    })
    .await;
    assert!(!ingest.handle.transcoder_available());
    let _ = push(&clip(2), &ingest.url("k"), false)
        .wait()
        .await
        .unwrap();
    ingest
        .wait_for("refusal", |e| {
            e.iter().any(|e| matches!(e, IngestEvent::Refused { .. }))
        })
        .await;
    let refused = ingest.events().into_iter().find_map(|e| match e {
        IngestEvent::Refused { lesson, reason } => Some((lesson, reason)),
        _ => None,
    });
    let (lesson, reason) = refused.unwrap();
    assert_eq!(lesson.map(|l| l.0), Some(LESSON));
    assert_eq!(reason, B_FRAMES_REFUSAL);
    assert!(reason.contains("bframes=0"));
    assert!(ingest.packets(LESSON, TrackKind::Video).is_empty());
}
