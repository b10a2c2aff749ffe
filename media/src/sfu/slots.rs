//! Binding publications to subscribers' slots, server-side renegotiation, and tearing down.

use std::mem;
use std::time::Duration;

use classroom_protocol::RoomName;
use str0m::media::{Direction, MediaKind};

use super::{PendingOffer, RtcMid, Sfu, our_mid};
use crate::local::LocalEvent;
use crate::{MediaEvent, Output, PeerId, TrackKind};

/// What each outgoing video stream keeps for resending: at most this many packets …
const RESEND_PACKETS: usize = 1000;
/// … sent at most this long ago (str0m: 2000 packets, 3 s).
const RESEND_HISTORY: Duration = Duration::from_secs(1);
/// str0m's default: queued resends are dropped when they exceed 15% of what is sent.
const RESEND_RATIO_CAP: Option<f32> = Some(0.15);

impl Sfu {
    /// Binds every forwardable publication in the room to a free slot of each other peer,
    /// and offers new m-lines to peers that lack a free slot.
    pub(super) fn assign_slots(&mut self, room: &RoomName) {
        let Some(members) = self.rooms.get(room).cloned() else {
            return;
        };
        let tracks: Vec<(PeerId, RtcMid, TrackKind)> = self
            .forwardable_tracks(room)
            .into_iter()
            .map(|(peer, mid, kind, _)| (peer, mid, kind))
            .chain(self.voice_tracks(room))
            .collect();

        for subscriber in &members {
            let mut missing = Vec::new();
            let pins = self.peers.get(subscriber).and_then(|p| p.pins.clone());
            let offered = super::pins::offered_tracks(&tracks, pins.as_deref());
            for (publisher, publisher_mid, kind) in offered {
                if publisher == *subscriber {
                    continue;
                }
                let Some(sub) = self.peers.get_mut(subscriber) else {
                    break;
                };
                let source = Some((publisher, publisher_mid));
                if sub.slots.iter().any(|s| s.source == source) {
                    continue;
                }
                let Some(slot) = sub
                    .slots
                    .iter_mut()
                    .find(|s| s.kind == kind && s.source.is_none())
                else {
                    missing.push(kind);
                    continue;
                };
                slot.bind(publisher, publisher_mid);
                let subscriber_mid = slot.mid;
                if !slot.history_limited {
                    // str0m keeps 3 s of sent packets per stream for NACKs; at classroom
                    // round-trip times 1 s answers every NACK, with a third of the memory.
                    let mut api = sub.rtc.direct_api();
                    if let Some(stream) = api.stream_tx_by_mid(subscriber_mid, None) {
                        stream.set_rtx_cache(RESEND_PACKETS, RESEND_HISTORY, RESEND_RATIO_CAP);
                        slot.history_limited = true;
                    }
                }
                if let Some(publication) = self.publication_mut(publisher, publisher_mid) {
                    publication.subscribers.push((*subscriber, subscriber_mid));
                    publication.slots_starting = true;
                }
                self.outputs
                    .push_back(Output::Event(MediaEvent::SubscriptionStarted {
                        subscriber: *subscriber,
                        subscriber_mid: our_mid(subscriber_mid),
                        publisher,
                        publisher_mid: our_mid(publisher_mid),
                        kind,
                    }));
            }
            // A pinned peer cannot answer an offer: it keeps the m-lines it has.
            if !missing.is_empty() && pins.is_none() {
                self.offer_slots(*subscriber, &missing);
            }
            self.allocate_layers(self.last_now, *subscriber);
        }
    }

    /// Server-side renegotiation: offers `sendonly` m-lines of these kinds to the peer.
    pub(super) fn offer_slots(&mut self, peer_id: PeerId, kinds: &[TrackKind]) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.pending_offer.is_some() {
            return;
        }
        let mut change = peer.rtc.sdp_api();
        let mids = kinds
            .iter()
            .map(|kind| {
                let media_kind = match kind {
                    TrackKind::Audio => MediaKind::Audio,
                    TrackKind::Video => MediaKind::Video,
                };
                let mid = change.add_media(media_kind, Direction::SendOnly, None, None, None);
                (mid, *kind)
            })
            .collect();
        let Some((offer, pending)) = change.apply() else {
            return;
        };
        peer.pending_offer = Some(PendingOffer { pending, mids });
        self.outputs
            .push_back(Output::Event(MediaEvent::OfferCreated {
                peer: peer_id,
                offer: offer.to_sdp_string(),
            }));
        self.drain(peer_id);
    }

    /// Ends every subscription to one publication and reports it unpublished.
    pub(super) fn unpublish(&mut self, publisher: PeerId, publisher_mid: RtcMid) {
        let Some(publication) = self.publication_mut(publisher, publisher_mid) else {
            return;
        };
        let track = publication.track;
        for (subscriber, subscriber_mid) in mem::take(&mut publication.subscribers) {
            let slot = self
                .peers
                .get_mut(&subscriber)
                .and_then(|p| p.slots.iter_mut().find(|s| s.mid == subscriber_mid));
            if let Some(slot) = slot {
                slot.source = None;
            }
            self.outputs
                .push_back(Output::Event(MediaEvent::SubscriptionEnded {
                    subscriber,
                    subscriber_mid: our_mid(subscriber_mid),
                    publisher,
                    publisher_mid: our_mid(publisher_mid),
                }));
        }
        for subscriber in self.local_subscribers(publisher) {
            self.outputs.push_back(Output::Local {
                subscriber,
                event: LocalEvent::TrackEnded { track },
            });
        }
        // Signaling hears of a track from the publisher's own worker only.
        if !self.is_relayed(publisher) {
            self.outputs
                .push_back(Output::Event(MediaEvent::TrackUnpublished {
                    peer: publisher,
                    mid: our_mid(publisher_mid),
                }));
            self.relay_track_ended(publisher, publisher_mid);
        }
    }

    pub(super) fn remove(&mut self, peer_id: PeerId) {
        let publications: Vec<RtcMid> = match self.peers.get(&peer_id) {
            Some(peer) if peer.publish_allowed => peer.publications.keys().copied().collect(),
            Some(_) => Vec::new(),
            None => return,
        };
        for mid in publications {
            self.unpublish(peer_id, mid);
        }
        let Some(mut peer) = self.peers.remove(&peer_id) else {
            return;
        };
        for slot in &peer.slots {
            let Some((publisher, publisher_mid)) = slot.source else {
                continue;
            };
            if let Some(publication) = self.publication_mut(publisher, publisher_mid) {
                publication
                    .subscribers
                    .retain(|&(s, m)| !(s == peer_id && m == slot.mid));
            }
        }
        if let Some(at) = peer.timer {
            self.timers.remove(&(at, peer_id));
        }
        self.voices.remove(&peer_id);
        self.demux.remove(&peer.ufrag, &peer.addrs);
        if let Some(speakers) = self.speakers.get_mut(&peer.room) {
            speakers.remove(peer_id);
        }
        if let Some(members) = self.rooms.get_mut(&peer.room) {
            members.retain(|p| *p != peer_id);
            if members.is_empty() {
                self.rooms.remove(&peer.room);
                self.speakers.remove(&peer.room);
            } else {
                // Freed slots may take tracks that had none.
                self.dirty_rooms.push(peer.room.clone());
            }
        }
        // Tell the client (RTCP BYE, DTLS close_notify) as far as that takes no more input.
        if peer.rtc.close().is_ok() {
            while let Ok(str0m::Output::Transmit(transmit)) = peer.rtc.poll_output() {
                super::push_transmit(&mut self.stats, &mut self.outputs, transmit);
            }
        }
        self.outputs
            .push_back(Output::Event(MediaEvent::PeerDisconnected {
                peer: peer_id,
            }));
    }
}
