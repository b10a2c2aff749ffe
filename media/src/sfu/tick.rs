//! When a connected peer's `Rtc` is served: on a coarse tick, not at each of its own deadlines.
//!
//! str0m asks to be woken for its pacer, bandwidth estimator, RTCP and statistics, and, with
//! bandwidth estimation on, its pacer lets one packet out per `Rtc::handle_timeout` and then
//! asks for an immediate timeout. Served at each exact deadline, a subscriber's `Rtc` was woken
//! about 130 times a second, one driver wake-up and one pass through its session each, and
//! that was 44% of the server's instructions. Instead:
//!
//! - a peer written to is served when the output is next polled, once for every packet the
//!   batch wrote to it ([`super::Sfu::poll_output`]): its pacer, set to release every due
//!   packet in one pass (vendor/str0m), lets them out in the pass that runs its periodic work;
//! - the immediate timeout a pacer asks for after each packet is deferred by a tick: the next
//!   write serves the peer sooner, and a tick serves it while its pacer keeps releasing;
//! - RTCP, NACK, TWCC feedback, statistics and ICE deadlines are rounded up to the tick grid,
//!   so peers due together are served in one wake-up of the driver; the pacer's own releases
//!   and the bandwidth estimator's deadlines stay exact (see [`PeerTick::schedule`]).
//!
//! Bandwidth probes are the exception: a probe cluster spaces its packets by a few
//! milliseconds, and the estimate it yields is the rate they were sent at, so while a peer's
//! pacer probes its deadlines are kept exact. Peers not connected yet keep exact deadlines too
//! (ICE and DTLS set the join time).

use std::time::{Duration, Instant};

use str0m::{PacerReason, Reason};

/// The grid of connected peers' deadlines. RTCP, statistics and bandwidth estimation work on
/// tens of milliseconds or more; a paced packet waits at most this much longer.
pub(super) const TICK: Duration = Duration::from_millis(10);
/// A tick serves a peer again while its pacer releases packets, at most this many times.
pub(super) const TICK_PASSES: usize = 64;
/// How long after a probe deadline a peer keeps exact deadlines (a probe cluster lasts about
/// 15–30 ms).
const PROBE_HOLD: Duration = Duration::from_millis(50);

/// What one peer's deadline becomes.
#[derive(Debug, Default)]
pub(super) struct PeerTick {
    /// Until then the peer's pacer is probing: its deadlines stay exact.
    probing_until: Option<Instant>,
}

impl PeerTick {
    /// The instant to serve a connected peer at, for the deadline `at` that its `Rtc` asked
    /// for with `reason`; `now` is the current time, `epoch` the origin of the grid.
    pub(super) fn schedule(
        &mut self,
        epoch: Instant,
        now: Instant,
        at: Instant,
        reason: Reason,
    ) -> Instant {
        if matches!(
            reason,
            Reason::Pacer(PacerReason::Probe1 | PacerReason::Probe2 | PacerReason::Padding)
        ) {
            self.probing_until = Some(now + PROBE_HOLD);
        }
        if self.probing_until.is_some_and(|until| now < until) {
            return at;
        }
        // The pacer's releases and the bandwidth estimator's deadlines stay exact: with them
        // rounded up, a subscriber paced just above its floor fell behind
        // (tests/start_estimate.rs).
        if matches!(reason, Reason::Pacer(r) if r != PacerReason::Immediate)
            || matches!(
                reason,
                Reason::BweDelayControl | Reason::BweProbeControl | Reason::BweProbeEstimator
            )
        {
            return at;
        }
        self.probing_until = None;
        let at = if reason == Reason::Pacer(PacerReason::Immediate) {
            at.max(now + TICK)
        } else {
            at
        };
        round_up(epoch, at)
    }
}

/// The first instant of the grid (`epoch` + n × [`TICK`]) at or after `at`.
pub(super) fn round_up(epoch: Instant, at: Instant) -> Instant {
    let Some(since) = at.checked_duration_since(epoch) else {
        return at;
    };
    let tick = TICK.as_nanos();
    let ticks = since.as_nanos().div_ceil(tick);
    // Deadlines far in the future ("not happening") stay as they are.
    u64::try_from(ticks * tick)
        .ok()
        .and_then(|nanos| epoch.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_the_grid() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(round_up(epoch, epoch), epoch);
        assert_eq!(round_up(epoch, epoch + ms(1)), epoch + ms(10));
        assert_eq!(round_up(epoch, epoch + ms(10)), epoch + ms(10));
        assert_eq!(
            round_up(epoch, epoch + ms(10) + Duration::from_nanos(1)),
            epoch + ms(20)
        );
    }

    #[test]
    fn the_pacer_gate_waits_a_tick_and_probes_stay_exact() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        let now = epoch + ms(3);
        let mut tick = PeerTick::default();
        let immediate = Reason::Pacer(PacerReason::Immediate);
        // The gate after a packet: a tick later, on the grid.
        assert_eq!(tick.schedule(epoch, now, now, immediate), epoch + ms(20));
        assert_eq!(
            tick.schedule(epoch, now, now + ms(2), Reason::Feedback),
            epoch + ms(10)
        );
        // A probe: exact, and the gate after each probe packet too.
        let probe = Reason::Pacer(PacerReason::Probe1);
        assert_eq!(tick.schedule(epoch, now, now + ms(2), probe), now + ms(2));
        assert_eq!(
            tick.schedule(epoch, now + ms(2), now + ms(2), immediate),
            now + ms(2)
        );
        // Once the probe is long over, the grid again.
        let later = now + ms(100);
        assert_eq!(
            tick.schedule(epoch, later, later, immediate),
            epoch + ms(120)
        );
    }
}
