//! Keyframe requests to publishers, throttled without losing any.
//!
//! Each track (or simulcast layer) of a publisher is asked for at most one keyframe per
//! interval: an encoder asked twice in a row produces two large frames for one need. A request
//! that falls inside the interval is not dropped but deferred to the interval's end, where all
//! requests that came meanwhile go out as one; so a burst of joiners all get a keyframe within
//! one interval, and a subscriber whose request was absorbed is never left waiting for the
//! publisher's next periodic keyframe (which may be seconds away).

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, Rid};

use super::{RtcMid, Sfu};
use crate::{MediaEvent, Output, PeerId};

/// The throttle of one track or layer.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyframeThrottle {
    last_sent: Option<Instant>,
    /// A request that waits for the end of the interval.
    deferred: Option<KeyframeRequestKind>,
}

/// What to do with a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Throttled {
    /// Send it now (then call [`KeyframeThrottle::sent`]).
    Send,
    /// Inside the interval: it goes out at this instant.
    Deferred(Instant),
    /// A request is already deferred; this one is merged into it.
    Merged,
}

impl KeyframeThrottle {
    pub(super) fn request(
        &mut self,
        now: Instant,
        interval: Duration,
        kind: KeyframeRequestKind,
    ) -> Throttled {
        let Some(last) = self.last_sent else {
            return Throttled::Send;
        };
        let due = last + interval;
        if now >= due && self.deferred.is_none() {
            return Throttled::Send;
        }
        match &mut self.deferred {
            Some(waiting) => {
                // A full intra request (FIR) is the stronger of the two; keep it.
                if kind == KeyframeRequestKind::Fir {
                    *waiting = kind;
                }
                Throttled::Merged
            }
            None => {
                self.deferred = Some(kind);
                Throttled::Deferred(due)
            }
        }
    }

    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.deferred = None;
    }

    /// The deferred request, once its interval has ended.
    pub(super) fn take_due(
        &mut self,
        now: Instant,
        interval: Duration,
    ) -> Option<KeyframeRequestKind> {
        let due = self.last_sent.map_or(now, |last| last + interval);
        if now < due {
            return None;
        }
        self.deferred.take()
    }
}

/// A deferred request: when it is due, and whose.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deferred {
    pub(super) due: Instant,
    pub(super) publisher: PeerId,
    pub(super) mid: RtcMid,
    pub(super) rid: Option<Rid>,
}

impl Sfu {
    /// Sends a keyframe request to a publisher's track, or defers it (see the module docs).
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        kind: KeyframeRequestKind,
    ) {
        self.keyframe_request(now, publisher, mid, None, kind);
    }

    /// [`Sfu::request_keyframe`] for one simulcast layer.
    pub(super) fn request_layer_keyframe(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        rid: Rid,
    ) {
        self.keyframe_request(now, publisher, mid, Some(rid), KeyframeRequestKind::Pli);
    }

    fn keyframe_request(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let interval = self.config.keyframe_request_interval;
        let Some(peer) = self.peers.get_mut(&publisher) else {
            // Another worker's publisher is asked over its relay link (its worker throttles);
            // a local publisher cannot be asked: its GOP cache serves new subscribers.
            self.ask_over_relay(publisher, mid, rid, kind);
            return;
        };
        let Some(publication) = peer.publications.get_mut(&mid) else {
            return;
        };
        if publication.kind != crate::TrackKind::Video {
            return;
        }
        let throttle = match rid {
            None => &mut publication.keyframes,
            Some(rid) => match publication.layers.layer_mut(rid) {
                Some(layer) => &mut layer.keyframes,
                None => return,
            },
        };
        // No receive stream yet means no packet yet: nothing to refresh.
        if peer.rtc.direct_api().stream_rx_by_mid(mid, rid).is_none() {
            return;
        }
        match throttle.request(now, interval, kind) {
            Throttled::Send => {}
            Throttled::Deferred(due) => {
                self.stats.keyframe_requests_deferred += 1;
                self.deferred_keyframes.push(Deferred {
                    due,
                    publisher,
                    mid,
                    rid,
                });
                return;
            }
            Throttled::Merged => {
                self.stats.keyframe_requests_merged += 1;
                return;
            }
        }
        self.send_keyframe_request(now, publisher, mid, rid, kind);
    }

    /// Sends the deferred requests that are due.
    pub(super) fn poll_deferred_keyframes(&mut self, now: Instant) {
        if self.deferred_keyframes.iter().all(|d| d.due > now) {
            return;
        }
        let interval = self.config.keyframe_request_interval;
        let (due, waiting): (Vec<Deferred>, Vec<Deferred>) = self
            .deferred_keyframes
            .drain(..)
            .partition(|d| d.due <= now);
        self.deferred_keyframes = waiting;
        for deferred in due {
            let Deferred {
                publisher,
                mid,
                rid,
                ..
            } = deferred;
            let throttle = self
                .peers
                .get_mut(&publisher)
                .and_then(|p| p.publications.get_mut(&mid))
                .and_then(|p| match rid {
                    None => Some(&mut p.keyframes),
                    Some(rid) => p.layers.layer_mut(rid).map(|l| &mut l.keyframes),
                });
            // The publisher or its track may have gone meanwhile.
            if let Some(kind) = throttle.and_then(|t| t.take_due(now, interval)) {
                self.send_keyframe_request(now, publisher, mid, rid, kind);
            }
        }
    }

    /// The earliest deferred request.
    pub(super) fn next_deferred_keyframe(&self) -> Option<Instant> {
        self.deferred_keyframes.iter().map(|d| d.due).min()
    }

    fn send_keyframe_request(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(publication) = peer.publications.get_mut(&mid) else {
            return;
        };
        let throttle = match rid {
            None => &mut publication.keyframes,
            Some(rid) => match publication.layers.layer_mut(rid) {
                Some(layer) => &mut layer.keyframes,
                None => return,
            },
        };
        let mut api = peer.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, rid) else {
            return;
        };
        stream.request_keyframe(kind);
        throttle.sent(now);
        self.stats.keyframe_requests_sent += 1;
        if rid.is_none() {
            self.outputs
                .push_back(Output::Event(MediaEvent::KeyframeRequested {
                    publisher,
                    mid: super::our_mid(mid),
                }));
        }
        self.drain(publisher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(500);

    #[test]
    fn requests_inside_the_interval_are_deferred_to_its_end() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert_eq!(
            throttle.request(at(0), INTERVAL, KeyframeRequestKind::Pli),
            Throttled::Send
        );
        throttle.sent(at(0));
        // A burst of joiners: the first is deferred to the end of the interval, the rest
        // merge into it.
        assert_eq!(
            throttle.request(at(100), INTERVAL, KeyframeRequestKind::Pli),
            Throttled::Deferred(at(500))
        );
        for ms in [150, 200, 499] {
            assert_eq!(
                throttle.request(at(ms), INTERVAL, KeyframeRequestKind::Pli),
                Throttled::Merged
            );
        }
        assert_eq!(throttle.take_due(at(499), INTERVAL), None);
        assert_eq!(
            throttle.take_due(at(500), INTERVAL),
            Some(KeyframeRequestKind::Pli)
        );
        throttle.sent(at(500));
        assert_eq!(throttle.take_due(at(2000), INTERVAL), None, "sent once");
        // After a quiet interval, a request goes out at once again.
        assert_eq!(
            throttle.request(at(1000), INTERVAL, KeyframeRequestKind::Pli),
            Throttled::Send
        );
    }

    #[test]
    fn a_deferred_request_keeps_a_fir() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        throttle.sent(start);
        let soon = start + Duration::from_millis(10);
        throttle.request(soon, INTERVAL, KeyframeRequestKind::Pli);
        throttle.request(soon, INTERVAL, KeyframeRequestKind::Fir);
        throttle.request(soon, INTERVAL, KeyframeRequestKind::Pli);
        assert_eq!(
            throttle.take_due(start + INTERVAL, INTERVAL),
            Some(KeyframeRequestKind::Fir)
        );
    }

    #[test]
    fn a_request_after_the_interval_waits_for_the_deferred_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        throttle.sent(start);
        throttle.request(
            start + Duration::from_millis(10),
            INTERVAL,
            KeyframeRequestKind::Pli,
        );
        // The timer is late: a new request merges rather than sending a second one.
        assert_eq!(
            throttle.request(
                start + Duration::from_millis(600),
                INTERVAL,
                KeyframeRequestKind::Pli
            ),
            Throttled::Merged
        );
    }
}
