//! The relay core's items as the node link ([`crate::node_link`]) carries them: the link
//! puts them on the network between two nodes (packets as RTP, the rest on a data channel)
//! and rebuilds them on the other side. The core itself never sees the difference between a
//! link to another worker and one to another node.

use std::time::Instant;

use str0m::rtp::ExtensionValues;

use super::decide::Incoming;
use super::in_process::payload_params;
use super::relay::{Item, RelayMessage, Want};
use super::simulcast::is_keyframe_start;
use crate::TrackKind;
use crate::node_link::{NodeItem, NodePacket, NodeWant};

impl RelayMessage {
    /// What the link carries of this item.
    pub(crate) fn into_node(self) -> NodeItem {
        match self.0 {
            Item::Track {
                publisher,
                mid,
                kind,
            } => NodeItem::Track {
                publisher,
                mid,
                kind,
            },
            Item::TrackEnded { publisher, mid } => NodeItem::TrackEnded { publisher, mid },
            Item::Packet {
                publisher,
                mid,
                incoming,
            } => NodeItem::Packet {
                publisher,
                mid,
                packet: NodePacket {
                    kind: incoming.kind,
                    codec: incoming.codec,
                    rid: incoming.rid,
                    timestamp: incoming.timestamp,
                    marker: incoming.marker,
                    payload: incoming.payload,
                    arrival: incoming.arrival,
                    ext_vals: incoming.ext_vals,
                },
            },
            Item::Layers {
                publisher,
                mid,
                rates,
            } => NodeItem::Layers {
                publisher,
                mid,
                rates,
            },
            Item::Want {
                publisher,
                mid,
                want,
            } => NodeItem::Want {
                publisher,
                mid,
                want: want.map(|want| match want {
                    Want::All => NodeWant::All,
                    Want::Layers(rids) => NodeWant::Layers(rids),
                }),
            },
            Item::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            } => NodeItem::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            },
        }
    }

    /// The item a link rebuilt from the network. A packet is numbered by the link (`seq_no`,
    /// contiguous per stream) and its keyframe start is told from its payload, as for a
    /// browser's packet; its codec parameters are those the core gives local publishers.
    pub(crate) fn from_node(item: NodeItem, seq_no: u64, now: Instant) -> RelayMessage {
        let item = match item {
            NodeItem::Track {
                publisher,
                mid,
                kind,
            } => Item::Track {
                publisher,
                mid,
                kind,
            },
            NodeItem::TrackEnded { publisher, mid } => Item::TrackEnded { publisher, mid },
            NodeItem::Packet {
                publisher,
                mid,
                packet,
            } => {
                let params = payload_params(packet.codec);
                let keyframe = packet.kind == TrackKind::Video
                    && is_keyframe_start(packet.codec, &packet.payload);
                Item::Packet {
                    publisher,
                    mid,
                    incoming: Incoming {
                        kind: packet.kind,
                        codec: packet.codec,
                        params: Some(params),
                        in_pt: params.pt(),
                        seq_no,
                        timestamp: packet.timestamp,
                        marker: packet.marker,
                        keyframe,
                        rid: packet.rid,
                        payload: packet.payload,
                        arrival: now,
                        ext_vals: ExtensionValues {
                            audio_level: packet.ext_vals.audio_level,
                            voice_activity: packet.ext_vals.voice_activity,
                            video_orientation: packet.ext_vals.video_orientation,
                            abs_capture_time: packet.ext_vals.abs_capture_time,
                            ..Default::default()
                        },
                    },
                }
            }
            NodeItem::Layers {
                publisher,
                mid,
                rates,
            } => Item::Layers {
                publisher,
                mid,
                rates,
            },
            NodeItem::Want {
                publisher,
                mid,
                want,
            } => Item::Want {
                publisher,
                mid,
                want: want.map(|want| match want {
                    NodeWant::All => Want::All,
                    NodeWant::Layers(rids) => Want::Layers(rids),
                }),
            },
            NodeItem::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            } => Item::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            },
        };
        RelayMessage(item)
    }
}
