//! The H.264 RTP depacketizer (`classroom_codec::h264`): payloads of any content in any order.
//!
//! Invariants: no panic; a payload that parses passes on only NAL units with a header byte;
//! an error passes on nothing; a reassembled unit never exceeds the limit; what the packetizer
//! makes of the units comes back unchanged.

#![no_main]

use bytes::Bytes;
use classroom_codec::h264::{self, H264Depacketizer, H264Packetizer, H264Payload, MAX_NAL_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payloads: Vec<Vec<u8>>| {
    let mut depacketizer = H264Depacketizer::new();
    let mut units = Vec::new();
    for payload in &payloads {
        let parsed = H264Payload::parse(payload);
        let _ = parsed.map(|p| p.first_unit());
        let mut passed = Vec::new();
        let result = depacketizer.push(payload, |nal| passed.push(Bytes::copy_from_slice(nal)));
        if result.is_err() {
            assert!(passed.is_empty(), "units passed on with an error");
        }
        for nal in &passed {
            assert!(!nal.is_empty() && nal.len() <= MAX_NAL_BYTES);
        }
        units.extend(passed);
    }
    // Round trip: the units found, packetized again, come back as they were (those of the
    // types an encoder writes: an FU-A can claim any type, RTP's own ones too).
    units.retain(|u| matches!(u[0] & 0x1f, 1..=23));
    let mut packetizer = H264Packetizer::new(1200, 0);
    let packets = packetizer.packetize(&units, 0);
    let payloads: Vec<Bytes> = packets.into_iter().map(|p| p.payload).collect();
    assert_eq!(h264::depacketize(&payloads).expect("our own packets"), units);
});
