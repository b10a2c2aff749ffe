//! What every RTP packetizer of the crate gives the SFU: a payload and the header fields that
//! depend on the media. The SFU owns the RTP headers' SSRC and payload type.

use bytes::Bytes;

/// Payload bytes per RTP packet: leaves room for the RTP header, extensions and SRTP under a
/// 1280-byte path MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// One RTP packet's payload and the header fields that depend on the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload: Bytes,
    /// Set on the last packet of a video access unit (and on every audio packet).
    pub marker: bool,
    /// In the track's clock: 90 kHz for video, 48 kHz for Opus.
    pub timestamp: u32,
    pub sequence_number: u16,
    /// The packet belongs to an access unit that starts with an IDR picture (a decoder can start
    /// there).
    pub keyframe: bool,
}
