//! Test media and what ffprobe and ffmpeg find in a replay.
//!
//! The clip: 6 s of dark grey VP8 (640x360, 30 fps, a keyframe every second) with a white
//! flash from 2.0 s for 3 frames, and Opus (20 ms frames) silent but for a 1 kHz beep from
//! 2.0 s to 2.1 s. Made with ffmpeg once and kept under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static MAKING: Mutex<()> = Mutex::new(());

/// The clip's files (IVF, Ogg), made on first use.
pub fn clip() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("recorder-clip-v1");
    let (video, audio) = (dir.join("flash.ivf"), dir.join("beep.ogg"));
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if video.exists() && audio.exists() {
        return (video, audio);
    }
    std::fs::create_dir_all(&dir).expect("a clip folder");
    let tmp_video = dir.join(format!("flash.{}.ivf", std::process::id()));
    let tmp_audio = dir.join(format!("beep.{}.ogg", std::process::id()));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x303030:s=640x360:r=30:d=6,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(t,2.0,2.09)'",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "400k",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-auto-alt-ref",
        "0",
        "-lag-in-frames",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "ivf",
        tmp_video.to_str().expect("utf-8"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000:duration=6,volume=volume=0:enable='not(between(t,2.0,2.1))'",
        "-c:a",
        "libopus",
        "-b:a",
        "48k",
        "-frame_duration",
        "20",
        "-application",
        "lowdelay",
        "-ac",
        "1",
        "-f",
        "ogg",
        tmp_audio.to_str().expect("utf-8"),
    ]);
    std::fs::rename(&tmp_video, &video).expect("clip in place");
    std::fs::rename(&tmp_audio, &audio).expect("clip in place");
    (video, audio)
}

fn ffmpeg(args: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-loglevel", "info"])
        .args(args)
        .output()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg {args:?}: {stderr}");
    stderr
}

/// The codec names ffprobe finds in a file, in stream order.
pub fn codecs(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The container's duration in seconds.
pub fn duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a duration for {}", file.display()))
}

/// The time of the first bright frame (the flash), in seconds.
pub fn first_flash(file: &Path) -> Option<f64> {
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
        .find_map(|line| {
            let mut fields = line.split(',');
            let t: f64 = fields.next()?.parse().ok()?;
            let y: f64 = fields.next()?.parse().ok()?;
            (y > 128.0).then_some(t)
        })
}

/// The start of the first sound after silence (the beep), in seconds.
pub fn first_beep(file: &Path) -> Option<f64> {
    let log = ffmpeg(&[
        "-i",
        file.to_str().expect("utf-8"),
        "-af",
        "silencedetect=noise=-30dB:d=0.05",
        "-f",
        "null",
        "-",
    ]);
    log.lines().find_map(|line| {
        let at = line.find("silence_end: ")?;
        line[at + 13..].split_whitespace().next()?.parse().ok()
    })
}
