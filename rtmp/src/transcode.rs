//! ffmpeg as a child process: B-frame H.264 → H.264 without B-frames, and AAC → Opus.
//! Input goes in on stdin (Annex-B, ADTS), output comes out on stdout (Annex-B, Ogg/Opus) and
//! is parsed back by `classroom_codec::annexb` and `classroom_codec::ogg`. The process dies with its handle.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Pieces of input queued for ffmpeg; beyond this the transcoder is not keeping up.
const INPUT_QUEUE: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscodeKind {
    Video,
    Audio,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The stream needs transcoding and the server has no ffmpeg.
    #[error("ffmpeg is not installed")]
    NoFfmpeg,
    #[error("ffmpeg could not be started: {0}")]
    Spawn(std::io::Error),
    #[error("the transcoder does not keep up with the stream")]
    Backlog,
    #[error("the transcoder stopped")]
    Stopped,
}

pub struct Transcoder {
    input: mpsc::Sender<Bytes>,
    /// Raw stdout bytes; closed when ffmpeg exits.
    pub output: mpsc::Receiver<Bytes>,
    _child: Child,
}

impl Transcoder {
    pub fn spawn(ffmpeg: &Path, kind: TranscodeKind) -> Result<Self, TranscodeError> {
        let mut child = Command::new(ffmpeg)
            .args(arguments(kind))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(TranscodeError::Spawn)?;
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(TranscodeError::Stopped);
        };
        let (input, mut input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        tokio::spawn(async move {
            while let Some(bytes) = input_rx.recv().await {
                if stdin.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let (output_tx, output) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let piece = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        if output_tx.send(piece).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Transcoder {
            input,
            output,
            _child: child,
        })
    }

    /// Queues input without waiting: a full queue is an error, not a stall of the connection.
    pub fn feed(&self, bytes: Bytes) -> Result<(), TranscodeError> {
        self.input.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TranscodeError::Backlog,
            mpsc::error::TrySendError::Closed(_) => TranscodeError::Stopped,
        })
    }
}

fn arguments(kind: TranscodeKind) -> Vec<&'static str> {
    // Small probe: ffmpeg must start on the first picture, not after megabytes of input.
    // (`-fflags nobuffer` would drop the probed pictures: not used.)
    let common = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
    ];
    let specific: &[&str] = match kind {
        TranscodeKind::Video => &[
            "-f",
            "h264",
            "-framerate",
            "30",
            "-i",
            "pipe:0",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            // The point of it all: no B-frames. Keyframes where the encoder put them.
            "-bf",
            "0",
            "-force_key_frames",
            "source",
            "-fps_mode",
            "passthrough",
            "-x264-params",
            "repeat-headers=1",
            // Write every picture at once rather than filling a 32 KiB pipe buffer.
            "-flush_packets",
            "1",
            "-f",
            "h264",
            "pipe:1",
        ],
        TranscodeKind::Audio => &[
            "-f",
            "aac",
            "-i",
            "pipe:0",
            "-vn",
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
            "-ar",
            "48000",
            "-frame_duration",
            "20",
            // One Ogg page per packet: the default holds a second of audio per page.
            "-page_duration",
            "20000",
            "-flush_packets",
            "1",
            "-f",
            "ogg",
            "pipe:1",
        ],
    };
    common.iter().chain(specific).copied().collect()
}

/// The ffmpeg to use: `configured`, else `ffmpeg` from PATH; `None` if it does not run.
pub async fn find_ffmpeg(configured: Option<&Path>) -> Option<PathBuf> {
    let candidate = configured.map_or_else(|| PathBuf::from("ffmpeg"), Path::to_path_buf);
    let status = Command::new(&candidate)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .ok()?;
    status.success().then_some(candidate)
}
