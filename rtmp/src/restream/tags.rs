//! FLV tags on their way to the destinations: read from ffmpeg's FLV output ([`FlvReader`]),
//! or built from H.264 that passes through untouched ([`AvcTagger`]). A tag's body is what an
//! RTMP audio or video message carries.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bigger tags are refused: ffmpeg never writes one, so the stream is broken.
const MAX_TAG_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
}

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
        self.body.get(1) == Some(&0)
            && match self.kind {
                TagKind::Video => self.body.first().is_some_and(|b| b & 0x0f == 7),
                TagKind::Audio => self.body.first().is_some_and(|b| b >> 4 == 10),
            }
    }

    /// A video keyframe (not a sequence header).
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video
            && self.body.first().is_some_and(|b| b >> 4 == 1)
            && !self.is_sequence_header()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvReadError {
    #[error("the transcoder's output is not FLV")]
    NotFlv,
    #[error("the transcoder wrote a tag of {0} bytes")]
    TooLarge(usize),
}

/// Reads an FLV byte stream (header, then tags) as it arrives.
#[derive(Debug, Default)]
pub struct FlvReader {
    buf: BytesMut,
    header_done: bool,
}

impl FlvReader {
    pub fn new() -> Self {
        FlvReader::default()
    }

    /// Audio and video tags completed by `data` (script tags are skipped).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Tag>, FlvReadError> {
        self.buf.extend_from_slice(data);
        let mut tags = Vec::new();
        if !self.header_done {
            if self.buf.len() < 13 {
                return Ok(tags);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvReadError::NotFlv);
            }
            let header_len =
                u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            let skip = header_len as usize + 4;
            if self.buf.len() < skip {
                return Ok(tags);
            }
            self.buf.advance(skip);
            self.header_done = true;
        }
        while self.buf.len() >= 11 {
            let kind = self.buf[0] & 0x1f;
            let size = (usize::from(self.buf[1]) << 16)
                | (usize::from(self.buf[2]) << 8)
                | usize::from(self.buf[3]);
            if size > MAX_TAG_BYTES {
                return Err(FlvReadError::TooLarge(size));
            }
            if self.buf.len() < 11 + size + 4 {
                break;
            }
            let millis = (u32::from(self.buf[7]) << 24)
                | (u32::from(self.buf[4]) << 16)
                | (u32::from(self.buf[5]) << 8)
                | u32::from(self.buf[6]);
            self.buf.advance(11);
            let body = self.buf.split_to(size).freeze();
            self.buf.advance(4);
            let kind = match kind {
                8 => TagKind::Audio,
                9 => TagKind::Video,
                _ => continue,
            };
            if body.is_empty() {
                continue;
            }
            tags.push(Tag {
                kind,
                // ffmpeg keeps our timestamps (`-copyts`): milliseconds of the lesson's clock.
                millis: u64::from(millis),
                body,
            });
        }
        Ok(tags)
    }
}

/// Turns H.264 frames (NAL units) into FLV video tags without changing a byte of the slices:
/// a sequence header whenever SPS or PPS change, then length-prefixed NAL units.
#[derive(Debug, Default)]
pub struct AvcTagger {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    sent_config: Option<(Bytes, Bytes)>,
}

impl AvcTagger {
    pub fn new() -> Self {
        AvcTagger::default()
    }

    /// The tags of one frame; nothing until a keyframe with its parameter sets was seen.
    pub fn frame(&mut self, units: &[Bytes], keyframe: bool, millis: u64) -> Vec<Tag> {
        let mut tags = Vec::new();
        for unit in units {
            match unit.first().map(|h| h & 0x1f) {
                Some(7) => self.sps = Some(unit.clone()),
                Some(8) => self.pps = Some(unit.clone()),
                _ => {}
            }
        }
        let (Some(sps), Some(pps)) = (self.sps.clone(), self.pps.clone()) else {
            return tags;
        };
        if self.sent_config.is_none() && !keyframe {
            return tags;
        }
        if self.sent_config.as_ref() != Some(&(sps.clone(), pps.clone())) {
            if let Some(record) = avc_config_record(&sps, &pps) {
                let mut body = BytesMut::from(&[0x17, 0, 0, 0, 0][..]);
                body.put_slice(&record);
                tags.push(Tag {
                    kind: TagKind::Video,
                    millis,
                    body: body.freeze(),
                });
                self.sent_config = Some((sps, pps));
            } else {
                return tags;
            }
        }
        let mut body = BytesMut::new();
        body.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        for unit in units {
            // Parameter sets travel in the sequence header; access unit delimiters not at all.
            if matches!(unit.first().map(|h| h & 0x1f), Some(7..=9)) {
                continue;
            }
            body.put_u32(unit.len() as u32);
            body.put_slice(unit);
        }
        if body.len() > 5 {
            tags.push(Tag {
                kind: TagKind::Video,
                millis,
                body: body.freeze(),
            });
        }
        tags
    }
}

/// AVCDecoderConfigurationRecord (ISO 14496-15) with one SPS and one PPS.
fn avc_config_record(sps: &[u8], pps: &[u8]) -> Option<Bytes> {
    let (profile, compat, level) = (*sps.get(1)?, *sps.get(2)?, *sps.get(3)?);
    let mut r = BytesMut::new();
    r.put_slice(&[1, profile, compat, level, 0xff, 0xe1]);
    r.put_u16(u16::try_from(sps.len()).ok()?);
    r.put_slice(sps);
    r.put_u8(1);
    r.put_u16(u16::try_from(pps.len()).ok()?);
    r.put_slice(pps);
    Some(r.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv_tag(kind: u8, millis: u32, body: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        t.extend_from_slice(&millis.to_be_bytes()[1..]);
        t.push((millis >> 24) as u8);
        t.extend_from_slice(&[0, 0, 0]);
        t.extend_from_slice(body);
        t.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        t
    }

    #[test]
    fn flv_is_read_in_pieces() {
        let mut stream = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        stream.extend(flv_tag(18, 0, b"script"));
        stream.extend(flv_tag(9, 40, &[0x17, 0, 0, 0, 0, 1]));
        stream.extend(flv_tag(8, 0x0100_0010, &[0xaf, 1, 9]));
        let mut reader = FlvReader::new();
        let mut tags = Vec::new();
        for piece in stream.chunks(7) {
            tags.extend(reader.push(piece).expect("valid"));
        }
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].kind, tags[0].millis), (TagKind::Video, 40));
        assert!(tags[0].is_sequence_header());
        assert_eq!(
            (tags[1].kind, tags[1].millis),
            (TagKind::Audio, 0x0100_0010)
        );
        assert!(!tags[1].is_sequence_header());
        assert_eq!(FlvReader::new().push(&[0u8; 20]), Err(FlvReadError::NotFlv));
    }

    #[test]
    fn h264_passes_through_with_a_sequence_header() {
        let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xaa]);
        let pps = Bytes::from_static(&[0x68, 0xce]);
        let idr = Bytes::from_static(&[0x65, 1, 2, 3]);
        let mut tagger = AvcTagger::new();
        assert!(
            tagger
                .frame(&[Bytes::from_static(&[0x41, 9])], false, 0)
                .is_empty()
        );
        let tags = tagger.frame(&[sps.clone(), pps.clone(), idr.clone()], true, 33);
        assert_eq!(tags.len(), 2);
        assert!(tags[0].is_sequence_header());
        assert_eq!(&tags[0].body[5..11], &[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
        assert!(tags[1].is_keyframe());
        assert_eq!(&tags[1].body[5..], &[0, 0, 0, 4, 0x65, 1, 2, 3]);
        // Same parameter sets again: no new header.
        let tags = tagger.frame(&[sps, pps, idr], true, 66);
        assert_eq!(tags.len(), 1);
    }
}
