//! The restream's two ffmpeg children, each with one input on stdin and FLV on stdout:
//! - the mixer: a Matroska stream of Opus voices in, their sum as AAC out (runs all lesson);
//! - the video transcoder: VP8 frames (IVF) in, H.264 at the configured size out (runs while
//!   the main view is not H.264).
//!
//! Both keep our timestamps (`-copyts`), so audio and video meet again in step on the way out.
//! A child dies with its handle.

use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use classroom_codec::flv::FlvReader;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::tags::Tag;

/// Input pieces queued for one child; beyond this it is not keeping up.
const INPUT_QUEUE: usize = 256;

/// What a child's output reader reports.
#[derive(Debug)]
pub enum FfmpegEvent {
    Tag(Tag),
    /// The child `generation` exited (or wrote something that is not FLV), with its last
    /// error line.
    Ended {
        generation: u64,
        error: String,
    },
}

/// A running child.
pub struct Ffmpeg {
    pub generation: u64,
    input: mpsc::Sender<Bytes>,
    _child: Child,
}

impl Ffmpeg {
    pub fn spawn(
        ffmpeg: &Path,
        args: &[String],
        generation: u64,
        output: mpsc::Sender<FfmpegEvent>,
    ) -> std::io::Result<Ffmpeg> {
        let mut child = Command::new(ffmpeg)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("ffmpeg's pipes are missing"));
        };
        let (input, mut input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        tokio::spawn(async move {
            while let Some(bytes) = input_rx.recv().await {
                if stdin.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let (last_error_tx, mut last_error_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            // These children get no URL and no key: their messages are safe to keep.
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = last_error_tx.send(line);
            }
        });
        tokio::spawn(async move {
            let mut reader = FlvReader::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut error = String::new();
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => match reader.push(buf.get(..n).unwrap_or_default()) {
                        Ok(tags) => {
                            for tag in tags {
                                if output.send(FfmpegEvent::Tag(Tag::from(tag))).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            error = format!("the transcoder's output is broken: {e}");
                            break;
                        }
                    },
                }
            }
            while let Ok(line) = last_error_rx.try_recv() {
                error = line;
            }
            if error.is_empty() {
                error = "ffmpeg exited".to_owned();
            }
            let _ = output.send(FfmpegEvent::Ended { generation, error }).await;
        });
        Ok(Ffmpeg {
            generation,
            input,
            _child: child,
        })
    }

    /// Queues input without waiting; false when the child lags or is gone.
    pub fn feed(&self, bytes: Bytes) -> bool {
        self.input.try_send(bytes).is_ok()
    }
}

const COMMON: [&str; 7] = [
    "-hide_banner",
    "-loglevel",
    "error",
    "-probesize",
    "32",
    "-analyzeduration",
    "0",
];

/// The mixer: `voices` Opus tracks of a Matroska stream summed into AAC.
pub fn mixer_args(voices: usize, audio_kbps: u32) -> Vec<String> {
    let inputs: String = (0..voices).map(|i| format!("[0:a:{i}]")).collect();
    // normalize=0: a sum, not an average, so one speaker keeps their level.
    let filter = format!("{inputs}amix=inputs={voices}:normalize=0:dropout_transition=0[mix]");
    let mut args: Vec<String> = COMMON.iter().map(|s| (*s).to_owned()).collect();
    args.extend(
        [
            "-f",
            "matroska",
            "-i",
            "pipe:0",
            "-filter_complex",
            &filter,
            "-map",
            "[mix]",
            "-c:a",
            "aac",
            "-b:a",
            &format!("{audio_kbps}k"),
            "-ar",
            "48000",
            "-ac",
            "2",
            "-copyts",
            "-flush_packets",
            "1",
            "-f",
            "flv",
            "pipe:1",
        ]
        .map(str::to_owned),
    );
    args
}

/// The video transcoder: VP8 in IVF to H.264 of `width`×`height` (letterboxed), keyframes
/// every two seconds as live services ask, no B-frames.
pub fn video_args(width: u32, height: u32, video_kbps: u32) -> Vec<String> {
    let filter = format!(
        "scale={width}:{height}:force_original_aspect_ratio=decrease,\
         pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
    );
    let mut args: Vec<String> = COMMON.iter().map(|s| (*s).to_owned()).collect();
    args.extend(
        [
            "-f",
            "ivf",
            "-i",
            "pipe:0",
            "-an",
            "-vf",
            &filter,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-bf",
            "0",
            "-b:v",
            &format!("{video_kbps}k"),
            "-maxrate",
            &format!("{video_kbps}k"),
            "-bufsize",
            &format!("{}k", video_kbps * 2),
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-fps_mode",
            "passthrough",
            "-copyts",
            "-flush_packets",
            "1",
            "-f",
            "flv",
            "pipe:1",
        ]
        .map(str::to_owned),
    );
    args
}
