//! Real ffmpeg pushes an OBS-like stream (H.264 without B-frames + AAC): the video passes
//! through untouched and the audio becomes Opus.
#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

mod common;

use std::time::Duration;

use classroom_rtmp::{IngestEvent, IngestTrack, TrackKind};
use common::{Ingest, clip, clip_nal_units, nal_type, nal_units, push};

const LESSON: i64 = 11;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_without_b_frames_passes_through_byte_identical() {
    let ingest = Ingest::start(&[("teacher-key", LESSON)], |_| {}).await;
    let clip = clip(0);
    let status = push(&clip, &ingest.url("teacher-key"), false)
        .wait()
        .await
        .unwrap();
    assert!(status.success(), "ffmpeg failed to publish");
    // ffmpeg ends the publish cleanly: the source is unpublished at once.
    ingest
        .wait_for("unpublish", |e| {
            e.iter().any(|e| matches!(e, IngestEvent::Unpublish { .. }))
        })
        .await;

    let events = ingest.events();
    let IngestEvent::Publish {
        lesson,
        tracks,
        resumed,
    } = &events[0]
    else {
        panic!("first event is not Publish: {:?}", events[0]);
    };
    assert_eq!(lesson.0, LESSON);
    assert!(!resumed);
    assert!(
        matches!(&tracks[0], IngestTrack::H264 { profile_level_id } if profile_level_id.len() == 6)
    );
    assert!(
        tracks.contains(&IngestTrack::Opus { channels: 1 }),
        "{tracks:?}"
    );

    // The video: the same NAL units as in the clip, in order; the only additions are the
    // parameter sets repeated before keyframes (which ffmpeg's own conversion also inserts).
    let video = ingest.packets(LESSON, TrackKind::Video);
    let received = nal_units(&video);
    let without_parameter_sets = |units: &[bytes::Bytes]| -> Vec<bytes::Bytes> {
        units
            .iter()
            .filter(|n| !matches!(nal_type(n), 7 | 8))
            .cloned()
            .collect()
    };
    let sent = clip_nal_units(&clip);
    assert!(sent.len() > 90, "the clip has {} NAL units", sent.len());
    assert_eq!(
        without_parameter_sets(&received),
        without_parameter_sets(&sent),
        "NAL units differ from the clip"
    );

    // SPS and PPS precede every keyframe, inside the same access unit (same timestamp).
    let mut keyframes = 0;
    let mut au_start = 0;
    for (i, packet) in video.iter().enumerate() {
        if !packet.marker {
            continue;
        }
        let au = nal_units(&video[au_start..=i]);
        au_start = i + 1;
        assert!(video[au_start - 1].timestamp == packet.timestamp);
        if au.iter().any(|n| nal_type(n) == 5) {
            keyframes += 1;
            let types: Vec<u8> = au.iter().map(nal_type).collect();
            assert_eq!(&types[..2], &[7, 8], "access unit {types:?}");
            assert!(video[i].keyframe);
        }
    }
    assert_eq!(keyframes, 3, "one keyframe per second of the clip");
    assert_eq!(au_start, video.len(), "the last packet carries the marker");
    // 30 fps in whole FLV milliseconds: 33 or 34 ms (× 90 ticks) between pictures.
    let mut timestamps: Vec<u32> = video.iter().map(|p| p.timestamp).collect();
    timestamps.dedup();
    assert_eq!(timestamps.len(), 90);
    assert!(
        timestamps
            .windows(2)
            .all(|w| matches!(w[1].wrapping_sub(w[0]), 2970 | 3060))
    );
    assert!(video.iter().all(|p| p.payload.len() <= 1200));
    let seqs: Vec<u16> = video.iter().map(|p| p.sequence_number).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));

    // The audio: 20 ms Opus packets at 48 kHz, nearly 3 s of them.
    let audio = ingest.packets(LESSON, TrackKind::Audio);
    assert!(audio.len() >= 140, "{} Opus packets", audio.len());
    assert!(
        audio
            .windows(2)
            .all(|w| w[1].timestamp.wrapping_sub(w[0].timestamp) == 960)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_gets_the_current_gop() {
    let ingest = Ingest::start(&[("k", LESSON)], |_| {}).await;
    let mut encoder = push(&clip(0), &ingest.url("k"), true);
    ingest
        .wait_for("a second keyframe", |e| {
            common::packets(e, LESSON, TrackKind::Video)
                .iter()
                .filter(|p| p.keyframe && p.marker)
                .count()
                >= 2
        })
        .await;
    let gop = ingest
        .handle
        .current_gop(classroom_protocol::LessonId(LESSON));
    assert!(gop[0].keyframe, "the GOP starts at a keyframe");
    let units = nal_units(&gop);
    assert_eq!(nal_type(&units[0]), 7);
    assert!(
        gop.iter()
            .filter(|p| p.keyframe)
            .all(|p| p.timestamp == gop[0].timestamp)
    );
    // Everything in it was sent after the last keyframe's first packet.
    let video = ingest.packets(LESSON, TrackKind::Video);
    let at = video.iter().position(|p| p == &gop[0]).unwrap();
    assert_eq!(&video[at..at + gop.len()], &gop[..]);
    encoder.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}
