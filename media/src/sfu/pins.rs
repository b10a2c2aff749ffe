//! Pinned peers: WHIP publishers and WHEP players negotiate once, over HTTP, and cannot take an
//! offer of ours afterwards. Such a peer is never offered m-lines; it receives only the
//! publications it is pinned to (none for a publisher; the lesson's main view for a player),
//! in the order given, on the `recvonly` m-lines of its own offer. Signaling chooses the pins
//! (it knows what each track shows); a new choice ends the subscriptions it leaves out and
//! binds what it adds.

use std::time::Instant;

use super::{RtcMid, Sfu};
use crate::error::UnknownPeer;
use crate::{MediaEvent, Mid, Output, PeerId, TrackKind};

pub(super) fn rtc_pins(pins: Vec<(PeerId, Mid)>) -> Vec<(PeerId, RtcMid)> {
    pins.into_iter()
        .map(|(peer, mid)| (peer, RtcMid::from(mid.as_str())))
        .collect()
}

/// The room's forwardable `tracks` a subscriber may be given, in the order it gets free slots:
/// all of them for an ordinary peer, its pins (those that are forwardable) for a pinned one.
pub(super) fn offered_tracks(
    tracks: &[(PeerId, RtcMid, TrackKind)],
    pins: Option<&[(PeerId, RtcMid)]>,
) -> Vec<(PeerId, RtcMid, TrackKind)> {
    match pins {
        None => tracks.to_vec(),
        Some(pins) => pins
            .iter()
            .filter_map(|pin| {
                tracks
                    .iter()
                    .find(|(peer, mid, _)| (*peer, *mid) == *pin)
                    .copied()
            })
            .collect(),
    }
}

impl Sfu {
    /// Makes `peer` a pinned peer receiving the publications of `pins` (see the module
    /// documentation): its slots bound to anything else are freed, then filled from `pins`.
    pub fn set_pins(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        pins: Vec<(PeerId, Mid)>,
    ) -> Result<(), UnknownPeer> {
        self.last_now = now;
        let pins = rtc_pins(pins);
        let peer = self.peers.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
        let mut ended = Vec::new();
        for slot in &mut peer.slots {
            if let Some(source) = slot.source.filter(|s| !pins.contains(s)) {
                slot.source = None;
                ended.push((slot.mid, source));
            }
        }
        peer.pins = Some(pins);
        let room = peer.room.clone();
        for (subscriber_mid, (publisher, publisher_mid)) in ended {
            if let Some(publication) = self.publication_mut(publisher, publisher_mid) {
                publication
                    .subscribers
                    .retain(|&(s, m)| !(s == peer_id && m == subscriber_mid));
            }
            self.outputs
                .push_back(Output::Event(MediaEvent::SubscriptionEnded {
                    subscriber: peer_id,
                    subscriber_mid: super::our_mid(subscriber_mid),
                    publisher,
                    publisher_mid: super::our_mid(publisher_mid),
                }));
        }
        self.dirty_rooms.push(room);
        self.run(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_peer_is_offered_its_pins_in_order() {
        let (a, b) = (PeerId(1), PeerId(2));
        let tracks = [
            (a, RtcMid::from("0"), TrackKind::Audio),
            (a, RtcMid::from("1"), TrackKind::Video),
            (b, RtcMid::from("0"), TrackKind::Video),
        ];
        assert_eq!(offered_tracks(&tracks, None), tracks);
        let pins = [
            (b, RtcMid::from("0")),
            (a, RtcMid::from("0")),
            (a, RtcMid::from("9")),
        ];
        assert_eq!(
            offered_tracks(&tracks, Some(&pins)),
            [tracks[2], tracks[0]],
            "pins in order; one not published is skipped"
        );
        assert!(offered_tracks(&tracks, Some(&[])).is_empty());
    }
}
