//! The relay's items as the link sees them (converted from and to the core's own in
//! `sfu/node_items.rs`): plain data, so that the link needs nothing of the core's insides.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::rtp::ExtensionValues;

use crate::local::Codec;
use crate::{PeerId, TrackKind};

/// What crosses the network of a relay item ([`RelayMessage`] as the link sees it).
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is a packet, moved once from the relay's item to the network"
)]
pub(crate) enum NodeItem {
    Track {
        publisher: PeerId,
        mid: Mid,
        kind: TrackKind,
    },
    TrackEnded {
        publisher: PeerId,
        mid: Mid,
    },
    Packet {
        publisher: PeerId,
        mid: Mid,
        packet: NodePacket,
    },
    Layers {
        publisher: PeerId,
        mid: Mid,
        rates: Vec<(Rid, u64)>,
    },
    Want {
        publisher: PeerId,
        mid: Mid,
        want: Option<NodeWant>,
    },
    Keyframe {
        publisher: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    },
}

/// One packet of a publication, as the link carries it.
#[derive(Debug)]
pub(crate) struct NodePacket {
    pub(crate) kind: TrackKind,
    pub(crate) codec: Codec,
    pub(crate) rid: Option<Rid>,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    pub(crate) payload: Arc<[u8]>,
    pub(crate) arrival: Instant,
    pub(crate) ext_vals: ExtensionValues,
}

/// What one side takes of a publication of the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeWant {
    All,
    Layers(Vec<Rid>),
}
