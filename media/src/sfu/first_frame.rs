//! The first frame at once: every video publication (and every simulcast layer of one) keeps
//! its current keyframe and what followed it, so that a new subscriber starts from the cache
//! instead of waiting for the publisher's next keyframe.
//!
//! - A browser's publication keeps its cache only while its keyframe is younger than
//!   [`super::SfuConfig::first_frame_max_age`]: older, the cache is emptied (and holds nothing
//!   until the next keyframe), and a new subscriber asks the publisher as before. Serving a
//!   cache older than half that age also asks for a keyframe, once per throttle interval, so a
//!   stream of joiners keeps the cache young without any joiner waiting on it.
//! - Another worker's publication, relayed here (a room that spans workers), is cached here
//!   too, as a browser's is, from the packets that cross the link: joiners on this worker start
//!   from this worker's cache, and its refresh asks over the link, where the publisher's worker
//!   throttles it as it throttles its own subscribers' requests. Only layers that this worker
//!   takes cross the link, so only those are cached; the first subscriber of a layer here
//!   waits for the keyframe it asks for.
//! - An in-process publisher (the RTMP ingest) cannot be asked: its encoder's GOP is cached
//!   whatever its age, within a packet limit.
//! - The replay is one burst, so its frames are renumbered as if they had been captured a
//!   millisecond apart, ending at the packet that triggered it: the subscriber's jitter buffer
//!   sees a short run of recent frames and shows the last at once, rather than scheduling them
//!   over the seconds they originally spanned (which would delay the live picture after them).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::Rid;

use super::{Publication, SfuConfig};
use crate::TrackKind;
use crate::local::LocalPacket;

/// A cache gives up (until the next keyframe) beyond this many packets: an encoder with a very
/// long keyframe interval must not grow memory without bound.
const MAX_PACKETS: usize = 4096;
/// The distance between replayed frames in the subscriber's stream, in 90 kHz ticks (1 ms).
const REPLAY_FRAME_SPACING: u32 = 90;

/// Packets since the last keyframe of one track or layer.
#[derive(Debug, Clone, Default)]
pub(super) struct GopCache {
    packets: VecDeque<LocalPacket>,
    /// When the cached keyframe arrived.
    keyframe_at: Option<Instant>,
    /// How long a keyframe stays worth replaying; `None`: as long as it is the latest.
    max_age: Option<Duration>,
    /// Over a limit since the last keyframe: nothing is cached until the next one.
    given_up: bool,
}

impl GopCache {
    /// A cache for a publisher that can be asked for keyframes: it holds one for `max_age`.
    pub(super) fn aging(max_age: Duration) -> Self {
        GopCache {
            max_age: Some(max_age),
            ..GopCache::default()
        }
    }

    /// The cache of a browser's publication (or layer), if it keeps one.
    pub(super) fn for_browser(kind: TrackKind, config: &SfuConfig) -> Option<Self> {
        let max_age = config.first_frame_max_age;
        (kind == TrackKind::Video && !max_age.is_zero()).then(|| GopCache::aging(max_age))
    }

    /// A cache for a publisher that cannot be asked: the latest keyframe, whatever its age.
    pub(super) fn keeping() -> Self {
        GopCache::default()
    }

    /// Keeps a packet (made only if it is kept): a keyframe starts the cache over.
    pub(super) fn push(
        &mut self,
        now: Instant,
        keyframe: bool,
        packet: impl FnOnce() -> LocalPacket,
    ) {
        if keyframe {
            self.packets.clear();
            self.given_up = false;
            self.keyframe_at = Some(now);
        }
        if self.given_up || (self.packets.is_empty() && !keyframe) {
            return;
        }
        if self.packets.len() >= MAX_PACKETS || self.too_old(now) {
            self.packets = VecDeque::new();
            self.given_up = true;
            return;
        }
        self.packets.push_back(packet());
    }

    fn too_old(&self, now: Instant) -> bool {
        match (self.max_age, self.keyframe_at) {
            (Some(max_age), Some(at)) => now.saturating_duration_since(at) > max_age,
            _ => false,
        }
    }

    /// Whether a new subscriber can start from the cache now.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        !self.packets.is_empty() && !self.too_old(now)
    }

    /// Whether serving the cache should also ask for a fresh keyframe: past half its age.
    pub(super) fn wants_refresh(&self, now: Instant) -> bool {
        match (self.max_age, self.keyframe_at) {
            (Some(max_age), Some(at)) => now.saturating_duration_since(at) > max_age / 2,
            _ => false,
        }
    }

    /// The cached packets, renumbered for one burst (see the module docs): frames a
    /// millisecond apart, the last at the timestamp of the last cached packet. Video only
    /// (90 kHz). Allocated once per subscriber start, never per forwarded packet.
    pub(super) fn replay(&self) -> Vec<LocalPacket> {
        let Some(last) = self.packets.back() else {
            return Vec::new();
        };
        let mut out: Vec<LocalPacket> = self.packets.iter().cloned().collect();
        let mut frames_after: u32 = 0;
        let mut next_timestamp = last.timestamp;
        for packet in out.iter_mut().rev() {
            if packet.timestamp != next_timestamp {
                // A new (earlier) frame: packets of one frame share a timestamp.
                frames_after = frames_after.saturating_add(1);
                next_timestamp = packet.timestamp;
            }
            packet.timestamp = last
                .timestamp
                .wrapping_sub(frames_after.saturating_mul(REPLAY_FRAME_SPACING));
        }
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.packets.len()
    }
}

/// Keeps a video packet of a browser's publication, or of another worker's publication relayed
/// here, in its (layer's) cache, if it keeps one. `packet` is made only if it is kept.
pub(super) fn cache(
    now: Instant,
    max_age: Duration,
    publication: &mut Publication,
    rid: Option<Rid>,
    keyframe: bool,
    packet: impl FnOnce() -> LocalPacket,
) {
    if max_age.is_zero() {
        return;
    }
    let gop = match rid {
        None => publication.gop.as_mut(),
        Some(rid) => publication
            .layers
            .layer_mut(rid)
            .map(|layer| layer.gop.get_or_insert_with(|| GopCache::aging(max_age))),
    };
    if let Some(gop) = gop {
        gop.push(now, keyframe, packet);
    }
}

impl Publication {
    /// The cache that packets of layer `rid` (or of the single encoding) go to.
    pub(super) fn gop(&self, rid: Option<Rid>) -> Option<&GopCache> {
        match rid {
            None => self.gop.as_ref(),
            Some(rid) => self.layers.0.iter().find(|l| l.rid == rid)?.gop.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn packet(seq_no: u64, timestamp: u32, keyframe: bool) -> LocalPacket {
        LocalPacket {
            seq_no,
            timestamp,
            marker: false,
            keyframe,
            payload: Arc::from(vec![0u8; 10]),
        }
    }

    #[test]
    fn holds_from_the_keyframe_on() {
        let now = Instant::now();
        let mut cache = GopCache::aging(Duration::from_secs(2));
        cache.push(now, false, || packet(1, 0, false));
        assert!(!cache.is_fresh(now), "nothing before a keyframe");
        cache.push(now, true, || packet(2, 3000, true));
        cache.push(now, false, || packet(3, 3000, false));
        cache.push(now, false, || packet(4, 6000, false));
        assert_eq!(cache.len(), 3);
        assert!(cache.is_fresh(now));
        cache.push(now, true, || packet(5, 9000, true));
        assert_eq!(cache.len(), 1, "a keyframe starts over");
    }

    #[test]
    fn an_old_keyframe_is_dropped_and_nothing_cached_until_the_next() {
        let start = Instant::now();
        let mut cache = GopCache::aging(Duration::from_secs(2));
        cache.push(start, true, || packet(1, 0, true));
        let half = start + Duration::from_millis(1100);
        assert!(cache.is_fresh(half));
        assert!(cache.wants_refresh(half));
        assert!(!cache.wants_refresh(start + Duration::from_millis(900)));
        let late = start + Duration::from_millis(2100);
        assert!(!cache.is_fresh(late), "too old to replay");
        cache.push(late, false, || packet(2, 3000, false));
        assert_eq!(cache.len(), 0, "memory released");
        cache.push(late, false, || packet(3, 6000, false));
        assert_eq!(cache.len(), 0);
        cache.push(late, true, || packet(4, 9000, true));
        assert!(cache.is_fresh(late));
    }

    #[test]
    fn a_kept_gop_has_no_age_but_a_size_limit() {
        let start = Instant::now();
        let mut cache = GopCache::keeping();
        cache.push(start, true, || packet(0, 0, true));
        let later = start + Duration::from_secs(60);
        assert!(cache.is_fresh(later));
        assert!(!cache.wants_refresh(later), "nobody to ask");
        for seq in 1..MAX_PACKETS as u64 + 1 {
            cache.push(later, false, || packet(seq, 0, false));
        }
        assert_eq!(cache.len(), 0, "given up over the limit");
        assert!(!cache.is_fresh(later));
    }

    #[test]
    fn a_replay_is_renumbered_as_recent_frames_ending_at_the_last() {
        let now = Instant::now();
        let mut cache = GopCache::aging(Duration::from_secs(2));
        // Three frames 33 ms apart; the first (keyframe) in two packets.
        cache.push(now, true, || packet(10, 1000, true));
        cache.push(now, false, || packet(11, 1000, false));
        cache.push(now, false, || packet(12, 4000, false));
        cache.push(now, false, || packet(13, 7000, false));
        let replay = cache.replay();
        let numbers: Vec<(u64, u32)> = replay.iter().map(|p| (p.seq_no, p.timestamp)).collect();
        assert_eq!(
            numbers,
            vec![
                (10, 7000 - 180),
                (11, 7000 - 180),
                (12, 7000 - 90),
                (13, 7000)
            ]
        );
        assert!(replay[0].keyframe);
    }

    #[test]
    fn replay_timestamps_wrap() {
        let now = Instant::now();
        let mut cache = GopCache::keeping();
        cache.push(now, true, || packet(1, u32::MAX - 10, true));
        cache.push(now, false, || packet(2, 50, false));
        let replay = cache.replay();
        assert_eq!(replay[0].timestamp, 50u32.wrapping_sub(90));
        assert_eq!(replay[1].timestamp, 50);
    }
}
