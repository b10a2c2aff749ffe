//! FLV tag bodies as RTMP carries them (video message type 9, audio type 8): pure parsers.
//!
//! Only what a browser can receive without help is accepted: H.264 (AVC, legacy FLV codec id 7)
//! and AAC. HEVC, AV1, VP9 and every Enhanced RTMP tag (the ex-header bit, FourCC codecs) are
//! refused with a reason a teacher can act on. Every parser returns an error on bad input; none
//! indexes past the end of its slice.

use bytes::Bytes;
use thiserror::Error;

/// Why a tag could not be used. The message is meant for the teacher who runs the encoder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    #[error("the tag is truncated ({0})")]
    Truncated(&'static str),
    #[error(
        "video codec {0} is not supported: set the encoder to H.264 (x264 or a hardware H.264 encoder)"
    )]
    UnsupportedVideoCodec(&'static str),
    #[error(
        "Enhanced RTMP video ({0}) is not supported: set the encoder to H.264 (x264 or a hardware H.264 encoder)"
    )]
    EnhancedRtmp(String),
    #[error("audio codec {0} is not supported: set the encoder's audio to AAC")]
    UnsupportedAudioCodec(&'static str),
    #[error("the AVC decoder configuration is invalid: {0}")]
    InvalidAvcConfig(&'static str),
    #[error("the AAC AudioSpecificConfig is invalid: {0}")]
    InvalidAacConfig(&'static str),
    #[error("an H.264 NAL unit length runs past the end of the tag")]
    NalLengthOverrun,
}

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
    /// The NAL units, still length-prefixed; split them with [`split_nal_units`].
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
pub fn parse_video_tag(body: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated("empty video tag"))?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: [ex-header:1][frame type:3][packet type:4][FourCC:4].
        let fourcc = body
            .get(1..5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_else(|| "no FourCC".to_owned());
        return Err(FlvError::EnhancedRtmp(fourcc));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == FLV_FRAME_INFO {
        return Ok(VideoTag::Ignored);
    }
    if codec != FLV_CODEC_AVC {
        return Err(FlvError::UnsupportedVideoCodec(video_codec_name(codec)));
    }
    let header = body
        .get(1..5)
        .ok_or(FlvError::Truncated("AVC packet header"))?;
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
pub fn parse_avc_config(record: &[u8]) -> Result<AvcConfig, FlvError> {
    let mut r = Reader(record);
    let version = r.u8().ok_or(FlvError::InvalidAvcConfig("empty"))?;
    if version != 1 {
        return Err(FlvError::InvalidAvcConfig("version is not 1"));
    }
    let truncated = FlvError::InvalidAvcConfig("truncated");
    let profile = r.u8().ok_or(truncated.clone())?;
    let profile_compatibility = r.u8().ok_or(truncated.clone())?;
    let level = r.u8().ok_or(truncated.clone())?;
    let nal_length_size = usize::from(r.u8().ok_or(truncated.clone())? & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(FlvError::InvalidAvcConfig("NAL length size 3"));
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
        return Err(FlvError::InvalidAvcConfig("empty parameter set"));
    }
    if sps.is_empty() || pps.is_empty() {
        return Err(FlvError::InvalidAvcConfig("no SPS or no PPS"));
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

/// Splits length-prefixed NAL units (AVCC framing). Empty NAL units are skipped.
pub fn split_nal_units(data: &Bytes, nal_length_size: usize) -> Result<Vec<Bytes>, FlvError> {
    let mut units = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let prefix = data
            .get(at..at + nal_length_size)
            .ok_or(FlvError::NalLengthOverrun)?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = at + nal_length_size;
        let end = start.checked_add(len).ok_or(FlvError::NalLengthOverrun)?;
        if end > data.len() {
            return Err(FlvError::NalLengthOverrun);
        }
        if len > 0 {
            units.push(data.slice(start..end));
        }
        at = end;
    }
    Ok(units)
}

/// Parses the body of an RTMP audio message.
pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated("empty audio tag"))?;
    let format = first >> 4;
    if format == FLV_SOUND_EX_HEADER {
        return Err(FlvError::UnsupportedAudioCodec("Enhanced RTMP audio"));
    }
    if format != FLV_SOUND_AAC {
        return Err(FlvError::UnsupportedAudioCodec(audio_codec_name(format)));
    }
    let packet_type = *body.get(1).ok_or(FlvError::Truncated("AAC packet type"))?;
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
pub fn parse_aac_config(config: &[u8]) -> Result<AacConfig, FlvError> {
    let bytes = config
        .get(0..2)
        .ok_or(FlvError::InvalidAacConfig("shorter than 2 bytes"))?;
    let bits = u16::from_be_bytes([bytes[0], bytes[1]]);
    let object_type = (bits >> 11) as u8;
    let frequency_index = ((bits >> 7) & 0x0f) as u8;
    let channels = ((bits >> 3) & 0x0f) as u8;
    if !(1..=4).contains(&object_type) {
        return Err(FlvError::InvalidAacConfig(
            "audio object type is not AAC Main, LC, SSR or LTP",
        ));
    }
    let sample_rate =
        *AAC_SAMPLE_RATES
            .get(usize::from(frequency_index))
            .ok_or(FlvError::InvalidAacConfig(
                "non-standard sampling frequency",
            ))?;
    if !(1..=2).contains(&channels) {
        return Err(FlvError::InvalidAacConfig(
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
    fn nal_units_split_with_the_configured_length_size() {
        let data = Bytes::from_static(&[0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06]);
        let units = split_nal_units(&data, 2).unwrap();
        assert_eq!(
            units,
            vec![
                Bytes::from_static(&[0x65, 0xaa]),
                Bytes::from_static(&[0x06])
            ]
        );
        assert_eq!(
            split_nal_units(&Bytes::from_static(&[0, 0, 0, 9, 1]), 4),
            Err(FlvError::NalLengthOverrun)
        );
        assert_eq!(
            split_nal_units(&Bytes::from_static(&[0, 0]), 4),
            Err(FlvError::NalLengthOverrun)
        );
    }

    #[test]
    fn hevc_av1_and_enhanced_rtmp_are_refused_with_a_reason() {
        let hevc = parse_video_tag(&Bytes::from_static(&[0x1c, 0, 0, 0, 0])).unwrap_err();
        assert!(hevc.to_string().contains("HEVC"), "{hevc}");
        let av1 = parse_video_tag(&Bytes::from_static(&[0x1d, 0, 0, 0, 0])).unwrap_err();
        assert!(av1.to_string().contains("AV1"), "{av1}");
        let ex = parse_video_tag(&Bytes::from_static(b"\x90hvc1\x01")).unwrap_err();
        assert_eq!(ex, FlvError::EnhancedRtmp("hvc1".into()));
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
}
