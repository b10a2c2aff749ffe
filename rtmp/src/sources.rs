//! Which connection publishes to which lesson, sans-IO. One publisher per lesson; a publisher
//! that drops without saying goodbye keeps its source for a grace period so that a reconnect
//! resumes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use classroom_codec::rtp::RtpPacket;
use classroom_protocol::LessonId;

use crate::events::{ConnectionId, IngestEvent};
use crate::media::{SharedGop, SourceMedia};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "another encoder is already streaming to this lesson with this key; stop it first, or \
         rotate the stream key to cut it off"
    )]
    InUse,
}

enum Holder {
    Active(ConnectionId),
    /// `conn` published it last: the Unpublish at expiry is that connection's.
    Lingering {
        media: SourceMedia,
        until: Instant,
        conn: ConnectionId,
    },
}

struct Slot {
    holder: Holder,
    gop: SharedGop,
}

pub struct Sources {
    slots: HashMap<LessonId, Slot>,
    grace: Duration,
    seed: u32,
}

impl Sources {
    pub fn new(grace: Duration, seed: u32) -> Self {
        Sources {
            slots: HashMap::new(),
            grace,
            seed,
        }
    }

    /// Gives `conn` the lesson's source: a lingering one (resumed = true) or a new one.
    pub fn claim(
        &mut self,
        lesson: LessonId,
        conn: ConnectionId,
    ) -> Result<(SourceMedia, bool), ClaimError> {
        if let Some(slot) = self.slots.get_mut(&lesson) {
            let previous = std::mem::replace(&mut slot.holder, Holder::Active(conn));
            return match previous {
                Holder::Active(other) => {
                    slot.holder = Holder::Active(other);
                    Err(ClaimError::InUse)
                }
                Holder::Lingering { media, .. } => {
                    let resumed = media.published();
                    Ok((media, resumed))
                }
            };
        }
        // Different sequence numbers and timestamps per source (RFC 3550 5.1).
        self.seed = self
            .seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let media = SourceMedia::new(self.seed ^ lesson.0 as u32);
        self.slots.insert(
            lesson,
            Slot {
                holder: Holder::Active(conn),
                gop: media.gop(),
            },
        );
        Ok((media, false))
    }

    /// The connection ended. `clean`: the encoder stopped on purpose, so the source ends now;
    /// otherwise it lingers for the grace period. Returns what to tell the SFU: Unpublish, or
    /// Interrupted for a published source that lingers.
    pub fn release(
        &mut self,
        lesson: LessonId,
        conn: ConnectionId,
        media: SourceMedia,
        clean: bool,
        now: Instant,
    ) -> Option<IngestEvent> {
        let slot = self.slots.get_mut(&lesson)?;
        if !matches!(slot.holder, Holder::Active(c) if c == conn) {
            return None;
        }
        if clean || !media.published() {
            self.slots.remove(&lesson);
            return media
                .published()
                .then_some(IngestEvent::Unpublish { lesson });
        }
        slot.holder = Holder::Lingering {
            media,
            until: now + self.grace,
            conn,
        };
        Some(IngestEvent::Interrupted { lesson })
    }

    /// Lessons with an encoder source, publishing or waiting for a reconnect.
    pub fn active(&self) -> usize {
        self.slots.len()
    }

    /// Ends sources whose grace period is over: each Unpublish with the connection that
    /// published the source last (the sink ignores it if another one has published since).
    pub fn expire(&mut self, now: Instant) -> Vec<(ConnectionId, IngestEvent)> {
        let expired: Vec<(LessonId, ConnectionId)> = self
            .slots
            .iter()
            .filter_map(|(lesson, s)| match s.holder {
                Holder::Lingering { until, conn, .. } if until <= now => Some((*lesson, conn)),
                _ => None,
            })
            .collect();
        for (lesson, _) in &expired {
            self.slots.remove(lesson);
        }
        expired
            .into_iter()
            .map(|(lesson, conn)| (conn, IngestEvent::Unpublish { lesson }))
            .collect()
    }

    /// The video packets from the lesson's last keyframe on, for a new subscriber.
    pub fn current_gop(&self, lesson: LessonId) -> Vec<RtpPacket> {
        self.slots
            .get(&lesson)
            .and_then(|s| s.gop.lock().ok().map(|g| g.packets().to_vec()))
            .unwrap_or_default()
    }

    pub fn is_publishing(&self, lesson: LessonId) -> bool {
        self.slots.contains_key(&lesson)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    const L: LessonId = LessonId(7);

    #[test]
    fn second_publisher_is_refused_and_a_dropped_one_resumes() {
        let now = Instant::now();
        let mut sources = Sources::new(Duration::from_secs(5), 1);
        let (mut media, resumed) = sources.claim(L, ConnectionId(1)).unwrap();
        assert!(!resumed);
        assert_eq!(
            sources.claim(L, ConnectionId(2)).unwrap_err(),
            ClaimError::InUse
        );
        media.published = true;
        assert_eq!(
            sources.release(L, ConnectionId(1), media, false, now),
            Some(IngestEvent::Interrupted { lesson: L })
        );
        let (media, resumed) = sources.claim(L, ConnectionId(3)).unwrap();
        assert!(resumed);
        // A stale release from the old connection changes nothing.
        assert!(sources.is_publishing(L));
        assert_eq!(
            sources.release(L, ConnectionId(3), media, false, now),
            Some(IngestEvent::Interrupted { lesson: L })
        );
        assert!(sources.expire(now + Duration::from_secs(4)).is_empty());
        assert_eq!(
            sources.expire(now + Duration::from_secs(5)),
            vec![(ConnectionId(3), IngestEvent::Unpublish { lesson: L })]
        );
        assert!(!sources.is_publishing(L));
    }

    #[test]
    fn clean_stop_unpublishes_at_once() {
        let mut sources = Sources::new(Duration::from_secs(5), 1);
        let (mut media, _) = sources.claim(L, ConnectionId(1)).unwrap();
        media.published = true;
        let event = sources.release(L, ConnectionId(1), media, true, Instant::now());
        assert_eq!(event, Some(IngestEvent::Unpublish { lesson: L }));
        assert!(sources.claim(L, ConnectionId(2)).is_ok());
    }
}
