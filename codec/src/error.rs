//! The one error type of the crate: what was wrong with the input.

use thiserror::Error;

/// Why input could not be parsed, reassembled or written. Every variant is caused by the
/// input, never by a bug: callers choose their policy (drop the frame, close the stream, tell
/// the teacher).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The input ended before a structure it started (what was being read is named).
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// An RTP payload was empty.
    #[error("an RTP payload is empty")]
    EmptyPayload,
    /// A length field points past the end of the data that holds it.
    #[error("a length runs past the end of the data ({0})")]
    LengthOverrun(&'static str),
    /// An H.264 FU-A fragment that continues a NAL unit whose first fragment never came.
    #[error("an FU-A fragment arrived without its start")]
    FuWithoutStart,
    /// An H.264 RTP payload of a NAL unit type packetization mode 1 does not carry (0, 25 to
    /// 27, 29 to 31: STAP-B, MTAP, FU-B and the reserved ones).
    #[error("H.264 NAL unit type {0} is not used in packetization mode 1")]
    UnsupportedNalType(u8),
    /// A field holds a value the format does not allow (the field is named).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// FLV: a video codec the browsers cannot receive without a transcoder we do not run.
    #[error(
        "video codec {0} is not supported: set the encoder to H.264 (x264 or a hardware H.264 encoder)"
    )]
    UnsupportedVideoCodec(&'static str),
    /// FLV: an Enhanced RTMP video tag (its FourCC).
    #[error(
        "Enhanced RTMP video ({0}) is not supported: set the encoder to H.264 (x264 or a hardware H.264 encoder)"
    )]
    EnhancedRtmp(String),
    /// FLV: an audio format other than AAC.
    #[error("audio codec {0} is not supported: set the encoder's audio to AAC")]
    UnsupportedAudioCodec(&'static str),
    /// An AVCDecoderConfigurationRecord that cannot be used (what is wrong).
    #[error("the AVC decoder configuration is invalid: {0}")]
    InvalidAvcConfig(&'static str),
    /// An AAC AudioSpecificConfig that cannot be used (what is wrong).
    #[error("the AAC AudioSpecificConfig is invalid: {0}")]
    InvalidAacConfig(&'static str),
    /// A stream or file that should be FLV does not start with the FLV signature.
    #[error("not FLV")]
    NotFlv,
    /// A unit being put together grew beyond the limit the format allows (bytes it would have).
    #[error("a unit of {0} bytes is larger than accepted")]
    TooLarge(usize),
}
