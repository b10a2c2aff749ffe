//! When to try a destination again after a failure: exponential backoff, bounded in delay and
//! in attempts, and forgiven once a connection has stayed live for a while. Time is an argument.

use std::time::{Duration, Instant};

/// Retry timings of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure; it doubles after each further one.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Failures in a row before giving up.
    pub max_failures: u32,
    /// A connection live this long counts as healthy: the failures before it are forgotten.
    pub reset_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_failures: 10,
            reset_after: Duration::from_secs(60),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    After(Duration),
    GiveUp,
}

/// The failure count of one destination.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    live_since: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            live_since: None,
        }
    }

    /// The destination accepted the stream.
    pub fn live(&mut self, now: Instant) {
        self.live_since = Some(now);
    }

    /// The connection failed or dropped.
    pub fn failed(&mut self, now: Instant) -> Retry {
        let healthy = self
            .live_since
            .take()
            .is_some_and(|since| now.saturating_duration_since(since) >= self.policy.reset_after);
        if healthy {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures > self.policy.max_failures {
            return Retry::GiveUp;
        }
        let doubling = 2u32.saturating_pow(self.failures - 1);
        let delay = self
            .policy
            .first_delay
            .saturating_mul(doubling)
            .min(self.policy.max_delay);
        Retry::After(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            max_failures: 4,
            reset_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn delays_double_up_to_the_bound_then_give_up() {
        let now = Instant::now();
        let mut backoff = Backoff::new(policy());
        let secs = |s| Retry::After(Duration::from_secs(s));
        assert_eq!(backoff.failed(now), secs(1));
        assert_eq!(backoff.failed(now), secs(2));
        assert_eq!(backoff.failed(now), secs(4));
        assert_eq!(backoff.failed(now), secs(5));
        assert_eq!(backoff.failed(now), Retry::GiveUp);
    }

    #[test]
    fn a_long_live_connection_resets_the_count() {
        let start = Instant::now();
        let mut backoff = Backoff::new(policy());
        backoff.failed(start);
        backoff.failed(start);
        // Live briefly: still counted.
        backoff.live(start);
        assert_eq!(
            backoff.failed(start + Duration::from_secs(5)),
            Retry::After(Duration::from_secs(4))
        );
        // Live for longer than reset_after: forgiven.
        backoff.live(start);
        assert_eq!(
            backoff.failed(start + Duration::from_secs(61)),
            Retry::After(Duration::from_secs(1))
        );
    }
}
