//! Annex-B and AVCC framing (`classroom_codec::annexb`): a byte stream in pieces of any size,
//! and length-prefixed units with every length size.
//!
//! Invariants: no panic; units are never empty and never start with a start code's zeros
//! left behind; the split does not depend on how the stream was cut; AVCC units lie within
//! the data.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use classroom_codec::annexb::{self, AnnexBSplitter};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    stream: Vec<u8>,
    cuts: Vec<u8>,
    length_size: u8,
}

fn split(stream: &[u8], cuts: &[u8]) -> Option<Vec<Bytes>> {
    let mut splitter = AnnexBSplitter::new();
    let mut units = Vec::new();
    let mut rest = stream;
    for cut in cuts.iter().chain(std::iter::repeat(&64)) {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(usize::from(*cut).min(rest.len()));
        rest = tail;
        units.extend(splitter.push(piece).ok()?);
    }
    units.extend(splitter.finish());
    Some(units)
}

fuzz_target!(|input: Input| {
    let whole = split(&input.stream, &[u8::MAX]);
    let pieces = split(&input.stream, &input.cuts);
    if let (Some(whole), Some(pieces)) = (&whole, &pieces) {
        assert_eq!(whole, pieces, "the split depends on the pieces");
        assert!(whole.iter().all(|u| !u.is_empty()));
    }
    let data = Bytes::from(input.stream);
    if let Ok(units) = annexb::split_avcc(&data, usize::from(input.length_size)) {
        let total: usize = units.iter().map(|u| u.len()).sum();
        assert!(total <= data.len());
    }
});
