//! A relay link: two ends that hand items to each other in batches, for a room that spans
//! media workers (and later nodes).
//!
//! A room lives on its home worker. When the home fills, further students join another
//! worker ([`crate::placement`]), and the two get a link for the room (mediasoup's
//! `pipeToRouter`). Each side sends its own publishers' packets over it, decrypted RTP with
//! the shared payload, for the tracks and layers the other side watches; keyframe requests and
//! the layers its subscribers watch go the other way ([`RelayMessage`], handled by
//! [`crate::Sfu::add_relay`] and [`crate::Sfu::handle_relays`]). Each direction is one
//! [`RelayEnd`]'s
//! [`RelayEnd::push`] on one side and the other's [`RelayEnd::drain`]:
//!
//! - Items are gathered in the sender's own batch and handed over whole by
//!   [`RelayEnd::flush`] (once per tick or burst of the sending worker), so the link costs one
//!   channel operation per batch, not per packet. Emptied batches go back to their sender for
//!   reuse: in a steady state no batch is allocated.
//! - The link is bounded in batches. A receiver that falls behind loses whole batches,
//!   counted on the sender's side ([`RelayStats::batches_dropped`]); the sender never waits
//!   (media never waits for the slow).
//! - An end notices the other is gone ([`RelayEnd::is_closed`]), so a worker can tear down
//!   its half of the room.
//!
//! The in-process transport here is a pair of tokio channels; the node-to-node transport of
//! the next step keeps the same ends over a network link.

use std::mem;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

/// What crosses a link between two workers' cores: opaque outside the core (it holds the
/// forwarding path's own packet type, payload shared, not copied).
pub use crate::sfu::RelayMessage;

/// One worker's end of a room's link, as [`crate::Sfu::add_relay`] takes it.
pub type SfuRelayEnd = RelayEnd<RelayMessage, RelayMessage>;

/// Counters of one end: what it sent and received, and what the other end could not take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub items_sent: u64,
    pub batches_sent: u64,
    /// Batches (and their items) the other end's queue had no room for.
    pub batches_dropped: u64,
    pub items_dropped: u64,
    pub items_received: u64,
}

/// One end of a relay link: sends `Out` items to the other end, receives `In` items from it.
#[derive(Debug)]
pub struct RelayEnd<Out, In> {
    /// Items pushed since the last flush.
    batch: Vec<Out>,
    to_peer: mpsc::Sender<Vec<Out>>,
    from_peer: mpsc::Receiver<Vec<In>>,
    /// Emptied batches the other end gave back, for our next ones.
    spare: mpsc::UnboundedReceiver<Vec<Out>>,
    /// Where our emptied copies of the other end's batches go back.
    give_back: mpsc::UnboundedSender<Vec<In>>,
    stats: RelayStats,
    /// Told when a batch is handed over and when this end is dropped: wakes whoever owns the
    /// other end (a worker's loop), once per batch.
    wake_peer: Option<Arc<Notify>>,
}

/// A relay link between two workers: the `A` end sends `AToB` items and receives `BToA`
/// items, the `B` end the other way round. At most `queue` batches wait in each direction.
pub fn link<AToB, BToA>(queue: usize) -> (RelayEnd<AToB, BToA>, RelayEnd<BToA, AToB>) {
    let (a_to_b, b_from_a) = mpsc::channel(queue.max(1));
    let (b_to_a, a_from_b) = mpsc::channel(queue.max(1));
    let (a_spare_tx, a_spare) = mpsc::unbounded_channel();
    let (b_spare_tx, b_spare) = mpsc::unbounded_channel();
    let a = RelayEnd {
        batch: Vec::new(),
        to_peer: a_to_b,
        from_peer: a_from_b,
        spare: a_spare,
        give_back: b_spare_tx,
        stats: RelayStats::default(),
        wake_peer: None,
    };
    let b = RelayEnd {
        batch: Vec::new(),
        to_peer: b_to_a,
        from_peer: b_from_a,
        spare: b_spare,
        give_back: a_spare_tx,
        stats: RelayStats::default(),
        wake_peer: None,
    };
    (a, b)
}

impl<Out, In> RelayEnd<Out, In> {
    /// Wakes `peer` (the other end's owner) whenever this end hands over a batch, and when it
    /// is dropped (so that the other end notices at once).
    pub fn wake_peer_with(&mut self, peer: Arc<Notify>) {
        self.wake_peer = Some(peer);
    }

    /// Adds an item to the batch being gathered; nothing crosses the link until
    /// [`RelayEnd::flush`].
    pub fn push(&mut self, item: Out) {
        self.batch.push(item);
    }

    /// Items gathered since the last flush.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Hands the gathered batch to the other end, without waiting: if its queue is full the
    /// batch is dropped and counted. Returns false when the other end is gone.
    pub fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return !self.to_peer.is_closed();
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let batch = mem::replace(&mut self.batch, next);
        let items = batch.len() as u64;
        match self.to_peer.try_send(batch) {
            Ok(()) => {
                self.stats.batches_sent += 1;
                self.stats.items_sent += items;
                if let Some(wake) = &self.wake_peer {
                    wake.notify_one();
                }
                true
            }
            Err(TrySendError::Full(mut batch)) => {
                self.stats.batches_dropped += 1;
                self.stats.items_dropped += items;
                // Reused for the next batch rather than freed.
                batch.clear();
                if self.batch.capacity() < batch.capacity() {
                    self.batch = batch;
                }
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Hands every item that has arrived to `each`, in order, without waiting. Returns the
    /// number of items.
    pub fn drain(&mut self, mut each: impl FnMut(In)) -> usize {
        let mut count = 0;
        // Empty or disconnected alike: nothing more to hand over now.
        while let Ok(mut batch) = self.from_peer.try_recv() {
            count += batch.len();
            batch.drain(..).for_each(&mut each);
            // The other end may have gone meanwhile: then the batch is simply freed.
            let _ = self.give_back.send(batch);
        }
        self.stats.items_received += count as u64;
        count
    }

    /// Waits until a batch has arrived (for the receiving worker's loop), and hands its items
    /// to `each`; `None` once the other end is gone and nothing is left.
    pub async fn recv(&mut self, mut each: impl FnMut(In)) -> Option<usize> {
        let mut batch = self.from_peer.recv().await?;
        let count = batch.len();
        batch.drain(..).for_each(&mut each);
        let _ = self.give_back.send(batch);
        self.stats.items_received += count as u64;
        Some(count + self.drain(each))
    }

    /// Whether the other end is gone.
    pub fn is_closed(&self) -> bool {
        self.to_peer.is_closed()
    }

    pub fn stats(&self) -> RelayStats {
        self.stats
    }
}

impl<Out, In> Drop for RelayEnd<Out, In> {
    fn drop(&mut self) {
        // Closed before the wake, not after it (as the field's own drop would): the other
        // end, woken on another thread, must find `is_closed` true, or it goes back to sleep
        // and never notices.
        self.from_peer.close();
        if let Some(wake) = &self.wake_peer {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Upstream {
        KeyframeRequest(u32),
    }

    #[test]
    fn items_cross_in_batches_in_order_and_only_on_flush() {
        let (mut home, mut edge) = link::<u32, Upstream>(4);
        for packet in 0..10 {
            home.push(packet);
        }
        let mut received = Vec::new();
        assert_eq!(
            edge.drain(|p| received.push(p)),
            0,
            "nothing before the flush"
        );
        assert_eq!(home.pending(), 10);
        assert!(home.flush());
        assert_eq!(home.pending(), 0);
        home.push(10);
        assert!(home.flush());
        assert_eq!(edge.drain(|p| received.push(p)), 11);
        assert_eq!(received, (0..11).collect::<Vec<_>>());
        assert_eq!(
            home.stats(),
            RelayStats {
                items_sent: 11,
                batches_sent: 2,
                ..RelayStats::default()
            }
        );
        assert_eq!(edge.stats().items_received, 11);

        // Feedback flows the other way on the same link.
        edge.push(Upstream::KeyframeRequest(7));
        assert!(edge.flush());
        let mut feedback = Vec::new();
        home.drain(|f| feedback.push(f));
        assert_eq!(feedback, [Upstream::KeyframeRequest(7)]);
    }

    #[test]
    fn emptied_batches_go_back_to_their_sender() {
        let (mut home, mut edge) = link::<u32, ()>(4);
        home.batch.reserve(64);
        let first = home.batch.as_ptr();
        home.push(1);
        home.flush();
        edge.drain(|_| {});
        home.push(2);
        home.flush();
        edge.drain(|_| {});
        // The first batch came back emptied and gathers the next: in a steady state the
        // batches circulate, none is allocated.
        assert_eq!(home.batch.as_ptr(), first);
        assert!(home.batch.is_empty() && home.batch.capacity() >= 64);
    }

    #[test]
    fn a_full_link_drops_whole_batches_and_counts_them_without_waiting() {
        let (mut home, mut edge) = link::<u32, ()>(2);
        for batch in 0..5u32 {
            home.push(batch * 10);
            home.push(batch * 10 + 1);
            assert!(home.flush(), "a full link is not a closed one");
        }
        let stats = home.stats();
        assert_eq!((stats.batches_sent, stats.items_sent), (2, 4));
        assert_eq!((stats.batches_dropped, stats.items_dropped), (3, 6));
        let mut received = Vec::new();
        edge.drain(|p| received.push(p));
        assert_eq!(received, [0, 1, 10, 11], "the oldest batches, whole");
        // Room again: the next batch crosses.
        home.push(50);
        home.flush();
        edge.drain(|p| received.push(p));
        assert_eq!(received.last(), Some(&50));
    }

    #[test]
    fn an_end_notices_the_other_is_gone() {
        let (mut home, edge) = link::<u32, ()>(2);
        assert!(!home.is_closed());
        drop(edge);
        assert!(home.is_closed());
        home.push(1);
        assert!(!home.flush());
    }

    #[tokio::test]
    async fn a_batch_and_a_departure_wake_the_other_side() {
        let (mut home, mut edge) = link::<u32, ()>(2);
        let wake = Arc::new(Notify::new());
        home.wake_peer_with(Arc::clone(&wake));
        home.push(1);
        home.flush();
        // A permit is stored: the waiter returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
            .await
            .expect("woken by the batch");
        assert_eq!(edge.drain(|_| {}), 1);
        drop(home);
        tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
            .await
            .expect("woken by the departure");
        assert!(edge.is_closed());
    }

    #[tokio::test]
    async fn the_receiving_worker_waits_for_a_batch() {
        let (mut home, mut edge) = link::<u32, ()>(2);
        let receiver = tokio::spawn(async move {
            let mut received = Vec::new();
            while let Some(_count) = edge.recv(|p| received.push(p)).await {}
            received
        });
        for packet in 0..3 {
            home.push(packet);
        }
        home.flush();
        drop(home);
        assert_eq!(receiver.await.expect("the receiver ends"), [0, 1, 2]);
    }
}
