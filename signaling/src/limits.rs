//! The message rate of one connection: a token bucket, and the gate that decides what to do
//! with a message over it. Time is an argument.

use std::time::Instant;

/// Allows `burst` messages at once and `per_second` on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            per_second: f64::from(per_second.max(1)),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a session does with one incoming message (text or binary alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle it.
    Pass,
    /// Over the rate: drop it; answer `rate_limited` when `tell` (the first of a run only,
    /// so that a flood does not earn a reply per message).
    Refuse { tell: bool },
    /// The sender went on flooding after being refused: close the connection.
    Close,
}

/// A connection's token bucket, plus how many messages in a row it has refused. A client
/// that keeps sending a whole burst's worth more after it was refused is not slowing down,
/// and is closed rather than answered forever.
#[derive(Debug, Clone)]
pub struct MessageGate {
    bucket: TokenBucket,
    refused_in_a_row: u32,
    close_after: u32,
}

impl MessageGate {
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        MessageGate {
            bucket: TokenBucket::new(per_second, burst, now),
            refused_in_a_row: 0,
            close_after: burst.max(1),
        }
    }

    pub fn admit(&mut self, now: Instant) -> Verdict {
        if self.bucket.try_take(now) {
            self.refused_in_a_row = 0;
            return Verdict::Pass;
        }
        self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
        if self.refused_in_a_row > self.close_after {
            Verdict::Close
        } else {
            Verdict::Refuse {
                tell: self.refused_in_a_row == 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(110)));
        assert!(!bucket.try_take(start + Duration::from_millis(110)));
        let later = start + Duration::from_secs(60);
        assert!(
            (0..3).all(|_| bucket.try_take(later)),
            "refills up to the burst only"
        );
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_flood_is_told_once_then_closed_and_a_client_that_slows_down_is_not() {
        let start = Instant::now();
        let mut gate = MessageGate::new(10, 3, start);
        assert!((0..3).all(|_| gate.admit(start) == Verdict::Pass));
        assert_eq!(gate.admit(start), Verdict::Refuse { tell: true });
        assert_eq!(gate.admit(start), Verdict::Refuse { tell: false });
        // It waits for a token: the run of refusals ends.
        let later = start + Duration::from_millis(100);
        assert_eq!(gate.admit(later), Verdict::Pass);
        assert_eq!(gate.admit(later), Verdict::Refuse { tell: true });
        assert_eq!(gate.admit(later), Verdict::Refuse { tell: false });
        assert_eq!(gate.admit(later), Verdict::Refuse { tell: false });
        assert_eq!(
            gate.admit(later),
            Verdict::Close,
            "a burst more after refusal"
        );
    }
}
