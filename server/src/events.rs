//! One room-event dispatcher. Rooms report what the rest of the server must hear (a lesson
//! went live or ended, recording started, what happens in a recorded room) on one unbounded
//! channel; the [`Dispatcher`] hands a copy of every event, in order, to each consumer that
//! subscribed (the lessons store, the recorder, the RTMP ingest, the restream). No consumer
//! sees another's leftovers, so one added later sees everything too.
//!
//! Each consumer has a bounded queue and an [`Overflow`] policy that says, per event, what a
//! full queue means: drop the event (counted in `classroom_room_events_overflow_total
//! {consumer, outcome="dropped"}`, logged once per burst), or wait for room (counted as
//! `outcome="waited"`). Waiting holds the dispatcher, so the consumers behind it wait as well,
//! but never the rooms: their channel to the dispatcher is unbounded, and a live lesson must
//! not stall on a slow database or disk. So a consumer waits only for the events it cannot do
//! without (they are few: a lesson's start and end, a recording's controls), and drops the
//! frequent ones it can lose.

use std::sync::Arc;

use classroom_signaling::RoomEvent;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::metrics::Metrics;

/// Each consumer's queue. Rooms report a few events a second at most (a joining class, a
/// busy chat in a recorded room), so a consumer this far behind is stuck, not busy.
pub const QUEUE_EVENTS: usize = 1024;

/// What a full queue means for one event.
#[derive(Debug, Clone, Copy)]
pub enum Overflow {
    /// Drop every event that finds the queue full.
    Drop,
    /// Wait for room for the events `essential` selects; drop the others.
    WaitFor(fn(&RoomEvent) -> bool),
}

impl Overflow {
    fn waits_for(self, event: &RoomEvent) -> bool {
        match self {
            Overflow::Drop => false,
            Overflow::WaitFor(essential) => essential(event),
        }
    }
}

/// One consumer's end of the dispatcher.
struct Subscriber {
    consumer: &'static str,
    queue: mpsc::Sender<RoomEvent>,
    overflow: Overflow,
    /// Events dropped since the queue last had room: a burst is logged at its start and end.
    dropped_in_burst: u64,
}

/// Hands every room event to every subscribed consumer; see the module's documentation.
pub struct Dispatcher {
    subscribers: Vec<Subscriber>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Dispatcher {
            subscribers: Vec::new(),
            metrics,
        }
    }

    /// A queue of `capacity` events for `consumer` that receives every event from now on.
    pub fn subscribe(
        &mut self,
        consumer: &'static str,
        capacity: usize,
        overflow: Overflow,
    ) -> mpsc::Receiver<RoomEvent> {
        let (queue, events) = mpsc::channel(capacity.max(1));
        self.subscribers.push(Subscriber {
            consumer,
            queue,
            overflow,
            dropped_in_burst: 0,
        });
        events
    }

    /// Dispatches `events` until the rooms are gone (the channel closes) or every consumer
    /// has stopped; dropping the dispatcher then closes the consumers' queues.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<RoomEvent>) {
        while let Some(event) = events.recv().await {
            self.dispatch(event).await;
            if self.subscribers.is_empty() {
                tracing::warn!("every consumer of room events has stopped");
                return;
            }
        }
    }

    /// Hands `event` to each consumer in subscription order.
    pub async fn dispatch(&mut self, event: RoomEvent) {
        let mut gone = Vec::new();
        for (index, subscriber) in self.subscribers.iter_mut().enumerate() {
            let copy = event.clone();
            let delivered = match subscriber.queue.try_send(copy) {
                Ok(()) => Delivery::Queued,
                Err(TrySendError::Closed(_)) => Delivery::Gone,
                Err(TrySendError::Full(copy)) if subscriber.overflow.waits_for(&copy) => {
                    self.metrics.room_event_waited(subscriber.consumer);
                    tracing::debug!(
                        consumer = subscriber.consumer,
                        "a consumer of room events is behind; waiting for it"
                    );
                    match subscriber.queue.send(copy).await {
                        Ok(()) => Delivery::Queued,
                        Err(_) => Delivery::Gone,
                    }
                }
                Err(TrySendError::Full(_)) => {
                    self.metrics.room_event_dropped(subscriber.consumer);
                    if subscriber.dropped_in_burst == 0 {
                        tracing::warn!(
                            consumer = subscriber.consumer,
                            "a consumer of room events is behind; dropping what it can do without"
                        );
                    }
                    subscriber.dropped_in_burst += 1;
                    Delivery::Dropped
                }
            };
            match delivered {
                Delivery::Queued if subscriber.dropped_in_burst > 0 => {
                    tracing::info!(
                        consumer = subscriber.consumer,
                        dropped = subscriber.dropped_in_burst,
                        "a consumer of room events caught up"
                    );
                    subscriber.dropped_in_burst = 0;
                }
                Delivery::Queued | Delivery::Dropped => {}
                Delivery::Gone => {
                    tracing::warn!(
                        consumer = subscriber.consumer,
                        "a consumer of room events stopped"
                    );
                    gone.push(index);
                }
            }
        }
        for index in gone.into_iter().rev() {
            self.subscribers.remove(index);
        }
    }
}

enum Delivery {
    Queued,
    Dropped,
    Gone,
}

#[cfg(test)]
mod tests {
    use classroom_protocol::{LessonId, RoomName};
    use classroom_signaling::{LessonEffect, RecordingEffect};

    use super::*;

    fn lesson_live(id: i64) -> RoomEvent {
        RoomEvent::Lesson(LessonEffect::WentLive(LessonId(id)))
    }

    fn recording_started(id: i64) -> RoomEvent {
        RoomEvent::Recording {
            room: RoomName::for_lesson(LessonId(id)),
            lesson: LessonId(id),
            effect: RecordingEffect::Started,
        }
    }

    fn drain(queue: &mut mpsc::Receiver<RoomEvent>) -> Vec<RoomEvent> {
        let mut seen = Vec::new();
        while let Ok(event) = queue.try_recv() {
            seen.push(event);
        }
        seen
    }

    fn overflow_count(metrics: &Metrics, consumer: &str, outcome: &str) -> Option<u64> {
        let series = format!(
            "classroom_room_events_overflow_total{{consumer=\"{consumer}\",outcome=\"{outcome}\"}} "
        );
        let text = metrics.render();
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.parse().ok())
    }

    #[tokio::test]
    async fn each_consumer_sees_every_event_in_order() {
        let mut dispatcher = Dispatcher::new(Arc::new(Metrics::new()));
        let mut first = dispatcher.subscribe("first", 64, Overflow::Drop);
        let mut second = dispatcher.subscribe("second", 64, Overflow::WaitFor(|_| true));
        let sent: Vec<RoomEvent> = (1..=20)
            .map(|i| {
                if i % 2 == 0 {
                    lesson_live(i)
                } else {
                    recording_started(i)
                }
            })
            .collect();
        for event in &sent {
            dispatcher.dispatch(event.clone()).await;
        }
        assert_eq!(drain(&mut first), sent);
        assert_eq!(drain(&mut second), sent);
    }

    #[tokio::test]
    async fn a_slow_consumers_overflow_is_counted_and_does_not_block_the_others() {
        let metrics = Arc::new(Metrics::new());
        let mut dispatcher = Dispatcher::new(metrics.clone());
        // Never read while the events arrive.
        let mut slow = dispatcher.subscribe("slow", 2, Overflow::Drop);
        let mut quick = dispatcher.subscribe("quick", 128, Overflow::Drop);
        let (rooms, events) = mpsc::unbounded_channel();
        for i in 1..=100 {
            rooms
                .send(lesson_live(i))
                .expect("the dispatcher's channel is open");
        }
        drop(rooms);
        // Returns only if nothing waited on the slow consumer.
        tokio::time::timeout(std::time::Duration::from_secs(10), dispatcher.run(events))
            .await
            .expect("the dispatcher does not wait for a consumer that may drop");
        assert_eq!(drain(&mut quick).len(), 100);
        assert_eq!(drain(&mut slow), vec![lesson_live(1), lesson_live(2)]);
        assert_eq!(overflow_count(&metrics, "slow", "dropped"), Some(98));
        assert_eq!(overflow_count(&metrics, "quick", "dropped"), None);
    }

    #[tokio::test]
    async fn a_full_queue_waits_for_essential_events_and_drops_the_others() {
        let metrics = Arc::new(Metrics::new());
        let mut dispatcher = Dispatcher::new(metrics.clone());
        let mut lessons = dispatcher.subscribe(
            "lessons",
            1,
            Overflow::WaitFor(|e| matches!(e, RoomEvent::Lesson(_))),
        );
        dispatcher.dispatch(recording_started(1)).await;
        // Full: an event the consumer can do without is dropped at once.
        dispatcher.dispatch(recording_started(2)).await;
        assert_eq!(overflow_count(&metrics, "lessons", "dropped"), Some(1));
        // Full again: a lesson's change waits until the consumer takes the first event.
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(event) = lessons.recv().await {
                seen.push(event);
            }
            seen
        });
        dispatcher.dispatch(lesson_live(3)).await;
        drop(dispatcher);
        let seen = reader.await.expect("the reader ends when the queue closes");
        assert_eq!(seen, vec![recording_started(1), lesson_live(3)]);
        assert_eq!(overflow_count(&metrics, "lessons", "waited"), Some(1));
    }

    #[tokio::test]
    async fn a_consumer_added_last_sees_recording_events() {
        let mut dispatcher = Dispatcher::new(Arc::new(Metrics::new()));
        let mut recorder = dispatcher.subscribe("recorder", 8, Overflow::WaitFor(|_| true));
        let mut lessons = dispatcher.subscribe("lessons", 8, Overflow::Drop);
        let mut last = dispatcher.subscribe("last", 8, Overflow::Drop);
        dispatcher.dispatch(recording_started(7)).await;
        dispatcher.dispatch(lesson_live(7)).await;
        let expected = vec![recording_started(7), lesson_live(7)];
        assert_eq!(drain(&mut recorder), expected);
        assert_eq!(drain(&mut lessons), expected);
        assert_eq!(drain(&mut last), expected);
    }

    #[tokio::test]
    async fn a_consumer_that_stopped_is_forgotten() {
        let mut dispatcher = Dispatcher::new(Arc::new(Metrics::new()));
        drop(dispatcher.subscribe("gone", 1, Overflow::WaitFor(|_| true)));
        let mut staying = dispatcher.subscribe("staying", 8, Overflow::Drop);
        dispatcher.dispatch(lesson_live(1)).await;
        dispatcher.dispatch(lesson_live(2)).await;
        assert_eq!(dispatcher.subscribers.len(), 1);
        assert_eq!(drain(&mut staying), vec![lesson_live(1), lesson_live(2)]);
    }
}
