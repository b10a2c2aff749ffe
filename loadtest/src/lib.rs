//! `classroom-loadtest`: simulated teachers and students that drive a running `classroomd`
//! exactly as browsers do, and measure what they get.
//!
//! It depends only on the wire protocol: REST to set up a lesson and get join tokens
//! ([`api`]), the signaling WebSocket ([`signaling`], with the types of `classroom-protocol`),
//! and WebRTC with DTLS and SRTP over real UDP, or over ICE-TCP as a browser whose network
//! blocks UDP ([`peer`], str0m in RTP mode; [`link`]). Publishers send
//! pre-encoded VP8 and Opus clips ([`clip`], [`source`]) stamped with abs-capture-time; every
//! receiver measures loss, jitter, latency, bitrate and join time per stream ([`receiver`],
//! [`stats`]). [`scenario`] runs the presets and [`report`] sums them up. The same participants
//! can load Janus's VideoRoom instead ([`janus`]) for the benchmark, whose machine floor (the
//! CPU of a bare UDP send) [`floor`] measures. [`ingest`] publishes an encoder's H.264 + AAC
//! over RTMP instead of a teacher's WebRTC, for the ingest's CPU and added latency.
//! [`breakout`] splits a class into breakout rooms and back, measuring the media gap per move.
//!
//! Invariants: a run is bounded in time and participants; it sends only to the server address
//! it was given (and to the media address that server's SDP names); nothing the network
//! sends can panic it.

pub mod api;
pub mod board;
pub mod breakout;
pub mod clip;
pub mod floor;
pub mod ingest;
pub mod janus;
pub mod link;
pub mod participant;
pub mod pdf;
pub mod peer;
pub mod receiver;
pub mod report;
pub mod scenario;
pub mod signaling;
pub mod source;
pub mod stats;
pub mod usage;

pub use report::Report;
pub use scenario::{RunConfig, RunError, Scenario, Target, run};
