//! The IVF container (VP8 frames as libvpx and ffmpeg write and read them): a 32-byte file
//! header, then frames each behind a 12-byte header (size, presentation timestamp). All
//! integers are little-endian.

use bytes::{BufMut, Bytes, BytesMut};

use crate::CodecError;

/// The size of the file header we write (a file may announce a longer one).
pub const FILE_HEADER_LEN: usize = 32;
/// The size of a frame's header.
pub const FRAME_HEADER_LEN: usize = 12;

/// What the file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfHeader {
    /// The codec: `VP80` for VP8.
    pub fourcc: [u8; 4],
    pub width: u16,
    pub height: u16,
    /// Time base denominator: timestamps count 1/`rate` … × `scale` seconds (frame rate
    /// `rate / scale` for files with one frame per tick).
    pub rate: u32,
    pub scale: u32,
    /// Frames in the file; 0 when unknown (a live stream).
    pub frame_count: u32,
}

impl IvfHeader {
    /// The 32-byte file header.
    pub fn to_bytes(&self) -> Bytes {
        let mut h = BytesMut::with_capacity(FILE_HEADER_LEN);
        h.put_slice(b"DKIF");
        h.put_u16_le(0); // version
        h.put_u16_le(FILE_HEADER_LEN as u16);
        h.put_slice(&self.fourcc);
        h.put_u16_le(self.width);
        h.put_u16_le(self.height);
        h.put_u32_le(self.rate);
        h.put_u32_le(self.scale);
        h.put_u32_le(self.frame_count);
        h.put_u32_le(0); // unused
        h.freeze()
    }
}

/// One frame of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfFrame<'a> {
    /// Presentation timestamp in the header's time base.
    pub timestamp: u64,
    pub data: &'a [u8],
}

/// A frame with its header, as a stream carries it. Errors with [`CodecError::TooLarge`] for
/// a frame whose size does not fit the 32-bit field.
pub fn frame(data: &[u8], timestamp: u64) -> Result<Bytes, CodecError> {
    let size = u32::try_from(data.len()).map_err(|_| CodecError::TooLarge(data.len()))?;
    let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + data.len());
    out.put_u32_le(size);
    out.put_u64_le(timestamp);
    out.put_slice(data);
    Ok(out.freeze())
}

/// Reads a whole IVF file: its header and every frame (borrowed). Errors: no `DKIF`
/// signature, a header or a frame cut short.
pub fn parse(file: &[u8]) -> Result<(IvfHeader, Vec<IvfFrame<'_>>), CodecError> {
    if file.get(..4) != Some(b"DKIF") {
        return Err(CodecError::Invalid("IVF signature"));
    }
    let header_len = usize::from(le16(file, 6)?);
    let fourcc: [u8; 4] = file
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .ok_or(CodecError::Truncated("IVF file header"))?;
    let header = IvfHeader {
        fourcc,
        width: le16(file, 12)?,
        height: le16(file, 14)?,
        rate: le32(file, 16)?,
        scale: le32(file, 20)?,
        frame_count: le32(file, 24)?,
    };
    let mut frames = Vec::new();
    let mut rest = file
        .get(header_len.max(FILE_HEADER_LEN)..)
        .ok_or(CodecError::Truncated("IVF file header"))?;
    while !rest.is_empty() {
        let size = le32(rest, 0)? as usize;
        let timestamp = rest
            .get(4..12)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(CodecError::Truncated("IVF frame header"))?;
        let data = rest
            .get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.saturating_add(size))
            .ok_or(CodecError::LengthOverrun("IVF frame"))?;
        frames.push(IvfFrame { timestamp, data });
        rest = &rest[FRAME_HEADER_LEN + size..];
    }
    Ok((header, frames))
}

fn le16(bytes: &[u8], at: usize) -> Result<u16, CodecError> {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(CodecError::Truncated("IVF header"))
}

fn le32(bytes: &[u8], at: usize) -> Result<u32, CodecError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(CodecError::Truncated("IVF header"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    const VP8: IvfHeader = IvfHeader {
        fourcc: *b"VP80",
        width: 320,
        height: 180,
        rate: 30,
        scale: 1,
        frame_count: 0,
    };

    fn file(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = IvfHeader {
            frame_count: frames.len() as u32,
            ..VP8
        }
        .to_bytes()
        .to_vec();
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&frame(f, i as u64).unwrap());
        }
        out
    }

    #[test]
    fn what_is_written_reads_back() {
        let bytes = file(&[&[0x10, 1, 2], &[0x11, 3], &[]]);
        let (header, frames) = parse(&bytes).unwrap();
        assert_eq!(
            header,
            IvfHeader {
                frame_count: 3,
                ..VP8
            }
        );
        assert_eq!(
            frames,
            vec![
                IvfFrame {
                    timestamp: 0,
                    data: &[0x10, 1, 2]
                },
                IvfFrame {
                    timestamp: 1,
                    data: &[0x11, 3]
                },
                IvfFrame {
                    timestamp: 2,
                    data: &[]
                },
            ]
        );
        assert_eq!(parse(&file(&[])).unwrap().1, vec![]);
    }

    #[test]
    fn bad_files_are_errors() {
        assert_eq!(parse(b"RIFF"), Err(CodecError::Invalid("IVF signature")));
        assert_eq!(parse(b""), Err(CodecError::Invalid("IVF signature")));
        let mut cut = file(&[&[0x10, 1, 2, 3]]);
        cut.truncate(cut.len() - 1);
        assert_eq!(parse(&cut), Err(CodecError::LengthOverrun("IVF frame")));
        assert!(matches!(
            parse(&file(&[])[..20]),
            Err(CodecError::Truncated(_))
        ));
        let mut short_frame_header = file(&[]);
        short_frame_header.extend([1, 0, 0, 0, 0]);
        assert!(matches!(
            parse(&short_frame_header),
            Err(CodecError::Truncated(_))
        ));
        // A frame size of 4 GiB, and a header length past the end.
        let mut absurd = file(&[]);
        absurd.extend([0xff; 12]);
        assert_eq!(parse(&absurd), Err(CodecError::LengthOverrun("IVF frame")));
        let mut long_header = file(&[]);
        long_header[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(parse(&long_header), Err(CodecError::Truncated(_))));
    }
}
