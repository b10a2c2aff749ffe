//! What str0m's per-second statistics tell about feedback and subscribers' connections:
//! NACKs and keyframe requests received from subscribers, packets resent to them, NACKs sent
//! to publishers (as counters of [`crate::SfuStats`]), and each subscriber's round-trip time,
//! loss and jitter (as [`MediaEvent::SubscriberStats`] samples for the server's histograms).
//!
//! str0m reports cumulative counts per stream; the core keeps the last count it saw of each
//! and adds the difference, so a count is never added twice and a stream that restarts from
//! zero adds nothing until it passes its old count.

use std::time::Duration;

use str0m::media::Frequency;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use super::{PeerId, Sfu};
use crate::{MediaEvent, Output, SubscriberStats};

/// Feedback seen on one slot's outgoing stream.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EgressSeen {
    /// RTP packets the core wrote to the stream; what str0m sent beyond them was resent.
    pub(super) written: u64,
    nacks: u64,
    plis: u64,
    firs: u64,
    resent: u64,
}

/// Adds what `now` counts beyond `seen` to `total`, and remembers `now`.
fn advance(seen: &mut u64, now: u64, total: &mut u64) {
    if now > *seen {
        *total += now - *seen;
        *seen = now;
    }
}

impl Sfu {
    /// Outgoing stream statistics of one of `peer_id`'s slots.
    pub(super) fn egress_feedback(&mut self, peer_id: PeerId, stats: &MediaEgressStats) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let Some(slot) = peer.slots.iter_mut().find(|s| s.mid == stats.mid) else {
            return;
        };
        let clock = match slot.kind {
            crate::TrackKind::Audio => Frequency::FORTY_EIGHT_KHZ,
            crate::TrackKind::Video => Frequency::NINETY_KHZ,
        };
        peer.quality.egress_stats(stats, clock);
        if let Some(remote) = &stats.remote {
            let jitter = Duration::from_secs_f64(f64::from(remote.jitter) / f64::from(clock.get()));
            peer.worst_jitter = Some(peer.worst_jitter.map_or(jitter, |w| w.max(jitter)));
        }
        let seen = &mut slot.egress;
        let totals = &mut self.stats;
        advance(&mut seen.nacks, stats.nacks, &mut totals.nacks_received);
        advance(&mut seen.plis, stats.plis, &mut totals.plis_received);
        advance(&mut seen.firs, stats.firs, &mut totals.firs_received);
        // Packets still in the pacer's queue are written but not yet sent, so this estimate
        // lags; it only ever grows.
        let resent = stats.packets.saturating_sub(seen.written);
        advance(&mut seen.resent, resent, &mut totals.rtp_retransmitted);
    }

    /// Incoming stream statistics of one of `peer_id`'s publications.
    pub(super) fn ingress_feedback(&mut self, peer_id: PeerId, stats: &MediaIngressStats) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let kind = peer.publications.get(&stats.mid).map(|p| p.kind);
        peer.quality.ingress_stats(stats, super::clock_rate(kind));
        let seen = peer.nacks_sent.entry((stats.mid, stats.rid)).or_default();
        advance(seen, stats.nacks, &mut self.stats.nacks_sent);
    }

    /// The peer's connection statistics: a sample for the histograms if it receives media.
    pub(super) fn peer_feedback(&mut self, peer_id: PeerId, stats: &PeerStats) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.quality.peer_stats(stats);
        let jitter = peer.worst_jitter.take();
        if !peer.slots.iter().any(|s| s.source.is_some()) {
            return;
        }
        let rtt = stats.rtt.or_else(|| {
            stats
                .selected_candidate_pair
                .as_ref()
                .and_then(|pair| pair.current_round_trip_time)
        });
        let loss_ppm = stats
            .egress_loss_fraction
            .filter(|loss| loss.is_finite())
            .map(|loss| (f64::from(loss.clamp(0.0, 1.0)) * 1e6).round() as u32);
        let sample = SubscriberStats {
            rtt,
            loss_ppm,
            jitter,
        };
        self.outputs
            .push_back(Output::Event(MediaEvent::SubscriberStats {
                peer: peer_id,
                stats: sample,
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_are_added_once() {
        let (mut seen, mut total) = (0, 0);
        advance(&mut seen, 3, &mut total);
        advance(&mut seen, 3, &mut total);
        advance(&mut seen, 5, &mut total);
        assert_eq!(total, 5);
        // A stream that starts again from zero adds nothing until it passes its old count.
        advance(&mut seen, 1, &mut total);
        advance(&mut seen, 6, &mut total);
        assert_eq!(total, 6);
    }
}
