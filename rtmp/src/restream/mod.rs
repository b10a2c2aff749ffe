//! Restream: a live lesson pushed to third-party live services (YouTube, Twitch, a school's own
//! media server) over RTMP, as FLV with H.264 video and AAC audio.
//!
//! One [`Restream`] per live lesson, fed by the server with the tracks it chose ([`select`]):
//! the main view and the voices on stage. Inside, one task owns the whole pipeline:
//!
//! ```text
//! main view ─ H.264 ─ frames ─ AvcTagger (untouched) ──────────────┐
//!           └ VP8 ── frames ─ IVF ─ ffmpeg (x264, fixed size) ─ FLV ┤── tags ─┬─ destination 1
//! voices ─ Opus ─ slots, silence-filled every 20 ms ─ Matroska ─    │         ├─ destination 2
//!                   ffmpeg (amix → AAC) ─ FLV ──────────────────────┘         └─ …
//! ```
//!
//! Why this shape: one transcode per lesson, whatever the number of destinations (a transcode
//! costs most of a core; a destination costs a TCP connection). Each destination is its own
//! RTMP client ([`push`]) with its own retries ([`backoff`]), so one that drops or refuses is
//! retried without touching the others or the transcoders, and a switch of the main view (even
//! from VP8 to H.264) never reconnects a destination. Our clock gives every tag its timestamp:
//! ffmpeg keeps them (`-copyts`), so audio and video stay in step across switches.

pub mod backoff;
pub mod dial;
pub mod ffmpeg;
pub mod frames;
mod pipeline;
pub mod push;
pub mod select;
pub mod tags;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use classroom_protocol::outbound::OutboundPolicy;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use backoff::RetryPolicy;
pub use dial::{DialError, Dialer};
pub use frames::VideoCodec;
pub use push::{PushState, PushStatus, PushTarget};
pub use tls::{PushTls, TlsSetupError};

/// At most this many voices are mixed at once (the rest wait for a free slot).
pub const VOICE_SLOTS: usize = 4;
/// Packets queued from the lesson to the pipeline; beyond this they are dropped (and a
/// keyframe is asked for), so a slow transcoder never holds up the lesson.
const PACKET_QUEUE: usize = 1024;

/// A track of the lesson, as the server names it (the SFU's track id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackRef(pub u64);

/// How to restream.
#[derive(Debug, Clone)]
pub struct RestreamConfig {
    pub ffmpeg: PathBuf,
    /// Size of transcoded video (passed-through H.264 keeps its own).
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub retry: RetryPolicy,
    /// How `rtmps://` destinations are verified.
    pub tls: PushTls,
    /// Which addresses destinations may resolve to, checked at every connect.
    pub outbound: Arc<OutboundPolicy>,
}

/// One RTP packet of a chosen track.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    pub seq_no: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    pub arrival: Instant,
}

/// What the server tells a restream.
#[derive(Debug, Clone)]
pub enum Control {
    /// The main view is now this track, or there is none.
    MainView(Option<(TrackRef, VideoCodec)>),
    /// The voices to mix, in the order they started.
    Voices(Vec<TrackRef>),
    /// The destinations to push to, by id; others stop.
    Destinations(Vec<(u64, PushTarget)>),
}

/// What a restream tells the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A destination's state changed.
    Status(PushStatus),
    /// The main view needs a keyframe (start, switch, loss).
    KeyframeWanted(TrackRef),
    /// A transcoder stopped; it is restarted (or given up, see the message).
    TranscoderFailed(String),
}

/// A running restream; dropping it stops everything (ffmpeg children, connections).
pub struct Restream {
    control: mpsc::UnboundedSender<Control>,
    packets: mpsc::Sender<(TrackRef, MediaPacket)>,
    task: JoinHandle<()>,
}

impl Restream {
    pub fn start(config: RestreamConfig, notices: mpsc::UnboundedSender<Notice>) -> Restream {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (packets, packets_rx) = mpsc::channel(PACKET_QUEUE);
        let task = tokio::spawn(pipeline::run(config, control_rx, packets_rx, notices));
        Restream {
            control,
            packets,
            task,
        }
    }

    pub fn control(&self, control: Control) {
        let _ = self.control.send(control);
    }

    /// Hands over a packet without waiting; false if it was dropped.
    pub fn packet(&self, track: TrackRef, packet: MediaPacket) -> bool {
        self.packets.try_send((track, packet)).is_ok()
    }
}

impl Drop for Restream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
