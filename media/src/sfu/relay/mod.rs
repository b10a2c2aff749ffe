//! A room that spans workers: this core's half of each relay link ([`crate::relay`]).
//!
//! Over a room's link each side sends what its *own* publishers (browsers and in-process
//! publishers on this worker) publish: their tracks as they become forwardable and end, and
//! their packets as the forwarding path hands them out (the [`Incoming`] itself, the payload
//! shared), for the tracks and simulcast layers the other side *wants*; every
//! [`REPORT_INTERVAL`] the rates of their simulcast layers, so that the other side can choose
//! layers it does not receive. The other side's tracks appear here as *relayed publishers*:
//! in-process publishers ([`LocalRole::Relayed`]) of the link's room, under the publisher's own
//! peer id, whose packets take the same fan-out as a local publisher's (simulcast layer choice,
//! sequence number and timestamp rewriting, in-process subscribers). What this side watches of
//! them (which tracks, which layers) goes back as wants, recomputed when slots change and every
//! [`WANTS_INTERVAL`]; keyframe requests for them go back once per batch and are throttled at
//! the publisher's worker, by its publication's own throttle. Each side keeps a first-frame
//! cache of the relayed video it takes ([`super::first_frame`]), so that its joiners start at
//! once rather than each asking across the link.
//!
//! Only own publishers are sent, so nothing loops when a room spans three workers (a link
//! between each two). A link ends when either side drops its end: the room left that worker
//! ([`Sfu::end_relays`]), or the worker stopped; the other side then removes what the link
//! brought (its relayed publishers' subscriptions end like any publisher's).
//!
//! Speakers: the room's home hears every publisher's audio (it always wants all audio) and
//! alone reports the room's active speakers; other workers keep their detector quiet.

use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;
use str0m::media::{KeyframeRequestKind, Rid};

use super::decide::Incoming;
use super::first_frame::{self, GopCache};
use super::in_process::{LocalPeer, LocalRole};
use super::{Publication, RtcMid, Sfu, record_audio_level};
use crate::local::{LocalPacket, LocalTrackId};
use crate::relay::{RelayStats, SfuRelayEnd};
use crate::{MediaEvent, Output, PeerId, TrackKind};

mod flush;
mod voice;

/// How often a side reports its simulcast layers' rates over each link.
pub(super) const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// How often a side recomputes what it wants of the other's tracks, besides when its slots
/// changed (a layer target moved with a bandwidth estimate).
pub(super) const WANTS_INTERVAL: Duration = Duration::from_millis(200);

/// What crosses a link between two workers' cores: opaque outside the core.
#[derive(Debug)]
pub struct RelayMessage(pub(super) Item);

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is a packet: boxing it would allocate per packet, and batches \
              are reused"
)]
pub(super) enum Item {
    /// A track of the sender's publisher is forwardable.
    Track {
        publisher: PeerId,
        mid: RtcMid,
        kind: TrackKind,
    },
    /// It no longer is (the publisher left, or its permission was revoked).
    TrackEnded { publisher: PeerId, mid: RtcMid },
    /// One packet of such a track.
    Packet {
        publisher: PeerId,
        mid: RtcMid,
        incoming: Incoming,
    },
    /// The rates of a simulcast track's live layers, as its worker measures them.
    Layers {
        publisher: PeerId,
        mid: RtcMid,
        rates: Vec<(Rid, u64)>,
    },
    /// What the sender's subscribers take of a track of the receiver's publisher (`None`:
    /// nothing).
    Want {
        publisher: PeerId,
        mid: RtcMid,
        want: Option<Want>,
    },
    /// The sender's subscribers need a keyframe of the receiver's publisher's track (layer).
    Keyframe {
        publisher: PeerId,
        mid: RtcMid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    },
}

/// What the other side takes of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    /// Every packet (a single-encoding track, audio, or layers not known yet).
    All,
    /// The packets of these simulcast layers.
    Layers(Vec<Rid>),
}

impl Want {
    fn takes(&self, rid: Option<Rid>) -> bool {
        match (self, rid) {
            (Want::All, _) => true,
            (Want::Layers(rids), Some(rid)) => rids.contains(&rid),
            (Want::Layers(_), None) => false,
        }
    }
}

/// Identifies a link within this core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct LinkId(u64);

/// This core's half of one link.
struct Link {
    id: LinkId,
    end: SfuRelayEnd,
    /// What the other side takes of our publishers' tracks.
    wants: FxHashMap<(PeerId, RtcMid), Want>,
    /// What we last told the other side we take of its tracks.
    told: FxHashMap<(PeerId, RtcMid), Want>,
    /// Keyframe requests pushed since the last flush: one per track and layer in a batch.
    asked: Vec<(PeerId, RtcMid, Option<Rid>)>,
    /// The other end was found gone; removed at the next [`Sfu::handle_relays`].
    closed: bool,
}

/// The links of one room.
struct RoomLinks {
    /// This worker is the room's home (it reports the active speakers).
    home: bool,
    links: Vec<Link>,
}

impl RoomLinks {
    /// One packet of `publisher`'s track `mid`, over every link whose other side takes its
    /// track and layer; how many links took it.
    fn send_packet(&mut self, publisher: PeerId, mid: RtcMid, incoming: &Incoming) -> u64 {
        let mut sent = 0;
        for link in &mut self.links {
            if link
                .wants
                .get(&(publisher, mid))
                .is_some_and(|want| want.takes(incoming.rid))
            {
                link.end.push(RelayMessage(Item::Packet {
                    publisher,
                    mid,
                    incoming: incoming.clone(),
                }));
                sent += 1;
            }
        }
        sent
    }
}

/// Every link of this core, and whose relayed publishers came over which.
#[derive(Default)]
pub(super) struct Relays {
    rooms: FxHashMap<RoomName, RoomLinks>,
    /// The link each relayed publisher came over.
    owners: FxHashMap<PeerId, LinkId>,
    next_link: u64,
    /// Slots or subscribers changed: wants are recomputed at the next flush.
    dirty: bool,
    next_wants: Option<Instant>,
    next_report: Option<Instant>,
    /// Scratch for the items drained from a link.
    inbox: Vec<Item>,
    /// Counters of ends already gone.
    closed_stats: RelayStats,
}

impl Relays {
    pub(super) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// When wants or layer reports are next due (the core's deadline must not pass it).
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        match (self.next_wants, self.next_report) {
            (Some(wants), Some(report)) => Some(wants.min(report)),
            (wants, report) => wants.or(report),
        }
    }

    /// Slots or subscribers of some room changed.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Whether this worker keeps its speaker detector of `room` to itself (another worker
    /// is the room's home).
    pub(super) fn quiet_speakers(&self, room: &RoomName) -> bool {
        self.rooms.get(room).is_some_and(|r| !r.home)
    }
}

impl Sfu {
    /// Joins this worker's half of `room` to another worker's through `end`; `home`: this
    /// worker is the room's home. The room's forwardable tracks of this worker's own
    /// publishers are announced over it at once.
    pub fn add_relay(&mut self, now: Instant, room: RoomName, end: SfuRelayEnd, home: bool) {
        self.last_now = now;
        let id = LinkId(self.relays.next_link);
        self.relays.next_link += 1;
        self.stats.relay_links_opened += 1;
        let mut link = Link {
            id,
            end,
            wants: FxHashMap::default(),
            told: FxHashMap::default(),
            asked: Vec::new(),
            closed: false,
        };
        for (publisher, mid, kind, _) in self.forwardable_tracks(&room) {
            if !self.is_relayed(publisher) {
                link.end.push(RelayMessage(Item::Track {
                    publisher,
                    mid,
                    kind,
                }));
            }
        }
        // Broadcast voices of other rooms this room hears ([`voice`]).
        for (publisher, mid, kind) in self.voice_tracks(&room) {
            link.end.push(RelayMessage(Item::Track {
                publisher,
                mid,
                kind,
            }));
        }
        let links = self.relays.rooms.entry(room).or_insert(RoomLinks {
            home,
            links: Vec::new(),
        });
        links.home = home;
        links.links.push(link);
        self.relays.dirty = true;
        // What the other side sent before this end was here: its wake-up may have come (and
        // gone) before.
        self.handle_relays(now);
    }

    /// The room left this worker: its links end (the other sides remove what came from here)
    /// and what came over them is removed here.
    pub fn end_relays(&mut self, now: Instant, room: &RoomName) {
        self.last_now = now;
        let Some(links) = self.relays.rooms.remove(room) else {
            return;
        };
        for link in links.links {
            self.drop_link(link);
        }
        self.run(now);
    }

    /// Takes in what arrived over every link, and removes the links whose other end is gone
    /// with what came over them.
    pub fn handle_relays(&mut self, now: Instant) {
        if self.relays.is_empty() {
            return;
        }
        self.last_now = now;
        let rooms: Vec<RoomName> = self.relays.rooms.keys().cloned().collect();
        for room in rooms {
            let ids: Vec<LinkId> = match self.relays.rooms.get(&room) {
                Some(links) => links.links.iter().map(|l| l.id).collect(),
                None => continue,
            };
            for id in ids {
                let mut inbox = mem::take(&mut self.relays.inbox);
                let Some(link) = self.link_mut(&room, id) else {
                    continue;
                };
                link.end.drain(|message| inbox.push(message.0));
                let closed = link.closed || link.end.is_closed();
                for item in inbox.drain(..) {
                    self.relay_item(now, &room, id, item);
                }
                self.relays.inbox = inbox;
                if closed {
                    self.close_link(&room, id);
                }
            }
            self.run(now);
        }
    }

    /// Counters of every link this core has had, added up.
    pub fn relay_stats(&self) -> RelayStats {
        let mut total = self.relays.closed_stats;
        for link in self.relays.rooms.values().flat_map(|r| &r.links) {
            add_stats(&mut total, &link.end.stats());
        }
        total
    }

    fn link_mut(&mut self, room: &RoomName, id: LinkId) -> Option<&mut Link> {
        self.relays
            .rooms
            .get_mut(room)?
            .links
            .iter_mut()
            .find(|l| l.id == id)
    }

    fn close_link(&mut self, room: &RoomName, id: LinkId) {
        let Some(links) = self.relays.rooms.get_mut(room) else {
            return;
        };
        let Some(index) = links.links.iter().position(|l| l.id == id) else {
            return;
        };
        let link = links.links.swap_remove(index);
        if links.links.is_empty() {
            self.relays.rooms.remove(room);
        }
        self.drop_link(link);
    }

    /// Removes the relayed publishers that came over `link` and lets go of its end.
    fn drop_link(&mut self, link: Link) {
        self.stats.relay_links_closed += 1;
        add_stats(&mut self.relays.closed_stats, &link.end.stats());
        let mut gone: Vec<PeerId> = self
            .relays
            .owners
            .iter()
            .filter(|(_, owner)| **owner == link.id)
            .map(|(peer, _)| *peer)
            .collect();
        gone.sort();
        for publisher in gone {
            self.relays.owners.remove(&publisher);
            self.remove_relayed(publisher);
        }
    }

    /// Whether `peer` is another worker's publisher, relayed here.
    pub(super) fn is_relayed(&self, peer: PeerId) -> bool {
        self.locals
            .get(&peer)
            .is_some_and(|l| l.role == LocalRole::Relayed)
    }

    fn relay_item(&mut self, now: Instant, room: &RoomName, id: LinkId, item: Item) {
        match item {
            Item::Track {
                publisher,
                mid,
                kind,
            } => self.relayed_track(room, id, publisher, mid, kind),
            Item::TrackEnded { publisher, mid } => {
                if self.relays.owners.get(&publisher) == Some(&id) {
                    self.unpublish(publisher, mid);
                    let empty = self.locals.get_mut(&publisher).is_some_and(|local| {
                        local.publications.remove(&mid);
                        local.publications.is_empty()
                    });
                    if empty {
                        self.relays.owners.remove(&publisher);
                        self.remove_relayed(publisher);
                    }
                    self.dirty_rooms.push(room.clone());
                }
            }
            Item::Packet {
                publisher,
                mid,
                incoming,
            } => {
                if self.relays.owners.get(&publisher) == Some(&id) {
                    self.relayed_packet(now, publisher, mid, incoming);
                }
            }
            Item::Layers {
                publisher,
                mid,
                rates,
            } => {
                if self.relays.owners.get(&publisher) != Some(&id) {
                    return;
                }
                let changed = self
                    .publication_mut(publisher, mid)
                    .is_some_and(|p| p.layers.report(now, rates));
                if changed {
                    self.reallocate(now, publisher, mid);
                }
            }
            Item::Want {
                publisher,
                mid,
                want,
            } => {
                if !self.is_own_publisher(publisher) {
                    return;
                }
                let Some(link) = self.link_mut(room, id) else {
                    return;
                };
                match want {
                    Some(want) => link.wants.insert((publisher, mid), want),
                    None => link.wants.remove(&(publisher, mid)),
                };
            }
            Item::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            } => {
                if !self.is_own_publisher(publisher) {
                    return;
                }
                match rid {
                    Some(rid) => {
                        // The layer a slot there switches to: sent from its keyframe on,
                        // before the wants catch up.
                        if let Some(link) = self.link_mut(room, id) {
                            let want = link
                                .wants
                                .entry((publisher, mid))
                                .or_insert(Want::Layers(Vec::new()));
                            if let Want::Layers(rids) = want
                                && !rids.contains(&rid)
                            {
                                rids.push(rid);
                            }
                        }
                        self.request_layer_keyframe(now, publisher, mid, rid);
                    }
                    None => self.request_keyframe(now, publisher, mid, kind),
                }
            }
        }
    }

    fn is_own_publisher(&self, peer: PeerId) -> bool {
        self.peers.contains_key(&peer)
            || self
                .locals
                .get(&peer)
                .is_some_and(|l| l.role == LocalRole::Publisher)
    }

    /// Another worker's publisher's track is forwardable: it becomes (a publication of) a
    /// relayed publisher here.
    fn relayed_track(
        &mut self,
        room: &RoomName,
        id: LinkId,
        publisher: PeerId,
        mid: RtcMid,
        kind: TrackKind,
    ) {
        if self.peers.contains_key(&publisher) {
            return;
        }
        match self.locals.get(&publisher) {
            Some(local) if local.role != LocalRole::Relayed => return,
            // Already relayed for another room (a voice's peer whose own room spans the two
            // workers too): it stays that room's publisher ([`voice`]).
            Some(local) if local.room != *room => return,
            Some(local) if local.publications.contains_key(&mid) => {
                // A new link of the same two workers took over (the room left and came back).
                self.relays.owners.insert(publisher, id);
                return;
            }
            Some(_) => {}
            None => self.insert_local(
                publisher,
                LocalPeer {
                    room: room.clone(),
                    role: LocalRole::Relayed,
                    publish_allowed: true,
                    audio_muted: false,
                    publications: FxHashMap::default(),
                },
            ),
        }
        self.relays.owners.insert(publisher, id);
        let track = LocalTrackId(self.next_track);
        self.next_track += 1;
        if let Some(local) = self.locals.get_mut(&publisher) {
            let mut publication = Publication::new(kind, track);
            // Joiners here start from this worker's copy of its current keyframe.
            publication.gop = GopCache::for_browser(kind, &self.config);
            local.publications.insert(mid, publication);
        }
        self.published(publisher, mid, kind);
        self.dirty_rooms.push(room.clone());
    }

    /// Removes a relayed publisher: its subscriptions here end; signaling hears nothing (the
    /// publisher is its own worker's).
    fn remove_relayed(&mut self, publisher: PeerId) {
        let mids: Vec<RtcMid> = match self.locals.get(&publisher) {
            Some(local) if local.role == LocalRole::Relayed => {
                local.publications.keys().copied().collect()
            }
            _ => return,
        };
        for mid in mids {
            self.unpublish(publisher, mid);
        }
        let Some(local) = self.locals.remove(&publisher) else {
            return;
        };
        if let Some(members) = self.local_rooms.get_mut(&local.room) {
            members.retain(|p| *p != publisher);
            if members.is_empty() {
                self.local_rooms.remove(&local.room);
            }
        }
        if let Some(speakers) = self.speakers.get_mut(&local.room) {
            speakers.remove(publisher);
        }
        self.dirty_rooms.push(local.room);
    }

    /// A packet of a relayed publisher: its fan-out here, as a local publisher's.
    fn relayed_packet(&mut self, now: Instant, publisher: PeerId, mid: RtcMid, incoming: Incoming) {
        self.stats.relay_packets_in += 1;
        let Some(local) = self.locals.get_mut(&publisher) else {
            return;
        };
        let Some(publication) = local.publications.get_mut(&mid) else {
            return;
        };
        if let (TrackKind::Audio, Some(level)) = (incoming.kind, incoming.ext_vals.audio_level) {
            let vad = incoming.ext_vals.voice_activity;
            record_audio_level(
                &mut self.speakers,
                &mut self.outputs,
                &local.room,
                (now, publisher, level, vad),
            );
        }
        let mut new_layer = false;
        if let Some(rid) = incoming.rid {
            let known = publication.layers.0.len();
            publication.layers.record(now, rid, incoming.payload.len());
            new_layer = publication.layers.0.len() != known;
        }
        if incoming.kind == TrackKind::Video {
            let max_age = self.config.first_frame_max_age;
            first_frame::cache(
                now,
                max_age,
                publication,
                incoming.rid,
                incoming.keyframe,
                || LocalPacket {
                    seq_no: incoming.seq_no,
                    timestamp: incoming.timestamp,
                    marker: incoming.marker,
                    keyframe: incoming.keyframe,
                    payload: Arc::clone(&incoming.payload),
                },
            );
        }
        if new_layer {
            self.reallocate(now, publisher, mid);
        }
        self.fan_out(now, publisher, mid, &incoming);
    }

    /// The subscribers of a publication choose among its layers again.
    fn reallocate(&mut self, now: Instant, publisher: PeerId, mid: RtcMid) {
        let subscribers: Vec<PeerId> = self
            .publication(publisher, mid)
            .map(|p| p.subscribers.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default();
        for subscriber in subscribers {
            self.allocate_layers(now, subscriber);
        }
    }

    /// One packet of this worker's own publisher, handed out here: sent over every link of
    /// its room whose other side takes its track and layer. Costs one branch without links.
    pub(super) fn relay_out(&mut self, publisher: PeerId, mid: RtcMid, incoming: &Incoming) {
        if self.relays.is_empty() {
            return;
        }
        self.relay_voice_out(publisher, mid, incoming);
        let room = match (self.peers.get(&publisher), self.locals.get(&publisher)) {
            (Some(peer), _) => &peer.room,
            (None, Some(local)) if local.role == LocalRole::Publisher => &local.room,
            _ => return,
        };
        if let Some(links) = self.relays.rooms.get_mut(room) {
            self.stats.relay_packets_out += links.send_packet(publisher, mid, incoming);
        }
    }

    /// An own publisher's track became forwardable: announced over its room's links.
    pub(super) fn relay_track(&mut self, publisher: PeerId, mid: RtcMid, kind: TrackKind) {
        self.relay_announce(publisher, |publisher| Item::Track {
            publisher,
            mid,
            kind,
        });
        self.relay_voice_track(publisher, mid, kind);
    }

    /// An own publisher's track ended: announced over its room's links, which stop taking it.
    pub(super) fn relay_track_ended(&mut self, publisher: PeerId, mid: RtcMid) {
        self.relay_announce(publisher, |publisher| Item::TrackEnded { publisher, mid });
        if let Some(&lesson) = self.voices.get(&publisher) {
            self.relay_voice_ended(publisher, lesson, mid);
        }
        if let Some(links) = self
            .own_room(publisher)
            .and_then(|r| self.relays.rooms.get_mut(&r))
        {
            for link in &mut links.links {
                link.wants.remove(&(publisher, mid));
            }
        }
    }

    fn own_room(&self, publisher: PeerId) -> Option<RoomName> {
        match (self.peers.get(&publisher), self.locals.get(&publisher)) {
            (Some(peer), _) => Some(peer.room.clone()),
            (None, Some(local)) if local.role == LocalRole::Publisher => Some(local.room.clone()),
            _ => None,
        }
    }

    fn relay_announce(&mut self, publisher: PeerId, item: impl Fn(PeerId) -> Item) {
        if self.relays.is_empty() {
            return;
        }
        let Some(room) = self.own_room(publisher) else {
            return;
        };
        if let Some(links) = self.relays.rooms.get_mut(&room) {
            for link in &mut links.links {
                link.end.push(RelayMessage(item(publisher)));
            }
        }
    }

    /// Asks a relayed publisher's worker for a keyframe (once per track and layer in a
    /// batch; the publisher's worker throttles). False if `publisher` is not relayed here.
    pub(super) fn ask_over_relay(
        &mut self,
        publisher: PeerId,
        mid: RtcMid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) -> bool {
        let Some(local) = self
            .locals
            .get(&publisher)
            .filter(|l| l.role == LocalRole::Relayed)
        else {
            return false;
        };
        let is_video = local
            .publications
            .get(&mid)
            .is_some_and(|p| p.kind == TrackKind::Video);
        let room = local.room.clone();
        let Some(&owner) = self.relays.owners.get(&publisher) else {
            return true;
        };
        if !is_video {
            return true;
        }
        let Some(link) = self.link_mut(&room, owner) else {
            return true;
        };
        if link.asked.contains(&(publisher, mid, rid)) {
            return true;
        }
        link.asked.push((publisher, mid, rid));
        link.end.push(RelayMessage(Item::Keyframe {
            publisher,
            mid,
            rid,
            kind,
        }));
        self.stats.relay_keyframe_requests += 1;
        true
    }

    /// Drops the active speakers of rooms whose home is another worker (see the module).
    pub(super) fn keep_speakers(&self, output: &Output) -> bool {
        match output {
            Output::Event(MediaEvent::ActiveSpeakers { room, .. }) => {
                !self.relays.quiet_speakers(room)
            }
            _ => true,
        }
    }
}

fn add_stats(total: &mut RelayStats, stats: &RelayStats) {
    total.items_sent += stats.items_sent;
    total.batches_sent += stats.batches_sent;
    total.batches_dropped += stats.batches_dropped;
    total.items_dropped += stats.items_dropped;
    total.items_received += stats.items_received;
}
