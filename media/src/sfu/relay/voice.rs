//! A moderator's broadcast voice ([`super::super::voice`]) in the breakout rooms whose
//! students are on other workers.
//!
//! While a peer's voice is on for lesson L, its worker sends its audio over every link of
//! L's breakout rooms (besides its own room's links) as if it were one of those rooms' own
//! publishers: the track is announced, and its packets go where the other side wants them.
//! There it is an ordinary relayed publisher of that breakout room, so its students get a
//! slot for it, and the wants follow their slots as for any relayed track. Turning the voice
//! off announces the track ended over those links (the other side's subscriptions end with
//! the relayed publisher), and its packets stop crossing at once.
//!
//! Not covered: a breakout room with no peer on the voice's worker has no link to carry it,
//! and on a worker where the voice's peer is already relayed for another room (the main room
//! spans both workers too) it stays that room's publisher only (see `relayed_track`).

use classroom_protocol::{LessonId, RoomName};

use super::super::decide::Incoming;
use super::super::{RtcMid, Sfu};
use super::{Item, RelayMessage};
use crate::{PeerId, TrackKind};

impl Sfu {
    /// The rooms with links here that hear `publisher`'s voice for `lesson`: the lesson's
    /// breakout rooms other than its own.
    fn voice_link_rooms(&self, publisher: PeerId, lesson: LessonId) -> Vec<RoomName> {
        let own = self.peers.get(&publisher).map(|p| &p.room);
        let mut rooms: Vec<RoomName> = self
            .relays
            .rooms
            .keys()
            .filter(|room| Some(*room) != own)
            .filter(|room| room.breakout().is_some_and(|(l, _, _)| l == lesson))
            .cloned()
            .collect();
        rooms.sort_by_key(|room| room.to_string());
        rooms
    }

    /// `publisher`'s voice for `lesson` turned on (`on`) or off: its audio tracks are
    /// announced, or announced ended, over the links of the lesson's breakout rooms.
    pub(in crate::sfu) fn relay_voice(&mut self, publisher: PeerId, lesson: LessonId, on: bool) {
        if self.relays.is_empty() {
            return;
        }
        let Some(peer) = self.peers.get(&publisher) else {
            return;
        };
        if on && !peer.publish_allowed {
            return;
        }
        let mut mids: Vec<RtcMid> = peer
            .publications
            .iter()
            .filter(|(_, p)| p.kind == TrackKind::Audio)
            .map(|(mid, _)| *mid)
            .collect();
        mids.sort_by_key(|mid| mid.to_string());
        for mid in mids {
            if on {
                self.relay_voice_track(publisher, mid, TrackKind::Audio);
            } else {
                self.relay_voice_ended(publisher, lesson, mid);
            }
        }
    }

    /// An own publisher's track became forwardable: if it is the audio of a voice, announced
    /// over the links of the voice's breakout rooms.
    pub(super) fn relay_voice_track(&mut self, publisher: PeerId, mid: RtcMid, kind: TrackKind) {
        let Some(&lesson) = self.voices.get(&publisher) else {
            return;
        };
        if kind != TrackKind::Audio {
            return;
        }
        for room in self.voice_link_rooms(publisher, lesson) {
            if let Some(links) = self.relays.rooms.get_mut(&room) {
                for link in &mut links.links {
                    link.end.push(RelayMessage(Item::Track {
                        publisher,
                        mid,
                        kind,
                    }));
                }
            }
        }
    }

    /// A voice's audio track ended, or the voice did: announced ended over the links of the
    /// voice's breakout rooms, which stop taking it.
    pub(super) fn relay_voice_ended(&mut self, publisher: PeerId, lesson: LessonId, mid: RtcMid) {
        for room in self.voice_link_rooms(publisher, lesson) {
            if let Some(links) = self.relays.rooms.get_mut(&room) {
                for link in &mut links.links {
                    link.end
                        .push(RelayMessage(Item::TrackEnded { publisher, mid }));
                    link.wants.remove(&(publisher, mid));
                }
            }
        }
    }

    /// One audio packet of a voice: sent over every link of the voice's breakout rooms whose
    /// other side takes it. Costs one lookup while no voice is on.
    pub(super) fn relay_voice_out(&mut self, publisher: PeerId, mid: RtcMid, incoming: &Incoming) {
        if self.voices.is_empty() || incoming.kind != TrackKind::Audio {
            return;
        }
        let Some(&lesson) = self.voices.get(&publisher) else {
            return;
        };
        let own = self.peers.get(&publisher).map(|p| &p.room);
        for (room, links) in &mut self.relays.rooms {
            if Some(room) == own || room.breakout().is_none_or(|(l, _, _)| l != lesson) {
                continue;
            }
            self.stats.relay_packets_out += links.send_packet(publisher, mid, incoming);
        }
    }
}
