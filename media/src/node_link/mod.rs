//! The node link: one room's relay ([`crate::relay`]) with a network between its two ends,
//! so that a lecture spans nodes as it spans workers.
//!
//! Each node's SFU holds an ordinary relay end for the room ([`crate::Sfu::add_relay`]); its
//! other end is held here, by a [`NodeLink`], one str0m WebRTC peer per room and node pair,
//! that carries the relay's items to the other node's `NodeLink`, which hands them to that
//! node's SFU. Neither SFU knows the other is on another machine: the other node's
//! publications appear as relayed publishers under their own peer ids, subscribed, throttled
//! and layer-selected exactly as another worker's are, and the forwarding path is unchanged.
//!
//! On the network:
//! - Packets travel as RTP on one stream per publication and simulcast layer (SRTP: encrypted;
//!   video NACKed and resent on RTX by str0m). The sender numbers each stream contiguously,
//!   so a gap is a loss on the link, repaired there.
//! - Everything else (the tracks, which stream carries which layer of which publication in
//!   which codec, layer rates, wants, keyframe requests) goes on one reliable, ordered data
//!   channel ([`wire`]). A keyframe request with its layer also widens the want, as on the
//!   in-process relay, so it travels with the wants rather than as a PLI.
//! - Only what the other side wants crosses: the relay core sends the packets of the tracks
//!   and layers the other side's subscribers take, once per link however many take them.
//!
//! Roles: the node that offers ([`Role::Edge`]) is ICE controlling and the DTLS and SCTP
//! client; the one that answers ([`Role::Home`]) is ICE-lite, as the SFU is toward browsers.
//! Both directions are alike otherwise (an edge's own publishers cross the other way).
//!
//! The link ends when its relay end's SFU lets go (the room left that worker), when the other
//! side says it closes (a last channel message), or when nothing that passed DTLS arrived for
//! [`LINK_TIMEOUT`] (the other node died; each side says something at least every 500 ms):
//! its end is dropped and the SFU removes what came over it.
//!
//! Sans-IO like the SFU: datagrams, relay batches and timeouts go in with `now`; datagrams
//! and the next deadline come out. [`driver`] runs one on a tokio task with its own socket.

mod description;
pub mod driver;
mod items;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::local::Codec;
use crate::relay::SfuRelayEnd;
use crate::sfu::RelayMessage;
use crate::{PeerId, TrackKind};
use description::{DESCRIPTION_HEADER, Description};
pub(crate) use items::{NodeItem, NodePacket, NodeWant};
use wire::Control;

/// Nothing heard from the other node for this long: it is gone, and so is the link.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a side that has said nothing else tells the other it is alive.
const KEEPALIVE: Duration = Duration::from_millis(500);
/// Streams (publications × layers) one side accepts from the other: a bound on what a
/// misbehaving peer can make us keep.
const MAX_STREAMS: usize = 4096;
/// Controls waiting for the data channel before the link gives up.
const MAX_UNSENT: usize = 16_384;
/// The data channel's stream id, agreed by both sides (no in-band opening handshake).
const CHANNEL_ID: u16 = 0;

/// Which end of the link this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Offers and connects (ICE controlling, DTLS and SCTP client).
    Edge,
    /// Answers (ICE-lite, DTLS and SCTP server).
    Home,
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLinkStats {
    /// RTP packets sent over the link, by kind (retransmissions not counted).
    pub audio_packets_sent: u64,
    pub video_packets_sent: u64,
    /// RTP packets received from the link and handed to the SFU.
    pub packets_received: u64,
    pub controls_sent: u64,
    pub controls_received: u64,
    /// Channel messages that were not ours (counted and dropped).
    pub malformed_controls: u64,
    /// Packets of a stream the other side never announced, or of a codec the link does not
    /// carry (dropped).
    pub packets_dropped: u64,
    /// Control messages dropped when the backlog the data channel could not take grew too
    /// large (the link then ends).
    pub controls_dropped: u64,
}

impl std::ops::AddAssign for NodeLinkStats {
    fn add_assign(&mut self, other: NodeLinkStats) {
        self.audio_packets_sent += other.audio_packets_sent;
        self.video_packets_sent += other.video_packets_sent;
        self.packets_received += other.packets_received;
        self.controls_sent += other.controls_sent;
        self.controls_received += other.controls_received;
        self.malformed_controls += other.malformed_controls;
        self.packets_dropped += other.packets_dropped;
        self.controls_dropped += other.controls_dropped;
    }
}

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NodeLinkError {
    #[error("malformed node link description: {0}")]
    Description(&'static str),
    #[error("node link: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("node link socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the media plane is stopped")]
    Stopped,
}

/// What [`NodeLink::poll_output`] yields; drain it until [`NodeOutput::Timeout`].
#[derive(Debug)]
pub enum NodeOutput {
    Transmit {
        destination: SocketAddr,
        bytes: Vec<u8>,
    },
    Timeout(Instant),
}

/// One stream we send: a publication's layer.
struct TxStream {
    ssrc: Ssrc,
    codec: Codec,
    next_seq: u64,
}

/// One publication we send.
struct TxTrack {
    link_mid: Mid,
    kind: TrackKind,
    streams: Vec<(Option<Rid>, TxStream)>,
}

/// One stream we receive.
struct RxStream {
    publisher: PeerId,
    mid: Mid,
    rid: Option<Rid>,
    codec: Codec,
    kind: TrackKind,
}

/// One node's half of a room's node link (see the module).
pub struct NodeLink {
    rtc: Rtc,
    role: Role,
    local: SocketAddr,
    end: SfuRelayEnd,
    channel: Option<ChannelId>,
    /// The data channel is open.
    open: bool,
    /// Controls not written yet (the channel is not open, or its buffer is full), in order.
    unsent: VecDeque<Control>,
    tx: FxHashMap<(PeerId, Mid), TxTrack>,
    next_link_mid: u64,
    rx: FxHashMap<Ssrc, RxStream>,
    /// Link mids the other side declared, with their kind.
    rx_mids: FxHashMap<Mid, MediaKind>,
    stats: NodeLinkStats,
    /// The latest instant given (events come out of str0m without one).
    now: Instant,
    /// When the other side was last heard from (a channel message or a packet, both passed
    /// DTLS), or the link connected.
    heard: Instant,
    /// When we last wrote a control.
    said: Instant,
    closed: bool,
    inbox: Vec<RelayMessage>,
}

impl NodeLink {
    /// A link bound to `local` (its socket's address, the ICE host candidate), holding
    /// `end`, whose other end an SFU holds for the room.
    pub fn new(now: Instant, role: Role, local: SocketAddr, end: SfuRelayEnd) -> Self {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(role == Role::Home)
            .set_extension(7, Extension::AbsoluteCaptureTime)
            .clear_codecs();
        // One payload type per codec the core tells apart; the codec's parameters (an H.264
        // profile) travel with the stream's announcement.
        let codecs = config.codec_config();
        codecs.add_config(
            Pt::new_with_value(111),
            None,
            RtcCodec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            Default::default(),
        );
        for (pt, codec) in [
            (96, RtcCodec::Vp8),
            (98, RtcCodec::Vp9),
            (102, RtcCodec::H264),
            (45, RtcCodec::Av1),
        ] {
            codecs.add_config(
                Pt::new_with_value(pt),
                Some(Pt::new_with_value(pt + 1)),
                codec,
                Frequency::NINETY_KHZ,
                None,
                Default::default(),
            );
        }
        let mut rtc = config.build(now);
        if let Ok(candidate) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(candidate);
        }
        rtc.direct_api().set_ice_controlling(role == Role::Edge);
        NodeLink {
            rtc,
            role,
            local,
            end,
            channel: None,
            open: false,
            unsent: VecDeque::new(),
            tx: FxHashMap::default(),
            next_link_mid: 0,
            rx: FxHashMap::default(),
            rx_mids: FxHashMap::default(),
            stats: NodeLinkStats::default(),
            now,
            heard: now,
            said: now,
            closed: false,
            inbox: Vec::new(),
        }
    }

    /// This side's description for the other node: ICE credentials, DTLS fingerprint and
    /// candidate. The edge's is its offer, the home's its answer.
    pub fn description(&mut self) -> String {
        let api = self.rtc.direct_api();
        let creds = api.local_ice_credentials();
        let fingerprint = api.local_dtls_fingerprint().to_string();
        format!(
            "{DESCRIPTION_HEADER}\nice {} {}\nfingerprint {fingerprint}\ncandidate {}\n",
            creds.ufrag, creds.pass, self.local
        )
    }

    /// Takes the other node's description and starts connecting.
    pub fn connect(&mut self, now: Instant, remote: &str) -> Result<(), NodeLinkError> {
        let remote = Description::parse(remote)?;
        let edge = self.role == Role::Edge;
        let mut api = self.rtc.direct_api();
        api.set_remote_ice_credentials(remote.creds);
        api.set_remote_fingerprint(remote.fingerprint);
        api.start_dtls(edge)?;
        api.start_sctp(edge);
        let channel = api.create_data_channel(ChannelConfig {
            label: "relay".into(),
            negotiated: Some(CHANNEL_ID),
            ..Default::default()
        });
        self.channel = Some(channel);
        if edge {
            let candidate = Candidate::host(remote.candidate, "udp")
                .map_err(|_| NodeLinkError::Description("candidate"))?;
            self.rtc.add_remote_candidate(candidate);
        }
        self.heard = now;
        self.handle_timeout(now);
        Ok(())
    }

    /// A datagram from the other node.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        self.now = now;
        let Ok(contents) = bytes.try_into() else {
            self.stats.packets_dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        // A datagram str0m cannot use (not one of the link's) costs a counter, not the link.
        // The other side is heard from only by what passed DTLS (see `event`): anyone can
        // send a datagram, only it can keep the link alive.
        if self.rtc.handle_input(input).is_err() {
            self.stats.packets_dropped += 1;
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.closed = true;
        }
        if now.saturating_duration_since(self.heard) >= LINK_TIMEOUT {
            self.closed = true;
        }
        if now.saturating_duration_since(self.said) >= KEEPALIVE {
            self.send_control(now, Control::Alive);
        } else {
            self.flush_controls();
        }
    }

    /// A batch (or the close) of the SFU's end arrived.
    pub fn handle_relay(&mut self, now: Instant) {
        self.now = now;
        let mut inbox = std::mem::take(&mut self.inbox);
        self.end.drain(|message| inbox.push(message));
        for message in inbox.drain(..) {
            self.on_sfu_item(now, message.into_node());
        }
        self.inbox = inbox;
        if self.end.is_closed() {
            self.closed = true;
        }
    }

    /// Datagrams to send, then the next deadline.
    pub fn poll_output(&mut self) -> NodeOutput {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(transmit)) => {
                    return NodeOutput::Transmit {
                        destination: transmit.destination,
                        bytes: transmit.contents.into(),
                    };
                }
                Ok(Output::Event(event)) => self.event(event),
                Ok(Output::Timeout(at)) => {
                    // What arrived goes to the SFU as one batch per burst of input.
                    if !self.end.flush() {
                        self.closed = true;
                    }
                    if self.is_closed() {
                        return NodeOutput::Timeout(at);
                    }
                    let at = at.min(self.said + KEEPALIVE).min(self.heard + LINK_TIMEOUT);
                    return NodeOutput::Timeout(at);
                }
                Err(_) => {
                    self.closed = true;
                    return NodeOutput::Timeout(self.now);
                }
            }
        }
    }

    /// The link is over: the driver drops it (and with it the SFU's link).
    pub fn is_closed(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    /// Tells the other side the link ends (so that it ends it at once rather than after its
    /// timeout) and closes the data channel; the driver sends what that wrote.
    pub fn close(&mut self) {
        if self.open && self.rtc.is_alive() {
            self.send_control(self.now, Control::Close);
        }
        if let Some(channel) = self.channel.take() {
            self.rtc.direct_api().close_data_channel(channel);
        }
        self.closed = true;
    }

    pub fn stats(&self) -> NodeLinkStats {
        self.stats
    }

    fn event(&mut self, event: Event) {
        let now = self.now;
        if matches!(
            event,
            Event::ChannelOpen(..) | Event::ChannelData(_) | Event::RtpPacket(_)
        ) {
            self.heard = now;
        }
        match event {
            Event::ChannelOpen(..) => {
                self.open = true;
                self.flush_controls();
            }
            Event::ChannelData(data) => match Control::decode(&data.data) {
                Ok(control) => {
                    self.stats.controls_received += 1;
                    self.on_control(control);
                }
                Err(wire::Malformed) => self.stats.malformed_controls += 1,
            },
            Event::ChannelClose(_) => self.closed = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.closed = true;
            }
            Event::RtpPacket(packet) => {
                let Some(stream) = self.rx.get(&packet.header.ssrc) else {
                    self.stats.packets_dropped += 1;
                    return;
                };
                self.stats.packets_received += 1;
                let item = NodeItem::Packet {
                    publisher: stream.publisher,
                    mid: stream.mid,
                    packet: NodePacket {
                        kind: stream.kind,
                        codec: stream.codec,
                        rid: stream.rid,
                        timestamp: packet.header.timestamp,
                        marker: packet.header.marker,
                        payload: packet.payload,
                        arrival: now,
                        ext_vals: packet.header.ext_vals,
                    },
                };
                self.end
                    .push(RelayMessage::from_node(item, *packet.seq_no, now));
            }
            _ => {}
        }
        // Handed over once per burst of input (at the end of the drain), but a long burst
        // is not held back.
        if self.end.pending() >= 64 && !self.end.flush() {
            self.closed = true;
        }
    }

    /// An item of our SFU for the other side.
    fn on_sfu_item(&mut self, now: Instant, item: NodeItem) {
        match item {
            NodeItem::Packet {
                publisher,
                mid,
                packet,
            } => self.send_packet(publisher, mid, packet),
            NodeItem::Track {
                publisher,
                mid,
                kind,
            } => {
                if !self.tx.contains_key(&(publisher, mid)) {
                    let link_mid = Mid::from(format!("n{}", self.next_link_mid).as_str());
                    self.next_link_mid += 1;
                    let media_kind = match kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    self.rtc.direct_api().declare_media(link_mid, media_kind);
                    self.tx.insert(
                        (publisher, mid),
                        TxTrack {
                            link_mid,
                            kind,
                            streams: Vec::new(),
                        },
                    );
                }
                self.send_control(
                    now,
                    Control::Track {
                        publisher,
                        mid,
                        kind,
                    },
                );
            }
            NodeItem::TrackEnded { publisher, mid } => {
                if let Some(track) = self.tx.remove(&(publisher, mid)) {
                    let mut api = self.rtc.direct_api();
                    for (_, stream) in track.streams {
                        api.remove_stream_tx(stream.ssrc);
                    }
                }
                self.send_control(now, Control::TrackEnded { publisher, mid });
            }
            NodeItem::Layers {
                publisher,
                mid,
                rates,
            } => self.send_control(
                now,
                Control::Layers {
                    publisher,
                    mid,
                    rates,
                },
            ),
            NodeItem::Want {
                publisher,
                mid,
                want,
            } => self.send_control(
                now,
                Control::Want {
                    publisher,
                    mid,
                    want,
                },
            ),
            NodeItem::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            } => self.send_control(
                now,
                Control::Keyframe {
                    publisher,
                    mid,
                    rid,
                    kind,
                },
            ),
        }
    }

    /// One packet as RTP on its layer's stream, announced on the channel first.
    fn send_packet(&mut self, publisher: PeerId, mid: Mid, packet: NodePacket) {
        let Some(pt) = link_pt(packet.codec) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let Some(track) = self.tx.get_mut(&(publisher, mid)) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let index = match track
            .streams
            .iter()
            .position(|(rid, s)| *rid == packet.rid && s.codec == packet.codec)
        {
            Some(index) => index,
            None => {
                // A new layer, or the publisher changed codec: a new stream.
                let link_mid = track.link_mid;
                let video = track.kind == TrackKind::Video;
                let mut api = self.rtc.direct_api();
                let ssrc = api.new_ssrc();
                let rtx = video.then(|| api.new_ssrc());
                api.declare_stream_tx(ssrc, rtx, link_mid, packet.rid);
                track.streams.retain(|(rid, _)| *rid != packet.rid);
                track.streams.push((
                    packet.rid,
                    TxStream {
                        ssrc,
                        codec: packet.codec,
                        next_seq: 1,
                    },
                ));
                let control = Control::Stream {
                    ssrc: *ssrc,
                    rtx: rtx.map(|r| *r),
                    link_mid,
                    publisher,
                    mid,
                    rid: packet.rid,
                    codec: packet.codec,
                };
                let index = track.streams.len() - 1;
                self.send_control(self.now, control);
                index
            }
        };
        let Some(track) = self.tx.get_mut(&(publisher, mid)) else {
            return;
        };
        let (_, stream) = &mut track.streams[index];
        let seq_no = stream.next_seq;
        stream.next_seq += 1;
        let ssrc = stream.ssrc;
        let video = packet.kind == TrackKind::Video;
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx(&ssrc) else {
            return;
        };
        tx.write_rtp(
            RtpWrite::new(
                pt,
                seq_no.into(),
                packet.timestamp,
                packet.arrival,
                packet.payload,
            )
            .marker(packet.marker)
            .nackable(video)
            .ext_vals(packet.ext_vals),
        );
        if video {
            self.stats.video_packets_sent += 1;
        } else {
            self.stats.audio_packets_sent += 1;
        }
    }

    /// A control message of the other side.
    fn on_control(&mut self, control: Control) {
        let now = self.now;
        let item = match control {
            Control::Alive => return,
            Control::Close => {
                self.closed = true;
                return;
            }
            Control::Stream {
                ssrc,
                rtx,
                link_mid,
                publisher,
                mid,
                rid,
                codec,
            } => {
                self.expect_stream(ssrc, rtx, link_mid, publisher, mid, rid, codec);
                return;
            }
            Control::Track {
                publisher,
                mid,
                kind,
            } => NodeItem::Track {
                publisher,
                mid,
                kind,
            },
            Control::TrackEnded { publisher, mid } => {
                let gone: Vec<Ssrc> = self
                    .rx
                    .iter()
                    .filter(|(_, s)| s.publisher == publisher && s.mid == mid)
                    .map(|(ssrc, _)| *ssrc)
                    .collect();
                let mut api = self.rtc.direct_api();
                for ssrc in gone {
                    self.rx.remove(&ssrc);
                    api.remove_stream_rx(ssrc);
                }
                NodeItem::TrackEnded { publisher, mid }
            }
            Control::Layers {
                publisher,
                mid,
                rates,
            } => NodeItem::Layers {
                publisher,
                mid,
                rates,
            },
            Control::Want {
                publisher,
                mid,
                want,
            } => NodeItem::Want {
                publisher,
                mid,
                want,
            },
            Control::Keyframe {
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
        };
        self.end.push(RelayMessage::from_node(item, 0, now));
    }

    /// The other side announced a stream: its packets are taken from now on.
    #[expect(clippy::too_many_arguments, reason = "one announcement's fields")]
    fn expect_stream(
        &mut self,
        ssrc: u32,
        rtx: Option<u32>,
        link_mid: Mid,
        publisher: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        codec: Codec,
    ) {
        let kind = codec.kind();
        let media_kind = match kind {
            TrackKind::Audio => MediaKind::Audio,
            TrackKind::Video => MediaKind::Video,
        };
        let ssrc = Ssrc::from(ssrc);
        let known_kind = self.rx_mids.get(&link_mid).copied();
        let refused = known_kind.is_some_and(|k| k != media_kind)
            || (!self.rx.contains_key(&ssrc) && self.rx.len() >= MAX_STREAMS)
            || link_pt(codec).is_none();
        if refused {
            self.stats.malformed_controls += 1;
            return;
        }
        let mut api = self.rtc.direct_api();
        if known_kind.is_none() {
            api.declare_media(link_mid, media_kind);
            self.rx_mids.insert(link_mid, media_kind);
        }
        api.expect_stream_rx(ssrc, rtx.map(Ssrc::from), link_mid, rid);
        self.rx.insert(
            ssrc,
            RxStream {
                publisher,
                mid,
                rid,
                codec,
                kind,
            },
        );
    }

    /// Writes a control on the channel, after those still waiting: in order, none lost.
    fn send_control(&mut self, now: Instant, control: Control) {
        self.said = self.said.max(now);
        self.unsent.push_back(control);
        self.flush_controls();
    }

    /// Writes the waiting controls while the channel takes them (until it opens, and while
    /// SCTP's send buffer is full). A link whose backlog outgrows [`MAX_UNSENT`] cannot keep
    /// the other side's picture right and ends: its SFU removes what came over it, and a new
    /// link starts over.
    fn flush_controls(&mut self) {
        let Some(id) = self.channel.filter(|_| self.open) else {
            self.check_backlog();
            return;
        };
        while let Some(control) = self.unsent.front() {
            let Some(mut channel) = self.rtc.channel(id) else {
                break;
            };
            match channel.write(true, &control.encode()) {
                Ok(true) => {
                    self.stats.controls_sent += 1;
                    self.unsent.pop_front();
                }
                Ok(false) => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        self.check_backlog();
    }

    fn check_backlog(&mut self) {
        if self.unsent.len() > MAX_UNSENT {
            self.stats.controls_dropped += self.unsent.len() as u64;
            self.unsent.clear();
            self.closed = true;
        }
    }
}

/// The link's payload type of a codec; `None` for codecs the core cannot name.
fn link_pt(codec: Codec) -> Option<Pt> {
    let pt = match codec {
        Codec::Opus => 111,
        Codec::Vp8 => 96,
        Codec::Vp9 => 98,
        Codec::H264 { .. } => 102,
        Codec::Av1 => 45,
        Codec::Other => return None,
    };
    Some(Pt::new_with_value(pt))
}
