//! Ogg Opus (`classroom_codec::ogg`): a stream of pages in pieces of any size, and whole files.
//!
//! Invariants: no panic; the packets found do not depend on how the stream was cut; nothing
//! held exceeds the bound.

#![no_main]

use arbitrary::Arbitrary;
use classroom_codec::ogg::{self, MAX_BUFFERED, OggOpusReader};
use classroom_codec::opus;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    stream: Vec<u8>,
    piece: u16,
}

fuzz_target!(|input: Input| {
    let whole = ogg::opus_packets(&input.stream);
    let mut reader = OggOpusReader::new();
    let mut packets = Vec::new();
    let mut failed = false;
    for piece in input.stream.chunks(usize::from(input.piece).max(1)) {
        match reader.push(piece) {
            Ok(found) => packets.extend(found),
            Err(_) => {
                failed = true;
                break;
            }
        }
        assert!(reader.pending() <= MAX_BUFFERED);
    }
    if let Ok(whole) = whole {
        assert!(!failed, "the whole file parsed but its pieces did not");
        assert_eq!(whole, packets);
    }
    for packet in &packets {
        assert!(!packet.is_empty());
        let _ = opus::packet_samples(packet);
    }
});
