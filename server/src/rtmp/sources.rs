//! Which RTMP connection each lesson's encoder in the SFU belongs to, sans-IO.
//!
//! Every connection delivers its events from a task of its own, so the last events of an old
//! connection (its Unpublish, its Interrupted, a packet in flight) can reach the server after
//! a newer connection published to the same lesson. An event changes the lesson's encoder only
//! when it comes from the connection that published it (or resumed it last); the rest are
//! stale and ignored.

use std::collections::HashMap;

use classroom_protocol::LessonId;
use classroom_rtmp::ConnectionId;

/// Each lesson's published encoder `T`, with the connection it belongs to.
#[derive(Debug)]
pub struct EncoderSources<T> {
    by_lesson: HashMap<LessonId, (ConnectionId, T)>,
}

impl<T> Default for EncoderSources<T> {
    fn default() -> Self {
        EncoderSources {
            by_lesson: HashMap::new(),
        }
    }
}

impl<T: Clone> EncoderSources<T> {
    /// The lesson's encoder, if `source` is the connection it belongs to (packets of any
    /// other connection are stale).
    pub fn of(&self, lesson: LessonId, source: ConnectionId) -> Option<T> {
        match self.by_lesson.get(&lesson) {
            Some((owner, encoder)) if *owner == source => Some(encoder.clone()),
            _ => None,
        }
    }
}

impl<T> EncoderSources<T> {
    /// `source` resumed the lesson's source after a reconnect: the encoder now belongs to it.
    /// False when there is no encoder to resume (it has to be published anew).
    pub fn resume(&mut self, lesson: LessonId, source: ConnectionId) -> bool {
        match self.by_lesson.get_mut(&lesson) {
            Some((owner, _)) => {
                *owner = source;
                true
            }
            None => false,
        }
    }

    /// `source` published a new encoder: it replaces any other (returned, to be dropped).
    pub fn publish(&mut self, lesson: LessonId, source: ConnectionId, encoder: T) -> Option<T> {
        self.by_lesson
            .insert(lesson, (source, encoder))
            .map(|(_, old)| old)
    }

    /// Removes any encoder of the lesson before a new publish (it cannot normally exist).
    pub fn clear(&mut self, lesson: LessonId) -> Option<T> {
        self.by_lesson.remove(&lesson).map(|(_, old)| old)
    }

    /// Whether an event of `source` about the lesson's encoder (interrupted, stopped) applies:
    /// the encoder is its own, or there is none (a newer connection has not published).
    pub fn is_current(&self, lesson: LessonId, source: ConnectionId) -> bool {
        self.by_lesson
            .get(&lesson)
            .is_none_or(|(owner, _)| *owner == source)
    }

    /// `source` stopped: removes the lesson's encoder if it is its own.
    pub fn stop(&mut self, lesson: LessonId, source: ConnectionId) -> Option<T> {
        if self.by_lesson.get(&lesson)?.0 != source {
            return None;
        }
        self.by_lesson.remove(&lesson).map(|(_, old)| old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: LessonId = LessonId(4);
    const OLD: ConnectionId = ConnectionId(1);
    const NEW: ConnectionId = ConnectionId(2);

    #[test]
    fn an_old_connection_stopping_after_a_new_publish_changes_nothing() {
        let mut sources = EncoderSources::default();
        sources.publish(L, OLD, "old");
        // The old connection stopped and a new one published before its Unpublish arrived.
        assert_eq!(sources.publish(L, NEW, "new"), Some("old"));
        assert!(!sources.is_current(L, OLD));
        assert_eq!(sources.stop(L, OLD), None);
        assert_eq!(sources.of(L, OLD), None, "late packets are dropped");
        assert_eq!(sources.of(L, NEW), Some("new"));
        assert_eq!(sources.stop(L, NEW), Some("new"));
        assert!(
            sources.is_current(L, OLD),
            "nothing published: a stop applies"
        );
    }

    #[test]
    fn a_resumed_source_belongs_to_the_connection_that_resumed_it() {
        let mut sources = EncoderSources::default();
        assert!(!sources.resume(L, NEW), "nothing to resume");
        sources.publish(L, OLD, "encoder");
        assert!(sources.resume(L, NEW));
        // The old connection's Interrupted or Unpublish, arriving late, is stale.
        assert!(!sources.is_current(L, OLD));
        assert_eq!(sources.stop(L, OLD), None);
        assert_eq!(sources.of(L, NEW), Some("encoder"));
        assert_eq!(sources.clear(L), Some("encoder"));
    }
}
