//! The media plane of classroom: an SFU that relays WebRTC audio and video between the
//! participants of a room.
//!
//! The crate has two layers, after str0m and quinn:
//!
//! - [`Sfu`], a sans-IO core. It owns one `str0m::Rtc` per peer (ICE-lite, all peers on one
//!   shared UDP port) and forwards RTP packets from publishers to subscribers without
//!   depacketizing them. It is a plain state machine: datagrams, timeouts and commands go in
//!   ([`Sfu::handle_datagram`], [`Sfu::handle_tcp_frame`], [`Sfu::handle_timeout`],
//!   [`Sfu::add_peer`], …), datagrams to send, [`MediaEvent`]s and the next deadline come out
//!   of [`Sfu::poll_output`].
//! - [`driver`], a thin tokio layer: media workers, each one thread that owns an `Sfu`, a UDP
//!   socket and a TCP listener for ICE-TCP (passive candidates,
//!   [`classroom_protocol::tcp_framing`]) with every TCP connection, and a command channel
//!   ([`driver::MediaCommand`], replies on oneshots); one event channel for all; and the
//!   [`driver::MediaHandle`] that routes each command to its room's worker ([`placement`]).
//!
//! - [`local`], in-process participants: the RTMP bridge publishes through
//!   [`Sfu::add_local_publisher`] / [`Sfu::write_local`], the recorder and the restream
//!   subscribe through [`Sfu::add_local_subscriber`] ([`driver::MediaHandle`] has the async
//!   versions). They share the browsers' forwarding path.
//! - [`relay`], a room that spans workers: two cores joined by a batched, bounded link with two
//!   ends ([`Sfu::add_relay`], [`Sfu::handle_relays`]); another worker's publisher is a
//!   relayed in-process publisher on the same forwarding path.
//! - [`node_link`], a room that spans nodes: the same relay with a str0m WebRTC peer between
//!   its ends (RTP for packets, a data channel for the rest), set up by
//!   [`driver::MediaHandle::node_link_offer`] / [`driver::MediaHandle::node_link_answer`].
//!
//! Signaling talks to this crate with our own IDs ([`PeerId`], [`classroom_protocol::RoomName`])
//! and SDP strings; no str0m type appears in the public API.
//!
//! # Offer/answer
//!
//! A browser joins with an offer: `sendonly`/`sendrecv` m-lines for its own tracks and
//! `recvonly` m-lines for tracks it wants to receive. The SFU answers ([`Sfu::add_peer`]).
//!
//! - Every m-line the SFU receives on is a *publication* of that peer.
//! - Every `recvonly` m-line of the client (`sendonly` on our side) is a *slot*: the SFU binds a
//!   publication of another peer in the same room to a free slot of the same kind and reports
//!   it with [`MediaEvent::SubscriptionStarted`], so signaling can tell the client whose track
//!   arrives on which mid. `sendrecv` m-lines are publications only, never slots.
//! - When a subscriber has no free slot for a publication, the SFU renegotiates from its side:
//!   it adds `sendonly` m-lines, emits [`MediaEvent::OfferCreated`] with an SDP offer, and
//!   expects the client's answer through [`Sfu::accept_answer`]. At most one such offer is
//!   outstanding per peer; tracks that appear meanwhile are offered after the answer.
//! - A client may renegotiate itself (to publish a screen share, say) with a new offer through
//!   [`Sfu::accept_offer`]. A client offer wins over an outstanding SFU offer (glare): the SFU
//!   discards its own and offers again after answering.
//!
//! # Invariants
//!
//! - The core never touches sockets, tasks, locks or the clock: time is the `now` argument.
//! - Each `Rtc` is drained to its timeout after every mutation (str0m's single-mutation rule).
//! - Network input can cost a counter in [`SfuStats`], never a panic.
//! - A peer whose publish permission is revoked has nothing forwarded from the next packet on;
//!   a peer added without it ([`Sfu::add_peer_with`]) has nothing forwarded from its first.
//! - A peer whose audio is muted ([`Sfu::set_audio_muted`]) has no audio forwarded.
//! - A peer's audio reaches another room only while its voice is on for that room's lesson
//!   ([`Sfu::set_voice_broadcast`]: a moderator speaking to every breakout room), and from the
//!   next packet on no more once it is off.
//! - Outgoing sequence numbers per slot start near 1 and stay contiguous across re-binding,
//!   so a receiver's SRTP rollover counter needs no out-of-band signaling.
//! - A video slot forwards nothing of a newly bound publication before its first keyframe
//!   (for codecs whose keyframes the core can tell: VP8, VP9, H.264, AV1).
//! - A keyframe request is never lost to the throttle: at most one per track and interval goes
//!   to the publisher, and one that comes inside the interval goes out when it ends.
//! - A subscriber gets audio and the lowest layer of every video even over its bandwidth
//!   estimate, and its estimate (which paces what it is sent) starts at what those need, so
//!   they are not queued in the pacer; higher layers wait for the estimate to grow.

pub mod driver;
pub mod local;
pub mod node_link;
pub mod placement;
pub mod relay;

mod demux;
mod error;
mod quality;
mod sfu;
mod speaker;
mod stats;
mod tcp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classroom_protocol::RoomName;
/// Peers and m-lines are named alike in signaling and here.
pub use classroom_protocol::{Mid, PeerId};

pub use error::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, ConfigError, LocalWriteError, UnknownPeer,
    VideoSizeError,
};
pub use local::{Codec, LocalEvent, LocalPacket, LocalTrack, LocalTrackId};
pub use quality::ConnectionQuality;
pub use sfu::{Sfu, SfuConfig};
pub use stats::{Family, Metric, MetricKind, SfuStats};

/// The server half of the USERNAME (`server-ufrag:client-ufrag`) of a STUN binding request,
/// as the shared-port demultiplexer reads it to route a peer's first datagram; `None` for any
/// other datagram. Only the framing is checked, not the integrity. Never panics, whatever the
/// input; public for the fuzz target `fuzz/fuzz_targets/media_datagram.rs` and diagnostics.
pub fn stun_binding_server_ufrag(datagram: &[u8]) -> Option<&str> {
    demux::binding_request_server_ufrag(datagram)
}

/// How a peer's packets travel: the shared UDP socket, or one TCP connection to the shared
/// listening port (ICE-TCP, RFC 6544, for networks that block UDP), where the remote address
/// names the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
}

/// What the core reports to signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// ICE and DTLS are up: media can flow.
    PeerConnected { peer: PeerId },
    /// The peer is gone (removed, timed out, or its connection failed). Reported once.
    PeerDisconnected { peer: PeerId },
    /// A peer publishes a track on `mid`, or may publish it again after a revocation ended.
    TrackPublished {
        peer: PeerId,
        mid: Mid,
        kind: TrackKind,
    },
    /// A track is no longer forwarded (publisher gone or its permission revoked).
    TrackUnpublished { peer: PeerId, mid: Mid },
    /// `subscriber` now receives `publisher`'s track on its own m-line `subscriber_mid`.
    SubscriptionStarted {
        subscriber: PeerId,
        subscriber_mid: Mid,
        publisher: PeerId,
        publisher_mid: Mid,
        kind: TrackKind,
    },
    /// `subscriber_mid` of `subscriber` no longer carries `publisher`'s track.
    SubscriptionEnded {
        subscriber: PeerId,
        subscriber_mid: Mid,
        publisher: PeerId,
        publisher_mid: Mid,
    },
    /// A keyframe request (PLI/FIR) was sent to the publisher of this track.
    KeyframeRequested { publisher: PeerId, mid: Mid },
    /// Who is speaking in `room` changed: loudest first, empty in silence (from the audio
    /// level header extension; at most a few reports a second).
    ActiveSpeakers {
        room: RoomName,
        speakers: Vec<PeerId>,
    },
    /// The quality of a peer's connection changed (round-trip time, loss, jitter, silence).
    QualityChanged {
        peer: PeerId,
        quality: ConnectionQuality,
    },
    /// The SFU needs to add m-lines to this peer's session: relay this SDP offer to the client
    /// and return its answer through [`Sfu::accept_answer`].
    OfferCreated { peer: PeerId, offer: String },
    /// The first media packet went out to this peer, at `at`: the end of its join.
    MediaStarted { peer: PeerId, at: Instant },
    /// About once a second, for each peer that receives media: how its connection carries it.
    SubscriberStats {
        peer: PeerId,
        stats: SubscriberStats,
    },
}

/// One sample of a subscriber's connection, from str0m's statistics (RTCP receiver reports
/// and ICE consent checks). A measurement the period did not yield is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Round-trip time.
    pub rtt: Option<Duration>,
    /// Fraction of what we sent that the subscriber lost, in parts per million.
    pub loss_ppm: Option<u32>,
    /// Interarrival jitter the subscriber reports, the worst of its streams.
    pub jitter: Option<Duration>,
}

/// What [`Sfu::poll_output`] yields; drain it until [`Output::Timeout`].
#[derive(Debug)]
pub enum Output {
    /// Send `bytes` to `destination`: from the shared UDP socket, or as one frame on the TCP
    /// connection from that address.
    Transmit {
        transport: Transport,
        destination: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Something signaling should know.
    Event(MediaEvent),
    /// Something for an in-process subscriber.
    Local {
        subscriber: PeerId,
        event: LocalEvent,
    },
    /// Nothing more to do before this instant, unless input arrives first.
    Timeout(Instant),
}
