//! The two framings of H.264 NAL units outside RTP: Annex-B (start codes, as ffmpeg reads and
//! writes them on pipes and in `.h264` files) and AVCC (big-endian length prefixes of 1, 2 or 4
//! bytes, as FLV, MP4 and Matroska carry them).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::CodecError;
use crate::h264::MAX_NAL_BYTES;

/// The 4-byte start code written in front of every NAL unit.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Appends one NAL unit to an Annex-B stream.
pub fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

/// Writes NAL units with 4-byte start codes.
pub fn write_annexb(nal_units: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(nal_units.iter().map(|n| n.len() + 4).sum());
    for nal in nal_units {
        out.put_slice(&START_CODE);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Splits a byte stream that arrives in arbitrary pieces into NAL units. A unit is complete
/// when the next start code is seen (or at [`AnnexBSplitter::finish`]). Bytes before the first
/// start code are not a unit and are dropped.
#[derive(Debug, Default)]
pub struct AnnexBSplitter {
    buf: BytesMut,
    /// Where scanning for the next start code resumes.
    scanned: usize,
    started: bool,
}

impl AnnexBSplitter {
    pub fn new() -> Self {
        AnnexBSplitter::default()
    }

    /// Adds bytes and returns the NAL units they complete. [`CodecError::TooLarge`] if a unit
    /// grows past [`MAX_NAL_BYTES`]: the stream is broken.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, CodecError> {
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
            return Err(CodecError::TooLarge(self.buf.len()));
        }
        Ok(units.into_iter().filter(|u| !u.is_empty()).collect())
    }

    /// The last unit, at the end of the stream.
    pub fn finish(&mut self) -> Option<Bytes> {
        let unit = std::mem::take(&mut self.buf).freeze();
        (self.started && !unit.is_empty()).then_some(unit)
    }
}

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

/// The NAL units of AVCC data (each behind a `length_size`-byte big-endian length), checked
/// whole before any is returned: an error if a length or a unit runs past the end, or the
/// length size is not 1, 2 or 4. Empty units are skipped.
pub fn split_avcc(data: &Bytes, length_size: usize) -> Result<Vec<Bytes>, CodecError> {
    let mut units = Vec::new();
    for range in AvccRanges::new(data, length_size)? {
        units.push(data.slice(range?));
    }
    Ok(units)
}

/// Iterates over the NAL units of AVCC data, unit by unit (no allocation); stops at the first
/// error, which it yields.
pub fn avcc_units(
    data: &[u8],
    length_size: usize,
) -> Result<impl Iterator<Item = Result<&[u8], CodecError>>, CodecError> {
    Ok(AvccRanges::new(data, length_size)?.map(move |r| r.map(|r| &data[r])))
}

struct AvccRanges<'a> {
    data: &'a [u8],
    at: usize,
    length_size: usize,
    failed: bool,
}

impl<'a> AvccRanges<'a> {
    fn new(data: &'a [u8], length_size: usize) -> Result<Self, CodecError> {
        if !matches!(length_size, 1 | 2 | 4) {
            return Err(CodecError::Invalid("AVC NAL length size"));
        }
        Ok(AvccRanges {
            data,
            at: 0,
            length_size,
            failed: false,
        })
    }
}

impl Iterator for AvccRanges<'_> {
    type Item = Result<std::ops::Range<usize>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.at < self.data.len() {
            let overrun = CodecError::LengthOverrun("AVC NAL unit");
            let Some(prefix) = self.data.get(self.at..self.at + self.length_size) else {
                self.failed = true;
                return Some(Err(overrun));
            };
            let len = prefix
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let start = self.at + self.length_size;
            let end = start.saturating_add(len);
            if end > self.data.len() {
                self.failed = true;
                return Some(Err(overrun));
            }
            self.at = end;
            if len > 0 {
                return Some(Ok(start..end));
            }
        }
        None
    }
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

    #[test]
    fn bytes_before_the_first_start_code_and_empty_units_are_dropped() {
        let mut splitter = AnnexBSplitter::new();
        let units = splitter
            .push(&[9, 9, 0, 0, 1, 0x67, 0, 0, 0, 1, 0, 0, 1, 0x68, 0, 0, 1])
            .unwrap();
        assert_eq!(
            units,
            vec![Bytes::from_static(&[0x67]), Bytes::from_static(&[0x68])]
        );
        assert_eq!(splitter.finish(), None);
        assert_eq!(AnnexBSplitter::new().finish(), None);
        assert!(AnnexBSplitter::new().push(&[1, 2, 3]).unwrap().is_empty());
    }

    #[test]
    fn a_unit_that_never_ends_is_an_error_past_the_limit() {
        let mut splitter = AnnexBSplitter::new();
        splitter.push(&START_CODE).unwrap();
        let piece = vec![0xaa; 1 << 20];
        let mut result = Ok(Vec::new());
        for _ in 0..=MAX_NAL_BYTES >> 20 {
            result = splitter.push(&piece);
        }
        assert!(matches!(result, Err(CodecError::TooLarge(_))), "{result:?}");
    }

    #[test]
    fn avcc_units_split_with_the_configured_length_size() {
        let data = Bytes::from_static(&[0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06]);
        let units = split_avcc(&data, 2).unwrap();
        assert_eq!(
            units,
            vec![
                Bytes::from_static(&[0x65, 0xaa]),
                Bytes::from_static(&[0x06])
            ]
        );
        assert!(matches!(
            split_avcc(&Bytes::from_static(&[0, 0, 0, 9, 1]), 4),
            Err(CodecError::LengthOverrun(_))
        ));
        assert!(matches!(
            split_avcc(&Bytes::from_static(&[0, 0]), 4),
            Err(CodecError::LengthOverrun(_))
        ));
        for size in [0, 3, 5, usize::MAX] {
            assert!(split_avcc(&data, size).is_err(), "{size}");
        }
        // The largest length a 4-byte prefix can announce is refused, not added up past usize.
        assert!(split_avcc(&Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]), 4).is_err());
        assert_eq!(split_avcc(&Bytes::new(), 4).unwrap(), Vec::<Bytes>::new());
        let lazy: Vec<_> = avcc_units(&[1, 0x41, 5, 1], 1).unwrap().collect();
        assert_eq!(
            lazy,
            vec![
                Ok(&[0x41][..]),
                Err(CodecError::LengthOverrun("AVC NAL unit"))
            ]
        );
    }
}
