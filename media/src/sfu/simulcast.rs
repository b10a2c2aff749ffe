//! Simulcast: a publisher sends up to three encodings (layers, told apart by RTP stream id);
//! each subscriber's slot receives one of them, chosen from the subscriber's bandwidth
//! estimate and the size it shows the video at. A slot switches layers only on a keyframe of
//! the new layer, so the decoder never sees a picture it cannot decode; the slot's munger makes
//! the switch invisible in sequence numbers and timestamps.

use std::time::{Duration, Instant};

use classroom_codec::keyframe;
use str0m::bwe::Bitrate;
use str0m::media::Rid;

use super::first_frame::GopCache;
use super::keyframe::KeyframeThrottle;
use super::{RtcMid, Sfu};
use crate::PeerId;
use crate::local::Codec;

/// What one audio slot is assumed to need when sharing a subscriber's bandwidth.
pub(super) const AUDIO_BITRATE: u64 = 48_000;
/// An upgrade must fit the estimate with this much to spare (hysteresis against flapping).
const UPGRADE_MARGIN: f64 = 0.85;
/// An upgrade must keep fitting this long before it happens.
const UPGRADE_DELAY: Duration = Duration::from_secs(3);
/// A layer without packets this long is gone (the publisher stopped sending it).
const LAYER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new publication's layers are measured before the best is chosen for
/// in-process subscribers.
const SETTLE: Duration = Duration::from_millis(500);
/// Bitrate is measured over buckets of this length (the current and the previous one).
const BUCKET: Duration = Duration::from_millis(500);

/// The bitrate of one layer (or publication) over the last second, O(1) per packet.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BitrateMeter {
    /// `None` until the first packet.
    bucket_start: Option<Instant>,
    current: u64,
    previous: u64,
}

impl BitrateMeter {
    fn new(now: Instant) -> Self {
        BitrateMeter {
            bucket_start: Some(now),
            current: 0,
            previous: 0,
        }
    }

    pub(super) fn record(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.current += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        let Some(bucket_start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(bucket_start);
        if elapsed >= BUCKET * 2 {
            self.previous = 0;
            self.current = 0;
            self.bucket_start = Some(now);
        } else if elapsed >= BUCKET {
            self.previous = self.current;
            self.current = 0;
            self.bucket_start = Some(bucket_start + BUCKET);
        }
    }

    /// Bits per second over the previous bucket and the current one so far.
    pub(super) fn bitrate(&self, now: Instant) -> u64 {
        let Some(bucket_start) = self.bucket_start else {
            return 0;
        };
        let in_current = now.saturating_duration_since(bucket_start).min(BUCKET);
        let window = BUCKET + in_current;
        let bytes = self.previous + self.current;
        (bytes * 8 * 1000) / (window.as_millis().max(1) as u64)
    }
}

/// One encoding of a simulcast publication.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    pub(super) rid: Rid,
    meter: BitrateMeter,
    first_packet: Instant,
    last_packet: Instant,
    pub(super) keyframes: KeyframeThrottle,
    /// The layer's current keyframe and what followed, for new subscribers.
    pub(super) gop: Option<GopCache>,
}

/// The layers a publication has sent, in the order they first appeared (at most a handful).
#[derive(Debug, Clone, Default)]
pub(super) struct Layers(pub(super) Vec<Layer>);

impl Layers {
    /// Counts a packet of layer `rid`.
    pub(super) fn record(&mut self, now: Instant, rid: Rid, bytes: usize) {
        if let Some(layer) = self.0.iter_mut().find(|l| l.rid == rid) {
            layer.meter.record(now, bytes);
            layer.last_packet = now;
        } else if self.0.len() < 4 {
            let mut meter = BitrateMeter::new(now);
            meter.record(now, bytes);
            self.0.push(Layer {
                rid,
                meter,
                first_packet: now,
                last_packet: now,
                keyframes: KeyframeThrottle::default(),
                gop: None,
            });
        }
    }

    /// The live layers from the lowest bitrate to the highest: (rid, bits per second).
    pub(super) fn ranked(&self, now: Instant) -> Vec<(Rid, u64)> {
        let mut ranked: Vec<(Rid, u64)> = self
            .0
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_packet) < LAYER_TIMEOUT)
            .map(|l| (l.rid, l.meter.bitrate(now)))
            .collect();
        ranked.sort_by_key(|(_, bitrate)| *bitrate);
        ranked
    }

    /// [`Layers::best`] once the layers have been measured for a while (the first layer
    /// seen at least [`SETTLE`] ago): right after a publication starts, the layer that arrived
    /// first looks best only because the others have not been counted yet.
    pub(super) fn settled_best(&self, now: Instant) -> Option<Rid> {
        let oldest = self.0.iter().map(|l| l.first_packet).min()?;
        if now.saturating_duration_since(oldest) < SETTLE {
            return None;
        }
        self.best(now)
    }

    /// The live layer with the highest bitrate (without a copy).
    pub(super) fn best(&self, now: Instant) -> Option<Rid> {
        self.0
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_packet) < LAYER_TIMEOUT)
            .max_by_key(|l| l.meter.bitrate(now))
            .map(|l| l.rid)
    }

    /// The bitrate of the lowest live layer, if any layer is live (without a copy).
    pub(super) fn lowest(&self, now: Instant) -> Option<u64> {
        self.0
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_packet) < LAYER_TIMEOUT)
            .map(|l| l.meter.bitrate(now))
            .min()
    }

    pub(super) fn layer_mut(&mut self, rid: Rid) -> Option<&mut Layer> {
        self.0.iter_mut().find(|l| l.rid == rid)
    }
}

/// A slot's simulcast state.
#[derive(Debug, Clone, Default)]
pub(super) struct SlotLayer {
    /// The layer being forwarded.
    pub(super) current: Option<Rid>,
    /// The layer to switch to at its next keyframe.
    pub(super) target: Option<Rid>,
    /// The size the subscriber shows this video at (`video_size`), if it said.
    pub(super) max_height: Option<u32>,
    /// Since when an upgrade has kept fitting the estimate.
    upgrade_fits_since: Option<Instant>,
}

impl SlotLayer {
    /// Whether a packet of layer `rid` goes out on this slot; switches to the target layer
    /// on its keyframe. Returns (forward, switched).
    pub(super) fn accept(&mut self, rid: Rid, keyframe: bool) -> (bool, bool) {
        if self.current == Some(rid) {
            return (true, false);
        }
        if self.target == Some(rid) && keyframe {
            let switched = self.current.is_some();
            self.current = Some(rid);
            return (true, switched);
        }
        (false, false)
    }

    /// A new slot starts on layer `rid` without waiting for its keyframe (it is given the
    /// layer's cached group of pictures, which starts with one). Returns (forward, switched).
    pub(super) fn start_on(&mut self, rid: Rid) -> (bool, bool) {
        self.current = Some(rid);
        (true, false)
    }

    /// Forget the layers (the slot was bound to another publication).
    pub(super) fn reset(&mut self) {
        let max_height = self.max_height;
        *self = SlotLayer {
            max_height,
            ..SlotLayer::default()
        };
    }
}

/// One simulcast slot of a subscriber in an allocation round: (slot index, layers ranked by
/// bitrate, highest rank its size needs, current rank).
type Demand = (usize, Vec<(Rid, u64)>, usize, Option<usize>);

/// The first packet of a keyframe, from the RTP payload (`classroom_codec::keyframe`; for
/// H.264 that is the packet with the sequence parameter set when it comes before the IDR
/// picture, as browsers send it).
pub(super) fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => keyframe::vp8(payload),
        Codec::Vp9 => keyframe::vp9(payload),
        Codec::H264 { .. } => keyframe::h264(payload),
        Codec::Av1 => keyframe::av1(payload),
        Codec::Opus | Codec::Other => false,
    }
}

/// Whether [`is_keyframe_start`] can tell keyframes of this codec.
pub(super) fn detects_keyframes(codec: Codec) -> bool {
    matches!(
        codec,
        Codec::Vp8 | Codec::Vp9 | Codec::H264 { .. } | Codec::Av1
    )
}

/// The highest layer index (in bitrate order) that is worth sending for a video shown
/// `max_height` pixels high, when layers are each half the height of the next (the browsers'
/// default of scaling by 4, 2 and 1) and the top layer is 720 pixels high.
fn size_cap(layers: usize, max_height: Option<u32>) -> usize {
    let top = layers.saturating_sub(1);
    let Some(height) = max_height else {
        return top;
    };
    let mut cap = 0;
    let mut layer_height = 720u32 >> top;
    while cap < top && layer_height < height {
        cap += 1;
        layer_height *= 2;
    }
    cap
}

impl Sfu {
    /// Chooses the layer of each of a subscriber's simulcast slots from its bandwidth
    /// estimate: audio first, then the lowest layer of every video (always, even over the
    /// estimate), then upgrades one layer at a time across slots while they fit. Downgrades
    /// happen at once; upgrades need a margin held for [`UPGRADE_DELAY`].
    pub(super) fn allocate_layers(&mut self, now: Instant, subscriber: PeerId) {
        // Before the estimate decides anything: it must at least carry the floor.
        self.raise_start_estimate(now, subscriber);
        let Some(peer) = self.peers.get(&subscriber) else {
            return;
        };
        let audio_slots = peer
            .slots
            .iter()
            .filter(|s| s.kind == crate::TrackKind::Audio && s.source.is_some())
            .count() as u64;
        // Without an estimate yet, start from the lowest layers: browsers ramp up quickly.
        let budget = peer
            .estimate
            .map(|e| e.saturating_sub(audio_slots * AUDIO_BITRATE))
            .unwrap_or(0);
        let mut demands: Vec<Demand> = Vec::new();
        for (index, slot) in peer.slots.iter().enumerate() {
            let Some((publisher, mid)) = slot.source else {
                continue;
            };
            let Some(publication) = self.publication(publisher, mid) else {
                continue;
            };
            let ranked = publication.layers.ranked(now);
            if ranked.is_empty() {
                continue;
            }
            let cap = size_cap(ranked.len(), slot.forwarder.layer.max_height);
            let current = slot
                .forwarder
                .layer
                .current
                .and_then(|rid| ranked.iter().position(|(r, _)| *r == rid));
            demands.push((index, ranked, cap, current));
        }
        if demands.is_empty() {
            return;
        }

        let mut chosen: Vec<usize> = vec![0; demands.len()];
        let mut spent: u64 = demands.iter().map(|(_, ranked, _, _)| ranked[0].1).sum();
        let mut desired: u64 = demands
            .iter()
            .map(|(_, ranked, cap, _)| ranked[*cap].1)
            .sum();
        desired += audio_slots * AUDIO_BITRATE;
        let mut upgraded = true;
        while upgraded {
            upgraded = false;
            for (i, (_, ranked, cap, current)) in demands.iter().enumerate() {
                let next = chosen[i] + 1;
                if next > *cap || next >= ranked.len() {
                    continue;
                }
                let extra = ranked[next].1.saturating_sub(ranked[chosen[i]].1);
                // Staying at or below the current layer needs only to fit; going above it
                // needs the margin.
                let limit = if current.is_some_and(|c| next <= c) {
                    budget as f64
                } else {
                    budget as f64 * UPGRADE_MARGIN
                };
                if (spent + extra) as f64 <= limit {
                    chosen[i] = next;
                    spent += extra;
                    upgraded = true;
                }
            }
        }

        let mut requests: Vec<(PeerId, RtcMid, Rid, bool)> = Vec::new();
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        // What the subscriber would need: the estimator probes up toward it.
        peer.rtc
            .bwe()
            .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        for ((index, ranked, _, current), choice) in demands.iter().zip(chosen) {
            let Some(slot) = peer.slots.get_mut(*index) else {
                continue;
            };
            let target = match current {
                // Upgrades wait until they have kept fitting for a while.
                Some(c) if choice > *c => {
                    let since = *slot.forwarder.layer.upgrade_fits_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= UPGRADE_DELAY {
                        slot.forwarder.layer.upgrade_fits_since = None;
                        choice
                    } else {
                        *c
                    }
                }
                _ => {
                    slot.forwarder.layer.upgrade_fits_since = None;
                    choice
                }
            };
            let rid = ranked[target].0;
            slot.forwarder.layer.target = Some(rid);
            match slot.source {
                Some((publisher, mid)) if slot.forwarder.layer.current != Some(rid) => {
                    requests.push((publisher, mid, rid, slot.forwarder.is_starting()));
                }
                _ => {}
            }
        }
        self.drain(subscriber);
        for (publisher, mid, rid, starting) in requests {
            // A new slot starts on the layer's cache when it is young enough to need no
            // refresh; a layer switch needs the layer's next keyframe.
            let served = starting
                && self
                    .publication(publisher, mid)
                    .and_then(|p| p.gop(Some(rid)))
                    .is_some_and(|g| g.is_fresh(now) && !g.wants_refresh(now));
            if !served {
                self.request_layer_keyframe(now, publisher, mid, rid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_measures_a_steady_rate() {
        let start = Instant::now();
        let mut meter = BitrateMeter::new(start);
        // 100 packets of 1250 bytes per second = 1 Mbit/s.
        for i in 0..300u64 {
            meter.record(start + Duration::from_millis(i * 10), 1250);
        }
        let rate = meter.bitrate(start + Duration::from_millis(3000));
        assert!((900_000..=1_100_000).contains(&rate), "{rate}");
        // Silence empties it.
        meter.record(start + Duration::from_secs(10), 0);
        assert_eq!(meter.bitrate(start + Duration::from_secs(10)), 0);
    }

    #[test]
    fn size_caps_layers() {
        assert_eq!(size_cap(3, None), 2);
        assert_eq!(size_cap(3, Some(100)), 0);
        assert_eq!(size_cap(3, Some(180)), 0);
        assert_eq!(size_cap(3, Some(181)), 1);
        assert_eq!(size_cap(3, Some(360)), 1);
        assert_eq!(size_cap(3, Some(1080)), 2);
        assert_eq!(size_cap(2, Some(300)), 0);
        assert_eq!(size_cap(1, Some(2000)), 0);
    }

    #[test]
    fn the_best_layer_for_in_process_subscribers_waits_for_the_layers_to_settle() {
        let (q, f) = (Rid::from("q"), Rid::from("f"));
        let start = Instant::now();
        let mut layers = Layers::default();
        layers.record(start, q, 200);
        assert_eq!(layers.best(start), Some(q), "the only layer seen");
        assert_eq!(layers.settled_best(start), None, "too early to choose");
        for ms in (20..600).step_by(20) {
            let now = start + Duration::from_millis(ms);
            layers.record(now, q, 200);
            layers.record(now, f, 1200);
        }
        let later = start + Duration::from_millis(600);
        assert_eq!(layers.settled_best(later), Some(f));
    }

    #[test]
    fn slots_switch_only_on_a_keyframe_of_the_target() {
        let (low, high) = (Rid::from("q"), Rid::from("f"));
        let mut slot = SlotLayer {
            target: Some(low),
            ..SlotLayer::default()
        };
        assert_eq!(slot.accept(low, false), (false, false));
        assert_eq!(slot.accept(low, true), (true, false));
        assert_eq!(slot.accept(low, false), (true, false));
        slot.target = Some(high);
        assert_eq!(slot.accept(high, false), (false, false));
        assert_eq!(slot.accept(low, false), (true, false));
        assert_eq!(slot.accept(high, true), (true, true));
        assert_eq!(slot.accept(low, true), (false, false));
    }
}
