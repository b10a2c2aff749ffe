//! Two links on a virtual network and clock, each with the relay end its SFU would hold
//! played by the test.

#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, Mid};
use str0m::rtp::ExtensionValues;

use super::*;
use crate::relay::{self, SfuRelayEnd};

// Loopback addresses: the datagrams pass in memory between the two links, never a socket.
const HOME: &str = "127.0.0.1:4000";
const EDGE: &str = "127.0.0.2:5000";
const TEACHER: PeerId = PeerId(7);

struct Net {
    start: Instant,
    now: Instant,
    home: NodeLink,
    edge: NodeLink,
    /// The ends the SFUs would hold.
    home_sfu: SfuRelayEnd,
    edge_sfu: SfuRelayEnd,
    /// Datagrams are delivered while true.
    up: bool,
    /// Home-to-edge VP8 RTP datagrams to drop (counted down; the next is dropped at zero).
    drop_video_in: Option<usize>,
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        let (home_end, home_sfu) = relay::link(16);
        let (edge_end, edge_sfu) = relay::link(16);
        let mut home = NodeLink::new(now, Role::Home, HOME.parse().unwrap(), home_end);
        let mut edge = NodeLink::new(now, Role::Edge, EDGE.parse().unwrap(), edge_end);
        let offer = edge.description();
        let answer = home.description();
        home.connect(now, &offer).unwrap();
        edge.connect(now, &answer).unwrap();
        let mut net = Net {
            start: now,
            now,
            home,
            edge,
            home_sfu,
            edge_sfu,
            up: true,
            drop_video_in: None,
        };
        net.run(Duration::from_millis(500));
        assert!(net.home.open && net.edge.open, "the data channel opened");
        net
    }

    /// Delivers datagrams and fires timeouts for `duration` of virtual time.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        let mut turns = 0;
        loop {
            turns += 1;
            assert!(
                turns < 100_000,
                "no progress at {:?}",
                self.now - self.start
            );
            self.home.handle_relay(self.now);
            self.edge.handle_relay(self.now);
            let mut next = end;
            let mut moved = true;
            let mut rounds = 0;
            while moved {
                rounds += 1;
                assert!(rounds < 10_000, "datagrams ping-pong without end");
                moved = false;
                for from_home in [true, false] {
                    let (from, to, source) = if from_home {
                        (&mut self.home, &mut self.edge, HOME)
                    } else {
                        (&mut self.edge, &mut self.home, EDGE)
                    };
                    loop {
                        match from.poll_output() {
                            NodeOutput::Transmit { bytes, .. } => {
                                // SRTP keeps the RTP header in clear: version 2, the link's
                                // VP8 payload type.
                                let video =
                                    bytes.len() > 12 && bytes[0] >> 6 == 2 && bytes[1] & 0x7f == 96;
                                if from_home && video {
                                    match &mut self.drop_video_in {
                                        Some(0) => {
                                            self.drop_video_in = None;
                                            continue;
                                        }
                                        Some(n) => *n -= 1,
                                        None => {}
                                    }
                                }
                                if self.up {
                                    to.handle_datagram(self.now, source.parse().unwrap(), &bytes);
                                    moved = true;
                                }
                            }
                            NodeOutput::Timeout(at) => {
                                next = next.min(at);
                                break;
                            }
                        }
                    }
                }
            }
            if next >= end || self.now >= end {
                self.now = end;
                self.home.handle_timeout(end);
                self.edge.handle_timeout(end);
                return;
            }
            self.now = next.max(self.now + Duration::from_millis(1));
            self.home.handle_timeout(self.now);
            self.edge.handle_timeout(self.now);
        }
    }

    fn push_at_home_sfu(&mut self, item: NodeItem) {
        self.home_sfu
            .push(RelayMessage::from_node(item, 0, self.now));
        assert!(self.home_sfu.flush());
    }

    fn push_at_edge_sfu(&mut self, item: NodeItem) {
        self.edge_sfu
            .push(RelayMessage::from_node(item, 0, self.now));
        assert!(self.edge_sfu.flush());
    }

    fn at_edge_sfu(&mut self) -> Vec<NodeItem> {
        let mut items = Vec::new();
        self.edge_sfu.drain(|m| items.push(m.into_node()));
        items
    }

    fn at_home_sfu(&mut self) -> Vec<NodeItem> {
        let mut items = Vec::new();
        self.home_sfu.drain(|m| items.push(m.into_node()));
        items
    }
}

fn packet(index: u8, now: Instant) -> NodeItem {
    // A VP8 keyframe start for the first, delta frames after.
    let mut payload = vec![0x5A; 100];
    payload[0] = if index == 0 { 0x10 } else { 0x11 };
    payload[1] = 0x02;
    payload[3..6].copy_from_slice(&[0x9D, 0x01, 0x2A]);
    payload[10] = index;
    NodeItem::Packet {
        publisher: TEACHER,
        mid: Mid::from("v"),
        packet: NodePacket {
            kind: TrackKind::Video,
            codec: Codec::Vp8,
            rid: None,
            timestamp: u32::from(index) * 3000,
            marker: true,
            payload: Arc::from(payload),
            arrival: now,
            ext_vals: ExtensionValues::default(),
        },
    }
}

#[test]
fn tracks_packets_wants_and_keyframe_requests_cross_between_two_links() {
    let mut net = Net::new();
    net.push_at_home_sfu(NodeItem::Track {
        publisher: TEACHER,
        mid: Mid::from("v"),
        kind: TrackKind::Video,
    });
    net.run(Duration::from_millis(50));
    let items = net.at_edge_sfu();
    assert!(matches!(
        items.as_slice(),
        [NodeItem::Track {
            publisher: TEACHER,
            kind: TrackKind::Video,
            ..
        }]
    ));

    // The first packet announces its stream; the next ones follow it, numbered in order.
    for index in 0..10 {
        let item = packet(index, net.now);
        net.push_at_home_sfu(item);
        net.run(Duration::from_millis(20));
    }
    let indices: Vec<u8> = net
        .at_edge_sfu()
        .into_iter()
        .filter_map(|item| match item {
            NodeItem::Packet {
                publisher: TEACHER,
                packet,
                ..
            } => Some(packet.payload[10]),
            _ => None,
        })
        .collect();
    assert_eq!(indices, (0..10).collect::<Vec<u8>>());
    assert_eq!(net.home.stats().video_packets_sent, 10);
    assert_eq!(net.edge.stats().packets_received, 10);

    // Wants and keyframe requests go the other way.
    net.push_at_edge_sfu(NodeItem::Want {
        publisher: TEACHER,
        mid: Mid::from("v"),
        want: Some(NodeWant::All),
    });
    net.push_at_edge_sfu(NodeItem::Keyframe {
        publisher: TEACHER,
        mid: Mid::from("v"),
        rid: None,
        kind: KeyframeRequestKind::Pli,
    });
    net.run(Duration::from_millis(50));
    let items = net.at_home_sfu();
    assert!(
        matches!(
            items.as_slice(),
            [
                NodeItem::Want {
                    want: Some(NodeWant::All),
                    ..
                },
                NodeItem::Keyframe {
                    kind: KeyframeRequestKind::Pli,
                    ..
                }
            ]
        ),
        "{items:?}"
    );
}

#[test]
fn a_packet_lost_on_the_link_is_resent() {
    let mut net = Net::new();
    net.push_at_home_sfu(NodeItem::Track {
        publisher: TEACHER,
        mid: Mid::from("v"),
        kind: TrackKind::Video,
    });
    net.run(Duration::from_millis(50));
    net.drop_video_in = Some(3);
    for index in 0..10 {
        let item = packet(index, net.now);
        net.push_at_home_sfu(item);
        net.run(Duration::from_millis(20));
    }
    net.run(Duration::from_millis(500));
    assert_eq!(net.drop_video_in, None, "a packet was dropped");
    let mut indices: Vec<u8> = net
        .at_edge_sfu()
        .into_iter()
        .filter_map(|item| match item {
            NodeItem::Packet { packet, .. } => Some(packet.payload[10]),
            _ => None,
        })
        .collect();
    let arrived = indices.clone();
    indices.sort_unstable();
    assert_eq!(indices, (0..10).collect::<Vec<u8>>(), "arrived {arrived:?}");
    assert_ne!(arrived, indices, "the lost packet came late, resent");
}

#[test]
fn a_malformed_channel_message_is_counted_and_dropped_and_the_link_goes_on() {
    let mut net = Net::new();
    let channel = net.edge.channel.unwrap();
    for garbage in [&b"\x01"[..], b"\xff\x00\x01", b"\x01\x03\x00"] {
        let mut channel = net.edge.rtc.channel(channel).unwrap();
        channel.write(true, garbage).unwrap();
    }
    net.run(Duration::from_millis(200));
    assert_eq!(
        net.home.stats().malformed_controls,
        3,
        "{:?}",
        net.home.stats()
    );
    assert!(!net.home.is_closed());
    net.push_at_home_sfu(NodeItem::Track {
        publisher: TEACHER,
        mid: Mid::from("a"),
        kind: TrackKind::Audio,
    });
    net.run(Duration::from_millis(50));
    assert_eq!(net.at_edge_sfu().len(), 1);
}

#[test]
fn a_silent_other_side_ends_the_link_after_the_timeout() {
    let mut net = Net::new();
    net.run(LINK_TIMEOUT * 2);
    assert!(
        !net.home.is_closed() && !net.edge.is_closed(),
        "keepalives hold it"
    );
    net.up = false;
    net.run(LINK_TIMEOUT - Duration::from_millis(600));
    assert!(!net.edge.is_closed());
    net.run(Duration::from_millis(700));
    assert!(net.home.is_closed() && net.edge.is_closed());
}

#[test]
fn the_sfu_letting_go_of_its_end_ends_the_link_and_the_other_side_at_once() {
    let mut net = Net::new();
    let Net { home_sfu, .. } = &mut net;
    let placeholder = relay::link(1).1;
    drop(std::mem::replace(home_sfu, placeholder));
    net.run(Duration::from_millis(10));
    assert!(net.home.is_closed());
    // The home's driver closes its channel on the way out.
    net.home.close();
    // Only what the close wrote crosses: the home's driver stops right after.
    while let NodeOutput::Transmit { bytes, .. } = net.home.poll_output() {
        net.edge
            .handle_datagram(net.now, HOME.parse().unwrap(), &bytes);
    }
    while let NodeOutput::Transmit { .. } = net.edge.poll_output() {}
    assert!(net.edge.is_closed(), "the edge heard the close");
}

#[test]
fn a_link_whose_controls_cannot_go_out_ends_past_its_backlog() {
    let now = Instant::now();
    let (end, mut sfu) = relay::link(4);
    // Never connected: its channel never opens, everything waits.
    let mut link = NodeLink::new(now, Role::Home, HOME.parse().unwrap(), end);
    for _ in 0..MAX_UNSENT {
        sfu.push(RelayMessage::from_node(
            NodeItem::Layers {
                publisher: TEACHER,
                mid: Mid::from("v"),
                rates: Vec::new(),
            },
            0,
            now,
        ));
    }
    assert!(sfu.flush());
    link.handle_relay(now);
    assert!(!link.is_closed(), "a backlog up to the bound waits");
    sfu.push(RelayMessage::from_node(
        NodeItem::TrackEnded {
            publisher: TEACHER,
            mid: Mid::from("v"),
        },
        0,
        now,
    ));
    assert!(sfu.flush());
    link.handle_relay(now);
    assert!(link.is_closed());
    assert_eq!(link.stats().controls_dropped, MAX_UNSENT as u64 + 1);
}
