//! Shared fixtures: a listener on a free port with test keys and a recording sink, clips
//! pre-encoded once per test run, and ffmpeg as the teacher's encoder.
#![allow(clippy::unwrap_used, dead_code)] // Tests fail loudly on broken expectations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use classroom_codec::h264::depacketize;
use classroom_protocol::LessonId;
use classroom_rtmp::{
    IngestConfig, IngestEvent, IngestHandle, IngestServer, StreamKey, StreamKeys, TrackKind,
};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

pub struct Keys(pub HashMap<String, LessonId>);

impl StreamKeys for Keys {
    async fn lesson_for_key(&self, key: &StreamKey) -> Option<LessonId> {
        self.0.get(key.expose_secret()).copied()
    }
}

pub struct Ingest {
    pub addr: std::net::SocketAddr,
    pub handle: IngestHandle,
    pub events: Arc<Mutex<Vec<IngestEvent>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Ingest {
    pub async fn start(keys: &[(&str, i64)], tweak: impl FnOnce(&mut IngestConfig)) -> Ingest {
        let mut config = IngestConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..IngestConfig::default()
        };
        tweak(&mut config);
        let server = IngestServer::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.handle();
        let keys = Keys(
            keys.iter()
                .map(|(k, l)| ((*k).to_owned(), LessonId(*l)))
                .collect(),
        );
        let (tx, mut rx) = mpsc::channel(1024);
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorded = events.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                recorded.lock().unwrap().push(event);
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(Arc::new(keys), Arc::new(tx), async move {
            let _ = stopped.await;
        }));
        Ingest {
            addr,
            handle,
            events,
            stop: Some(stop),
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.addr)
    }

    pub fn events(&self) -> Vec<IngestEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the events so far.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[IngestEvent]) -> bool) {
        for _ in 0..300 {
            if pred(&self.events.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    pub fn packets(&self, lesson: i64, kind: TrackKind) -> Vec<classroom_rtmp::RtpPacket> {
        packets(&self.events(), lesson, kind)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn packets(
    events: &[IngestEvent],
    lesson: i64,
    kind: TrackKind,
) -> Vec<classroom_rtmp::RtpPacket> {
    events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Packet {
                lesson: l,
                track,
                packet,
            } if l.0 == lesson && *track == kind => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

/// NAL units of the RTP video packets, in order.
pub fn nal_units(packets: &[classroom_rtmp::RtpPacket]) -> Vec<Bytes> {
    let payloads: Vec<Bytes> = packets.iter().map(|p| p.payload.clone()).collect();
    depacketize(&payloads).unwrap()
}

/// Where clips are encoded once per test run.
fn media_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rtmp-clips");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An OBS-like clip: 640x360 at 30 fps, 3 s, x264 with a keyframe every second, AAC 48 kHz.
/// `bframes`: 0 (WebRTC-safe) or 2 (x264's and OBS's default).
pub fn clip(bframes: u8) -> PathBuf {
    static CLIPS: OnceLock<Mutex<HashMap<u8, PathBuf>>> = OnceLock::new();
    let mut clips = CLIPS.get_or_init(Default::default).lock().unwrap();
    clips
        .entry(bframes)
        .or_insert_with(|| {
            let path = media_dir().join(format!("clip-bf{bframes}-{}.flv", std::process::id()));
            let status = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args([
                    "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
                ])
                .args(["-bf", &bframes.to_string(), "-pix_fmt", "yuv420p"])
                .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "ffmpeg could not encode the test clip");
            path
        })
        .clone()
}

/// The clip's video as NAL units (ffmpeg's own AVCC → Annex-B conversion).
pub fn clip_nal_units(clip: &Path) -> Vec<Bytes> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(clip)
        .args([
            "-an",
            "-c:v",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut splitter = AnnexBSplitter::default();
    let mut units = splitter.push(&out.stdout).unwrap();
    units.extend(splitter.finish());
    units
}

/// ffmpeg pushing a clip in real time with `-c copy`, as an encoder would.
pub fn push(clip: &Path, url: &str, loops: bool) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if loops {
        cmd.args(["-stream_loop", "-1"]);
    }
    cmd.arg("-i")
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

pub fn nal_type(nal: &Bytes) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}
pub mod client;
