//! The VP8 payload descriptor and frame header (`classroom_codec::vp8`).
//!
//! Invariants: no panic; the data after the descriptor is a suffix of the payload.

#![no_main]

use classroom_codec::vp8::{self, Vp8Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    if let Ok(parsed) = Vp8Payload::parse(payload) {
        assert!(payload.ends_with(parsed.data));
        assert!(parsed.data.len() < payload.len());
        let _ = parsed.is_keyframe_start();
    }
    let _ = vp8::keyframe_size(payload);
});
