//! A pre-parser that walks the RTMP chunk stream ahead of rml_rtmp and rejects what it must not
//! see: absurd chunk or message sizes, and the header sequences on which its deserializer
//! panics (a new header in the middle of a message, an extended timestamp smaller than the
//! 24-bit field it extends). It reads only headers; payload bytes are counted, not copied,
//! except the four of a Set Chunk Size message.

/// Limits applied to a publisher's chunk stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size a peer may announce (OBS and ffmpeg use 4096).
    pub max_chunk_size: u32,
    /// Largest audio or video message (one coded picture).
    pub max_media_message: u32,
    /// Largest message of any other type (commands, metadata; OBS's are under 1 KiB). Their
    /// payload is kept and checked whole.
    pub max_other_message: u32,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_chunk_size: 1 << 20,
            max_media_message: 8 << 20,
            max_other_message: 4 << 10,
        }
    }
}

/// Why the chunk stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size {0} is zero or above the limit")]
    ChunkSize(u32),
    #[error("message of type {type_id} and {len} bytes is above the limit")]
    MessageTooLarge { type_id: u8, len: u32 },
    #[error("chunk on stream {0} refers to a previous header that was never sent")]
    NoPreviousHeader(u32),
    #[error("a new message header arrived before the previous message was complete")]
    Interleaved,
    #[error("an extended timestamp is smaller than the 24-bit field it extends")]
    BadExtendedTimestamp,
    #[error("a Set Chunk Size message is malformed")]
    BadSetChunkSize,
    #[error("a command or metadata message is malformed: {0}")]
    Amf(#[from] AmfError),
}

use crate::amf_check::{AmfError, check_amf0};

const MSG_SET_CHUNK_SIZE: u8 = 1;
const MSG_AMF3_DATA: u8 = 15;
const MSG_AMF3_COMMAND: u8 = 17;
const MSG_AMF0_DATA: u8 = 18;
const MSG_AMF0_COMMAND: u8 = 20;

/// Messages whose payload the guard keeps and checks before rml_rtmp parses them.
fn is_checked(type_id: u8) -> bool {
    matches!(
        type_id,
        MSG_SET_CHUNK_SIZE | MSG_AMF3_DATA | MSG_AMF3_COMMAND | MSG_AMF0_DATA | MSG_AMF0_COMMAND
    )
}
const MSG_AUDIO: u8 = 8;
const MSG_VIDEO: u8 = 9;
const EXTENDED: u32 = 0x00ff_ffff;
const INITIAL_CHUNK_SIZE: u32 = 128;

#[derive(Debug, Clone, Copy)]
struct Header {
    len: u32,
    type_id: u8,
    timestamp_field: u32,
}

#[derive(Debug)]
enum Stage {
    /// Collecting a chunk header in `header_bytes`.
    Header,
    /// Counting `left` payload bytes of the current chunk.
    Payload { left: u32 },
}

#[derive(Debug)]
pub struct ChunkGuard {
    limits: ChunkLimits,
    chunk_size: u32,
    stage: Stage,
    header_bytes: Vec<u8>,
    previous: std::collections::HashMap<u32, Header>,
    /// The message being received: chunk stream, its header, bytes still to come.
    current: Option<(u32, Header, u32)>,
    checked_payload: Vec<u8>,
}

impl ChunkGuard {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkGuard {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            stage: Stage::Header,
            header_bytes: Vec::with_capacity(18),
            previous: std::collections::HashMap::new(),
            current: None,
            checked_payload: Vec::new(),
        }
    }

    /// Checks the next bytes of the chunk stream. After an error the stream must be dropped.
    pub fn check(&mut self, mut data: &[u8]) -> Result<(), ChunkError> {
        while !data.is_empty() {
            match self.stage {
                Stage::Header => {
                    let (byte, rest) = data.split_first().ok_or(ChunkError::Interleaved)?;
                    data = rest;
                    self.header_bytes.push(*byte);
                    if let Some(left) = self.try_header()? {
                        self.header_bytes.clear();
                        self.stage = Stage::Payload { left };
                        if left == 0 {
                            self.end_chunk()?;
                        }
                    }
                }
                Stage::Payload { left } => {
                    let take = data.len().min(left as usize);
                    let (piece, rest) = data.split_at(take);
                    data = rest;
                    if let Some((_, header, _)) = self.current
                        && is_checked(header.type_id)
                    {
                        self.checked_payload.extend_from_slice(piece);
                    }
                    let left = left - take as u32;
                    self.stage = Stage::Payload { left };
                    if left == 0 {
                        self.end_chunk()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Parses `header_bytes` if complete; returns the payload size of this chunk.
    fn try_header(&mut self) -> Result<Option<u32>, ChunkError> {
        let h = &self.header_bytes;
        let Some(&first) = h.first() else {
            return Ok(None);
        };
        let format = first >> 6;
        let (csid, basic_len) = match first & 0x3f {
            0 => match h.get(1) {
                Some(b) => (u32::from(*b) + 64, 2),
                None => return Ok(None),
            },
            1 => match h.get(1..3) {
                Some(b) => (u32::from(b[1]) * 256 + u32::from(b[0]) + 64, 3),
                None => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let previous = self.previous.get(&csid).copied();
        if format != 0 && previous.is_none() {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        let message_header_len = [11, 7, 3, 0][usize::from(format)];
        let Some(mh) = h.get(basic_len..basic_len + message_header_len) else {
            return Ok(None);
        };
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let mut header = previous.unwrap_or(Header {
            len: 0,
            type_id: 0,
            timestamp_field: 0,
        });
        if format <= 2 {
            header.timestamp_field = u24(&mh[0..3]);
        }
        if format <= 1 {
            header.len = u24(&mh[3..6]);
            header.type_id = mh[6];
        }
        let mut total = basic_len + message_header_len;
        let extended = header.timestamp_field >= EXTENDED;
        if extended {
            let Some(ext) = h.get(total..total + 4) else {
                return Ok(None);
            };
            total += 4;
            let value = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            let starts_message = self.current.is_none();
            if format != 0 && starts_message && value < EXTENDED {
                return Err(ChunkError::BadExtendedTimestamp);
            }
        }
        debug_assert_eq!(total, h.len());

        let left = match self.current {
            Some((current_csid, _, left)) => {
                if format != 3 || current_csid != csid {
                    return Err(ChunkError::Interleaved);
                }
                left
            }
            None => {
                let limit = match header.type_id {
                    MSG_AUDIO | MSG_VIDEO => self.limits.max_media_message,
                    _ => self.limits.max_other_message,
                };
                if header.len > limit {
                    return Err(ChunkError::MessageTooLarge {
                        type_id: header.type_id,
                        len: header.len,
                    });
                }
                self.checked_payload.clear();
                header.len
            }
        };
        self.previous.insert(csid, header);
        let chunk = left.min(self.chunk_size);
        self.current = Some((csid, header, left - chunk));
        Ok(Some(chunk))
    }

    fn end_chunk(&mut self) -> Result<(), ChunkError> {
        self.stage = Stage::Header;
        let Some((_, header, left)) = self.current else {
            return Ok(());
        };
        if left > 0 {
            return Ok(());
        }
        self.current = None;
        let payload = &self.checked_payload;
        match header.type_id {
            MSG_AMF0_COMMAND => check_amf0(payload, true)?,
            // rml_rtmp reads these as AMF0 too; a command may have a leading zero byte.
            MSG_AMF3_COMMAND => check_amf0(payload.strip_prefix(&[0]).unwrap_or(payload), true)?,
            MSG_AMF0_DATA | MSG_AMF3_DATA => check_amf0(payload, false)?,
            _ => {}
        }
        if header.type_id == MSG_SET_CHUNK_SIZE {
            let b = self
                .checked_payload
                .get(0..4)
                .ok_or(ChunkError::BadSetChunkSize)?;
            let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if size == 0 || size > self.limits.max_chunk_size {
                return Err(ChunkError::ChunkSize(size));
            }
            self.chunk_size = size;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    fn full_header(csid: u8, ts: u32, len: u32, type_id: u8) -> Vec<u8> {
        let mut h = vec![csid];
        h.extend_from_slice(&ts.min(EXTENDED).to_be_bytes()[1..]);
        h.extend_from_slice(&len.to_be_bytes()[1..]);
        h.push(type_id);
        h.extend_from_slice(&1u32.to_le_bytes());
        if ts >= EXTENDED {
            h.extend_from_slice(&ts.to_be_bytes());
        }
        h
    }

    #[test]
    fn messages_split_in_chunks_pass_in_any_pieces() {
        let mut stream = full_header(2, 0, 4, MSG_SET_CHUNK_SIZE);
        stream.extend_from_slice(&200u32.to_be_bytes());
        stream.extend(full_header(6, 0x0100_0000, 450, MSG_VIDEO));
        stream.extend([7; 200]);
        stream.push(0xc6);
        stream.extend(0x0100_0000u32.to_be_bytes());
        stream.extend([7; 200]);
        stream.push(0xc6);
        stream.extend(0x0100_0000u32.to_be_bytes());
        stream.extend([7; 50]);
        for piece in [1, 3, 64, stream.len()] {
            let mut guard = ChunkGuard::new(ChunkLimits::default());
            for chunk in stream.chunks(piece) {
                guard.check(chunk).unwrap();
            }
            assert_eq!(guard.chunk_size, 200);
            assert!(guard.current.is_none());
        }
    }

    #[test]
    fn absurd_chunk_size_is_refused() {
        let mut stream = full_header(2, 0, 4, MSG_SET_CHUNK_SIZE);
        stream.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let mut guard = ChunkGuard::new(ChunkLimits::default());
        assert_eq!(
            guard.check(&stream),
            Err(ChunkError::ChunkSize(0x7fff_ffff))
        );
    }

    #[test]
    fn a_header_inside_a_message_is_refused() {
        let mut stream = full_header(6, 0, 300, MSG_VIDEO);
        stream.extend([0; 128]);
        stream.extend(full_header(6, 0, 10, MSG_VIDEO));
        let mut guard = ChunkGuard::new(ChunkLimits::default());
        assert_eq!(guard.check(&stream), Err(ChunkError::Interleaved));
    }

    #[test]
    fn huge_commands_and_unknown_streams_are_refused() {
        let mut guard = ChunkGuard::new(ChunkLimits::default());
        let err = guard.check(&full_header(3, 0, 1 << 20, 20)).unwrap_err();
        assert_eq!(
            err,
            ChunkError::MessageTooLarge {
                type_id: 20,
                len: 1 << 20
            }
        );
        let mut guard = ChunkGuard::new(ChunkLimits::default());
        assert_eq!(guard.check(&[0x45]), Err(ChunkError::NoPreviousHeader(5)));
    }
}
