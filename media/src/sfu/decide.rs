//! The forwarding decision of one slot: whether a packet of its publication goes out on it,
//! with which payload type, and what it rewrites. No `Rtc`, no peers: the fan-out asks
//! [`Forwarder::decide`] per slot, does what the [`Decision`] says, and numbers what it writes
//! with [`Forwarder::rewrite`]. Tested here with synthetic packets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{Pt, Rid};
use str0m::rtp::ExtensionValues;

use super::simulcast::{SlotLayer, detects_keyframes};
use crate::TrackKind;
use crate::local::Codec;

/// One packet on its way through the fan-out, from a browser or a local publisher.
pub(super) struct Incoming {
    pub(super) kind: TrackKind,
    pub(super) codec: Codec,
    /// The publisher's codec parameters, matched against each subscriber's payload types.
    pub(super) params: Option<PayloadParams>,
    /// The publisher's payload type: the key of each slot's mapping cache.
    pub(super) in_pt: Pt,
    pub(super) seq_no: u64,
    pub(super) timestamp: u32,
    pub(super) marker: bool,
    /// The first packet of a keyframe: told by local publishers, detected for simulcast.
    pub(super) keyframe: bool,
    /// The simulcast layer, when the publication has several.
    pub(super) rid: Option<Rid>,
    pub(super) payload: Arc<[u8]>,
    pub(super) arrival: Instant,
    pub(super) ext_vals: ExtensionValues,
}

/// What the fan-out knows beyond the packet and the slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    pub(super) now: Instant,
    /// The publication (or the packet's layer) has a group of pictures cached and fresh: a
    /// starting slot is given it rather than waiting for a keyframe request.
    pub(super) gop_cached: bool,
    /// How long a slot waits for the keyframe it asked for before asking again.
    pub(super) keyframe_request_interval: Duration,
}

/// What to do with one packet on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Another simulcast layer than the one the slot forwards.
    OtherLayer,
    /// No payload type the subscriber negotiated carries the packet's codec. `switched`: the
    /// slot moved to the packet's simulcast layer all the same.
    NoCodec { switched: bool },
    /// A delta frame before the slot's first keyframe: dropped. `ask_keyframe`: ask the
    /// publisher for one (the slot just started, or its request seems lost).
    AwaitingKeyframe { ask_keyframe: bool },
    /// Write with payload type `pt`: the packet, or when `replay` the publication's cached
    /// group of pictures (which ends with it). `switched`: the slot moved to the packet's
    /// simulcast layer. `ask_keyframe`: the slot started without a cached group of pictures.
    /// `first`: the slot's first video since it was bound (its subscriber's first frame).
    Forward {
        pt: Pt,
        replay: bool,
        switched: bool,
        ask_keyframe: bool,
        first: bool,
    },
}

/// The forwarding state of one slot (an m-line on which we send to a subscriber).
#[derive(Debug, Default)]
pub(super) struct Forwarder {
    /// Which simulcast layer the slot takes, when its source has several.
    pub(super) layer: SlotLayer,
    munger: Munger,
    /// Last payload type mapping: publisher's pt → ours.
    pt_cache: Option<(Pt, Pt)>,
    /// Ask the publisher for a keyframe with the next forwarded video packet.
    starting: bool,
    /// Video bound to the slot but no keyframe forwarded yet: delta frames are dropped.
    awaiting_keyframe: bool,
    /// When the slot last asked for the keyframe it awaits.
    keyframe_asked: Option<Instant>,
}

impl Forwarder {
    /// The slot now carries another publication (of `kind`): its numbering continues,
    /// everything else starts over; video waits for a keyframe.
    pub(super) fn bind(&mut self, kind: TrackKind) {
        self.munger.rebase();
        self.pt_cache = None;
        self.starting = kind == TrackKind::Video;
        self.awaiting_keyframe = kind == TrackKind::Video;
        self.keyframe_asked = None;
        self.layer.reset();
    }

    /// A video slot bound since its last forwarded packet: it starts with the next one.
    pub(super) fn is_starting(&self) -> bool {
        self.starting
    }

    /// Decides what happens to `incoming` on this slot and updates the slot's state as if it
    /// were done. `negotiated_pt` finds the subscriber's payload type for the publisher's
    /// codec parameters; it is asked only when the publisher's payload type changes.
    /// Inlined into the fan-out's loop, its one caller, as the code was before it moved here.
    #[inline]
    pub(super) fn decide(
        &mut self,
        incoming: &Incoming,
        context: Context,
        negotiated_pt: impl FnOnce(PayloadParams) -> Option<Pt>,
    ) -> Decision {
        let mut switched = false;
        if let Some(rid) = incoming.rid {
            // A new slot starts on its layer's cached group of pictures, if there is one;
            // otherwise on the layer's next keyframe.
            let from_cache = self.starting && context.gop_cached && self.layer.target == Some(rid);
            let (take, to_layer) = match from_cache {
                true => self.layer.start_on(rid),
                false => self.layer.accept(rid, incoming.keyframe),
            };
            if !take {
                return Decision::OtherLayer;
            }
            if to_layer {
                self.munger.rebase();
                switched = true;
            }
        }
        let pt = match self.pt_cache {
            Some((from, to)) if from == incoming.in_pt => Some(to),
            _ => incoming.params.and_then(negotiated_pt),
        };
        let Some(pt) = pt else {
            return Decision::NoCodec { switched };
        };
        self.pt_cache = Some((incoming.in_pt, pt));
        let starting = std::mem::take(&mut self.starting);
        // A new subscriber gets the cached group of pictures first (it ends with this
        // packet), rather than waiting for the publisher's next keyframe.
        let replay = starting && context.gop_cached;
        let first = self.awaiting_keyframe;
        let mut ask_keyframe = starting && !replay;
        // A decoder cannot start on a delta frame: a new slot forwards nothing before the
        // first keyframe (simulcast slots wait in `accept`, the replay starts on one).
        if self.awaiting_keyframe {
            let delta = !incoming.keyframe && detects_keyframes(incoming.codec);
            if delta && !replay && incoming.rid.is_none() {
                // Asked again if the keyframe is slow to come (a lost request).
                let asked = self.keyframe_asked.get_or_insert(context.now);
                if context.now.saturating_duration_since(*asked)
                    >= context.keyframe_request_interval
                {
                    *asked = context.now;
                    ask_keyframe = true;
                }
                return Decision::AwaitingKeyframe { ask_keyframe };
            }
            self.awaiting_keyframe = false;
            self.keyframe_asked = None;
        }
        Decision::Forward {
            pt,
            replay,
            switched,
            ask_keyframe,
            first,
        }
    }

    /// The outgoing (sequence number, timestamp) of a packet written on this slot; `None`
    /// for one older than the current source's first (see [`Munger`]).
    #[inline]
    pub(super) fn rewrite(&mut self, seq_no: u64, timestamp: u32) -> Option<(u64, u32)> {
        self.munger.map(seq_no, timestamp)
    }
}

/// Rewrites sequence numbers and timestamps so that each slot's outgoing stream is contiguous,
/// whichever publication feeds it. The first packet of the first binding goes out as sequence
/// number 1 (so the SRTP rollover counter starts at 0 on both sides); after a re-binding the
/// new source continues one past the highest number sent so far.
#[derive(Debug, Default)]
struct Munger {
    /// (sequence number offset, timestamp offset) of the current source, set by its first packet.
    offsets: Option<(i64, u32)>,
    /// Lowest outgoing sequence number of the current source; older packets are dropped.
    floor: u64,
    /// Highest sequence number sent and its timestamp, if anything was sent.
    last: Option<(u64, u32)>,
}

impl Munger {
    fn rebase(&mut self) {
        self.offsets = None;
    }

    /// The outgoing (sequence number, timestamp) for an incoming packet, or `None` if the packet
    /// predates the current source's first forwarded packet.
    fn map(&mut self, seq_no: u64, timestamp: u32) -> Option<(u64, u32)> {
        let seq_no = i64::try_from(seq_no).ok()?;
        let (seq_offset, ts_offset) = match self.offsets {
            Some(offsets) => offsets,
            None => {
                let (next_seq, ts_offset) = match self.last {
                    Some((seq, ts)) => (seq + 1, ts.wrapping_add(1).wrapping_sub(timestamp)),
                    None => (1, 0),
                };
                let offsets = (i64::try_from(next_seq).ok()? - seq_no, ts_offset);
                self.offsets = Some(offsets);
                self.floor = next_seq;
                offsets
            }
        };
        let out = u64::try_from(seq_no.checked_add(seq_offset)?).ok()?;
        if out < self.floor {
            return None;
        }
        let ts = timestamp.wrapping_add(ts_offset);
        if self.last.is_none_or(|(seq, _)| out > seq) {
            self.last = Some((out, ts));
        }
        Some((out, ts))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::super::in_process::payload_params;
    use super::*;

    const VP8: Codec = Codec::Vp8;
    const INTERVAL: Duration = Duration::from_millis(500);

    /// A synthetic packet: `keyframe` marks the first packet of a keyframe.
    fn packet(codec: Codec, seq_no: u64, timestamp: u32, keyframe: bool) -> Incoming {
        let params = payload_params(codec);
        Incoming {
            kind: match codec {
                Codec::Opus => TrackKind::Audio,
                _ => TrackKind::Video,
            },
            codec,
            params: Some(params),
            in_pt: params.pt(),
            seq_no,
            timestamp,
            marker: false,
            keyframe,
            rid: None,
            payload: Arc::from(&[0u8; 4][..]),
            arrival: Instant::now(),
            ext_vals: ExtensionValues::default(),
        }
    }

    fn layer(mut incoming: Incoming, rid: &str) -> Incoming {
        incoming.rid = Some(Rid::from(rid));
        incoming
    }

    fn at(start: Instant, millis: u64) -> Context {
        Context {
            now: start + Duration::from_millis(millis),
            gop_cached: false,
            keyframe_request_interval: INTERVAL,
        }
    }

    /// The subscriber's payload type for every codec: 100 + the publisher's.
    fn ours(params: PayloadParams) -> Option<Pt> {
        Some(Pt::new_with_value(*params.pt() + 1))
    }

    /// Decides, and for a forwarded packet returns what it goes out as.
    fn forward(f: &mut Forwarder, p: &Incoming, c: Context) -> (Decision, Option<(u64, u32)>) {
        let decision = f.decide(p, c, ours);
        let written = match decision {
            Decision::Forward { replay: false, .. } => f.rewrite(p.seq_no, p.timestamp),
            _ => None,
        };
        (decision, written)
    }

    fn forwarded(pt: u8, ask_keyframe: bool) -> Decision {
        Decision::Forward {
            pt: Pt::new_with_value(pt),
            replay: false,
            switched: false,
            ask_keyframe,
            first: false,
        }
    }

    /// [`forwarded`], as the slot's first video.
    fn forwarded_first(pt: u8, ask_keyframe: bool) -> Decision {
        Decision::Forward {
            pt: Pt::new_with_value(pt),
            replay: false,
            switched: false,
            ask_keyframe,
            first: true,
        }
    }

    #[test]
    fn audio_goes_out_at_once_renumbered_from_one() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Audio);
        assert!(!f.is_starting(), "audio needs no keyframe");
        let (decision, written) = forward(
            &mut f,
            &packet(Codec::Opus, 5_000, 960, false),
            at(start, 0),
        );
        assert_eq!(decision, forwarded(112, false));
        assert_eq!(written, Some((1, 960)));
        let (_, written) = forward(
            &mut f,
            &packet(Codec::Opus, 5_001, 1_920, false),
            at(start, 20),
        );
        assert_eq!(written, Some((2, 1_920)));
    }

    #[test]
    fn video_waits_for_a_keyframe_and_asks_again_only_after_the_interval() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        assert!(f.is_starting());
        // The first packet of a new slot asks for a keyframe, and a delta frame is dropped.
        let delta = |seq| packet(VP8, seq, 3_000, false);
        assert_eq!(
            forward(&mut f, &delta(10), at(start, 0)).0,
            Decision::AwaitingKeyframe { ask_keyframe: true }
        );
        assert!(!f.is_starting());
        // Within the interval: no second request.
        assert_eq!(
            forward(&mut f, &delta(11), at(start, 100)).0,
            Decision::AwaitingKeyframe {
                ask_keyframe: false
            }
        );
        assert_eq!(
            forward(&mut f, &delta(12), at(start, 499)).0,
            Decision::AwaitingKeyframe {
                ask_keyframe: false
            }
        );
        // The request seems lost: asked again, then not before another interval.
        assert_eq!(
            forward(&mut f, &delta(13), at(start, 500)).0,
            Decision::AwaitingKeyframe { ask_keyframe: true }
        );
        assert_eq!(
            forward(&mut f, &delta(14), at(start, 900)).0,
            Decision::AwaitingKeyframe {
                ask_keyframe: false
            }
        );
        // The keyframe starts the stream at sequence number 1; deltas follow it.
        let (decision, written) = forward(&mut f, &packet(VP8, 15, 6_000, true), at(start, 950));
        assert_eq!(
            (decision, written),
            (forwarded_first(97, false), Some((1, 6_000)))
        );
        assert_eq!(
            forward(&mut f, &delta(16), at(start, 960)),
            (forwarded(97, false), Some((2, 3_000)))
        );
    }

    #[test]
    fn a_keyframe_first_needs_no_wait_but_still_asks_as_the_slot_starts() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        let (decision, written) = forward(&mut f, &packet(VP8, 7, 0, true), at(start, 0));
        assert_eq!(decision, forwarded_first(97, true));
        assert_eq!(written, Some((1, 0)));
    }

    #[test]
    fn a_codec_whose_keyframes_cannot_be_told_is_forwarded_at_once() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        let p = packet(Codec::Other, 1, 0, false);
        assert_eq!(
            forward(&mut f, &p, at(start, 0)).0,
            forwarded_first(46, true)
        );
    }

    #[test]
    fn a_cached_group_of_pictures_is_replayed_instead_of_asking() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        let with_gop = Context {
            gop_cached: true,
            ..at(start, 0)
        };
        // Even on a delta frame: the replay starts on the cached keyframe.
        let decision = f.decide(&packet(VP8, 40, 0, false), with_gop, ours);
        assert_eq!(
            decision,
            Decision::Forward {
                pt: Pt::new_with_value(97),
                replay: true,
                switched: false,
                ask_keyframe: false,
                first: true,
            }
        );
        // Once started, the next packet is no replay.
        let decision = f.decide(&packet(VP8, 41, 0, false), with_gop, ours);
        assert_eq!(decision, forwarded(97, false));
    }

    #[test]
    fn no_negotiated_payload_type_drops_and_the_mapping_is_cached_per_payload_type() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Audio);
        let opus = packet(Codec::Opus, 1, 0, false);
        assert_eq!(
            f.decide(&opus, at(start, 0), |_| None),
            Decision::NoCodec { switched: false }
        );
        let asked = Cell::new(0);
        let counting = |params: PayloadParams| {
            asked.set(asked.get() + 1);
            ours(params)
        };
        assert_eq!(
            f.decide(&opus, at(start, 0), counting),
            forwarded(112, false)
        );
        assert_eq!(
            f.decide(&opus, at(start, 20), counting),
            forwarded(112, false)
        );
        assert_eq!(
            asked.get(),
            1,
            "looked up once while the payload type stays"
        );
        // The publisher changes codec: looked up again.
        let vp8 = packet(VP8, 2, 0, true);
        assert_eq!(
            f.decide(&vp8, at(start, 40), counting),
            forwarded(97, false)
        );
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn simulcast_takes_the_target_layer_from_its_keyframe_and_keeps_numbering_across_switches() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        f.layer.target = Some(Rid::from("q"));
        // Before the target layer's keyframe nothing goes out; other layers never do.
        let q = |seq, ts, key| layer(packet(VP8, seq, ts, key), "q");
        let h = |seq, ts, key| layer(packet(VP8, seq, ts, key), "h");
        assert_eq!(
            forward(&mut f, &q(100, 0, false), at(start, 0)).0,
            Decision::OtherLayer
        );
        assert_eq!(
            forward(&mut f, &h(900, 0, true), at(start, 0)).0,
            Decision::OtherLayer
        );
        assert!(f.is_starting(), "a skipped packet does not start the slot");
        let (decision, written) = forward(&mut f, &q(101, 9_000, true), at(start, 10));
        assert_eq!(
            decision,
            forwarded_first(97, true),
            "the first layer is no switch"
        );
        assert_eq!(written, Some((1, 9_000)));
        assert_eq!(
            forward(&mut f, &q(102, 12_000, false), at(start, 20)).1,
            Some((2, 12_000))
        );
        // The allocator moves the slot up: "h" from its next keyframe on, "q" until then.
        f.layer.target = Some(Rid::from("h"));
        assert_eq!(
            forward(&mut f, &h(901, 50, false), at(start, 30)).0,
            Decision::OtherLayer
        );
        assert_eq!(
            forward(&mut f, &q(103, 15_000, false), at(start, 30)).1,
            Some((3, 15_000))
        );
        let (decision, written) = forward(&mut f, &h(902, 70_000, true), at(start, 40));
        assert_eq!(
            decision,
            Decision::Forward {
                pt: Pt::new_with_value(97),
                replay: false,
                switched: true,
                ask_keyframe: false,
                first: false,
            }
        );
        assert_eq!(
            written,
            Some((4, 15_001)),
            "continues one past the last sent"
        );
        assert_eq!(
            forward(&mut f, &q(104, 18_000, false), at(start, 50)).0,
            Decision::OtherLayer
        );
        assert_eq!(
            forward(&mut f, &h(903, 73_000, false), at(start, 50)).1,
            Some((5, 18_001))
        );
    }

    #[test]
    fn a_new_simulcast_slot_starts_on_its_layers_cache_without_waiting_for_a_keyframe() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        f.layer.target = Some(Rid::from("h"));
        let cached = Context {
            gop_cached: true,
            ..at(start, 0)
        };
        let q = layer(packet(VP8, 100, 0, false), "q");
        assert_eq!(f.decide(&q, cached, ours), Decision::OtherLayer);
        let h = layer(packet(VP8, 900, 3_000, false), "h");
        assert_eq!(
            f.decide(&h, cached, ours),
            Decision::Forward {
                pt: Pt::new_with_value(97),
                replay: true,
                switched: false,
                ask_keyframe: false,
                first: true,
            }
        );
        assert_eq!(f.layer.current, Some(Rid::from("h")));
        // A later switch still waits for the new layer's keyframe, cache or not.
        f.layer.target = Some(Rid::from("f"));
        let f_delta = layer(packet(VP8, 5, 3_000, false), "f");
        assert_eq!(f.decide(&f_delta, cached, ours), Decision::OtherLayer);
    }

    #[test]
    fn rebinding_waits_for_a_keyframe_again_and_continues_the_numbering() {
        let start = Instant::now();
        let mut f = Forwarder::default();
        f.bind(TrackKind::Video);
        forward(&mut f, &packet(VP8, 10, 1_000, true), at(start, 0));
        forward(&mut f, &packet(VP8, 11, 4_000, false), at(start, 30));
        // Another publication on the same slot, with unrelated numbers.
        f.bind(TrackKind::Video);
        assert_eq!(
            forward(&mut f, &packet(VP8, 500, 0, false), at(start, 60)).0,
            Decision::AwaitingKeyframe { ask_keyframe: true }
        );
        let (_, written) = forward(&mut f, &packet(VP8, 501, 90_000, true), at(start, 90));
        assert_eq!(written, Some((3, 4_001)));
    }

    #[test]
    fn munger_starts_at_one_and_keeps_gaps() {
        let mut m = Munger::default();
        assert_eq!(m.map(40_000, 9_000), Some((1, 9_000)));
        assert_eq!(m.map(40_001, 12_000), Some((2, 12_000)));
        assert_eq!(m.map(40_004, 21_000), Some((5, 21_000)));
        // A late packet between sent ones still maps (for NACK repair) …
        assert_eq!(m.map(40_002, 15_000), Some((3, 15_000)));
        // … but one from before the first forwarded packet does not.
        assert_eq!(m.map(39_999, 6_000), None);
    }

    #[test]
    fn munger_continues_after_rebinding() {
        let mut m = Munger::default();
        assert_eq!(m.map(100, 1_000), Some((1, 1_000)));
        assert_eq!(m.map(101, 4_000), Some((2, 4_000)));
        m.rebase();
        // A new source with unrelated numbers continues one past the last sent packet.
        assert_eq!(m.map(7, u32::MAX), Some((3, 4_001)));
        assert_eq!(m.map(8, 2_999), Some((4, 7_001)));
        assert_eq!(m.map(6, 0), None);
    }
}
