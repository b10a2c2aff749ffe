//! In-process participants: publishers that are not browsers (the RTMP bridge) and subscribers
//! that are not browsers (the recorder, the restream). They meet browsers on the one forwarding
//! path of [`crate::Sfu`]: a local publisher's packets are written to browser slots exactly like
//! a browser's, and a local subscriber sees every track of its room as [`LocalEvent`]s.
//!
//! Local packets are RTP payloads with their header fields, not frames: the bridge packetizes
//! (it knows its codec), the recorder stores what arrives, and the SFU never depacketizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::{Mid, PeerId, TrackKind};

/// A codec a track is carried in, as far as in-process participants need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Opus,
    Vp8,
    Vp9,
    /// H.264, packetization mode 1; `profile_level_id` as in SDP (`0x42e01f`: constrained
    /// baseline 3.1). Subscribers only receive profiles their browser offered.
    H264 {
        profile_level_id: u32,
    },
    Av1,
    /// Anything else a browser negotiated (it is forwarded to browsers, never to local
    /// subscribers' decoders).
    Other,
}

impl Codec {
    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    pub fn kind(self) -> TrackKind {
        match self {
            Codec::Opus => TrackKind::Audio,
            _ => TrackKind::Video,
        }
    }
}

/// One track an in-process publisher sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTrack {
    /// The track's name within its publisher, unique per publisher (like a browser's mid).
    pub mid: Mid,
    pub codec: Codec,
    /// Keep the packets since the last keyframe and give them to each new subscriber first.
    /// For sources that cannot be asked for a keyframe (an RTMP encoder).
    pub keep_gop: bool,
}

/// One RTP packet from or for an in-process participant: the payload and the header fields
/// that matter. Sequence numbers are extended (no wrap at 16 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPacket {
    pub seq_no: u64,
    /// In the codec's clock rate ([`Codec::clock_rate`]).
    pub timestamp: u32,
    pub marker: bool,
    /// The first packet of a keyframe. Publishers set it (the GOP cache needs it); for
    /// subscribers it is false unless the publisher was local.
    pub keyframe: bool,
    pub payload: Arc<[u8]>,
}

/// A track within the SFU, for local subscribers; unique for the SFU's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTrackId(pub u64);

/// What a local subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEvent {
    /// A track of the room is forwarded from now on (announced before its first packet).
    TrackStarted {
        track: LocalTrackId,
        publisher: PeerId,
        mid: Mid,
        kind: TrackKind,
    },
    /// One packet of a started track, with the instant the SFU received it.
    Packet {
        track: LocalTrackId,
        codec: Codec,
        arrival: Instant,
        packet: LocalPacket,
    },
    /// The track is no longer forwarded (its publisher left, was taken off stage or muted
    /// audio is not reported here: muted audio simply has no packets).
    TrackEnded { track: LocalTrackId },
}

/// The first id of in-process peers (the recorder's and the restream's subscribers, ...):
/// far above signaling's, which count from 1.
const FIRST_LOCAL_PEER: u64 = 1 << 62;
static NEXT_LOCAL_PEER: AtomicU64 = AtomicU64::new(FIRST_LOCAL_PEER);

/// A fresh id for an in-process peer, unique in this process: every in-process participant
/// takes its id here, so two of them in one room never collide.
pub fn next_local_peer() -> PeerId {
    PeerId(NEXT_LOCAL_PEER.fetch_add(1, Ordering::Relaxed))
}
