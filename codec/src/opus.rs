//! Opus in RTP (RFC 7587): one frame per packet, the payload is the frame.

use bytes::Bytes;

use crate::rtp::RtpPacket;

/// The 20 ms Opus packet that decodes to silence (CELT, fullband, mono).
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Numbers Opus packets: one 20 ms frame per RTP packet.
#[derive(Debug, Clone)]
pub struct OpusPacketizer {
    next_sequence: u16,
}

impl OpusPacketizer {
    pub fn new(first_sequence: u16) -> Self {
        OpusPacketizer {
            next_sequence: first_sequence,
        }
    }

    pub fn packetize(&mut self, frame: Bytes, timestamp: u32) -> RtpPacket {
        let sequence_number = self.next_sequence;
        self.next_sequence = sequence_number.wrapping_add(1);
        RtpPacket {
            payload: frame,
            marker: false,
            timestamp,
            sequence_number,
            keyframe: false,
        }
    }
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte (RFC 6716 3.1); `None` if
/// malformed (empty, or a code 3 packet without its frame count).
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    Some(frame * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_and_frames_pass_unchanged() {
        let mut p = OpusPacketizer::new(u16::MAX);
        let a = p.packetize(Bytes::from_static(&OPUS_SILENCE), 960);
        let b = p.packetize(Bytes::new(), 1920);
        assert_eq!((a.sequence_number, b.sequence_number), (u16::MAX, 0));
        assert_eq!(&a.payload[..], &OPUS_SILENCE);
        assert!(!a.marker && !a.keyframe && b.payload.is_empty());
    }

    #[test]
    fn twenty_ms_frames() {
        // Config 15: hybrid fullband 20 ms; config 31: CELT fullband 20 ms.
        assert_eq!(packet_samples(&[15 << 3]), Some(960));
        assert_eq!(packet_samples(&[31 << 3]), Some(960));
        assert_eq!(packet_samples(&[(31 << 3) | 1]), Some(1920));
        assert_eq!(packet_samples(&OPUS_SILENCE), Some(960));
        // Code 3: the count is in the second byte, which may be missing.
        assert_eq!(packet_samples(&[(31 << 3) | 3, 0x3f]), Some(960 * 63));
        assert_eq!(packet_samples(&[(31 << 3) | 3]), None);
        assert_eq!(packet_samples(&[]), None);
    }
}
