//! A moderator's voice in every breakout room of the lesson at once ("speak to all rooms").
//!
//! The mechanism is the ordinary slot binding, widened: while a peer's voice is on for lesson
//! L ([`Sfu::set_voice_broadcast`]), its audio publications count among the forwardable tracks
//! of every breakout room of L on this worker (`lesson-L-breakout-*`), besides its own room,
//! so each subscriber there gets a slot bound to them like to any publisher of its room and the
//! fan-out copies each packet to it on the same path (no second copy of the packet, no new
//! kind of subscriber). Turning it off unbinds exactly those slots (the subscribers outside
//! the publisher's room): the fan-out reads the subscriber list per packet, so forwarding
//! stops from the next packet.
//!
//! Placement homes a lesson's rooms together ([`crate::placement`]). A breakout room whose
//! peers spilled to another worker (a per-worker peer limit) has a relay link from this
//! worker: the voice's audio crosses it as a track of that room (`relay/voice.rs`), and its
//! students there hear it as a relayed publisher of their room.

use std::mem;
use std::time::Instant;

use classroom_protocol::{LessonId, RoomName};

use super::{RtcMid, Sfu, our_mid};
use crate::error::UnknownPeer;
use crate::{MediaEvent, Output, PeerId, TrackKind};

impl Sfu {
    /// Forwards `peer`'s audio to every breakout room of `lesson` on this worker, besides its
    /// own room (`None`: to its own room only, from the next packet on). Rooms of the lesson
    /// that open later hear it too, while it is on.
    pub fn set_voice_broadcast(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        lesson: Option<LessonId>,
    ) -> Result<(), UnknownPeer> {
        self.last_now = now;
        if !self.peers.contains_key(&peer_id) {
            return Err(UnknownPeer(peer_id));
        }
        let before = match lesson {
            Some(lesson) => self.voices.insert(peer_id, lesson),
            None => self.voices.remove(&peer_id),
        };
        if before == lesson {
            return Ok(());
        }
        if let Some(before) = before {
            self.relay_voice(peer_id, before, false);
            self.end_voice(peer_id);
        }
        if let Some(lesson) = lesson {
            self.relay_voice(peer_id, lesson, true);
            let rooms = self.breakout_rooms_of(lesson);
            self.dirty_rooms.extend(rooms);
        }
        self.run(now);
        Ok(())
    }

    /// The rooms of this worker that are breakout rooms of `lesson`.
    fn breakout_rooms_of(&self, lesson: LessonId) -> Vec<RoomName> {
        self.rooms
            .keys()
            .filter(|room| room.breakout().is_some_and(|(l, _, _)| l == lesson))
            .cloned()
            .collect()
    }

    /// The audio of voices heard in `room` though their peer is elsewhere.
    pub(super) fn voice_tracks(&self, room: &RoomName) -> Vec<(PeerId, RtcMid, TrackKind)> {
        let Some((lesson, _, _)) = room.breakout() else {
            return Vec::new();
        };
        let mut tracks = Vec::new();
        for (publisher, voice) in &self.voices {
            let Some(peer) = self.peers.get(publisher) else {
                continue;
            };
            if *voice != lesson || peer.room == *room || !peer.publish_allowed {
                continue;
            }
            tracks.extend(
                peer.publications
                    .iter()
                    .filter(|(_, p)| p.kind == TrackKind::Audio)
                    .map(|(mid, _)| (*publisher, *mid, TrackKind::Audio)),
            );
        }
        tracks.sort_by_key(|(peer, mid, _)| (*peer, mid.to_string()));
        tracks
    }

    /// Rooms a voice is heard in change with its own room's tracks (its microphone published,
    /// its permission granted): these `dirty` rooms gain the voice's other rooms.
    pub(super) fn add_voice_rooms(&self, dirty: &mut Vec<RoomName>) {
        for (publisher, lesson) in &self.voices {
            let Some(peer) = self.peers.get(publisher) else {
                continue;
            };
            if dirty.contains(&peer.room) {
                dirty.extend(self.breakout_rooms_of(*lesson));
            }
        }
    }

    /// Unbinds the slots of subscribers outside `peer`'s room from its audio.
    fn end_voice(&mut self, peer_id: PeerId) {
        let Some(peer) = self.peers.get(&peer_id) else {
            return;
        };
        let home = peer.room.clone();
        let mids: Vec<RtcMid> = peer
            .publications
            .iter()
            .filter(|(_, p)| p.kind == TrackKind::Audio)
            .map(|(mid, _)| *mid)
            .collect();
        for mid in mids {
            let Some(publication) = self.publication_mut(peer_id, mid) else {
                continue;
            };
            let subscribers = mem::take(&mut publication.subscribers);
            let mut kept = Vec::with_capacity(subscribers.len());
            for (subscriber, subscriber_mid) in subscribers {
                let Some(sub) = self.peers.get_mut(&subscriber) else {
                    continue;
                };
                if sub.room == home {
                    kept.push((subscriber, subscriber_mid));
                    continue;
                }
                if let Some(slot) = sub.slots.iter_mut().find(|s| s.mid == subscriber_mid) {
                    slot.source = None;
                }
                self.dirty_rooms.push(sub.room.clone());
                self.outputs
                    .push_back(Output::Event(MediaEvent::SubscriptionEnded {
                        subscriber,
                        subscriber_mid: our_mid(subscriber_mid),
                        publisher: peer_id,
                        publisher_mid: our_mid(mid),
                    }));
            }
            if let Some(publication) = self.publication_mut(peer_id, mid) {
                publication.subscribers = kept;
            }
        }
    }

    /// Whether `peer` speaks to the breakout rooms of a lesson now.
    pub fn voice_broadcast(&self, peer: PeerId) -> Option<LessonId> {
        self.voices.get(&peer).copied()
    }
}
