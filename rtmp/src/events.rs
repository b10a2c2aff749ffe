//! What the ingest tells the SFU: the vocabulary of the in-process publisher interface.

use std::fmt;

use classroom_codec::rtp::RtpPacket;
use classroom_protocol::LessonId;

/// A stream key as the encoder sent it. A secret: it never prints (Debug shows its length).
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn new(key: impl Into<String>) -> Self {
        StreamKey(key.into())
    }

    /// The key itself, for the one place that checks it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey(<{} bytes>)", self.0.len())
    }
}

/// Identifies one TCP connection of the listener (for logs and for the source registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtmp-{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// H.264, packetization mode 1, 90 kHz clock.
    Video,
    /// Opus, 48 kHz clock, one 20 ms frame per packet.
    Audio,
}

/// A track of an encoder source, as it should be announced to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestTrack {
    /// `profile_level_id` is the SDP fmtp value taken from the SPS (six hex digits).
    H264 {
        profile_level_id: String,
    },
    Opus {
        channels: u8,
    },
}

impl IngestTrack {
    pub fn kind(&self) -> TrackKind {
        match self {
            IngestTrack::H264 { .. } => TrackKind::Video,
            IngestTrack::Opus { .. } => TrackKind::Audio,
        }
    }

    pub fn clock_rate(&self) -> u32 {
        match self {
            IngestTrack::H264 { .. } => 90_000,
            IngestTrack::Opus { .. } => 48_000,
        }
    }
}

/// Output of the ingest, in order per lesson.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestEvent {
    /// The lesson's encoder source starts (or, with `resumed`, continues after the encoder
    /// reconnected within the grace period: same tracks, RTP sequence numbers and timestamps
    /// continue where they stopped).
    Publish {
        lesson: LessonId,
        tracks: Vec<IngestTrack>,
        resumed: bool,
    },
    /// One RTP packet of a published track.
    Packet {
        lesson: LessonId,
        track: TrackKind,
        packet: RtpPacket,
    },
    /// The encoder's connection dropped without a goodbye: its source waits for the grace
    /// period (its tracks stay published, silent) for it to reconnect.
    Interrupted { lesson: LessonId },
    /// The encoder stopped (or did not come back within the grace period): unpublish its tracks.
    Unpublish { lesson: LessonId },
    /// A publish was refused or stopped; `reason` is written for the teacher who runs the
    /// encoder. `lesson` is `None` when the key matched no lesson.
    Refused {
        lesson: Option<LessonId>,
        reason: String,
    },
}
