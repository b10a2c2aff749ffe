//! Plain counters of signaling, read by the server's metrics module at scrape time. Counting
//! is a relaxed atomic add: nothing here waits or allocates.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct SignalingStats {
    connections: AtomicI64,
    participants: AtomicI64,
    joins: AtomicU64,
    joins_refused: AtomicU64,
    messages: AtomicU64,
    messages_refused: AtomicU64,
    rate_limited: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalingSnapshot {
    /// WebSocket sessions open now.
    pub connections_open: u64,
    /// Participants in rooms now, connected or waiting to reconnect.
    pub participants: u64,
    pub joins: u64,
    pub joins_refused: u64,
    /// Messages after the join, and those refused (bad JSON, unknown type, too large).
    pub messages: u64,
    pub messages_refused: u64,
    pub rate_limited: u64,
}

impl SignalingStats {
    pub fn snapshot(&self) -> SignalingSnapshot {
        let non_negative = |v: &AtomicI64| u64::try_from(v.load(Ordering::Relaxed)).unwrap_or(0);
        SignalingSnapshot {
            connections_open: non_negative(&self.connections),
            participants: non_negative(&self.participants),
            joins: self.joins.load(Ordering::Relaxed),
            joins_refused: self.joins_refused.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            messages_refused: self.messages_refused.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Counts an open session until the guard drops; a session that never joined counts as
    /// a refused (or abandoned) join.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            stats: self.clone(),
            joined: false,
        }
    }

    pub(crate) fn participants_changed(&self, delta: i64) {
        self.participants.fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn message_refused(&self) {
        self.messages_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct ConnectionGuard {
    stats: Arc<SignalingStats>,
    joined: bool,
}

impl ConnectionGuard {
    pub(crate) fn joined(&mut self) {
        self.joined = true;
        self.stats.joins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> &SignalingStats {
        &self.stats
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        if !self.joined {
            self.stats.joins_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}
