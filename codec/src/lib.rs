//! The media formats of classroom, each written once and used by every crate that needs it
//! (the RTMP ingest and restream, the recorder, the SFU's keyframe detection, the load tester).
//!
//! What it owns: RTP payload formats ([`h264`], [`vp8`], [`opus`]) and which packet starts a
//! keyframe ([`keyframe`]), NAL unit framings
//! ([`annexb`]: Annex-B and AVCC), FLV tags and the AVC/AAC decoder configurations ([`flv`]),
//! and the containers [`ogg`], [`ivf`] and [`mkv`].
//!
//! Invariants:
//! - No I/O, no clock, no tasks: bytes in, values or bytes out. Streaming readers take input in
//!   pieces of any size.
//! - Input is hostile: malformed, truncated or oversized input is a [`CodecError`], never a
//!   panic, and no length read from the input is trusted before it is checked against what is
//!   there. Every parser has a fuzz target in `fuzz/`.
//! - It knows nothing of the server: it depends on no crate of ours, so the load tester can use
//!   it and stay a black-box client.

pub mod annexb;
pub mod error;
pub mod flv;
pub mod h264;
pub mod ivf;
pub mod keyframe;
pub mod mkv;
pub mod ogg;
pub mod opus;
pub mod rtp;
pub mod vp8;

pub use error::CodecError;
