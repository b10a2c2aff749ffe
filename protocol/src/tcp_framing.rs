//! RFC 4571 framing for ICE over TCP (RFC 6544): on a TCP connection every STUN message, DTLS
//! record, RTP or RTCP packet is preceded by its length as two bytes, big-endian.
//!
//! One implementation for both ends: the SFU's passive ICE-TCP connections and the load
//! tester's active ones. [`FrameReader`] turns the bytes of one connection back into packets
//! without copying them out: it owns a fixed buffer that the driver reads into, and hands out each complete frame as
//! a slice of it. A length above [`MAX_FRAME`] cannot be a WebRTC packet (they are kept under
//! the path MTU, as on UDP): the stream is garbage or hostile and cannot be resynchronised, so
//! the reader reports it and the connection is closed. Never panics, whatever the input.

use thiserror::Error;

/// The largest packet accepted on, or sent over, a TCP connection. WebRTC packets stay under
/// about 1200 bytes; the UDP driver reads at most 2048.
pub const MAX_FRAME: usize = 2048;
/// Length prefix of each frame.
const HEADER: usize = 2;
/// Room for a few frames per read: fewer system calls when packets arrive in bursts.
const BUFFER: usize = 8 * (HEADER + MAX_FRAME);

/// The stream of a connection broke the framing; nothing more can be read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is longer than the largest packet ({MAX_FRAME} bytes)")]
    TooLong(usize),
}

/// Reassembles the frames of one TCP connection.
#[derive(Debug)]
pub struct FrameReader {
    buf: Box<[u8]>,
    /// Bytes `start..end` of `buf` are read and not yet handed out.
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    pub fn new() -> Self {
        FrameReader {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Where to read the next bytes into; never empty. Call [`FrameReader::filled`] with the
    /// number of bytes read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            // Move the partial frame to the front: a frame always fits in the buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `len` bytes were read into [`FrameReader::spare`].
    pub fn filled(&mut self, len: usize) {
        self.end = (self.end + len).min(self.buf.len());
    }

    /// The next complete frame, if one has arrived. Empty frames are skipped.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let Some(header) = pending.get(..HEADER) else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            if len > MAX_FRAME {
                return Err(FrameError::TooLong(len));
            }
            if pending.len() < HEADER + len {
                return Ok(None);
            }
            let frame_start = self.start + HEADER;
            self.start = frame_start + len;
            if self.start == self.end {
                // Everything handed out: the next read starts at the front without a copy.
                let frame = frame_start..frame_start + len;
                self.start = 0;
                self.end = 0;
                if len == 0 {
                    return Ok(None);
                }
                return Ok(self.buf.get(frame));
            }
            if len > 0 {
                return Ok(self.buf.get(frame_start..frame_start + len));
            }
        }
    }

    /// Bytes received that are not yet a complete frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

/// The length prefix of a packet, or `None` if it is too long to be framed.
pub fn frame_header(packet: &[u8]) -> Option<[u8; HEADER]> {
    if packet.len() > MAX_FRAME {
        return None;
    }
    u16::try_from(packet.len()).ok().map(u16::to_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for packet in packets {
            out.extend_from_slice(&frame_header(packet).expect("short enough"));
            out.extend_from_slice(packet);
        }
        out
    }

    /// Feeds `bytes` in chunks of `chunk` and collects the frames.
    fn read_all(bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut reader = FrameReader::new();
        let mut frames = Vec::new();
        for piece in bytes.chunks(chunk) {
            let mut piece = piece;
            while !piece.is_empty() {
                let spare = reader.spare();
                let n = spare.len().min(piece.len());
                spare[..n].copy_from_slice(&piece[..n]);
                reader.filled(n);
                piece = &piece[n..];
                while let Some(frame) = reader.next_frame()? {
                    frames.push(frame.to_vec());
                }
            }
        }
        Ok(frames)
    }

    #[test]
    fn frames_come_back_whatever_the_chunking() {
        let big = vec![7u8; MAX_FRAME];
        let packets: Vec<&[u8]> = vec![b"stun", &[], b"x", &big, b"dtls record", &big];
        let bytes = framed(&packets);
        let expected: Vec<Vec<u8>> = packets
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_vec())
            .collect();
        for chunk in [1, 2, 3, 7, 100, 2049, 5000, bytes.len()] {
            assert_eq!(
                read_all(&bytes, chunk),
                Ok(expected.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn an_absurd_length_breaks_the_stream() {
        let mut bytes = framed(&[b"fine"]);
        bytes.extend_from_slice(&[0xFF, 0xFF, 1, 2, 3]);
        assert_eq!(read_all(&bytes, 3), Err(FrameError::TooLong(0xFFFF)));
        assert_eq!(frame_header(&vec![0; MAX_FRAME + 1]), None);
    }

    /// The whole stream parsed at once: the frames, and the error that stops it.
    fn reference(mut bytes: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut frames = Vec::new();
        while bytes.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            if len > MAX_FRAME {
                return (frames, Some(FrameError::TooLong(len)));
            }
            if bytes.len() < 2 + len {
                break;
            }
            if len > 0 {
                frames.push(bytes[2..2 + len].to_vec());
            }
            bytes = &bytes[2 + len..];
        }
        (frames, None)
    }

    #[test]
    fn agrees_with_a_plain_parser_on_noise() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            // xorshift: deterministic noise without a dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut bytes = Vec::new();
            for _ in 0..(next() % 12) {
                // Mostly valid lengths, sometimes one just over the limit, sometimes a torn end.
                let len = (next() % (MAX_FRAME as u64 + 40)) as usize;
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
                bytes.extend((0..len).map(|_| next() as u8));
            }
            bytes.truncate(bytes.len() - (next() % 3) as usize % (bytes.len() + 1));
            let (frames, error) = reference(&bytes);
            let chunk = 1 + (next() % 3000) as usize;
            match read_all(&bytes, chunk) {
                Ok(got) => assert_eq!((got, None), (frames, error)),
                Err(e) => assert_eq!(Some(e), error),
            }
        }
    }

    #[test]
    fn a_partial_frame_waits_and_is_bounded() {
        let mut reader = FrameReader::new();
        let spare = reader.spare();
        spare[..3].copy_from_slice(&[0x00, 0x05, b'a']);
        reader.filled(3);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.buffered(), 3);
        // However slowly a frame arrives, the buffer never needs to grow.
        assert!(reader.spare().len() >= MAX_FRAME);
    }
}
