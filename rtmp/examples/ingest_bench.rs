//! CPU cost of one passthrough ingest stream (H.264 without B-frames, AAC → Opus), measured,
//! not asserted. Needs ffmpeg.
//!
//!   cargo run --release -p classroom-rtmp --example ingest_bench [SECONDS] [WIDTHxHEIGHT]
//!
//! Encodes a clip once, pushes it in real time with `ffmpeg -re -c copy` (as OBS would), and
//! prints this process's CPU time (the ingest itself: RTMP, FLV, packetization) per second of
//! stream. The AAC → Opus transcoder is an ffmpeg child process and is not included.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_protocol::LessonId;
use classroom_rtmp::{IngestConfig, IngestEvent, IngestServer, StreamKey, StreamKeys, TrackKind};
use tokio::sync::mpsc;

struct Keys(HashMap<String, LessonId>);

impl StreamKeys for Keys {
    async fn lesson_for_key(&self, key: &StreamKey) -> Option<LessonId> {
        self.0.get(key.expose_secret()).copied()
    }
}

/// User + system CPU seconds of this process (`self`) or its waited-for children.
fn cpu_seconds(children: bool) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields after the command: utime 12, stime 13, cutime 14, cstime 15 (1-based from 3).
    let (a, b) = if children { (12, 13) } else { (11, 12) };
    let ticks: f64 = fields[a].parse::<f64>().unwrap() + fields[b].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let size = args.get(2).cloned().unwrap_or_else(|| "1280x720".into());
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.flv");
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
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "0",
        ])
        .args([
            "-g", "60", "-b:v", "2500k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());

    let config = IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..IngestConfig::default()
    };
    let server = IngestServer::bind(config).await.unwrap();
    let url = format!("rtmp://{}/live/bench", server.local_addr().unwrap());
    let keys = Keys(HashMap::from([("bench".to_owned(), LessonId(1))]));
    let (tx, mut rx) = mpsc::channel(4096);
    tokio::spawn(server.run(Arc::new(keys), Arc::new(tx), std::future::pending()));
    let counter = tokio::spawn(async move {
        let (mut video, mut audio, mut bytes) = (0u64, 0u64, 0u64);
        while let Some(event) = rx.recv().await {
            match event {
                IngestEvent::Packet { track, packet, .. } => {
                    bytes += packet.payload.len() as u64;
                    match track {
                        TrackKind::Video => video += 1,
                        TrackKind::Audio => audio += 1,
                    }
                }
                IngestEvent::Unpublish { .. } => break,
                _ => {}
            }
        }
        (video, audio, bytes)
    });

    let cpu_before = cpu_seconds(false);
    let started = Instant::now();
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&clip)
        .args(["-c", "copy", "-f", "flv", &url])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let (video, audio, bytes) = tokio::time::timeout(Duration::from_secs(10), counter)
        .await
        .unwrap()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(false) - cpu_before;
    println!("stream: {size} 30 fps, {seconds} s, pushed with ffmpeg -re -c copy");
    println!(
        "out: {video} video packets, {audio} Opus packets, {:.1} MB",
        bytes as f64 / 1e6
    );
    println!(
        "ingest CPU (this process): {cpu:.2} s over {wall:.1} s = {:.1}% of one core",
        100.0 * cpu / wall
    );
    println!(
        "children CPU (clip pre-encode + ffmpeg push; not the audio transcoder): {:.2} s",
        cpu_seconds(true)
    );
}
