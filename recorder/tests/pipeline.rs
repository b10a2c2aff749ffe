//! The VOD pipeline on a recording of H.264 (as the RTMP encoder publishes it), made by hand:
//! real x264 output packetized as RTP (single NAL units, STAP-A and FU-A), written as a track file
//! with an events file, then made into a replay by real ffmpeg.

mod common;

use std::path::Path;
use std::process::Command;

use common::{access_units, codecs, packetize};

use classroom_protocol::{LessonId, RoomName};
use classroom_recorder::RecorderConfig;
use classroom_recorder::events::{self, Event, TimedEvent};
use classroom_recorder::pipeline;
use classroom_recorder::track_file::{self, TrackCodec, TrackHeader};

#[test]
fn an_h264_recording_becomes_a_replay() {
    let dir = tempfile::tempdir().expect("a folder");
    let raw = dir.path().join("clip.h264");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x180:rate=30:d=3")
        .args([
            "-c:v", "libx264", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-f", "h264",
        ])
        .arg(&raw)
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(status.success());
    let units = access_units(&std::fs::read(&raw).expect("the clip"));
    assert_eq!(units.len(), 90);

    let recording = dir.path().join("lesson-1-1");
    std::fs::create_dir_all(&recording).expect("a folder");
    let mut file = Vec::new();
    track_file::write_header(
        &mut file,
        &TrackHeader {
            track: 1,
            codec: TrackCodec::H264,
        },
    )
    .expect("in memory");
    let mut seq = 1;
    for (i, unit) in units.iter().enumerate() {
        let timestamp = (i as u32) * 3000;
        // 200 ms after the recording started, 30 fps.
        let arrival_us = 200_000 + i as u64 * 33_333;
        let packets = packetize(unit);
        let count = packets.len();
        for (n, payload) in packets.into_iter().enumerate() {
            track_file::write_record(
                &mut file,
                seq,
                timestamp,
                arrival_us,
                n + 1 == count,
                false,
                &payload,
            )
            .expect("in memory");
            seq += 1;
        }
    }
    // Larger than the pipeline's read buffer: records are read across its refills.
    assert!(file.len() > track_file::READ_BUFFER, "{} bytes", file.len());
    std::fs::write(recording.join("track-1.rtp"), file).expect("the track");
    let lines: String = [
        (
            0,
            Event::Started {
                lesson: LessonId(1),
                room: RoomName::for_lesson(LessonId(1)),
                started_at_ms: 0,
            },
        ),
        (
            150,
            Event::TrackStarted {
                track: 1,
                peer: 7,
                mid: "video".into(),
                video: true,
            },
        ),
        (3300, Event::Stopped { recovered: false }),
    ]
    .into_iter()
    .map(|(t_ms, event)| events::line(&TimedEvent { t_ms, event }))
    .collect();
    std::fs::write(recording.join("events.jsonl"), lines).expect("the events");

    let config = RecorderConfig {
        height: 180,
        ..RecorderConfig::default()
    };
    let out = dir.path().join("replay");
    let replay = pipeline::process(&config, &recording, &dir.path().join("documents"), &out)
        .expect("the replay is made");
    assert_eq!(replay.duration_ms, 3300);
    assert_eq!(codecs(&out.join("replay.mp4")), ["h264", "aac"]);
    let frames = decoded_frames(&out.join("replay.mp4"));
    assert!(
        (95..=100).contains(&frames),
        "{frames} frames in 3.3 s at 30 fps"
    );
    // The picture is the decoded test pattern (bright), not the black canvas.
    let bright = bright_frames(&out.join("replay.mp4"));
    assert!(
        (85..=92).contains(&bright),
        "{bright} frames show the recorded video"
    );
    assert!(out.join("index.m3u8").exists() && !out.join("work").exists());
}

fn bright_frames(file: &Path) -> usize {
    let filter = format!("movie={},signalstats", file.display());
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i", &filter, "-show_entries"])
        .args(["frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0"])
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .filter(|y| *y > 40.0)
        .count()
}

fn decoded_frames(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .args(["stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
