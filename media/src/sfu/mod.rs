//! The sans-IO SFU core: peers, publications, slots and RTP forwarding.
//!
//! Work flows through one queue. Every mutation of a peer's `Rtc` is followed by [`Sfu::drain`],
//! which moves its datagrams to the output queue and its events to the work queue; the work
//! queue is then processed until empty. Handling one event may mutate other peers (a forwarded
//! packet is a write on each subscriber), whose events join the same queue, so there is no
//! recursion and no `Rtc` is mutated twice without a drain in between.

use std::collections::{BTreeSet, VecDeque};
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classroom_protocol::{LessonId, RoomName};
use rustc_hash::FxHashMap;
use str0m::bwe::BweKind;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, Frequency, MediaKind, Rid};
use str0m::net::TcpType;
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, PacerReason, Reason, Rtc};
use tracing::debug;

mod best_layer;
mod decide;
mod feedback;
mod first_frame;
mod forward;
mod in_process;
mod keyframe;
mod node_items;
mod peers;
mod pins;
mod relay;
mod simulcast;
mod slots;
mod start;
mod tick;
mod voice;

use crate::demux::{Demux, Route};
use crate::error::ConfigError;
use crate::{MediaEvent, Mid, Output, PeerId, SfuStats, TrackKind, Transport};
use decide::Forwarder;
use feedback::EgressSeen;
use in_process::{LocalPeer, LocalSource};
use keyframe::{Deferred, KeyframeThrottle};
pub use relay::RelayMessage;
use relay::Relays;
use simulcast::{BitrateMeter, Layers};
use tick::{PeerTick, TICK_PASSES};

use crate::quality::QualityMonitor;
use crate::speaker::{ActiveSpeakers, SpeakerConfig};

use crate::local::LocalTrackId;

type RtcMid = str0m::media::Mid;

/// What the core needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address peers send UDP to: advertised as an ICE host candidate, and expected as
    /// the destination of every datagram.
    pub candidate: SocketAddr,
    /// The address peers open TCP connections to (ICE-TCP), advertised as a passive TCP host
    /// candidate and expected as the destination of every TCP frame; `None`: no ICE-TCP.
    pub tcp_candidate: Option<SocketAddr>,
    /// Whether the UDP candidate is announced. Off, peers can only connect over TCP (to test
    /// the fallback, or where UDP never gets through).
    pub advertise_udp: bool,
    /// At most one keyframe request per publisher track in this interval; one that comes
    /// inside it is sent when it ends.
    pub keyframe_request_interval: Duration,
    /// How long a browser's keyframe (and what followed it) is kept to start new subscribers
    /// from at once ([`first_frame`]); zero: not kept, new subscribers ask the publisher.
    pub first_frame_max_age: Duration,
    /// A peer that has not connected this long after joining is dropped.
    pub connect_timeout: Duration,
    /// The longest burst a subscriber's pacer lets out at once, as time at its pacing rate
    /// (about 1.1× the subscriber's bandwidth estimate; vendor/str0m): a keyframe that fits
    /// goes out at once instead of being spread over the time the estimate needs for it.
    pub pacer_burst: Duration,
    /// How long each subscriber's sent packets are kept for resends (NACK) and the bandwidth
    /// estimator's padding (vendor/str0m). Most of a subscriber's memory: about its bitrate
    /// times this.
    pub resend_history: Duration,
}

/// The default of [`SfuConfig::resend_history`]: str0m keeps 3 s, but a resend that comes
/// later than the receiver's jitter buffer waits is of no use (libwebrtc's NACK gives up on a
/// packet within about a second), and 1 s leaves room for three retries at a 300 ms round
/// trip. docs/benchmarks.md, issue 15: the memory per subscriber.
pub const RESEND_HISTORY: Duration = Duration::from_secs(1);

/// The default of [`SfuConfig::pacer_burst`] (str0m's own is 40 ms; see docs/benchmarks.md,
/// issue 17).
pub const PACER_BURST: Duration = Duration::from_millis(250);

impl SfuConfig {
    pub fn new(candidate: SocketAddr) -> Self {
        SfuConfig {
            candidate,
            tcp_candidate: None,
            advertise_udp: true,
            keyframe_request_interval: Duration::from_millis(500),
            first_frame_max_age: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            pacer_burst: PACER_BURST,
            resend_history: RESEND_HISTORY,
        }
    }
}

/// The SFU core. See the crate documentation for the model.
pub struct Sfu {
    config: SfuConfig,
    /// The ICE candidates every peer is given: UDP, TCP or both.
    candidates: Vec<Candidate>,
    peers: FxHashMap<PeerId, Peer>,
    rooms: FxHashMap<RoomName, Vec<PeerId>>,
    demux: Demux,
    /// Each peer's next deadline, earliest first; a peer has at most one entry.
    timers: BTreeSet<(Instant, PeerId)>,
    /// The origin of the tick grid of connected peers' deadlines ([`tick`]).
    epoch: Instant,
    /// Scratch for the peers a timeout serves (kept to spare an allocation per tick).
    due: Vec<PeerId>,
    /// Subscribers written to since the last pass through their `Rtc` ([`Peer::unserved`]):
    /// served once, when the output is next polled, for every packet of the batch.
    unserved: Vec<PeerId>,
    outputs: VecDeque<Output>,
    work: VecDeque<(PeerId, Event)>,
    /// Peers found dead while draining; removed once the work queue is empty.
    dead: Vec<PeerId>,
    /// Rooms whose slot assignment may be stale. Assigned once the work queue is empty, so
    /// that all m-lines of one offer are known before any is found missing.
    dirty_rooms: Vec<RoomName>,
    last_now: Instant,
    stats: SfuStats,
    /// In-process participants (see [`crate::local`]), apart from the `Rtc` peers.
    locals: FxHashMap<PeerId, LocalPeer>,
    /// In-process members of each room.
    local_rooms: FxHashMap<RoomName, Vec<PeerId>>,
    /// The next [`LocalTrackId`] to hand out; every publication gets one.
    next_track: u64,
    /// Who speaks in each room with publishers of audio.
    speakers: FxHashMap<RoomName, ActiveSpeakers>,
    next_quality_poll: Instant,
    /// Keyframe requests waiting for the end of their throttle interval.
    deferred_keyframes: Vec<Deferred>,
    /// Links to other workers for rooms that span them ([`relay`]).
    relays: Relays,
    /// Peers whose audio every breakout room of a lesson hears ([`voice`]).
    voices: FxHashMap<PeerId, LessonId>,
}

struct Peer {
    room: RoomName,
    rtc: Rtc,
    ufrag: String,
    addrs: Vec<(Transport, SocketAddr)>,
    timer: Option<Instant>,
    tick: PeerTick,
    /// Packets written to its `Rtc` since its last pass; such a peer is in [`Sfu::unserved`].
    unserved: usize,
    /// Until connected, the peer is dropped at this instant.
    connect_deadline: Instant,
    connected: bool,
    publish_allowed: bool,
    /// Audio publications are not forwarded while set (a moderator muted the peer).
    audio_muted: bool,
    publications: FxHashMap<RtcMid, Publication>,
    slots: Vec<Slot>,
    /// A WHIP publisher or WHEP player, which cannot take our offers: it receives only these
    /// publications, in this order of preference, on the m-lines it offered ([`pins`]).
    pins: Option<Vec<(PeerId, RtcMid)>>,
    pending_offer: Option<PendingOffer>,
    /// The bandwidth estimate toward this peer (TWCC), bits per second.
    estimate: Option<u64>,
    /// Where its estimate last started ([`start`]), bits per second.
    start_estimate: u64,
    quality: QualityMonitor,
    /// A media packet has been sent to the peer (its join is complete).
    media_started: bool,
    /// The worst jitter the peer reported on our streams since its last connection stats.
    worst_jitter: Option<Duration>,
    /// NACKs we sent for each of its incoming streams, as str0m last counted them.
    nacks_sent: FxHashMap<(RtcMid, Option<Rid>), u64>,
}

/// A track the peer sends to us.
struct Publication {
    kind: TrackKind,
    /// How local subscribers know this track.
    track: LocalTrackId,
    /// Slots it is bound to: (subscriber, subscriber's mid).
    subscribers: Vec<(PeerId, RtcMid)>,
    keyframes: KeyframeThrottle,
    /// Set when the publisher is in-process.
    local: Option<LocalSource>,
    /// Its current keyframe and what followed, for new subscribers (single-encoding video;
    /// a simulcast publication keeps one per layer).
    gop: Option<first_frame::GopCache>,
    /// Simulcast layers seen so far (empty for a single encoding).
    layers: Layers,
    /// The bitrate of everything it sends (all layers together).
    bitrate: BitrateMeter,
    /// A slot was bound since the fan-out last found none waiting for a first keyframe; lets
    /// a GOP-keeping publication skip looking for starting slots on every packet.
    slots_starting: bool,
    /// The one layer of a simulcast publication the room's in-process subscribers receive.
    best_layer: best_layer::BestLayer,
}

impl Publication {
    fn new(kind: TrackKind, track: LocalTrackId) -> Self {
        Publication {
            kind,
            track,
            subscribers: Vec::new(),
            keyframes: KeyframeThrottle::default(),
            local: None,
            gop: None,
            layers: Layers::default(),
            bitrate: BitrateMeter::default(),
            slots_starting: false,
            best_layer: best_layer::BestLayer::default(),
        }
    }
}

/// An m-line on which we send to the peer, bound to at most one publication.
struct Slot {
    mid: RtcMid,
    kind: TrackKind,
    source: Option<(PeerId, RtcMid)>,
    /// What goes out on it of its source's packets, and how they are numbered.
    forwarder: Forwarder,
    /// Feedback on the slot's outgoing stream seen so far.
    egress: EgressSeen,
    /// Its stream's resend history was cut to what NACKs need (see `slots`).
    history_limited: bool,
}

struct PendingOffer {
    pending: SdpPendingOffer,
    mids: Vec<(RtcMid, TrackKind)>,
}

impl Sfu {
    pub fn new(now: Instant, config: SfuConfig) -> Result<Self, ConfigError> {
        let usable = |addr: SocketAddr| !addr.ip().is_unspecified() && addr.port() != 0;
        if !usable(config.candidate) {
            return Err(ConfigError::Candidate(config.candidate));
        }
        let mut candidates = Vec::new();
        if config.advertise_udp {
            let udp = Candidate::host(config.candidate, "udp")
                .map_err(|_| ConfigError::Candidate(config.candidate))?;
            candidates.push(udp);
        }
        if let Some(addr) = config.tcp_candidate {
            // Passive: peers connect to us (RFC 6544); an ICE-lite server never connects out.
            let tcp = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .ok()
                .filter(|_| usable(addr))
                .ok_or(ConfigError::Candidate(addr))?;
            candidates.push(tcp);
        }
        if candidates.is_empty() {
            return Err(ConfigError::NoCandidate);
        }
        Ok(Sfu {
            config,
            candidates,
            peers: FxHashMap::default(),
            rooms: FxHashMap::default(),
            demux: Demux::default(),
            timers: BTreeSet::new(),
            epoch: now,
            due: Vec::new(),
            unserved: Vec::new(),
            outputs: VecDeque::new(),
            work: VecDeque::new(),
            dead: Vec::new(),
            dirty_rooms: Vec::new(),
            last_now: now,
            stats: SfuStats::default(),
            locals: FxHashMap::default(),
            local_rooms: FxHashMap::default(),
            next_track: 0,
            speakers: FxHashMap::default(),
            next_quality_poll: now,
            deferred_keyframes: Vec::new(),
            relays: Relays::default(),
            voices: FxHashMap::default(),
        })
    }

    pub fn stats(&self) -> SfuStats {
        SfuStats {
            peers: self.peers.len() as u64,
            ..self.stats
        }
    }

    /// The next thing to do: a datagram to send, an event, or the deadline to call
    /// [`Sfu::handle_timeout`] at. Call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        // Serving may forward more (a subscriber that publishes too), hence the loop.
        loop {
            if let Some(output) = self.next_output() {
                return output;
            }
            if self.unserved.is_empty() {
                break;
            }
            self.serve_written(self.last_now);
        }
        // The burst is done: what it gave other workers goes to them in one batch each.
        self.flush_relays(self.last_now);
        let idle = self.last_now + Duration::from_secs(1);
        let next = self.timers.first().map_or(idle, |(at, _)| *at);
        let next = self
            .next_deferred_keyframe()
            .map_or(next, |at| at.min(next));
        let next = self.relays.next_due().map_or(next, |at| at.min(next));
        Output::Timeout(next)
    }

    /// The next queued output, but for speaker lists another worker reports ([`relay`]).
    fn next_output(&mut self) -> Option<Output> {
        while let Some(output) = self.outputs.pop_front() {
            if self.relays.is_empty() || self.keep_speakers(&output) {
                return Some(output);
            }
        }
        None
    }

    /// A datagram arrived on the shared socket from `source`, addressed to `destination`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) {
        self.receive(now, Transport::Udp, source, destination, datagram);
    }

    /// A frame (one packet, its RFC 4571 length prefix removed) arrived on the TCP connection
    /// from `source`, which the peer opened to `destination`.
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        frame: &[u8],
    ) {
        self.stats.tcp_frames_in += 1;
        self.receive(now, Transport::Tcp, source, destination, frame);
    }

    /// Whether packets from this address reach a peer: its STUN request passed the integrity
    /// check, and the peer is still here. The driver closes TCP connections that are not.
    pub fn knows_source(&self, transport: Transport, source: SocketAddr) -> bool {
        self.demux.knows((transport, source))
    }

    fn receive(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) {
        self.last_now = now;
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;

        let (peer_id, by_ufrag) = match self.demux.route(transport, source, datagram) {
            Route::Known(peer) => (peer, false),
            Route::ByUfrag(peer) => (peer, true),
            Route::UnknownUfrag => {
                self.stats.dropped_unknown_ufrag += 1;
                return;
            }
            Route::UnknownSource => {
                self.stats.dropped_unknown_source += 1;
                return;
            }
        };
        let Ok(contents) = DatagramRecv::try_from(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            self.stats.dropped_unknown_source += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: match transport {
                    Transport::Udp => Protocol::Udp,
                    Transport::Tcp => Protocol::Tcp,
                },
                source,
                destination,
                contents,
            },
        );
        peer.quality.datagram_received(now);
        if by_ufrag {
            // For STUN this is the integrity check against the peer's ICE password.
            if !peer.rtc.accepts(&input) {
                self.stats.dropped_stun_rejected += 1;
                return;
            }
            if self.demux.insert_addr((transport, source), peer_id) {
                peer.addrs.push((transport, source));
            }
        }
        // Receiving is a pass through its `Rtc` too: written packets go out with it.
        peer.unserved = 0;
        if let Err(error) = peer.rtc.handle_input(input) {
            // Hostile or stale input (a bad DTLS record, …) is not a reason to drop the peer;
            // the peer dies only if str0m says it is no longer alive.
            self.stats.input_errors += 1;
            debug!(peer = %peer_id, %error, "media input refused");
        }
        self.drain(peer_id);
        self.run(now);
    }

    /// Time passed: service every peer whose deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        let mut due = mem::take(&mut self.due);
        while let Some(&(at, peer_id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.push(peer_id);
        }
        for peer_id in due.drain(..) {
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                continue;
            };
            peer.timer = None;
            if !peer.connected && now >= peer.connect_deadline {
                debug!(peer = %peer_id, "media peer did not connect in time");
                self.dead.push(peer_id);
                continue;
            }
            self.serve(now, peer_id, TICK_PASSES);
        }
        self.due = due;
        self.poll_deferred_keyframes(now);
        self.poll_speakers(now);
        self.poll_quality(now);
        self.run(now);
    }

    /// Reports peers whose connection quality changed, about once a second.
    fn poll_quality(&mut self, now: Instant) {
        if now < self.next_quality_poll {
            return;
        }
        self.next_quality_poll = now + Duration::from_secs(1);
        for (peer_id, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            if let Some(quality) = peer.quality.poll(now) {
                self.outputs
                    .push_back(Output::Event(MediaEvent::QualityChanged {
                        peer: *peer_id,
                        quality,
                    }));
            }
        }
    }

    /// Reports rooms whose speaker list changed (speakers also leave on the clock, in silence).
    fn poll_speakers(&mut self, now: Instant) {
        for (room, speakers) in &mut self.speakers {
            if let Some(list) = speakers.poll(now) {
                self.outputs
                    .push_back(Output::Event(MediaEvent::ActiveSpeakers {
                        room: room.clone(),
                        speakers: list,
                    }));
            }
        }
    }

    /// Serves every subscriber written to since its last pass, once for all its packets:
    /// with [`str0m::RtcConfig::set_pacer_release_due`] one pass lets out what its pacer
    /// allows, so a batch of datagrams costs one pass per subscriber, not one per copy.
    fn serve_written(&mut self, now: Instant) {
        let mut unserved = mem::take(&mut self.unserved);
        for peer_id in unserved.drain(..) {
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                continue;
            };
            let written = mem::take(&mut peer.unserved);
            if written > 0 {
                self.serve(now, peer_id, written);
            }
        }
        if self.unserved.is_empty() {
            self.unserved = unserved;
        }
        self.run(now);
    }

    /// Drives a peer's `Rtc` to `now` and drains it. One pass lets out every packet its pacer
    /// allows; only while it probes does the pacer let out one packet per pass and ask to be
    /// polled again at once, and then the pass repeats: `passes` times (a packet per pass), and
    /// beyond that while its send queues hold more (up to [`TICK_PASSES`]), so that a backlog
    /// is not left to the deferred re-poll.
    fn serve(&mut self, now: Instant, peer_id: PeerId, passes: usize) {
        for pass in 1..=TICK_PASSES.max(passes) {
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                return;
            };
            peer.unserved = 0;
            if let Err(error) = peer.rtc.handle_input(Input::Timeout(now)) {
                debug!(peer = %peer_id, %error, "media timeout failed");
                self.dead.push(peer_id);
                self.drain(peer_id);
                return;
            }
            let sent = self.drain(peer_id);
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                return;
            };
            let again = peer.rtc.last_timeout_reason() == Reason::Pacer(PacerReason::Immediate);
            if sent == 0 || !again || (pass >= passes && !has_backlog(peer)) {
                return;
            }
        }
    }

    /// Moves a peer's `Rtc` output into our queues; call after every mutation of it. Returns
    /// how many datagrams it produced.
    fn drain(&mut self, peer_id: PeerId) -> usize {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return 0;
        };
        let mut sent = 0;
        loop {
            match peer.rtc.poll_output() {
                Ok(str0m::Output::Transmit(transmit)) => {
                    sent += 1;
                    push_transmit(&mut self.stats, &mut self.outputs, transmit);
                }
                Ok(str0m::Output::Event(event)) => {
                    if is_relevant(&event) {
                        self.work.push_back((peer_id, event));
                    }
                }
                Ok(str0m::Output::Timeout(at)) => {
                    let at = if peer.connected {
                        let reason = peer.rtc.last_timeout_reason();
                        peer.tick.schedule(self.epoch, self.last_now, at, reason)
                    } else {
                        at.min(peer.connect_deadline)
                    };
                    // On the grid most drains land on the tick already set: no tree update.
                    if peer.timer != Some(at) {
                        if let Some(old) = peer.timer.replace(at) {
                            self.timers.remove(&(old, peer_id));
                        }
                        self.timers.insert((at, peer_id));
                    }
                    break;
                }
                Err(error) => {
                    debug!(peer = %peer_id, %error, "media peer failed");
                    self.dead.push(peer_id);
                    break;
                }
            }
        }
        if !peer.rtc.is_alive() {
            self.dead.push(peer_id);
        }
        sent
    }

    /// Processes queued events until none are left, then removes dead peers and assigns
    /// slots in rooms that changed; repeats while that creates more work.
    fn run(&mut self, now: Instant) {
        loop {
            while let Some((peer_id, event)) = self.work.pop_front() {
                self.handle_rtc_event(now, peer_id, event);
            }
            if !self.dead.is_empty() {
                for peer_id in mem::take(&mut self.dead) {
                    if self.peers.contains_key(&peer_id) {
                        self.remove(peer_id);
                    }
                }
                continue;
            }
            if self.dirty_rooms.is_empty() {
                return;
            }
            // Slots change: what this worker takes of others' publishers may too.
            self.relays.touch();
            let mut rooms = mem::take(&mut self.dirty_rooms);
            self.add_voice_rooms(&mut rooms);
            rooms.sort();
            rooms.dedup();
            for room in rooms {
                self.assign_slots(&room);
            }
        }
    }

    fn handle_rtc_event(&mut self, now: Instant, peer_id: PeerId, event: Event) {
        match event {
            Event::RtpPacket(packet) => self.forward(now, peer_id, packet),
            Event::KeyframeRequest(request) => self.relay_keyframe_request(now, peer_id, request),
            Event::Connected => {
                if let Some(peer) = self.peers.get_mut(&peer_id) {
                    peer.connected = true;
                    self.outputs
                        .push_back(Output::Event(MediaEvent::PeerConnected { peer: peer_id }));
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.dead.push(peer_id);
            }
            Event::MediaAdded(added) => {
                self.media_added(peer_id, added.mid, added.kind, added.direction)
            }
            Event::MediaChanged(changed) => {
                self.media_changed(peer_id, changed.mid, changed.direction)
            }
            Event::PeerStats(stats) => {
                self.peer_feedback(peer_id, &stats);
                // About once a second: the floor grows as new videos' bitrates become known.
                self.raise_start_estimate(now, peer_id);
            }
            Event::MediaIngressStats(stats) => self.ingress_feedback(peer_id, &stats),
            Event::MediaEgressStats(stats) => self.egress_feedback(peer_id, &stats),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(peer) = self.peers.get_mut(&peer_id) {
                    peer.estimate = Some(estimate.as_u64());
                    self.allocate_layers(now, peer_id);
                }
            }
            _ => {}
        }
    }

    /// A client renegotiated an m-line's direction. A publication it stopped sending on (a
    /// screen share ended: `inactive`) ends for every subscriber; one it starts sending on
    /// again becomes a publication anew.
    fn media_changed(&mut self, peer_id: PeerId, mid: RtcMid, direction: Direction) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let receiving = matches!(direction, Direction::RecvOnly | Direction::SendRecv);
        let published = peer.publications.contains_key(&mid);
        if published && !receiving {
            if peer.publish_allowed {
                self.unpublish(peer_id, mid);
            }
            if let Some(peer) = self.peers.get_mut(&peer_id) {
                peer.publications.remove(&mid);
                self.dirty_rooms.push(peer.room.clone());
            }
        } else if !published && receiving {
            let Some(kind) = peer.rtc.media(mid).map(|m| m.kind()) else {
                return;
            };
            self.media_added(peer_id, mid, kind, direction);
        }
    }

    /// A new m-line from the client: a publication if we receive on it, a slot if we only send.
    fn media_added(&mut self, peer_id: PeerId, mid: RtcMid, kind: MediaKind, direction: Direction) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let kind = match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        };
        match direction {
            Direction::RecvOnly | Direction::SendRecv => {
                let track = LocalTrackId(self.next_track);
                self.next_track += 1;
                let mut publication = Publication::new(kind, track);
                publication.gop = first_frame::GopCache::for_browser(kind, &self.config);
                peer.publications.insert(mid, publication);
                let room = peer.room.clone();
                if peer.publish_allowed {
                    self.published(peer_id, mid, kind);
                }
                self.dirty_rooms.push(room);
                return;
            }
            Direction::SendOnly => peer.slots.push(Slot::new(mid, kind)),
            Direction::Inactive => return,
        }
        self.dirty_rooms.push(peer.room.clone());
    }
}

impl Slot {
    fn new(mid: RtcMid, kind: TrackKind) -> Self {
        Slot {
            mid,
            kind,
            source: None,
            forwarder: Forwarder::default(),
            egress: EgressSeen::default(),
            history_limited: false,
        }
    }

    fn bind(&mut self, publisher: PeerId, publisher_mid: RtcMid) {
        self.source = Some((publisher, publisher_mid));
        self.forwarder.bind(self.kind);
    }
}

/// Whether the peer's send queues held more than the one packet its last pass let out (as
/// its pacer saw them at the start of that pass).
fn has_backlog(peer: &mut Peer) -> bool {
    let mut api = peer.rtc.direct_api();
    let mut queued = 0;
    for slot in &peer.slots {
        if let Some(info) = api
            .stream_tx_by_mid(slot.mid, None)
            .and_then(|stream| stream.queue_info())
        {
            queued += info.packet_count();
        }
    }
    queued > 1
}

/// Events the core acts on; the rest (stats, stream pauses, …) are dropped at the source.
fn is_relevant(event: &Event) -> bool {
    matches!(
        event,
        Event::RtpPacket(_)
            | Event::KeyframeRequest(_)
            | Event::Connected
            | Event::IceConnectionStateChange(IceConnectionState::Disconnected)
            | Event::Closed
            | Event::MediaAdded(_)
            | Event::MediaChanged(_)
            | Event::EgressBitrateEstimate(BweKind::Twcc { .. })
            | Event::PeerStats(_)
            | Event::MediaIngressStats(_)
            | Event::MediaEgressStats(_)
    )
}

/// Counts a datagram of a peer's `Rtc` and queues it for the driver.
fn push_transmit(stats: &mut SfuStats, outputs: &mut VecDeque<Output>, transmit: Transmit) {
    stats.datagrams_out += 1;
    if transmit.proto != Protocol::Udp {
        stats.tcp_frames_out += 1;
    }
    stats.bytes_out += transmit.contents.len() as u64;
    outputs.push_back(Output::Transmit {
        transport: transport_of(transmit.proto),
        destination: transmit.destination,
        bytes: transmit.contents.into(),
    });
}

/// We only offer UDP and plain TCP candidates, so str0m only sends on those.
fn transport_of(proto: Protocol) -> Transport {
    match proto {
        Protocol::Udp => Transport::Udp,
        _ => Transport::Tcp,
    }
}

fn clock_rate(kind: Option<TrackKind>) -> Frequency {
    match kind {
        Some(TrackKind::Audio) => Frequency::FORTY_EIGHT_KHZ,
        _ => Frequency::NINETY_KHZ,
    }
}

/// An audio packet's level (RFC 6464) from `peer` in `room`: fed to the room's speaker
/// detector, whose changed list goes out as an event. Takes the two fields it needs, so the
/// forwarding path can call it while holding the publisher (no room name copied per packet).
fn record_audio_level(
    speakers: &mut FxHashMap<RoomName, ActiveSpeakers>,
    outputs: &mut VecDeque<Output>,
    room: &RoomName,
    sample: (Instant, PeerId, i8, Option<bool>),
) {
    let (now, peer, level, vad) = sample;
    let detector = match speakers.get_mut(room) {
        Some(detector) => detector,
        None => speakers
            .entry(room.clone())
            .or_insert_with(|| ActiveSpeakers::new(SpeakerConfig::default())),
    };
    detector.record(now, peer, level, vad);
    if let Some(list) = detector.poll(now) {
        outputs.push_back(Output::Event(MediaEvent::ActiveSpeakers {
            room: room.clone(),
            speakers: list,
        }));
    }
}

fn our_mid(mid: RtcMid) -> Mid {
    Mid::from(mid.to_string())
}
