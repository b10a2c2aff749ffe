//! The port through which signaling drives the media plane, and what the media plane tells
//! signaling back. Signaling names peers with its own [`PeerId`]s and carries SDP as strings,
//! so it does not depend on the SFU or its WebRTC engine; the server implements [`MediaPort`]
//! with the SFU's handle and turns the SFU's events into [`MediaNotice`]s
//! ([`crate::Rooms::deliver_media`]).
//!
//! Invariants kept by the room (`room/peers.rs`, whose commands the room task carries out):
//! - One peer per WebSocket connection: a participant who reconnects gets a new peer, and the
//!   old connection's peer is removed when that connection goes.
//! - A peer is added with the publish permission of its participant's grants at that moment,
//!   and every grant change reaches the port before anyone hears of it.
//! - Calls for one room are made in order, from the room's task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use classroom_protocol::signal::{ConnectionQuality, MediaKind};
use classroom_protocol::{ErrorCode, LessonId, RoomName};
/// Signaling and the media plane name peers alike.
pub use classroom_protocol::{Mid, PeerId};

/// Hands out peer ids, shared by the rooms of a node so that none is ever reused.
///
/// In a cluster the ids are unique across nodes: a node's carry its node number (taken at
/// start, `PeerIds::for_node`) in bits 32 to 52, so that an edge's SFU takes the peer ids of
/// a home's room as they are, beside its own (`docs/scale-out.md`). Ids stay below 2^53, the
/// integers a browser's JSON reads exactly. A single node is number 0: ids count from 1.
#[derive(Debug, Clone, Default)]
pub struct PeerIds(Arc<AtomicU64>);

/// Node numbers wrap past this (21 bits).
pub const NODE_NUMBERS: u32 = 1 << 21;

impl PeerIds {
    /// The ids of node number `node` of a cluster (taken modulo [`NODE_NUMBERS`]).
    pub fn for_node(node: u32) -> PeerIds {
        let base = u64::from(node % NODE_NUMBERS) << 32;
        PeerIds(Arc::new(AtomicU64::new(base)))
    }

    /// The next unused id (the first is 1).
    pub fn next(&self) -> PeerId {
        PeerId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// What a new peer may do from its first packet on, and when its connection began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAccess {
    /// Its tracks are forwarded (the participant's grants allow publishing).
    pub publish: bool,
    /// Its audio is dropped (a moderator muted the participant).
    pub audio_muted: bool,
    /// When the WebSocket of the connection that opens the peer was opened: the media plane
    /// measures the join time (to the first media packet it sends the peer) from here.
    pub connection_opened: Option<std::time::Instant>,
    /// The participant arrived over an edge node's signaling link: the peer is to live in
    /// that edge's SFU (`None`: in this node's).
    pub edge: Option<EdgeId>,
}

/// An edge node's signaling link, numbered by the home that accepted it: the participants who
/// arrived over it have their media peers in that edge's SFU (`docs/scale-out.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId(pub u64);

/// Why the media plane refused a negotiation step. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The SDP could not be parsed, or cannot be answered.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// An `answer` came while no server offer was waiting for one.
    #[error("no server offer is waiting for an answer")]
    NoPendingOffer,
    /// The peer is gone (its connection failed or timed out); send a new offer.
    #[error("the media session is gone; send a new offer")]
    NoPeer,
    /// The media plane is not running.
    #[error("media is unavailable")]
    Unavailable,
    /// No video m-line with this mid carries media to the client.
    #[error("no video m-line {0} carries media to you")]
    UnknownMid(Mid),
}

impl MediaError {
    /// The error code sent to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            MediaError::InvalidSdp(_) => ErrorCode::InvalidSdp,
            MediaError::NoPendingOffer => ErrorCode::NoPendingOffer,
            MediaError::NoPeer => ErrorCode::NoMediaSession,
            MediaError::Unavailable => ErrorCode::MediaUnavailable,
            MediaError::UnknownMid(_) => ErrorCode::UnknownMid,
        }
    }
}

/// A boxed future, so that [`MediaPort`] can be used as a trait object.
pub type MediaFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The commands signaling gives the media plane. Commands about a peer the media plane no
/// longer has are not errors where nothing is left to do (removing, muting a gone peer).
pub trait MediaPort: Send + Sync + 'static {
    /// Opens a peer in `room` from the client's offer, with `access` in force before it can
    /// send anything; returns the SDP answer.
    fn add_peer<'a>(
        &'a self,
        peer: PeerId,
        room: &'a RoomName,
        offer: String,
        access: PeerAccess,
    ) -> MediaFuture<'a, Result<String, MediaError>>;

    /// A client renegotiation of an existing peer; returns the SDP answer.
    fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> MediaFuture<'_, Result<String, MediaError>>;

    /// The client's answer to the media plane's last offer ([`MediaNotice::Offer`]).
    fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> MediaFuture<'_, Result<(), MediaError>>;

    /// Closes a peer; its tracks stop being forwarded.
    fn remove_peer(&self, peer: PeerId) -> MediaFuture<'_, ()>;

    /// Grants or revokes publishing; on revocation nothing more of the peer's is forwarded.
    fn set_publish_allowed(&self, peer: PeerId, allowed: bool) -> MediaFuture<'_, ()>;

    /// Drops or resumes forwarding the peer's audio.
    fn set_audio_muted(&self, peer: PeerId, muted: bool) -> MediaFuture<'_, ()>;

    /// Forwards the peer's audio to every breakout room of `lesson` as well (a moderator
    /// speaking to all rooms), or (`None`) to its own room only, from the next packet on.
    fn set_voice_broadcast(&self, peer: PeerId, lesson: Option<LessonId>) -> MediaFuture<'_, ()>;

    /// The height at which the peer's client shows the video of its m-line `mid`.
    fn set_video_size(
        &self,
        peer: PeerId,
        mid: Mid,
        height: u32,
    ) -> MediaFuture<'_, Result<(), MediaError>>;
}

/// What the media plane tells signaling, to be relayed to the client of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaNotice {
    /// The media plane renegotiates: relay this offer to the peer's client.
    Offer { peer: PeerId, sdp: String },
    /// `subscriber`'s m-line `mid` now carries `publisher`'s track.
    TrackStarted {
        subscriber: PeerId,
        mid: Mid,
        publisher: PeerId,
        /// The publisher's m-line the track arrives on.
        publisher_mid: Mid,
        kind: MediaKind,
    },
    /// `subscriber`'s m-line `mid` no longer carries a track.
    TrackEnded { subscriber: PeerId, mid: Mid },
    /// The media plane dropped the peer by itself (connection failed or timed out).
    PeerGone { peer: PeerId },
    /// Who speaks in `room` now, loudest first.
    Speakers { room: RoomName, peers: Vec<PeerId> },
    /// The quality of the peer's connection changed.
    Quality {
        peer: PeerId,
        quality: ConnectionQuality,
    },
}

impl MediaNotice {
    /// The peer the notice is for; `None` for notices about a whole room.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            MediaNotice::Offer { peer, .. }
            | MediaNotice::PeerGone { peer }
            | MediaNotice::Quality { peer, .. } => Some(*peer),
            MediaNotice::TrackStarted { subscriber, .. }
            | MediaNotice::TrackEnded { subscriber, .. } => Some(*subscriber),
            MediaNotice::Speakers { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clusters_nodes_hand_out_ids_apart_and_below_two_to_the_53() {
        let single = PeerIds::default();
        assert_eq!((single.next(), single.next()), (PeerId(1), PeerId(2)));
        let (one, two) = (PeerIds::for_node(1), PeerIds::for_node(2));
        let (a, b) = (one.next(), two.next());
        assert_eq!(a, PeerId((1 << 32) + 1));
        assert_eq!(b, PeerId((2 << 32) + 1));
        let last = PeerIds::for_node(NODE_NUMBERS - 1).next();
        assert!(last.0 < 1 << 53, "{last}");
        // Numbers wrap: node number 2^21 is node 0 again.
        assert_eq!(PeerIds::for_node(NODE_NUMBERS).next(), PeerId(1));
    }
}
