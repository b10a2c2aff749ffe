//! Annex-B byte streams (start-code framed H.264), as ffmpeg reads and writes them on pipes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Writes NAL units with 4-byte start codes.
pub fn write_annexb(nal_units: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(nal_units.iter().map(|n| n.len() + 4).sum());
    for nal in nal_units {
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Splits a byte stream that arrives in arbitrary pieces into NAL units. A unit is complete
/// when the next start code is seen (or at [`AnnexBSplitter::finish`]).
#[derive(Debug, Default)]
pub struct AnnexBSplitter {
    buf: BytesMut,
    /// Where scanning for the next start code resumes.
    scanned: usize,
    started: bool,
}

/// Bound on one NAL unit: beyond it the stream is considered broken.
pub const MAX_NAL_BYTES: usize = 8 * 1024 * 1024;

impl AnnexBSplitter {
    /// Adds bytes and returns the NAL units they complete. `Err` if a unit grows past
    /// [`MAX_NAL_BYTES`].
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, NalTooLarge> {
        self.buf.extend_from_slice(data);
        let mut units = Vec::new();
        loop {
            let Some((at, code_len)) = find_start_code(&self.buf, self.scanned) else {
                // Keep two bytes unscanned: a start code may straddle the next push.
                self.scanned = self.buf.len().saturating_sub(3);
                break;
            };
            let unit = self.buf.split_to(at).freeze();
            self.buf.advance(code_len);
            self.scanned = 0;
            if self.started {
                units.push(trim_trailing_zeros(unit));
            }
            self.started = true;
        }
        if self.buf.len() > MAX_NAL_BYTES {
            return Err(NalTooLarge);
        }
        Ok(units.into_iter().filter(|u| !u.is_empty()).collect())
    }

    /// The last unit, at the end of the stream.
    pub fn finish(&mut self) -> Option<Bytes> {
        let unit = std::mem::take(&mut self.buf).freeze();
        (self.started && !unit.is_empty()).then_some(unit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an H.264 NAL unit from the transcoder is larger than {MAX_NAL_BYTES} bytes")]
pub struct NalTooLarge;

fn find_start_code(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= buf.len() {
        if buf.get(i..i + 3) == Some(&[0, 0, 1]) {
            // A 4-byte code 00 00 00 01 is a 3-byte one preceded by a zero.
            if i > 0 && buf.get(i - 1) == Some(&0) {
                return Some((i - 1, 4));
            }
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

fn trim_trailing_zeros(mut unit: Bytes) -> Bytes {
    while unit.last() == Some(&0) {
        unit.truncate(unit.len() - 1);
    }
    unit
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    #[test]
    fn splits_across_arbitrary_pieces() {
        let units = vec![
            Bytes::from_static(&[0x67, 1, 2]),
            Bytes::from_static(&[0x68, 3]),
            Bytes::from_static(&[0x65, 0, 0, 3, 1, 9]),
        ];
        let stream = write_annexb(&units);
        for piece in 1..stream.len() {
            let mut splitter = AnnexBSplitter::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(piece) {
                out.extend(splitter.push(chunk).unwrap());
            }
            out.extend(splitter.finish());
            assert_eq!(out, units, "pieces of {piece}");
        }
    }
}
