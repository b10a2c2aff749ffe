//! Test peers for the SFU: str0m clients in frame mode (as a browser would be), connected to
//! the core through an in-memory network on a virtual clock.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

pub mod span;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classroom_media::{LocalEvent, MediaEvent, Output, PeerId, Sfu, SfuConfig};
use classroom_protocol::{LessonId, RoomName};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Rid, Simulcast,
    SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Rtc};

pub mod socket;

pub const SFU_ADDR: &str = "192.0.2.1:3478";
pub const OPUS_FRAME: usize = 160;
pub const VP8_KEYFRAME: usize = 3000;
pub const VP8_DELTA: usize = 900;

pub fn room() -> RoomName {
    RoomName::for_lesson(LessonId(1))
}

/// A client's m-lines for publishing audio and video.
pub const SEND: [(MediaKind, Direction); 2] = [
    (MediaKind::Audio, Direction::SendOnly),
    (MediaKind::Video, Direction::SendOnly),
];
/// A client's m-lines for receiving audio and video.
pub const RECV: [(MediaKind, Direction); 2] = [
    (MediaKind::Audio, Direction::RecvOnly),
    (MediaKind::Video, Direction::RecvOnly),
];

/// A synthetic VP8 frame: a valid uncompressed header (keyframe bit, start code and size for
/// keyframes) followed by filler, with `index` stamped in so frames can be told apart.
pub fn vp8_frame(index: u32, keyframe: bool) -> Vec<u8> {
    let len = if keyframe { VP8_KEYFRAME } else { VP8_DELTA };
    vp8_frame_of_len(index, keyframe, len)
}

/// [`vp8_frame`] of `len` bytes (at least 15: byte 14 is free for a test's own tag).
pub fn vp8_frame_of_len(index: u32, keyframe: bool, len: usize) -> Vec<u8> {
    let mut frame = vec![0x5A; len.max(15)];
    // Frame tag: bit 0 is 0 for a keyframe; show_frame set; version 0.
    frame[0] = if keyframe { 0x10 } else { 0x11 };
    frame[1] = 0x02;
    frame[2] = 0x00;
    if keyframe {
        frame[3..6].copy_from_slice(&[0x9D, 0x01, 0x2A]);
        frame[6..10].copy_from_slice(&[0x80, 0x02, 0xE0, 0x01]); // 640x480
    }
    frame[10..14].copy_from_slice(&index.to_be_bytes());
    frame
}

pub fn opus_frame(index: u32) -> Vec<u8> {
    let mut frame = vec![0xA5; OPUS_FRAME];
    frame[0] = 0x78; // TOC: CELT FB 20 ms, one frame.
    frame[1..5].copy_from_slice(&index.to_be_bytes());
    frame
}

/// The index stamped into a synthetic frame.
pub fn frame_index(kind: MediaKind, data: &[u8]) -> Option<u32> {
    let at = if kind == MediaKind::Audio { 1 } else { 10 };
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// One browser-like client.
pub struct Client {
    pub peer: PeerId,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub timeout: Instant,
    pub events: Vec<Event>,
}

impl Client {
    /// A client with one m-line per entry, and the SDP offer for them.
    pub fn new(
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        lines: &[(MediaKind, Direction)],
    ) -> (Self, Vec<Mid>, String, SdpPendingOffer) {
        Client::with_candidate(now, peer, Candidate::host(addr, "udp").unwrap(), lines)
    }

    /// [`Client::new`] offering `candidate` only (a TCP one, say), at its address.
    pub fn with_candidate(
        now: Instant,
        peer: PeerId,
        candidate: Candidate,
        lines: &[(MediaKind, Direction)],
    ) -> (Self, Vec<Mid>, String, SdpPendingOffer) {
        let addr = candidate.addr();
        let mut rtc = Rtc::new(now);
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let mids = lines
            .iter()
            .map(|(kind, dir)| change.add_media(*kind, *dir, None, None, None))
            .collect();
        let (offer, pending) = change.apply().unwrap();
        (
            Client::of(now, peer, addr, rtc),
            mids,
            offer.to_sdp_string(),
            pending,
        )
    }

    /// A client publishing one video m-line in simulcast layers `rids` (lowest first); its
    /// video mid and its offer.
    pub fn simulcast(
        now: Instant,
        peer: PeerId,
        addr: SocketAddr,
        rids: &[&str],
    ) -> (Self, Mid, String, SdpPendingOffer) {
        let mut rtc = Rtc::new(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let simulcast = Simulcast {
            send: rids.iter().map(|rid| SimulcastLayer::new(rid)).collect(),
            recv: Vec::new(),
        };
        let mut change = rtc.sdp_api();
        let video = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            Some(simulcast),
        );
        let (offer, pending) = change.apply().unwrap();
        (
            Client::of(now, peer, addr, rtc),
            video,
            offer.to_sdp_string(),
            pending,
        )
    }

    fn of(now: Instant, peer: PeerId, addr: SocketAddr, rtc: Rtc) -> Self {
        Client {
            peer,
            addr,
            rtc,
            timeout: now,
            events: Vec::new(),
        }
    }

    pub fn accept_answer(&mut self, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    pub fn accept_offer(&mut self, offer: &str) -> String {
        let offer = SdpOffer::from_sdp_string(offer).unwrap();
        let answer = self.rtc.sdp_api().accept_offer(offer).unwrap();
        answer.to_sdp_string()
    }

    /// Writes one frame on a sending m-line with the first codec of its kind.
    pub fn write(&mut self, now: Instant, start: Instant, mid: Mid, kind: MediaKind, data: &[u8]) {
        let codec = if kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let writer = self.rtc.writer(mid).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt();
        let elapsed = now - start;
        let time = if kind == MediaKind::Audio {
            MediaTime::new(
                elapsed.as_micros() as u64 * 48 / 1000,
                Frequency::FORTY_EIGHT_KHZ,
            )
        } else {
            MediaTime::new(
                elapsed.as_micros() as u64 * 90 / 1000,
                Frequency::NINETY_KHZ,
            )
        };
        writer.write(pt, now, time, data.to_vec()).unwrap();
    }

    /// Writes one VP8 frame of the simulcast layer `rid` on `mid`, stamped `time`.
    pub fn write_layer(
        &mut self,
        now: Instant,
        time: MediaTime,
        mid: Mid,
        rid: &str,
        data: Vec<u8>,
    ) {
        let writer = self.rtc.writer(mid).unwrap().rid(Rid::from(rid));
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .unwrap()
            .pt();
        writer.write(pt, now, time, data).unwrap();
    }

    pub fn request_keyframe(&mut self, mid: Mid) {
        let mut writer = self.rtc.writer(mid).unwrap();
        writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .unwrap();
    }

    /// Received frames of one kind, as stamped indices.
    pub fn received(&self, kind: MediaKind) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) if d.params.spec().codec.kind() == kind => {
                    frame_index(kind, &d.data)
                }
                _ => None,
            })
            .collect()
    }

    /// The full received frames of one kind.
    pub fn received_frames(&self, kind: MediaKind) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) if d.params.spec().codec.kind() == kind => {
                    Some(d.data.to_vec())
                }
                _ => None,
            })
            .collect()
    }

    pub fn keyframe_requests(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::KeyframeRequest(_)))
            .count()
    }

    /// Keyframe requests for the simulcast layer `rid`.
    pub fn keyframe_requests_of(&self, rid: &str) -> usize {
        let rid = Rid::from(rid);
        self.events
            .iter()
            .filter(|e| matches!(e, Event::KeyframeRequest(r) if r.rid == Some(rid)))
            .count()
    }

    /// (frame index, byte 14: a simulcast test's layer) of every video frame received.
    pub fn layers_received(&self) -> Vec<(u32, u8)> {
        self.received_frames(MediaKind::Video)
            .iter()
            .filter_map(|f| Some((frame_index(MediaKind::Video, f)?, *f.get(14)?)))
            .collect()
    }

    pub fn is_connected(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Connected))
    }
}

/// The SFU core and its clients on one virtual network and clock. Datagrams are delivered
/// instantly; time only moves in [`World::advance`].
pub struct World {
    pub start: Instant,
    pub now: Instant,
    pub sfu_addr: SocketAddr,
    pub sfu: Sfu,
    sfu_timeout: Instant,
    pub clients: Vec<Client>,
    pub events: Vec<MediaEvent>,
    /// Offers the SFU made that the test has not answered yet.
    pub offers: VecDeque<(PeerId, String)>,
    /// The SFU's answer to each join, in order.
    pub answers: Vec<String>,
    /// What the SFU gave in-process subscribers, in order.
    pub locals: Vec<(PeerId, LocalEvent)>,
}

impl World {
    pub fn new() -> Self {
        World::with_config(|_| {})
    }

    /// A world whose SFU has its configuration changed by `change`.
    pub fn with_config(change: impl FnOnce(&mut SfuConfig)) -> Self {
        let now = Instant::now();
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        let mut config = SfuConfig::new(sfu_addr);
        change(&mut config);
        let sfu = Sfu::new(now, config).unwrap();
        World {
            start: now,
            now,
            sfu_addr,
            sfu,
            sfu_timeout: now,
            clients: Vec::new(),
            events: Vec::new(),
            offers: VecDeque::new(),
            answers: Vec::new(),
            locals: Vec::new(),
        }
    }

    /// Joins a client with these m-lines and waits until it is connected. Returns its index
    /// and its mids.
    pub fn join(&mut self, peer: PeerId, lines: &[(MediaKind, Direction)]) -> (usize, Vec<Mid>) {
        self.join_with(peer, lines, true)
    }

    /// [`World::join`] with the peer's initial publish permission.
    pub fn join_with(
        &mut self,
        peer: PeerId,
        lines: &[(MediaKind, Direction)],
        publish_allowed: bool,
    ) -> (usize, Vec<Mid>) {
        self.join_pinned(peer, lines, publish_allowed, None)
    }

    /// [`World::join_with`] for a pinned peer (a WHIP publisher, a WHEP player).
    pub fn join_pinned(
        &mut self,
        peer: PeerId,
        lines: &[(MediaKind, Direction)],
        publish_allowed: bool,
        pins: Option<Vec<(PeerId, classroom_media::Mid)>>,
    ) -> (usize, Vec<Mid>) {
        self.join_in(peer, room(), lines, publish_allowed, pins)
    }

    /// [`World::join_pinned`] into another room than [`room`].
    pub fn join_in(
        &mut self,
        peer: PeerId,
        room: RoomName,
        lines: &[(MediaKind, Direction)],
        publish_allowed: bool,
        pins: Option<Vec<(PeerId, classroom_media::Mid)>>,
    ) -> (usize, Vec<Mid>) {
        let addr = SocketAddr::from(([10, 0, 0, self.clients.len() as u8 + 1], 5000));
        let (mut client, mids, offer, pending) = Client::new(self.now, peer, addr, lines);
        let answer = self
            .sfu
            .add_peer_pinned(self.now, peer, room, &offer, publish_allowed, pins)
            .unwrap();
        client.accept_answer(pending, &answer);
        self.answers.push(answer);
        self.clients.push(client);
        let index = self.clients.len() - 1;
        for _ in 0..200 {
            self.advance(Duration::from_millis(10));
            if self.clients[index].is_connected()
                && self.events.contains(&MediaEvent::PeerConnected { peer })
            {
                return (index, mids);
            }
        }
        panic!("peer {peer} did not connect");
    }

    /// Moves datagrams between everyone until the network is quiet, without moving time.
    pub fn settle(&mut self) {
        loop {
            let mut in_flight: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
            for client in &mut self.clients {
                loop {
                    match client.rtc.poll_output().unwrap() {
                        str0m::Output::Transmit(t) => {
                            in_flight.push((t.source, t.destination, t.contents.into()))
                        }
                        str0m::Output::Event(e) => client.events.push(e),
                        str0m::Output::Timeout(t) => {
                            client.timeout = t;
                            break;
                        }
                    }
                }
            }
            loop {
                match self.sfu.poll_output() {
                    Output::Transmit {
                        destination, bytes, ..
                    } => in_flight.push((self.sfu_addr, destination, bytes)),
                    Output::Event(event) => {
                        if let MediaEvent::OfferCreated { peer, offer } = &event {
                            self.offers.push_back((*peer, offer.clone()));
                        }
                        self.events.push(event);
                    }
                    Output::Local { subscriber, event } => self.locals.push((subscriber, event)),
                    Output::Timeout(t) => {
                        self.sfu_timeout = t;
                        break;
                    }
                }
            }
            if in_flight.is_empty() {
                return;
            }
            for (source, destination, bytes) in in_flight {
                if destination == self.sfu_addr {
                    self.sfu
                        .handle_datagram(self.now, source, destination, &bytes);
                } else if let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination)
                {
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination,
                            contents: bytes.as_slice().try_into().unwrap(),
                        },
                    );
                    client.rtc.handle_input(input).unwrap();
                }
            }
        }
    }

    /// Advances the virtual clock by `duration`, servicing every deadline on the way (at a
    /// granularity of at most 5 ms).
    pub fn advance(&mut self, duration: Duration) {
        let target = self.now + duration;
        self.settle();
        while self.now < target {
            let next = self
                .clients
                .iter()
                .map(|c| c.timeout)
                .chain([
                    self.sfu_timeout,
                    self.now + Duration::from_millis(5),
                    target,
                ])
                .min()
                .unwrap_or(target)
                .max(self.now + Duration::from_millis(1));
            self.now = next.min(target);
            for client in &mut self.clients {
                if client.timeout <= self.now {
                    client.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                }
            }
            if self.sfu_timeout <= self.now {
                self.sfu.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    pub fn client(&mut self, index: usize) -> &mut Client {
        &mut self.clients[index]
    }

    /// Answers every offer the SFU made.
    pub fn answer_offers(&mut self) {
        while let Some((peer, offer)) = self.offers.pop_front() {
            let now = self.now;
            let client = self.clients.iter_mut().find(|c| c.peer == peer).unwrap();
            let answer = client.accept_offer(&offer);
            self.sfu.accept_answer(now, peer, &answer).unwrap();
            self.settle();
        }
    }
}

impl Network for World {
    fn clock(&self) -> (Instant, Instant) {
        (self.now, self.start)
    }

    fn client(&mut self, index: usize) -> &mut Client {
        World::client(self, index)
    }

    fn settle(&mut self) {
        World::settle(self);
    }

    fn advance(&mut self, duration: Duration) {
        World::advance(self, duration);
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// A client sending 20 ms Opus frames and 25 fps VP8 (a keyframe first, then on request).
pub struct Publisher {
    pub index: usize,
    pub audio: Mid,
    pub video: Mid,
    pub audio_sent: u32,
    pub video_sent: BTreeMap<u32, Vec<u8>>,
    requests_seen: usize,
}

impl Publisher {
    pub fn join(world: &mut World, peer: PeerId) -> Self {
        let (index, mids) = world.join(peer, &SEND);
        Publisher {
            index,
            audio: mids[0],
            video: mids[1],
            audio_sent: 0,
            video_sent: BTreeMap::new(),
            requests_seen: 0,
        }
    }

    pub fn publish(&mut self, world: &mut World, duration: Duration) {
        let ticks = duration.as_millis() / 20;
        for tick in 0..ticks {
            let (now, start) = (world.now, world.start);
            let client = world.client(self.index);
            client.write(
                now,
                start,
                self.audio,
                MediaKind::Audio,
                &opus_frame(self.audio_sent),
            );
            self.audio_sent += 1;
            // Each write is a mutation that must be drained before the next.
            world.settle();
            if tick % 2 == 0 {
                let client = world.client(self.index);
                let requests = client.keyframe_requests();
                let index = self.video_sent.len() as u32;
                let keyframe = index == 0 || requests > self.requests_seen;
                self.requests_seen = requests;
                let frame = vp8_frame(index, keyframe);
                client.write(now, start, self.video, MediaKind::Video, &frame);
                self.video_sent.insert(index, frame);
            }
            world.advance(Duration::from_millis(20));
        }
    }
}

/// Clients on a virtual network and clock ([`World`], or a test's own with several cores).
pub trait Network {
    /// Now, and when the network started.
    fn clock(&self) -> (Instant, Instant);
    fn client(&mut self, index: usize) -> &mut Client;
    /// Moves datagrams until the network is quiet, without moving time.
    fn settle(&mut self);
    /// Moves time on by `duration`, servicing every deadline on the way.
    fn advance(&mut self, duration: Duration);
}

/// Simulcast layers, lowest first, and the size of one frame of each (one packet a frame).
pub const LAYERS: [(&str, usize); 3] = [("q", 150), ("h", 500), ("f", 1000)];

/// A client sending one simulcast video: every 40 ms one VP8 frame of each layer (the layer's
/// index at byte 14), a keyframe first and whenever that layer is asked for one.
pub struct SimulcastPublisher {
    /// The client's index on its network.
    pub index: usize,
    pub video: Mid,
    /// Each layer's rid and frame size, lowest first.
    pub layers: &'static [(&'static str, usize)],
    /// Frames sent of each layer.
    pub sent: u32,
    /// Keyframe requests seen so far, per layer.
    pub requests_seen: Vec<usize>,
}

impl SimulcastPublisher {
    pub fn new(index: usize, video: Mid, layers: &'static [(&'static str, usize)]) -> Self {
        SimulcastPublisher {
            index,
            video,
            layers,
            sent: 0,
            requests_seen: vec![0; layers.len()],
        }
    }

    /// 40 ms: one frame of each layer, then time moves on.
    pub fn tick(&mut self, network: &mut impl Network) {
        let (now, start) = network.clock();
        for (layer, (rid, len)) in self.layers.iter().enumerate() {
            let client = network.client(self.index);
            let requests = client.keyframe_requests_of(rid);
            let keyframe = self.sent == 0 || requests > self.requests_seen[layer];
            self.requests_seen[layer] = requests;
            let time = MediaTime::new(
                (now - start).as_micros() as u64 * 90 / 1000,
                Frequency::NINETY_KHZ,
            );
            let mut frame = vp8_frame_of_len(self.sent, keyframe, *len);
            frame[14] = layer as u8;
            client.write_layer(now, time, self.video, rid, frame);
            network.settle();
        }
        self.sent += 1;
        network.advance(Duration::from_millis(40));
    }
}

impl World {
    /// Joins a [`SimulcastPublisher`] of `layers` and waits 500 ms for it to connect.
    pub fn join_simulcast(
        &mut self,
        peer: PeerId,
        layers: &'static [(&'static str, usize)],
    ) -> SimulcastPublisher {
        let addr = SocketAddr::from(([10, 0, 0, 99], 5000));
        let rids: Vec<&str> = layers.iter().map(|(rid, _)| *rid).collect();
        let (mut client, video, offer, pending) = Client::simulcast(self.now, peer, addr, &rids);
        let answer = self.sfu.add_peer(self.now, peer, room(), &offer).unwrap();
        client.accept_answer(pending, &answer);
        self.clients.push(client);
        let index = self.clients.len() - 1;
        self.advance(Duration::from_millis(500));
        assert!(self.clients[index].is_connected());
        SimulcastPublisher::new(index, video, layers)
    }
}
