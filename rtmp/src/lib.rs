//! RTMP ingest: an encoder (OBS, ffmpeg, a hardware encoder) publishes
//! `rtmp://HOST/live/STREAM_KEY`, and the lesson gets RTP packets a browser can play.
//!
//! Layers, from the wire in:
//! - [`chunk_guard`] walks the chunk stream first and rejects absurd sizes and the header
//!   sequences rml_rtmp cannot handle; [`session`] runs rml_rtmp's handshake and server session
//!   (sans-IO, time is an argument) and turns FLV tags (`classroom_codec::flv`) into [`events::IngestEvent`]s.
//! - H.264 without B-frames passes through untouched (packetized by `classroom_codec::h264`:
//!   packetization mode 1, SPS/PPS in-band before every keyframe, current GOP kept in [`gop`]); H.264 with B-frames and AAC go
//!   through ffmpeg ([`transcode`]) and come back as Annex-B (`classroom_codec::annexb`) and Ogg/Opus (`classroom_codec::ogg`).
//! - [`sources`] decides who may publish to a lesson (one encoder at a time, resume after a
//!   drop); [`driver`] is the thin tokio edge: TCP, timers, child processes.
//!
//! Invariant: nothing that arrives from the network can panic; bad input closes that one
//! connection with a reason and changes nothing else.

pub mod amf_check;
pub mod chunk_guard;
pub mod driver;
pub mod events;
pub mod gop;
pub mod media;
pub mod restream;
pub mod session;
pub mod sources;
pub mod stats;
pub mod transcode;

pub use classroom_codec::rtp::RtpPacket;
pub use driver::{IngestConfig, IngestHandle, IngestServer, IngestSink, StreamKeys};
pub use events::{ConnectionId, IngestEvent, IngestTrack, StreamKey, TrackKind};
pub use session::{IngestSession, SessionConfig, SessionOutput};
pub use stats::{IngestSnapshot, SessionOutcome};
