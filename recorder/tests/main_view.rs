//! The replay's main view and sound through real ffmpeg: a teacher's camera (dark) for the
//! whole lesson, a screen share (white) from 1.5 s to 3.0 s, and two voices (the teacher's
//! tone at 0.5 s, a student's at 2.5 s) recorded as track files with their events. The replay
//! shows the screen exactly while it was shared and the camera before and after, and both
//! voices are heard at their times.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use classroom_codec::ogg;
use classroom_protocol::signal::{ParticipantId, ParticipantInfo, ServerMessage};
use classroom_protocol::{LessonId, ParticipantRole, RoomName, TrackSource, UserId};
use classroom_recorder::RecorderConfig;
use classroom_recorder::events::{self, Event, TimedEvent};
use classroom_recorder::pipeline;
use classroom_recorder::track_file::{self, TrackCodec};
use common::{ffmpeg, header, video_track};

/// Opus, 4 s of silence but for a tone of `hz` from `beep_s` for 0.3 s, as track `track`.
fn voice_track(dir: &Path, track: u64, hz: u32, beep_s: f64) {
    let ogg_path = dir.join(format!("voice-{track}.ogg"));
    let source = format!(
        "sine=frequency={hz}:sample_rate=48000:duration=4,volume=volume=0:enable='not(between(t,{beep_s},{}))'",
        beep_s + 0.3
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-c:a",
        "libopus",
        "-b:a",
        "48k",
        "-frame_duration",
        "20",
        "-ac",
        "1",
        "-f",
        "ogg",
        ogg_path.to_str().expect("utf-8"),
    ]);
    let packets = ogg::opus_packets(&std::fs::read(&ogg_path).expect("the voice")).expect("Ogg");
    let mut file = header(track, TrackCodec::Opus);
    for (i, payload) in packets.iter().enumerate() {
        let i = i as u64;
        track_file::write_record(
            &mut file,
            i + 1,
            (i * 960) as u32,
            i * 20_000,
            true,
            false,
            payload,
        )
        .expect("in memory");
    }
    std::fs::write(dir.join(format!("track-{track}.rtp")), file).expect("the track");
}

fn participant(id: u64, name: &str, role: ParticipantRole, on_stage: bool) -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId(id),
        user_id: UserId(id as i64),
        name: name.into(),
        role,
        on_stage,
        hand_raised: false,
        muted: false,
        reconnecting: false,
    }
}

fn track_started(track: u64, peer: u64, mid: &str, video: bool) -> Event {
    Event::TrackStarted {
        track,
        peer,
        mid: mid.into(),
        video,
    }
}

#[test]
fn the_main_view_switches_to_the_screen_and_back_as_live_and_every_voice_is_heard() {
    let dir = tempfile::tempdir().expect("a folder");
    let recording = dir.path().join("lesson-1-1");
    std::fs::create_dir_all(&recording).expect("a folder");
    video_track(&recording, 1, "0x303030", 4.0, 0);
    video_track(&recording, 2, "white", 1.5, 1500);
    voice_track(&recording, 3, 440, 0.5);
    voice_track(&recording, 4, 1000, 2.5);

    let teacher_sources: BTreeMap<String, TrackSource> = [
        ("cam".to_string(), TrackSource::Camera),
        ("screen".to_string(), TrackSource::Screen),
        ("mic".to_string(), TrackSource::Microphone),
    ]
    .into();
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
            0,
            Event::Participants {
                participants: vec![
                    participant(1, "Tess Teacher", ParticipantRole::Teacher, true),
                    participant(2, "Sam Student", ParticipantRole::Student, false),
                ],
            },
        ),
        (
            0,
            Event::Publisher {
                peer: 11,
                participant: ParticipantId(2),
                sources: [("mic".to_string(), TrackSource::Microphone)].into(),
            },
        ),
        (
            0,
            Event::Publisher {
                peer: 10,
                participant: ParticipantId(1),
                sources: teacher_sources,
            },
        ),
        (0, track_started(1, 10, "cam", true)),
        (0, track_started(3, 10, "mic", false)),
        (0, track_started(4, 11, "mic", false)),
        (1500, track_started(2, 10, "screen", true)),
        (
            2300,
            Event::Room {
                message: ServerMessage::ParticipantUpdated {
                    participant: participant(2, "Sam Student", ParticipantRole::Student, true),
                },
            },
        ),
        (3000, Event::TrackEnded { track: 2 }),
        (4000, Event::Stopped { recovered: false }),
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
    assert_eq!(replay.duration_ms, 4000);
    let titles: Vec<(u64, &str)> = replay
        .chapters
        .iter()
        .map(|c| (c.at_ms, c.title.as_str()))
        .collect();
    eprintln!("chapters: {titles:?}");
    assert!(
        titles
            .iter()
            .any(|(at, t)| (1400..=1600).contains(at) && *t == "Screen share by Tess Teacher"),
        "a chapter where the screen share starts: {titles:?}"
    );
    assert!(
        titles
            .iter()
            .any(|(at, t)| (2900..=3100).contains(at) && *t == "Screen share ended"),
        "a chapter where it ends: {titles:?}"
    );
    assert!(
        titles.contains(&(2300, "Sam Student on stage")),
        "a chapter where the student comes on stage: {titles:?}"
    );

    let mp4 = out.join("replay.mp4");
    // The screen while it was shared, the camera before and after.
    let brightness = frame_brightness(&mp4);
    let screen: Vec<f64> = brightness
        .iter()
        .filter(|(_, y)| *y > 128.0)
        .map(|(t, _)| *t)
        .collect();
    let first = screen.first().copied().unwrap_or(f64::NAN);
    let last = screen.last().copied().unwrap_or(f64::NAN);
    eprintln!("the screen shows from {first:.3} s to {last:.3} s");
    assert!(
        (first - 1.5).abs() <= 0.1,
        "the screen shows from {first} s"
    );
    assert!((last - 3.0).abs() <= 0.1, "the screen shows until {last} s");
    assert!(
        brightness
            .iter()
            .filter(|(t, _)| *t < 1.4 || (*t > 3.1 && *t < 3.9))
            .all(|(_, y)| (30.0..70.0).contains(y)),
        "the camera (dark grey, not the black canvas) shows before and after"
    );

    // Both voices, each at its time.
    let sounds = sound_starts(&mp4);
    eprintln!("sound starts at {sounds:?}");
    assert_eq!(sounds.len(), 2, "{sounds:?}");
    assert!(
        (sounds[0] - 0.5).abs() <= 0.1 && (sounds[1] - 2.5).abs() <= 0.1,
        "{sounds:?}"
    );
}

/// (time, mean luma) of every decoded frame.
fn frame_brightness(file: &Path) -> Vec<(f64, f64)> {
    let filter = format!("movie={},signalstats", file.display());
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i", &filter])
        .args([
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// Where sound starts after silence, in seconds.
fn sound_starts(file: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(file)
        .args(["-af", "silencedetect=noise=-30dB:d=0.1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|line| {
            let at = line.find("silence_end: ")?;
            line[at + 13..].split_whitespace().next()?.parse().ok()
        })
        // The end of the replay's trailing silence is not a sound.
        .filter(|t: &f64| *t < 3.9)
        .collect()
}
