//! Opus in Ogg (RFC 3533, RFC 7845): pages of lacing segments that make up packets; the first
//! two packets are the OpusHead and OpusTags headers, every later one an Opus packet. Read as a
//! stream ([`OggOpusReader`], ffmpeg's encoder output on a pipe) or a whole file
//! ([`opus_packets`]).

use bytes::{Buf, Bytes, BytesMut};

use crate::CodecError;

/// Bound on the bytes held while waiting for a page or a packet to complete (a page holds at
/// most 65,307 bytes; a packet may span pages).
pub const MAX_BUFFERED: usize = 1024 * 1024;

const CAPTURE: &[u8; 4] = b"OggS";
const HEADER: usize = 27;

/// Reassembles Opus packets from Ogg pages that arrive in pieces of any size. The first packet
/// must be the OpusHead; it and the OpusTags are not returned, nor are empty packets.
#[derive(Debug, Default)]
pub struct OggOpusReader {
    buf: BytesMut,
    partial: BytesMut,
    headers_seen: u8,
}

impl OggOpusReader {
    pub fn new() -> Self {
        OggOpusReader::default()
    }

    /// The Opus packets that `data` completes. Errors: a page that does not start with the
    /// capture pattern (sync lost), a first packet that is not an OpusHead, more than
    /// [`MAX_BUFFERED`] bytes waiting.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, CodecError> {
        self.buf.extend_from_slice(data);
        let mut packets = Vec::new();
        loop {
            let pattern = self.buf.len().min(CAPTURE.len());
            if self.buf[..pattern] != CAPTURE[..pattern] {
                return Err(CodecError::Invalid("Ogg capture pattern (page sync lost)"));
            }
            let Some(&segments) = self.buf.get(HEADER - 1) else {
                break;
            };
            let segments = usize::from(segments);
            let Some(table) = self.buf.get(HEADER..HEADER + segments) else {
                break;
            };
            let body_len: usize = table.iter().map(|l| usize::from(*l)).sum();
            if self.buf.len() < HEADER + segments + body_len {
                break;
            }
            let lacing: Vec<u8> = table.to_vec();
            self.buf.advance(HEADER + segments);
            let mut body = self.buf.split_to(body_len);
            for len in lacing {
                let piece = body.split_to(usize::from(len));
                self.partial.extend_from_slice(&piece);
                // A lacing value below 255 ends a packet; 255 continues it.
                if len == 255 {
                    continue;
                }
                let packet = std::mem::take(&mut self.partial).freeze();
                match self.headers_seen {
                    0 if !packet.starts_with(b"OpusHead") => {
                        return Err(CodecError::Invalid("Ogg Opus stream: no OpusHead"));
                    }
                    0 | 1 => self.headers_seen += 1,
                    _ if !packet.is_empty() => packets.push(packet),
                    _ => {}
                }
            }
            if self.buf.len() + self.partial.len() > MAX_BUFFERED {
                return Err(CodecError::TooLarge(self.buf.len() + self.partial.len()));
            }
        }
        if self.buf.len() + self.partial.len() > MAX_BUFFERED {
            return Err(CodecError::TooLarge(self.buf.len() + self.partial.len()));
        }
        Ok(packets)
    }

    /// Bytes received that are not yet a whole page (a file that ends here is truncated).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The Opus packets of a whole Ogg Opus file, in order, without the two header packets.
/// Errors: as [`OggOpusReader::push`], and [`CodecError::Truncated`] for a file cut short.
pub fn opus_packets(file: &[u8]) -> Result<Vec<Bytes>, CodecError> {
    let mut reader = OggOpusReader::new();
    let mut packets = Vec::new();
    // In pieces, so that a large file is not refused for its size alone.
    for piece in file.chunks(64 * 1024) {
        packets.extend(reader.push(piece)?);
    }
    if reader.pending() > 0 {
        return Err(CodecError::Truncated("Ogg page"));
    }
    if reader.headers_seen == 0 {
        return Err(CodecError::Invalid("Ogg Opus stream: no OpusHead"));
    }
    Ok(packets)
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
        let mut out = CAPTURE.to_vec();
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
        for piece in 1..=stream.len() {
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
    fn files_are_read_across_laces_and_pages() {
        let long = vec![7u8; 300];
        let mut file = page(&[b"OpusHead\x01\x01", b"OpusTags"]);
        file.extend(page(&[&[0x78, 1], &long, &[]]));
        file.extend(page(&[&[0x78, 2]]));
        let packets = opus_packets(&file).expect("valid");
        assert_eq!(packets.len(), 3);
        assert_eq!(&packets[0][..], &[0x78, 1]);
        assert_eq!(packets[1].len(), 300);
        assert_eq!(&packets[2][..], &[0x78, 2]);
        // Headers only: a valid file with no audio.
        assert_eq!(opus_packets(&page(&[b"OpusHead", b"OpusTags"])), Ok(vec![]));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(matches!(
            opus_packets(b"RIFFxxxx"),
            Err(CodecError::Invalid(_))
        ));
        assert!(matches!(
            opus_packets(&page(&[b"Vorbis", b"tags", b"x"])),
            Err(CodecError::Invalid(_))
        ));
        let mut cut = page(&[b"OpusHead", b"OpusTags", &[1, 2, 3]]);
        cut.pop();
        assert_eq!(opus_packets(&cut), Err(CodecError::Truncated("Ogg page")));
        assert_eq!(opus_packets(b"Og"), Err(CodecError::Truncated("Ogg page")));
        assert!(matches!(
            opus_packets(&[b'O'; 10]),
            Err(CodecError::Invalid(_))
        ));
        assert!(matches!(opus_packets(&[]), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn a_packet_that_never_ends_cannot_grow_past_the_limit() {
        let mut reader = OggOpusReader::new();
        reader.push(&page(&[b"OpusHead", b"OpusTags"])).unwrap();
        // Pages of 255-byte laces only: one packet that never ends.
        let mut endless = CAPTURE.to_vec();
        endless.extend([0; 22]);
        endless.push(255);
        endless.extend([255; 255]);
        endless.extend(vec![0x78; 255 * 255]);
        let mut result = Ok(vec![]);
        for _ in 0..MAX_BUFFERED / (255 * 255) + 1 {
            result = reader.push(&endless);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(CodecError::TooLarge(_))), "{result:?}");
    }
}
