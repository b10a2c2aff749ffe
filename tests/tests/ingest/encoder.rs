//! ffmpeg as the teacher's encoder: OBS-like clips encoded once per test run and pushed with
//! `-c copy` (encoding live would cost most of a core), and the clip's own NAL units.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use tokio::process::{Child, Command};

/// An OBS-like clip: 640x360 at 30 fps, `secs` long, x264 (veryfast, zerolatency) with a
/// keyframe every second, AAC at 48 kHz. `bframes`: 0 (WebRTC-safe) or 2 (x264's and OBS's
/// default).
pub fn clip(bframes: u8, secs: u32) -> PathBuf {
    static CLIPS: OnceLock<Mutex<HashMap<(u8, u32), PathBuf>>> = OnceLock::new();
    let mut clips = CLIPS
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned");
    clips
        .entry((bframes, secs))
        .or_insert_with(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ingest-clips");
            std::fs::create_dir_all(&dir).expect("a clip directory");
            let path = dir.join(format!("bf{bframes}-{secs}s-{}.flv", std::process::id()));
            let mut ffmpeg = std::process::Command::new("ffmpeg");
            ffmpeg
                .args(["-hide_banner", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args(["-t", &secs.to_string(), "-c:v", "libx264"])
                .args(["-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p"]);
            if bframes == 0 {
                ffmpeg.args(["-tune", "zerolatency"]);
            }
            let status = ffmpeg
                .args(["-bf", &bframes.to_string()])
                .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
                .arg(&path)
                .status()
                .expect("ffmpeg runs (apt-get install ffmpeg)");
            assert!(status.success(), "ffmpeg could not encode the test clip");
            path
        })
        .clone()
}

/// The clip's video as NAL units (ffmpeg's own conversion to Annex-B).
pub fn clip_nal_units(clip: &Path) -> Vec<Bytes> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(clip)
        .args(["-an", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb"])
        .args(["-f", "h264", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    annexb_units(&out.stdout)
}

/// NAL units of an Annex-B byte stream.
pub fn annexb_units(bytes: &[u8]) -> Vec<Bytes> {
    let mut splitter = AnnexBSplitter::default();
    let mut units = splitter.push(bytes).expect("valid Annex-B");
    units.extend(splitter.finish());
    units
}

pub fn nal_type(nal: &Bytes) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}

/// ffmpeg pushing a clip in real time with `-c copy`, as an encoder would; `loops` repeats it
/// until killed.
pub fn push(clip: &Path, url: &str, loops: bool) -> Child {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if loops {
        command.args(["-stream_loop", "-1"]);
    }
    command
        .arg("-i")
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs")
}
