//! FLV: tag bodies as RTMP carries them (video message type 9, audio type 8), the AVC and AAC
//! decoder configurations, FLV files and streams ([`FlvReader`]), and video tags built from
//! H.264 that passes through untouched ([`AvcTagger`]).
//!
//! Only what a browser can receive without help is accepted: H.264 (AVC, legacy FLV codec id 7)
//! and AAC. HEVC, AV1, VP9 and every Enhanced RTMP tag (the ex-header bit, FourCC codecs) are
//! refused with a reason a teacher can act on. Every parser returns an error on bad input; none
//! indexes past the end of its slice.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::CodecError;
use crate::h264;

/// One parsed video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// The AVC sequence header: parameter sets and the NAL length size.
    SequenceHeader(AvcConfig),
    /// One coded picture (an access unit) as length-prefixed NAL units.
    Frame(AvcFrame),
    /// End of sequence, or a video info/command frame: nothing to forward.
    Ignored,
}

/// One coded H.264 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcFrame {
    /// FLV frame type 1 (a keyframe: an IDR picture).
    pub keyframe: bool,
    /// Presentation minus decode time in milliseconds. Non-zero means the stream has B-frames
    /// (frames are sent out of display order).
    pub composition_time_ms: i32,
    /// The NAL units, still length-prefixed; split them with [`crate::annexb::split_avcc`].
    pub data: Bytes,
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1), the parts we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile: u8,
    pub profile_compatibility: u8,
    pub level: u8,
    /// Size in bytes (1, 2 or 4) of the length prefix of every NAL unit in frames.
    pub nal_length_size: usize,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// The SDP `profile-level-id` (six hex digits) of this stream.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile, self.profile_compatibility, self.level
        )
    }
}

/// One parsed audio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// The AAC sequence header.
    SequenceHeader(AacConfig),
    /// One raw AAC frame (no ADTS header).
    Frame(Bytes),
}

/// An AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the parts an ADTS header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 is AAC-LC).
    pub object_type: u8,
    /// Index into the standard sampling frequency table.
    pub frequency_index: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

const FLV_CODEC_AVC: u8 = 7;
const FLV_FRAME_KEY: u8 = 1;
const FLV_FRAME_INFO: u8 = 5;
const FLV_SOUND_AAC: u8 = 10;
/// Enhanced RTMP v2 marks an audio ex-header with sound format 9.
const FLV_SOUND_EX_HEADER: u8 = 9;

/// Parses the body of an RTMP video message.
pub fn parse_video_tag(body: &Bytes) -> Result<VideoTag, CodecError> {
    let first = *body
        .first()
        .ok_or(CodecError::Truncated("empty video tag"))?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: [ex-header:1][frame type:3][packet type:4][FourCC:4].
        let fourcc = body
            .get(1..5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_else(|| "no FourCC".to_owned());
        return Err(CodecError::EnhancedRtmp(fourcc));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == FLV_FRAME_INFO {
        return Ok(VideoTag::Ignored);
    }
    if codec != FLV_CODEC_AVC {
        return Err(CodecError::UnsupportedVideoCodec(video_codec_name(codec)));
    }
    let header = body
        .get(1..5)
        .ok_or(CodecError::Truncated("AVC packet header"))?;
    let packet_type = header[0];
    // SI24, big-endian: sign-extend from 24 bits.
    let raw = u32::from_be_bytes([0, header[1], header[2], header[3]]);
    let composition_time_ms = ((raw << 8) as i32) >> 8;
    let payload = body.slice(5..);
    match packet_type {
        0 => parse_avc_config(&payload).map(VideoTag::SequenceHeader),
        1 => Ok(VideoTag::Frame(AvcFrame {
            keyframe: frame_type == FLV_FRAME_KEY,
            composition_time_ms,
            data: payload,
        })),
        _ => Ok(VideoTag::Ignored),
    }
}

fn video_codec_name(codec: u8) -> &'static str {
    match codec {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "VP6",
        5 => "VP6 with alpha",
        6 => "Screen video 2",
        12 => "HEVC (H.265)",
        13 => "AV1",
        _ => "unknown",
    }
}

/// Parses an AVCDecoderConfigurationRecord.
pub fn parse_avc_config(record: &[u8]) -> Result<AvcConfig, CodecError> {
    let mut r = Reader(record);
    let version = r.u8().ok_or(CodecError::InvalidAvcConfig("empty"))?;
    if version != 1 {
        return Err(CodecError::InvalidAvcConfig("version is not 1"));
    }
    let truncated = CodecError::InvalidAvcConfig("truncated");
    let profile = r.u8().ok_or(truncated.clone())?;
    let profile_compatibility = r.u8().ok_or(truncated.clone())?;
    let level = r.u8().ok_or(truncated.clone())?;
    let nal_length_size = usize::from(r.u8().ok_or(truncated.clone())? & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(CodecError::InvalidAvcConfig("NAL length size 3"));
    }
    let sps_count = r.u8().ok_or(truncated.clone())? & 0x1f;
    let mut sps = Vec::with_capacity(usize::from(sps_count));
    for _ in 0..sps_count {
        let len = usize::from(r.u16().ok_or(truncated.clone())?);
        sps.push(Bytes::copy_from_slice(
            r.take(len).ok_or(truncated.clone())?,
        ));
    }
    let pps_count = r.u8().ok_or(truncated.clone())?;
    let mut pps = Vec::with_capacity(usize::from(pps_count));
    for _ in 0..pps_count {
        let len = usize::from(r.u16().ok_or(truncated.clone())?);
        pps.push(Bytes::copy_from_slice(
            r.take(len).ok_or(truncated.clone())?,
        ));
    }
    if sps.iter().chain(&pps).any(|p| p.is_empty()) {
        return Err(CodecError::InvalidAvcConfig("empty parameter set"));
    }
    if sps.is_empty() || pps.is_empty() {
        return Err(CodecError::InvalidAvcConfig("no SPS or no PPS"));
    }
    Ok(AvcConfig {
        profile,
        profile_compatibility,
        level,
        nal_length_size,
        sps,
        pps,
    })
}

/// Parses the body of an RTMP audio message.
pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTag, CodecError> {
    let first = *body
        .first()
        .ok_or(CodecError::Truncated("empty audio tag"))?;
    let format = first >> 4;
    if format == FLV_SOUND_EX_HEADER {
        return Err(CodecError::UnsupportedAudioCodec("Enhanced RTMP audio"));
    }
    if format != FLV_SOUND_AAC {
        return Err(CodecError::UnsupportedAudioCodec(audio_codec_name(format)));
    }
    let packet_type = *body
        .get(1)
        .ok_or(CodecError::Truncated("AAC packet type"))?;
    let payload = body.slice(2..);
    match packet_type {
        0 => parse_aac_config(&payload).map(AudioTag::SequenceHeader),
        _ => Ok(AudioTag::Frame(payload)),
    }
}

fn audio_codec_name(format: u8) -> &'static str {
    match format {
        0 | 3 => "PCM",
        1 => "ADPCM",
        2 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        14 => "MP3 8 kHz",
        _ => "unknown",
    }
}

const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an AudioSpecificConfig. Only object types an ADTS header can carry (1 to 4) and the
/// standard sampling frequencies are accepted, since ffmpeg receives the audio as ADTS.
pub fn parse_aac_config(config: &[u8]) -> Result<AacConfig, CodecError> {
    let bytes = config
        .get(0..2)
        .ok_or(CodecError::InvalidAacConfig("shorter than 2 bytes"))?;
    let bits = u16::from_be_bytes([bytes[0], bytes[1]]);
    let object_type = (bits >> 11) as u8;
    let frequency_index = ((bits >> 7) & 0x0f) as u8;
    let channels = ((bits >> 3) & 0x0f) as u8;
    if !(1..=4).contains(&object_type) {
        return Err(CodecError::InvalidAacConfig(
            "audio object type is not AAC Main, LC, SSR or LTP",
        ));
    }
    let sample_rate =
        *AAC_SAMPLE_RATES
            .get(usize::from(frequency_index))
            .ok_or(CodecError::InvalidAacConfig(
                "non-standard sampling frequency",
            ))?;
    if !(1..=2).contains(&channels) {
        return Err(CodecError::InvalidAacConfig(
            "only mono and stereo are supported",
        ));
    }
    Ok(AacConfig {
        object_type,
        frequency_index,
        sample_rate,
        channels,
    })
}

impl AacConfig {
    /// The 7-byte ADTS header (no CRC) for one raw frame of `frame_len` bytes, so that ffmpeg can
    /// read the audio as a plain `.aac` stream. `None` if the frame is too long for ADTS.
    pub fn adts_header(&self, frame_len: usize) -> Option<[u8; 7]> {
        let total = frame_len.checked_add(7)?;
        if total > 0x1fff {
            return None;
        }
        let total = total as u16;
        let profile = self.object_type - 1;
        Some([
            0xff,
            0xf1,
            (profile << 6) | (self.frequency_index << 2) | (self.channels >> 2),
            ((self.channels & 3) << 6) | ((total >> 11) as u8),
            ((total >> 3) & 0xff) as u8,
            (((total & 7) as u8) << 5) | 0x1f,
            0xfc,
        ])
    }
}

/// A cursor that returns `None` instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }
}

/// Bigger tags are refused by [`FlvReader`]: no encoder or ffmpeg writes one, the stream is
/// broken.
pub const MAX_TAG_BYTES: usize = 8 * 1024 * 1024;

/// The kind of an audio or video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
}

/// One audio or video tag of an FLV stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// The tag's timestamp in milliseconds (decoding time for video).
    pub millis: u32,
    pub body: Bytes,
}

impl FlvTag {
    /// An AVC or AAC sequence header (decoder configuration).
    pub fn is_sequence_header(&self) -> bool {
        is_sequence_header(self.kind, &self.body)
    }

    /// A video keyframe (not a sequence header).
    pub fn is_keyframe(&self) -> bool {
        is_keyframe(self.kind, &self.body)
    }
}

/// Whether a tag body is an AVC or AAC sequence header (decoder configuration).
pub fn is_sequence_header(kind: TagKind, body: &[u8]) -> bool {
    body.get(1) == Some(&0)
        && match kind {
            TagKind::Video => body.first().is_some_and(|b| b & 0x0f == FLV_CODEC_AVC),
            TagKind::Audio => body.first().is_some_and(|b| b >> 4 == FLV_SOUND_AAC),
        }
}

/// Whether a tag body is a video keyframe (not a sequence header).
pub fn is_keyframe(kind: TagKind, body: &[u8]) -> bool {
    kind == TagKind::Video
        && body.first().is_some_and(|b| b >> 4 == FLV_FRAME_KEY)
        && !is_sequence_header(kind, body)
}

/// Reads an FLV byte stream (header, then tags) as it arrives in pieces of any size. Script
/// tags and empty tags are skipped.
#[derive(Debug, Default)]
pub struct FlvReader {
    buf: BytesMut,
    header_done: bool,
}

impl FlvReader {
    pub fn new() -> Self {
        FlvReader::default()
    }

    /// Audio and video tags completed by `data`. Errors: the stream does not start with an
    /// FLV header, or a tag announces more than [`MAX_TAG_BYTES`].
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<FlvTag>, CodecError> {
        self.buf.extend_from_slice(data);
        let mut tags = Vec::new();
        if !self.header_done {
            let signature = self.buf.len().min(3);
            if self.buf[..signature] != b"FLV"[..signature] {
                return Err(CodecError::NotFlv);
            }
            if self.buf.len() < 13 {
                return Ok(tags);
            }
            let header_len =
                u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            // Then the first "previous tag size" (4 bytes).
            let skip = (header_len as usize).saturating_add(4);
            if skip > MAX_TAG_BYTES {
                return Err(CodecError::TooLarge(skip));
            }
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
                return Err(CodecError::TooLarge(size));
            }
            if self.buf.len() < 11 + size + 4 {
                break;
            }
            // 24 bits, then the extension byte on top.
            let millis = u32::from_be_bytes([self.buf[7], self.buf[4], self.buf[5], self.buf[6]]);
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
            tags.push(FlvTag { kind, millis, body });
        }
        Ok(tags)
    }

    /// Bytes received that are not yet a whole tag (a file that ends here is truncated).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Turns H.264 frames (NAL units) into FLV video tag bodies without changing a byte of the
/// slices: a sequence header whenever SPS or PPS change, then length-prefixed NAL units.
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

    /// The video tag bodies of one frame; nothing until a keyframe with its parameter sets was
    /// seen.
    pub fn frame(&mut self, units: &[Bytes], keyframe: bool) -> Vec<Bytes> {
        let mut tags = Vec::new();
        for unit in units {
            match h264::nal_type(unit) {
                Some(h264::NAL_SPS) => self.sps = Some(unit.clone()),
                Some(h264::NAL_PPS) => self.pps = Some(unit.clone()),
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
            let Some(record) = avc_config_record(&sps, &pps) else {
                return tags;
            };
            let mut body = BytesMut::from(&[0x17, 0, 0, 0, 0][..]);
            body.put_slice(&record);
            tags.push(body.freeze());
            self.sent_config = Some((sps, pps));
        }
        let mut body = BytesMut::new();
        body.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        for unit in units {
            // Parameter sets travel in the sequence header; access unit delimiters not at all.
            if matches!(
                h264::nal_type(unit),
                Some(h264::NAL_SPS | h264::NAL_PPS | h264::NAL_AUD)
            ) {
                continue;
            }
            // A NAL unit comes from one RTP frame, far below 4 GiB.
            body.put_u32(unit.len() as u32);
            body.put_slice(unit);
        }
        if body.len() > 5 {
            tags.push(body.freeze());
        }
        tags
    }
}

/// AVCDecoderConfigurationRecord (ISO 14496-15) with one SPS and one PPS and 4-byte NAL
/// lengths; `None` for an SPS too short to name its profile or a parameter set over 64 KiB.
pub fn avc_config_record(sps: &[u8], pps: &[u8]) -> Option<Bytes> {
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
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

    fn avc_record() -> Vec<u8> {
        let mut r = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        r.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        r.extend_from_slice(SPS);
        r.push(1);
        r.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        r.extend_from_slice(PPS);
        r
    }

    #[test]
    fn sequence_header_gives_parameter_sets_and_nal_length_size() {
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend(avc_record());
        let VideoTag::SequenceHeader(config) = parse_video_tag(&Bytes::from(tag)).unwrap() else {
            panic!("expected a sequence header");
        };
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.sps, vec![Bytes::from_static(SPS)]);
        assert_eq!(config.pps, vec![Bytes::from_static(PPS)]);
        assert_eq!(config.profile_level_id(), "64001f");
    }

    #[test]
    fn every_truncation_of_the_record_is_an_error() {
        let record = avc_record();
        for len in 0..record.len() {
            assert!(parse_avc_config(&record[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn frames_carry_keyframe_flag_and_signed_composition_time() {
        let key = parse_video_tag(&Bytes::from_static(&[
            0x17, 1, 0, 0, 0x42, 0, 0, 0, 1, 0x65,
        ]));
        let VideoTag::Frame(frame) = key.unwrap() else {
            panic!()
        };
        assert!(frame.keyframe);
        assert_eq!(frame.composition_time_ms, 0x42);
        let inter = parse_video_tag(&Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe]));
        let VideoTag::Frame(frame) = inter.unwrap() else {
            panic!()
        };
        assert!(!frame.keyframe);
        assert_eq!(frame.composition_time_ms, -2);
    }

    #[test]
    fn hevc_av1_and_enhanced_rtmp_are_refused_with_a_reason() {
        let hevc = parse_video_tag(&Bytes::from_static(&[0x1c, 0, 0, 0, 0])).unwrap_err();
        assert!(hevc.to_string().contains("HEVC"), "{hevc}");
        let av1 = parse_video_tag(&Bytes::from_static(&[0x1d, 0, 0, 0, 0])).unwrap_err();
        assert!(av1.to_string().contains("AV1"), "{av1}");
        let ex = parse_video_tag(&Bytes::from_static(b"\x90hvc1\x01")).unwrap_err();
        assert_eq!(ex, CodecError::EnhancedRtmp("hvc1".into()));
        assert!(ex.to_string().contains("H.264"));
    }

    #[test]
    fn aac_config_and_adts_header() {
        // AAC-LC, 48 kHz (index 3), stereo: 0x1190.
        let tag = Bytes::from_static(&[0xaf, 0, 0x11, 0x90]);
        let AudioTag::SequenceHeader(config) = parse_audio_tag(&tag).unwrap() else {
            panic!()
        };
        assert_eq!(
            config,
            AacConfig {
                object_type: 2,
                frequency_index: 3,
                sample_rate: 48000,
                channels: 2
            }
        );
        // The header ffmpeg writes for a 100-byte LC 48 kHz stereo frame.
        assert_eq!(
            config.adts_header(100),
            Some([0xff, 0xf1, 0x4c, 0x80, 0x0d, 0x7f, 0xfc])
        );
        assert_eq!(config.adts_header(0x2000), None);
        let raw = parse_audio_tag(&Bytes::from_static(&[0xaf, 1, 9, 9])).unwrap();
        assert_eq!(raw, AudioTag::Frame(Bytes::from_static(&[9, 9])));
        assert!(parse_audio_tag(&Bytes::from_static(&[0x2f, 1])).is_err());
        assert!(parse_aac_config(&[0xf8, 0]).is_err());
    }

    #[test]
    fn no_input_panics() {
        for first in 0..=255u8 {
            for len in 0..8 {
                let mut body = vec![first];
                body.extend(std::iter::repeat_n(0xff, len));
                let body = Bytes::from(body);
                let _ = parse_video_tag(&body);
                let _ = parse_audio_tag(&body);
            }
        }
    }

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

    const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

    #[test]
    fn flv_is_read_in_pieces() {
        let mut stream = FLV_HEADER.to_vec();
        stream.extend(flv_tag(18, 0, b"script"));
        stream.extend(flv_tag(9, 40, &[0x17, 0, 0, 0, 0, 1]));
        stream.extend(flv_tag(9, 41, &[]));
        stream.extend(flv_tag(8, 0x0100_0010, &[0xaf, 1, 9]));
        for piece in 1..stream.len() {
            let mut reader = FlvReader::new();
            let mut tags = Vec::new();
            for chunk in stream.chunks(piece) {
                tags.extend(reader.push(chunk).expect("valid"));
            }
            assert_eq!(tags.len(), 2, "pieces of {piece}");
            assert_eq!((tags[0].kind, tags[0].millis), (TagKind::Video, 40));
            assert!(tags[0].is_sequence_header() && !tags[0].is_keyframe());
            assert_eq!(
                (tags[1].kind, tags[1].millis),
                (TagKind::Audio, 0x0100_0010)
            );
            assert!(!tags[1].is_sequence_header());
            assert_eq!(reader.pending(), 0);
        }
        assert_eq!(FlvReader::new().push(&[0u8; 20]), Err(CodecError::NotFlv));
        assert_eq!(FlvReader::new().push(b"FL?"), Err(CodecError::NotFlv));
        assert_eq!(FlvReader::new().push(b"FL"), Ok(vec![]));
        assert_eq!(FlvReader::new().push(b""), Ok(vec![]));
    }

    #[test]
    fn oversized_tags_and_headers_are_errors_before_anything_is_buffered() {
        let mut stream = FLV_HEADER.to_vec();
        stream.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            FlvReader::new().push(&stream),
            Err(CodecError::TooLarge(0xff_ffff))
        );
        let absurd_header = b"FLV\x01\x05\xff\xff\xff\xff\x00\x00\x00\x00";
        assert!(matches!(
            FlvReader::new().push(absurd_header),
            Err(CodecError::TooLarge(_))
        ));
        // A tag cut short stays pending: a file that ends there is truncated.
        let mut reader = FlvReader::new();
        let mut cut = FLV_HEADER.to_vec();
        cut.extend(&flv_tag(9, 0, &[0x27, 1, 0, 0, 0])[..12]);
        assert!(reader.push(&cut).expect("valid so far").is_empty());
        assert_eq!(reader.pending(), 12);
    }

    #[test]
    fn h264_passes_through_with_a_sequence_header() {
        let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xaa]);
        let pps = Bytes::from_static(&[0x68, 0xce]);
        let idr = Bytes::from_static(&[0x65, 1, 2, 3]);
        let aud = Bytes::from_static(&[0x09, 0xf0]);
        let mut tagger = AvcTagger::new();
        assert!(
            tagger
                .frame(&[Bytes::from_static(&[0x41, 9])], false)
                .is_empty()
        );
        let tags = tagger.frame(&[aud, sps.clone(), pps.clone(), idr.clone()], true);
        assert_eq!(tags.len(), 2);
        assert!(is_sequence_header(TagKind::Video, &tags[0]));
        assert_eq!(&tags[0][5..11], &[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
        assert!(is_keyframe(TagKind::Video, &tags[1]));
        assert_eq!(&tags[1][5..], &[0, 0, 0, 4, 0x65, 1, 2, 3]);
        // The record it wrote is one the parser takes.
        let config = parse_avc_config(&tags[0][5..]).unwrap();
        assert_eq!(
            (config.sps, config.pps),
            (vec![sps.clone()], vec![pps.clone()])
        );
        // Same parameter sets again: no new header.
        let tags = tagger.frame(&[sps, pps, idr], true);
        assert_eq!(tags.len(), 1);
        // An SPS too short to name its profile gives no header, so no pictures.
        let mut short = AvcTagger::new();
        let stub = [Bytes::from_static(&[0x67]), Bytes::from_static(&[0x68])];
        assert!(short.frame(&stub, true).is_empty());
        assert!(short.frame(&[], true).is_empty());
    }
}
