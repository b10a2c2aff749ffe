//! Watching what a recording loses, with no I/O and time as an argument.
//!
//! The SFU hands the recorder packets on a bounded queue and counts what does not fit. When
//! the disk stalls, the writer thread is blocked inside a write and cannot count anything, so
//! the count is watched from outside it (a task on the runtime that never touches a file).
//! Losses come in bursts (a disk that stalls for a while): a burst begins with the first lost
//! packet, ends after [`QUIET`] without a loss, and is announced once when it begins and once
//! when it ends, never per packet.

use std::time::{Duration, Instant};

/// A burst ends after this long without a new loss.
pub const QUIET: Duration = Duration::from_secs(2);

/// What one look at the counter found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// Packets lost since the last look.
    pub new: u64,
    pub alarm: Option<Alarm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The recording started losing packets: it is degraded.
    Began,
    /// No loss for [`QUIET`]: the burst lost `packets` over `lasted`.
    Ended { packets: u64, lasted: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    began: Instant,
    last_loss: Instant,
    packets: u64,
}

/// The loss watch of one recording.
#[derive(Debug, Default)]
pub struct DropAlarm {
    /// The counter's value at the last look.
    seen: u64,
    burst: Option<Burst>,
}

impl DropAlarm {
    /// The subscription was replaced (a resume): its counter starts again from zero.
    pub fn restart(&mut self) {
        self.seen = 0;
    }

    /// Whether the recording is losing packets now.
    pub fn degraded(&self) -> bool {
        self.burst.is_some()
    }

    /// Looks at the counter (`None` while there is no subscription, as when paused).
    pub fn observe(&mut self, now: Instant, total: Option<u64>) -> Observed {
        let total = total.unwrap_or(self.seen);
        // A counter never goes back; a smaller value is a new subscription's.
        let new = total.checked_sub(self.seen).unwrap_or(total);
        self.seen = total;
        let mut alarm = None;
        if new > 0 {
            match self.burst.as_mut() {
                Some(burst) => {
                    burst.last_loss = now;
                    burst.packets += new;
                }
                None => {
                    self.burst = Some(Burst {
                        began: now,
                        last_loss: now,
                        packets: new,
                    });
                    alarm = Some(Alarm::Began);
                }
            }
        } else if let Some(burst) = self.burst
            && now.saturating_duration_since(burst.last_loss) >= QUIET
        {
            self.burst = None;
            alarm = Some(Alarm::Ended {
                packets: burst.packets,
                lasted: burst.last_loss.saturating_duration_since(burst.began),
            });
        }
        Observed { new, alarm }
    }

    /// The recording ended: the burst under way, if any, ends with it.
    pub fn finish(&mut self) -> Option<Alarm> {
        let burst = self.burst.take()?;
        Some(Alarm::Ended {
            packets: burst.packets,
            lasted: burst.last_loss.saturating_duration_since(burst.began),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_announced_once_when_it_begins_and_once_when_it_ends() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut alarm = DropAlarm::default();
        assert_eq!(alarm.observe(t0, Some(0)), Observed::default());
        let began = alarm.observe(t0 + s(1), Some(10));
        assert_eq!((began.new, began.alarm), (10, Some(Alarm::Began)));
        assert!(alarm.degraded());
        // Still losing: counted, not announced again.
        assert_eq!(alarm.observe(t0 + s(2), Some(25)).new, 15);
        assert_eq!(alarm.observe(t0 + s(2), Some(25)).alarm, None);
        // Quiet, but not for long enough yet.
        assert_eq!(alarm.observe(t0 + s(3), Some(25)).alarm, None);
        let ended = alarm.observe(t0 + s(4), Some(25));
        assert_eq!(
            ended.alarm,
            Some(Alarm::Ended {
                packets: 25,
                lasted: s(1)
            })
        );
        assert!(!alarm.degraded());
        // Paused (no subscription), then resumed with a fresh counter.
        assert_eq!(alarm.observe(t0 + s(5), None), Observed::default());
        alarm.restart();
        let again = alarm.observe(t0 + s(6), Some(3));
        assert_eq!((again.new, again.alarm), (3, Some(Alarm::Began)));
        assert_eq!(
            alarm.finish(),
            Some(Alarm::Ended {
                packets: 3,
                lasted: Duration::ZERO
            })
        );
        assert_eq!(alarm.finish(), None);
    }
}
