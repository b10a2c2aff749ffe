//! Ogg pages from ffmpeg's Opus encoder, read back into Opus packets (RFC 3533, RFC 7845).

use bytes::{Buf, Bytes, BytesMut};

/// Bound on the bytes held while waiting for a page to complete.
const MAX_BUFFERED: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    #[error("the transcoder's Ogg stream lost page sync")]
    NoCapturePattern,
    #[error("the transcoder's Ogg stream buffers more than {MAX_BUFFERED} bytes")]
    TooLarge,
}

/// Reassembles packets from Ogg pages that arrive in arbitrary pieces, and drops the two Opus
/// header packets (OpusHead, OpusTags).
#[derive(Debug, Default)]
pub struct OggOpusReader {
    buf: BytesMut,
    partial: BytesMut,
    headers_seen: u8,
}

impl OggOpusReader {
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, OggError> {
        self.buf.extend_from_slice(data);
        let mut packets = Vec::new();
        loop {
            if self.buf.len() < 27 {
                break;
            }
            if self.buf.get(0..4) != Some(b"OggS") {
                return Err(OggError::NoCapturePattern);
            }
            let segments = usize::from(self.buf.get(26).copied().unwrap_or(0));
            let Some(table) = self.buf.get(27..27 + segments) else {
                break;
            };
            let body_len: usize = table.iter().map(|l| usize::from(*l)).sum();
            let lacing: Vec<u8> = table.to_vec();
            if self.buf.len() < 27 + segments + body_len {
                break;
            }
            self.buf.advance(27 + segments);
            let mut body = self.buf.split_to(body_len);
            for len in lacing {
                let piece = body.split_to(usize::from(len));
                self.partial.extend_from_slice(&piece);
                if len < 255 {
                    let packet = std::mem::take(&mut self.partial).freeze();
                    if self.headers_seen < 2 {
                        self.headers_seen += 1;
                    } else if !packet.is_empty() {
                        packets.push(packet);
                    }
                }
            }
        }
        if self.buf.len() + self.partial.len() > MAX_BUFFERED {
            return Err(OggError::TooLarge);
        }
        Ok(packets)
    }
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte (RFC 6716 3.1); `None` if malformed.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
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
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    fn page(packets: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        let mut body = Vec::new();
        for p in packets {
            let mut left = p.len();
            while left >= 255 {
                table.push(255);
                left -= 255;
            }
            table.push(left as u8);
            body.extend_from_slice(p);
        }
        let mut out = b"OggS".to_vec();
        out.extend([0; 22]);
        out.push(table.len() as u8);
        out.extend(table);
        out.extend(body);
        out
    }

    #[test]
    fn packets_come_back_without_headers_in_any_pieces() {
        let big = vec![0x78; 600];
        let mut stream = page(&[b"OpusHead"]);
        stream.extend(page(&[b"OpusTags"]));
        stream.extend(page(&[&[0x78, 1], &big]));
        for piece in [1, 7, 100, stream.len()] {
            let mut reader = OggOpusReader::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(piece) {
                out.extend(reader.push(chunk).unwrap());
            }
            assert_eq!(
                out,
                vec![Bytes::from_static(&[0x78, 1]), Bytes::from(big.clone())]
            );
        }
        assert!(OggOpusReader::default().push(&[0; 40]).is_err());
    }

    #[test]
    fn twenty_ms_frames() {
        // Config 15: hybrid fullband 20 ms; config 31: CELT fullband 20 ms.
        assert_eq!(opus_packet_samples(&[15 << 3]), Some(960));
        assert_eq!(opus_packet_samples(&[31 << 3]), Some(960));
        assert_eq!(opus_packet_samples(&[(31 << 3) | 1]), Some(1920));
        assert_eq!(opus_packet_samples(&[]), None);
    }
}
