//! The recorder's settings (`[recorder]` in the server's configuration) and their defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// Replay jobs processed at once on this node (each runs one ffmpeg); 0 processes none
    /// (another node does).
    pub workers: usize,
    /// The ffmpeg program: a name looked up in PATH, or a path.
    pub ffmpeg: PathBuf,
    /// Attempts of a job before it stays failed (an admin can still retry it).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further attempt.
    pub retry_backoff_secs: u64,
    /// HLS segment length, in seconds.
    pub segment_secs: u32,
    /// Height of the replay's picture (16:9; the main view is scaled into it).
    pub height: u32,
    /// Packets a recording may fall behind (a slow disk) before the SFU drops the newest
    /// from it (never from live forwarding). The default holds about ten seconds of a
    /// teacher's camera and voice, two of a large room.
    pub queue_packets: usize,
    /// Time the drawing of a replay's slides and board may take, in seconds; past it the job
    /// fails with the reason (and is not retried). Frames are drawn only when the board
    /// changed, so a lesson's usually take seconds.
    pub board_time_limit_secs: u64,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            workers: 1,
            ffmpeg: PathBuf::from("ffmpeg"),
            max_attempts: 3,
            retry_backoff_secs: 30,
            segment_secs: 4,
            height: 720,
            queue_packets: classroom_media::driver::LOCAL_PACKET_QUEUE,
            board_time_limit_secs: 600,
        }
    }
}
