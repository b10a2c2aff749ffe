//! Bench (not a test): what recording costs while live, and how fast replays are made.
//!
//! 1. Makes a 10 s clip with ffmpeg (VP8 640x360 at about 800 kbit/s, a keyframe every 2 s;
//!    Opus in 20 ms frames).
//! 2. Starts the SFU with `PUBLISHERS` in-process publishers of audio and video in one room,
//!    sending the clip in real time, and measures the process's CPU for `SECONDS` without the
//!    recorder, then for `SECONDS` with it: the difference per recorded track.
//! 3. Makes the replay of that recording (720p, like the default) and prints its speed as a
//!    multiple of real time, and the CPU ffmpeg used.
//!
//! Run: `cargo run --release -p classroom-recorder --example recorder_bench [PUBLISHERS] [SECONDS]`

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_loadtest::clip::Clips;
use classroom_loadtest::source::{OutPacket, TrackSource};
use classroom_media::driver::{DriverConfig, LocalPublisher};
use classroom_media::{Codec, LocalPacket, LocalTrack, Mid, PeerId};
use classroom_protocol::{LessonId, RoomName};
use classroom_recorder::{LiveRecorder, RecorderConfig, RecorderStats};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let publishers: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (video, audio) = (dir.path().join("clip.ivf"), dir.path().join("clip.ogg"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:d=10",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "800k",
        "-g",
        "60",
        "-auto-alt-ref",
        "0",
        "-lag-in-frames",
        "0",
        "-f",
        "ivf",
        video.to_str().expect("utf-8"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=10",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-frame_duration",
        "20",
        "-ac",
        "1",
        "-f",
        "ogg",
        audio.to_str().expect("utf-8"),
    ]);
    let clips = Clips::from_files(&video, &audio).expect("the clip parses");

    let media = classroom_media::driver::start(DriverConfig::udp(
        "127.0.0.1:0".parse().expect("an address"),
        "127.0.0.1".parse().expect("an address"),
    ))
    .await
    .expect("the SFU starts");
    let room = RoomName::for_lesson(LessonId(1));
    let mut senders = Vec::new();
    for p in 0..publishers {
        let tracks = vec![
            LocalTrack {
                mid: Mid::from("a"),
                codec: Codec::Opus,
                keep_gop: false,
            },
            LocalTrack {
                mid: Mid::from("v"),
                codec: Codec::Vp8,
                keep_gop: false,
            },
        ];
        let publisher = media
            .handle
            .add_local_publisher(PeerId(1000 + p), room.clone(), tracks, true)
            .await
            .expect("a local publisher");
        senders.push(tokio::spawn(send(publisher, clips.clone())));
    }
    let tracks = publishers * 2;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu_a, wall_a) = measure(Duration::from_secs(seconds)).await;
    let recordings = dir.path().join("recordings");
    std::fs::create_dir_all(&recordings).expect("a folder");
    let stats = Arc::new(RecorderStats::default());
    let (finished, mut done) = tokio::sync::mpsc::unbounded_channel();
    let recorder = LiveRecorder::new(
        recordings.clone(),
        media.handle.clone(),
        stats.clone(),
        finished,
        classroom_recorder::RecorderConfig::default().queue_packets,
    );
    let name = recorder
        .start(&room, LessonId(1))
        .await
        .expect("recording starts")
        .expect("a new recording");
    let (cpu_b, wall_b) = measure(Duration::from_secs(seconds)).await;
    recorder.stop(&room);
    let _ = done.recv().await;
    let snapshot = stats.snapshot();
    let per_track = ((cpu_b / wall_b) - (cpu_a / wall_a)) / tracks as f64 * 100.0;
    println!(
        "live: {tracks} tracks, {} bytes written, {} packets dropped",
        snapshot.bytes_written, snapshot.packets_dropped
    );
    println!(
        "live: CPU of the process {:.1}% without the recorder, {:.1}% with it",
        cpu_a / wall_a * 100.0,
        cpu_b / wall_b * 100.0
    );
    println!("live: recording costs {per_track:.3}% of a core per track");
    for s in senders {
        s.abort();
    }

    let config = RecorderConfig::default();
    let out = dir.path().join("replay");
    let children_before = children_cpu();
    let started = Instant::now();
    let output = classroom_recorder::pipeline::process(
        &config,
        &recordings.join(&name),
        &dir.path().join("documents"),
        &out,
    )
    .expect("the replay is made");
    let wall = started.elapsed().as_secs_f64();
    let ffmpeg_cpu = children_cpu() - children_before;
    let media_secs = output.duration_ms as f64 / 1000.0;
    println!(
        "vod: {media_secs:.1} s of lesson ({} video tracks, 720p) in {wall:.1} s: {:.1}x real time; ffmpeg used {ffmpeg_cpu:.1} s of CPU ({:.2} s per second of lesson)",
        publishers,
        media_secs / wall,
        ffmpeg_cpu / media_secs
    );
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// Sends the clip's audio and video in real time until aborted.
async fn send(publisher: LocalPublisher, clips: Arc<Clips>) {
    let start = Instant::now();
    let mut audio = TrackSource::audio(clips.clone(), start);
    let mut video = TrackSource::video(clips, vec![1], start);
    let mut out: Vec<OutPacket> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let now = Instant::now();
        for (source, mid) in [(&mut audio, "a"), (&mut video, "v")] {
            out.clear();
            source.due(now, &mut out);
            for p in out.drain(..) {
                let packet = LocalPacket {
                    seq_no: p.seq,
                    timestamp: p.rtp_time,
                    marker: p.marker,
                    keyframe: p.keyframe,
                    payload: p.payload.into(),
                };
                if publisher.write(Mid::from(mid), packet).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// CPU seconds of this process over `period`, and the wall seconds.
async fn measure(period: Duration) -> (f64, f64) {
    let before = own_cpu();
    let started = Instant::now();
    tokio::time::sleep(period).await;
    (own_cpu() - before, started.elapsed().as_secs_f64())
}

/// Fields of /proc/self/stat after the command name, in clock ticks (100 per second).
fn stat_fields() -> Vec<f64> {
    let text = std::fs::read_to_string(Path::new("/proc/self/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect()
}

fn own_cpu() -> f64 {
    let f = stat_fields();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn children_cpu() -> f64 {
    let f = stat_fields();
    (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) / 100.0
}
