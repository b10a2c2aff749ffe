//! The encoder's clip: a short FLV file (H.264 without B-frames and AAC, as OBS sends)
//! committed under `loadtest/media/` and built into the binary, read into its tags.

use classroom_codec::CodecError;
use classroom_codec::flv::{FlvReader, VideoTag, parse_video_tag};
pub use classroom_codec::flv::{FlvTag, TagKind};
use thiserror::Error;

const INGEST_CLIP: &[u8] = include_bytes!("../../media/ingest-360p.flv");

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("not an FLV file: {0}")]
    NotFlv(#[from] CodecError),
    #[error("the last {0} bytes are not a whole tag")]
    Truncated(usize),
    #[error("no AVC decoder configuration before the first picture")]
    NoAvcConfig,
}

/// The clip's tags in file order (script data dropped), its length, and the AVC length size.
#[derive(Debug)]
pub struct FlvClip {
    pub tags: Vec<FlvTag>,
    /// One loop: the tags of loop `n` are sent at `n × duration_ms + millis`.
    pub duration_ms: u32,
    /// Bytes in front of each NAL unit in video tags (from the decoder configuration).
    pub nal_length_size: usize,
    pub width: u32,
    pub height: u32,
}

impl FlvClip {
    /// The built-in clip: 640×360, 30 fps, a keyframe every second, 2 s, AAC at 48 kHz.
    pub fn builtin() -> Result<FlvClip, FlvError> {
        let mut clip = FlvClip::parse(INGEST_CLIP)?;
        (clip.width, clip.height) = (640, 360);
        Ok(clip)
    }

    pub fn parse(bytes: &[u8]) -> Result<FlvClip, FlvError> {
        let mut reader = FlvReader::new();
        let tags: Vec<FlvTag> = reader
            .push(bytes)?
            .into_iter()
            // AVC end of sequence (packet type 2): the clip loops, the sequence goes on.
            .filter(|t| !(t.kind == TagKind::Video && t.body.get(1) == Some(&2)))
            .collect();
        if reader.pending() > 0 {
            return Err(FlvError::Truncated(reader.pending()));
        }
        let config = tags
            .iter()
            .find(|t| t.kind == TagKind::Video && t.is_sequence_header())
            .ok_or(FlvError::NoAvcConfig)?;
        let Ok(VideoTag::SequenceHeader(config)) = parse_video_tag(&config.body) else {
            return Err(FlvError::NoAvcConfig);
        };
        let nal_length_size = config.nal_length_size;
        let video: Vec<u32> = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video && !t.is_sequence_header())
            .map(|t| t.millis)
            .collect();
        let frame_ms = match (video.first(), video.last()) {
            (Some(first), Some(last)) if video.len() > 1 => {
                last.saturating_sub(*first) / (video.len() as u32 - 1)
            }
            _ => 33,
        };
        let duration_ms = video.last().map_or(0, |last| last + frame_ms).max(1);
        Ok(FlvClip {
            tags,
            duration_ms,
            nal_length_size,
            width: 0,
            height: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_clip_is_h264_and_aac_without_b_frames() {
        let clip = FlvClip::builtin().expect("the clip parses");
        assert_eq!(clip.nal_length_size, 4);
        assert!(
            (1900..=2100).contains(&clip.duration_ms),
            "{}",
            clip.duration_ms
        );
        let video: Vec<&FlvTag> = clip
            .tags
            .iter()
            .filter(|t| t.kind == TagKind::Video && !t.is_sequence_header())
            .collect();
        assert_eq!(video.len(), 60);
        // Composition time 0 everywhere: presentation order is decoding order.
        assert!(
            video
                .iter()
                .all(|t| t.body.get(2..5) == Some(&[0, 0, 0][..]))
        );
        let keyframes = video.iter().filter(|t| t.body[0] >> 4 == 1).count();
        assert_eq!(keyframes, 2);
        // AAC (sound format 10).
        assert!(
            clip.tags
                .iter()
                .any(|t| t.kind == TagKind::Audio && t.body[0] >> 4 == 10)
        );
        // Each picture has a key the students can find.
        let keys: std::collections::HashSet<u64> = video
            .iter()
            .flat_map(|t| super::super::frames::flv_keys(&t.body, clip.nal_length_size))
            .collect();
        assert_eq!(keys.len(), 60, "one slice per picture, each unique");
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            FlvClip::parse(b"nope").err(),
            Some(FlvError::NotFlv(CodecError::NotFlv))
        );
        let clip = include_bytes!("../../media/ingest-360p.flv");
        assert!(matches!(
            FlvClip::parse(&clip[..clip.len() - 5]),
            Err(FlvError::Truncated(_))
        ));
    }
}
