//! Where a subscriber's bandwidth estimate starts.
//!
//! str0m paces what it sends to a peer at about 1.1× the estimate, and the estimate grows only
//! as feedback shows room (at most 1.5× what was acknowledged). The layer allocation sends
//! audio and the lowest layer of every video even over the estimate, so a subscriber whose
//! floor needs more than the start (two 360p videos; an RTMP encoder's 1–3 Mbit/s, which has
//! no lower layer) had its video queued in the pacer for up to its 2 s limit.
//!
//! So the estimate starts at what the floor needs, with headroom: never below
//! [`INITIAL_ESTIMATE`] (which covers audio and the lowest simulcast layers), never above
//! [`MAX_START_ESTIMATE`]. When the floor grows (a video starts, or its bitrate becomes known)
//! beyond every start given before and beyond the current estimate, the estimator restarts
//! there. It is never lowered, so a measured estimate is never cut, and the start covers only
//! the floor, so a new subscriber still gets audio and the lowest layers first and upgrades
//! only as the estimate grows.

use std::time::Instant;

use str0m::bwe::Bitrate;

use super::Sfu;
use super::simulcast::AUDIO_BITRATE;
use crate::{PeerId, TrackKind};

/// The start for a subscriber whose floor is known to be small, bits per second.
pub(super) const INITIAL_ESTIMATE: u64 = 300_000;
/// The most a start may be: beyond it, the estimate must be earned with feedback.
const MAX_START_ESTIMATE: u64 = 5_000_000;
/// The start exceeds the floor by this factor, so the pacer drains bursts (keyframes).
const HEADROOM: f64 = 1.25;
/// A new start must exceed the last one by this factor to restart the estimator.
const MIN_RAISE: f64 = 1.1;

/// The start for a subscriber whose floor needs `floor` bits per second.
pub(super) fn start_for(floor: u64) -> u64 {
    ((floor as f64 * HEADROOM) as u64).clamp(INITIAL_ESTIMATE, MAX_START_ESTIMATE)
}

impl Sfu {
    /// What the subscriber's floor needs: audio, and the lowest live layer (or the only
    /// encoding) of every video it receives, in bits per second.
    pub(super) fn floor_bitrate(&self, now: Instant, subscriber: PeerId) -> u64 {
        let Some(peer) = self.peers.get(&subscriber) else {
            return 0;
        };
        peer.slots
            .iter()
            .filter_map(|slot| {
                let (publisher, mid) = slot.source?;
                let publication = self.publication(publisher, mid)?;
                Some(match slot.kind {
                    TrackKind::Audio => AUDIO_BITRATE,
                    TrackKind::Video => publication
                        .layers
                        .lowest(now)
                        .unwrap_or_else(|| publication.bitrate.bitrate(now)),
                })
            })
            .sum()
    }

    /// Restarts the subscriber's estimate at what its floor needs, if that is worth it: more
    /// than any start it had and than its current estimate.
    pub(super) fn raise_start_estimate(&mut self, now: Instant, subscriber: PeerId) {
        let start = start_for(self.floor_bitrate(now, subscriber));
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        let raise = start as f64 >= peer.start_estimate as f64 * MIN_RAISE
            && peer.estimate.is_none_or(|estimate| estimate < start);
        if !raise {
            return;
        }
        peer.start_estimate = start;
        peer.rtc.bwe().reset(Bitrate::bps(start));
        self.stats.estimate_starts_raised += 1;
        self.drain(subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_covers_the_floor_within_bounds() {
        assert_eq!(start_for(0), INITIAL_ESTIMATE);
        // Audio and a 180p layer fit the initial start.
        assert_eq!(start_for(48_000 + 150_000), INITIAL_ESTIMATE);
        // Three 360p videos and their audio do not.
        assert_eq!(start_for(3 * (400_000 + 48_000)), 1_680_000);
        assert_eq!(start_for(20_000_000), MAX_START_ESTIMATE);
    }
}
