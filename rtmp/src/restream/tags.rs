//! FLV tags on their way to the destinations: read from ffmpeg's FLV output, or built from
//! H.264 that passes through untouched (both formats are `classroom_codec::flv`'s). A tag's
//! body is what an RTMP audio or video message carries; its time is the lesson's clock.

use bytes::Bytes;
pub use classroom_codec::flv::TagKind;
use classroom_codec::flv::{self, FlvTag};

/// One audio or video tag on the lesson's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    /// Milliseconds since the restream started.
    pub millis: u64,
    pub body: Bytes,
}

impl Tag {
    /// An AVC or AAC sequence header (decoder configuration).
    pub fn is_sequence_header(&self) -> bool {
        flv::is_sequence_header(self.kind, &self.body)
    }

    /// A video keyframe (not a sequence header).
    pub fn is_keyframe(&self) -> bool {
        flv::is_keyframe(self.kind, &self.body)
    }
}

impl From<FlvTag> for Tag {
    fn from(tag: FlvTag) -> Self {
        Tag {
            kind: tag.kind,
            // ffmpeg keeps our timestamps (`-copyts`): milliseconds of the lesson's clock.
            millis: u64::from(tag.millis),
            body: tag.body,
        }
    }
}
