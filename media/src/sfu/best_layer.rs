//! What the room's in-process subscribers (the recorder, the restream) receive of a simulcast
//! publication: one layer, the best one, as one continuous stream. Browsers' slots choose a
//! layer each from their bandwidth (`simulcast`); a recording or a live service wants the best
//! picture, and their depacketizers expect one sequence-number and timestamp space, not three
//! layers interleaved. So: packets of one layer at a time; a switch happens only on a keyframe
//! of the layer switched to (asked for when the best layer is not the one taken), and the
//! layer switched to continues the sequence numbers and timestamps of the one before.

use std::time::Instant;

use str0m::media::Rid;

/// RTP video clock: 90 kHz.
const VIDEO_CLOCK_HZ: u64 = 90_000;

/// The layer taken and how its numbers are rewritten.
#[derive(Debug, Clone, Default)]
pub(super) struct BestLayer {
    current: Option<Rid>,
    /// Added (wrapping) to the taken layer's extended sequence numbers.
    seq_offset: u64,
    /// Added (wrapping) to the taken layer's timestamps.
    ts_offset: u32,
    /// The newest packet handed out: (sequence number, timestamp, arrival).
    last_out: Option<(u64, u32, Instant)>,
}

/// What to do with one packet of a simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BestLayerDecision {
    /// Hand it out with these numbers.
    Take { seq_no: u64, timestamp: u32 },
    /// Not for in-process subscribers; `want_keyframe` asks the best layer for a keyframe,
    /// so that the switch to it can happen.
    Skip { want_keyframe: Option<Rid> },
}

impl BestLayer {
    /// Whether a layer has been taken yet (before, the choice waits for the layers to settle:
    /// a recording that starts small and grows changes its picture size for nothing).
    pub(super) fn started(&self) -> bool {
        self.current.is_some()
    }

    /// A packet of layer `rid` (extended sequence number `seq_no`, `timestamp`, arriving at
    /// `arrival`); `best` is the live layer with the highest bitrate now.
    pub(super) fn decide(
        &mut self,
        rid: Rid,
        best: Option<Rid>,
        keyframe: bool,
        seq_no: u64,
        timestamp: u32,
        arrival: Instant,
    ) -> BestLayerDecision {
        let want_switch = best.is_some_and(|best| Some(best) != self.current);
        if self.current != Some(rid) {
            if !(want_switch && best == Some(rid) && keyframe) {
                return BestLayerDecision::Skip {
                    want_keyframe: best.filter(|_| want_switch),
                };
            }
            self.switch_to(rid, seq_no, timestamp, arrival);
        }
        let seq_no = seq_no.wrapping_add(self.seq_offset);
        let timestamp = timestamp.wrapping_add(self.ts_offset);
        if self.last_out.is_none_or(|(last, _, _)| seq_no > last) {
            self.last_out = Some((seq_no, timestamp, arrival));
        }
        BestLayerDecision::Take { seq_no, timestamp }
    }

    /// Takes `rid` from its packet (`seq_no`, `timestamp`) on: it continues one after the last
    /// sequence number handed out, and its timestamps go on from the last one by the time
    /// that passed (at least one tick, so the picture is new).
    fn switch_to(&mut self, rid: Rid, seq_no: u64, timestamp: u32, arrival: Instant) {
        match self.last_out {
            Some((last_seq, last_ts, last_arrival)) => {
                let elapsed = arrival.saturating_duration_since(last_arrival);
                let ticks = (elapsed.as_micros() as u64 * VIDEO_CLOCK_HZ / 1_000_000).max(1);
                // Wrapping: timestamps live on a 32-bit circle.
                let next_ts = last_ts.wrapping_add(ticks as u32);
                self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(seq_no);
                self.ts_offset = next_ts.wrapping_sub(timestamp);
            }
            None => {
                self.seq_offset = 0;
                self.ts_offset = 0;
            }
        }
        self.current = Some(rid);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn take(seq_no: u64, timestamp: u32) -> BestLayerDecision {
        BestLayerDecision::Take { seq_no, timestamp }
    }

    #[test]
    fn one_layer_is_taken_from_a_keyframe_of_the_best_and_others_are_skipped() {
        let (q, f) = (Rid::from("q"), Rid::from("f"));
        let mut layer = BestLayer::default();
        let t0 = Instant::now();
        // Only q known so far: it is the best; its delta frames wait for a keyframe.
        assert_eq!(
            layer.decide(q, Some(q), false, 10, 1000, t0),
            BestLayerDecision::Skip {
                want_keyframe: Some(q)
            }
        );
        assert_eq!(layer.decide(q, Some(q), true, 11, 1000, t0), take(11, 1000));
        assert_eq!(
            layer.decide(q, Some(q), false, 12, 4000, t0),
            take(12, 4000)
        );
        // f turns out better: q goes on until f's keyframe, and f's keyframe is asked for.
        assert_eq!(
            layer.decide(f, Some(f), false, 500, 90_000, t0),
            BestLayerDecision::Skip {
                want_keyframe: Some(f)
            }
        );
        assert_eq!(
            layer.decide(q, Some(f), false, 13, 7000, t0),
            take(13, 7000)
        );
        // The switch: f continues q's numbers; q is skipped from now on.
        let later = t0 + Duration::from_millis(40);
        assert_eq!(
            layer.decide(f, Some(f), true, 501, 93_000, later),
            take(14, 7000 + 3600)
        );
        assert_eq!(
            layer.decide(f, Some(f), false, 502, 96_000, later),
            take(15, 7000 + 3600 + 3000)
        );
        assert_eq!(
            layer.decide(q, Some(f), false, 14, 10_000, later),
            BestLayerDecision::Skip {
                want_keyframe: None
            }
        );
    }

    #[test]
    fn a_layer_that_stops_gives_way_to_the_next_best_and_wrapping_numbers_stay_continuous() {
        let (h, f) = (Rid::from("h"), Rid::from("f"));
        let mut layer = BestLayer::default();
        let t0 = Instant::now();
        assert_eq!(
            layer.decide(f, Some(f), true, u64::MAX, u32::MAX - 10, t0),
            take(u64::MAX, u32::MAX - 10)
        );
        // f stopped (the publisher's uplink shrank): h is now the best, from its keyframe.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            layer.decide(h, Some(h), true, 7, 123, later),
            take(0, (u32::MAX - 10).wrapping_add(90_000))
        );
        assert_eq!(
            layer.decide(h, Some(h), false, 8, 3123, later),
            take(1, (u32::MAX - 10).wrapping_add(93_000))
        );
    }

    #[test]
    fn no_best_layer_known_takes_nothing_and_asks_nothing() {
        let mut layer = BestLayer::default();
        assert_eq!(
            layer.decide(Rid::from("q"), None, true, 1, 1, Instant::now()),
            BestLayerDecision::Skip {
                want_keyframe: None
            }
        );
    }
}
