//! Connection quality of one peer, as the participant list shows it: excellent, good, poor,
//! or lost.
//!
//! The inputs are what str0m already measures, passed through as they come (enable them with
//! `RtcConfig::set_stats_interval`): round-trip time and loss from [`Event::PeerStats`],
//! interarrival jitter from [`Event::MediaIngressStats`] (what we measure on the peer's media)
//! and [`Event::MediaEgressStats`] (what the peer reports about ours), plus every datagram the
//! peer sends, whose absence is the one sure sign of a lost connection.
//!
//! The three numbers are combined into one score the way the ITU-T E-model (G.107) does for
//! a voice call, in the simplified form widely used for network monitoring:
//!
//! ```text
//! effective latency = RTT / 2 + 2 × jitter + 10 ms          (one-way, jitter buffer, codec)
//! R = 93.2 − latency / 40                    while the latency is under 160 ms
//! R = 93.2 − (latency − 120) / 10            above it (delay starts to hurt conversation)
//! R = R − 2.5 × loss in percent
//! MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R)
//! ```
//!
//! Thresholds ([`QualityConfig`]): **excellent** from R 85 (MOS ≈ 4.2: a perfect link scores
//! 93, and up to 3 % loss or 300 ms RTT stays here), **good** from R 70 (MOS ≈ 3.6: up to
//! about 9 % loss, or 400 ms RTT with 30 ms jitter), **poor** below, and **lost** when nothing
//! arrived for [`QualityConfig::lost_after`].
//!
//! Stats arrive about once a second and vary from one to the next, so each number is smoothed,
//! and a new level is reported only after it has held for [`QualityConfig::hold`]: a badge
//! that changes colour every second tells the teacher nothing. Lost is the exception, in both
//! directions: a peer whose media stopped is shown at once, and so is its return.
//!
//! [`Event::PeerStats`]: str0m::Event::PeerStats
//! [`Event::MediaIngressStats`]: str0m::Event::MediaIngressStats
//! [`Event::MediaEgressStats`]: str0m::Event::MediaEgressStats

use std::time::{Duration, Instant};

use str0m::media::Frequency;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

/// How well a peer's connection carries media (signaling maps it to the protocol's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionQuality {
    Excellent,
    Good,
    Poor,
    /// Nothing received from the peer for [`QualityConfig::lost_after`].
    Lost,
}

/// Thresholds and timings; see the module documentation for where the numbers come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QualityConfig {
    /// Lowest R-factor that is [`ConnectionQuality::Excellent`].
    pub(crate) excellent_r: f64,
    /// Lowest R-factor that is [`ConnectionQuality::Good`]; below is Poor.
    pub(crate) good_r: f64,
    /// A new level (other than Lost) is reported after holding this long.
    pub(crate) hold: Duration,
    /// With no datagram from the peer for this long, it is [`ConnectionQuality::Lost`]. A
    /// browser that only receives still sends RTCP reports and TWCC feedback several times a
    /// second, and ICE consent checks every few seconds.
    pub(crate) lost_after: Duration,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            excellent_r: 85.0,
            good_r: 70.0,
            hold: Duration::from_secs(3),
            lost_after: Duration::from_secs(4),
        }
    }
}

/// Weight of a new sample in the smoothed value: with a sample a second, about three seconds
/// of memory, the same as the hold.
const SMOOTHING: f64 = 0.3;

/// The connection quality of one peer.
#[derive(Debug)]
pub(crate) struct QualityMonitor {
    config: QualityConfig,
    /// When the peer was added: it is Lost if nothing arrives for `lost_after` from here.
    created: Instant,
    last_datagram: Option<Instant>,
    rtt_ms: Option<f64>,
    /// Fraction, 0 to 1.
    loss: Option<f64>,
    jitter_ms: Option<f64>,
    reported: Option<ConnectionQuality>,
    /// Since when the level has differed from the reported one.
    differs_since: Option<Instant>,
}

impl QualityMonitor {
    pub(crate) fn new(now: Instant, config: QualityConfig) -> Self {
        QualityMonitor {
            config,
            created: now,
            last_datagram: None,
            rtt_ms: None,
            loss: None,
            jitter_ms: None,
            reported: None,
            differs_since: None,
        }
    }

    /// Any datagram from the peer arrived: media, RTCP or STUN.
    pub(crate) fn datagram_received(&mut self, now: Instant) {
        self.last_datagram = Some(self.last_datagram.map_or(now, |last| last.max(now)));
    }

    /// RTT (RTCP, else the ICE pair's STUN round trip) and loss in either direction, whichever
    /// is worse: a subscriber that loses what we send is as badly off as a publisher whose
    /// packets we lose.
    pub(crate) fn peer_stats(&mut self, stats: &PeerStats) {
        let rtt = stats.rtt.or_else(|| {
            stats
                .selected_candidate_pair
                .as_ref()
                .and_then(|pair| pair.current_round_trip_time)
        });
        if let Some(rtt) = rtt {
            smooth(&mut self.rtt_ms, rtt.as_secs_f64() * 1000.0);
        }
        let loss = [stats.ingress_loss_fraction, stats.egress_loss_fraction]
            .into_iter()
            .flatten()
            .map(f64::from)
            .filter(|loss| loss.is_finite())
            .reduce(f64::max);
        if let Some(loss) = loss {
            smooth(&mut self.loss, loss.clamp(0.0, 1.0));
        }
    }

    /// Jitter of the peer's media as we receive it. `clock_rate` is that of the stream's
    /// codec (str0m's `PayloadParams::spec().clock_rate`), since RTCP counts jitter in RTP
    /// timestamp units. Loss is taken from [`QualityMonitor::peer_stats`], which covers all
    /// streams at once, so it is not counted again here.
    pub(crate) fn ingress_stats(&mut self, stats: &MediaIngressStats, clock_rate: Frequency) {
        self.jitter_sample(stats.jitter, clock_rate);
        if let Some(rtt) = stats.rtt {
            smooth(&mut self.rtt_ms, rtt.as_secs_f64() * 1000.0);
        }
    }

    /// Jitter of our media as the peer reports receiving it (RTCP receiver reports).
    pub(crate) fn egress_stats(&mut self, stats: &MediaEgressStats, clock_rate: Frequency) {
        if let Some(remote) = &stats.remote {
            self.jitter_sample(remote.jitter, clock_rate);
        }
        if let Some(rtt) = stats.rtt {
            smooth(&mut self.rtt_ms, rtt.as_secs_f64() * 1000.0);
        }
    }

    /// The E-model R-factor of the smoothed measurements, 0 to 100. Unknown measurements count
    /// as perfect: a peer is not shown degraded on no evidence.
    pub(crate) fn r_factor(&self) -> f64 {
        r_factor(
            self.rtt_ms.unwrap_or(0.0),
            self.jitter_ms.unwrap_or(0.0),
            self.loss.unwrap_or(0.0),
        )
    }

    /// The mean opinion score (1 to 4.5) of [`QualityMonitor::r_factor`], for metrics.
    #[cfg(test)]
    pub(crate) fn mos(&self) -> f64 {
        mos(self.r_factor())
    }

    /// The quality level when it changed, or `None`. The first level is reported as soon as
    /// the peer sent anything (or Lost, if it sent nothing for `lost_after` from its creation).
    /// Call it at least every second or so: the hold is measured between calls.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<ConnectionQuality> {
        let heard = self.last_datagram.unwrap_or(self.created);
        let level = if now.saturating_duration_since(heard) >= self.config.lost_after {
            ConnectionQuality::Lost
        } else if self.last_datagram.is_none() {
            return None;
        } else {
            self.level()
        };
        let reported = self.reported;
        if reported == Some(level) {
            self.differs_since = None;
            return None;
        }
        let immediate = reported.is_none()
            || level == ConnectionQuality::Lost
            || reported == Some(ConnectionQuality::Lost);
        let since = *self.differs_since.get_or_insert(now);
        if immediate || now.saturating_duration_since(since) >= self.config.hold {
            self.differs_since = None;
            self.reported = Some(level);
            return Some(level);
        }
        None
    }

    fn level(&self) -> ConnectionQuality {
        let r = self.r_factor();
        if r >= self.config.excellent_r {
            ConnectionQuality::Excellent
        } else if r >= self.config.good_r {
            ConnectionQuality::Good
        } else {
            ConnectionQuality::Poor
        }
    }

    fn jitter_sample(&mut self, jitter: u32, clock_rate: Frequency) {
        let ms = f64::from(jitter) * 1000.0 / f64::from(clock_rate.get());
        smooth(&mut self.jitter_ms, ms);
    }
}

/// Exponential smoothing; the first sample is taken as it is.
fn smooth(value: &mut Option<f64>, sample: f64) {
    if !sample.is_finite() {
        return;
    }
    let sample = sample.max(0.0);
    *value = Some(match *value {
        Some(previous) => previous + (sample - previous) * SMOOTHING,
        None => sample,
    });
}

/// The simplified E-model: see the module documentation. `loss` is a fraction.
fn r_factor(rtt_ms: f64, jitter_ms: f64, loss: f64) -> f64 {
    let latency = rtt_ms / 2.0 + 2.0 * jitter_ms + 10.0;
    let r = if latency < 160.0 {
        93.2 - latency / 40.0
    } else {
        93.2 - (latency - 120.0) / 10.0
    };
    let r = r - 2.5 * loss * 100.0;
    if r.is_nan() { 0.0 } else { r.clamp(0.0, 100.0) }
}

#[cfg(test)]
fn mos(r: f64) -> f64 {
    (1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use str0m::media::Mid;
    use str0m::net::Protocol;
    use str0m::stats::{CandidatePairStats, CandidateStats, RemoteIngressStats};

    use super::*;

    fn peer_stats(now: Instant, rtt_ms: u64, loss: f32) -> PeerStats {
        PeerStats {
            peer_bytes_rx: 0,
            peer_bytes_tx: 0,
            bytes_rx: 0,
            bytes_tx: 0,
            timestamp: now,
            bwe_tx: None,
            egress_loss_fraction: Some(loss),
            ingress_loss_fraction: Some(0.0),
            rtt: Some(Duration::from_millis(rtt_ms)),
            selected_candidate_pair: None,
        }
    }

    fn ingress_stats(now: Instant, jitter: u32) -> MediaIngressStats {
        MediaIngressStats {
            mid: Mid::from("0"),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis: 0,
            nacks: 0,
            jitter,
            rtt: None,
            loss: None,
            timestamp: now,
            remote: None,
        }
    }

    /// A peer sending a datagram every 100 ms while `sending(t)` and stats every second with
    /// `stats(t)` = (RTT ms, loss), polled every 100 ms from `from` to `to` (t in ms). Returns
    /// the reported levels with their times.
    fn simulate(
        monitor: &mut QualityMonitor,
        start: Instant,
        range: std::ops::Range<u64>,
        sending: impl Fn(u64) -> bool,
        stats: impl Fn(u64) -> (u64, f32),
    ) -> Vec<(u64, ConnectionQuality)> {
        let mut reports = Vec::new();
        for t in range.step_by(100) {
            let now = start + Duration::from_millis(t);
            if sending(t) {
                monitor.datagram_received(now);
                if t % 1_000 == 0 {
                    let (rtt, loss) = stats(t);
                    monitor.peer_stats(&peer_stats(now, rtt, loss));
                }
            }
            if let Some(level) = monitor.poll(now) {
                reports.push((t, level));
            }
        }
        reports
    }

    #[test]
    fn e_model_scores() {
        // A perfect link: only the codec's 10 ms.
        assert!((r_factor(0.0, 0.0, 0.0) - 92.95).abs() < 1e-9);
        assert!((mos(r_factor(0.0, 0.0, 0.0)) - 4.41).abs() < 0.01);
        // Each percent of loss costs 2.5.
        assert!((r_factor(0.0, 0.0, 0.04) - 82.95).abs() < 1e-9);
        // Past 160 ms of effective latency, delay costs ten times more.
        assert!((r_factor(300.0, 20.0, 0.0) - 85.2).abs() < 1e-9);
        assert!((r_factor(400.0, 30.0, 0.0) - 78.2).abs() < 1e-9);
        // The thresholds in MOS terms, as documented.
        assert!((mos(85.0) - 4.2).abs() < 0.01);
        assert!((mos(70.0) - 3.6).abs() < 0.01);
        // Bounded, whatever comes in.
        assert_eq!(r_factor(1e12, 1e12, 1.0), 0.0);
        assert_eq!(r_factor(f64::NAN, 0.0, 0.0), 0.0);
        assert_eq!(mos(0.0), 1.0);
    }

    #[test]
    fn first_level_is_reported_at_once() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        assert_eq!(monitor.poll(start), None);
        let reports = simulate(&mut monitor, start, 0..5_000, |_| true, |_| (40, 0.0));
        assert_eq!(reports, [(0, ConnectionQuality::Excellent)]);
    }

    #[test]
    fn sustained_loss_degrades_after_the_hold() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let reports = simulate(
            &mut monitor,
            start,
            0..20_000,
            |_| true,
            |t| (40, if t < 5_000 { 0.0 } else { 0.15 }),
        );
        // 15 % loss: the smoothed loss passes 3.2 % (Good) at the first sample and 9 % (Poor)
        // at the third; each level must then hold 3 s.
        assert_eq!(reports[0], (0, ConnectionQuality::Excellent));
        assert_eq!(reports.len(), 2, "{reports:?}");
        let (at, level) = reports[1];
        assert_eq!(level, ConnectionQuality::Poor);
        assert!((8_000..=9_000).contains(&at), "{reports:?}");
        assert!(monitor.mos() < 3.6);
    }

    #[test]
    fn a_loss_spike_changes_nothing() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let reports = simulate(
            &mut monitor,
            start,
            0..20_000,
            |_| true,
            |t| (40, if t == 5_000 { 0.2 } else { 0.0 }),
        );
        assert_eq!(reports, [(0, ConnectionQuality::Excellent)]);
    }

    #[test]
    fn oscillating_stats_do_not_flap() {
        // Loss alternating between 0 and 10 % every 3 s: the smoothed score crosses the
        // Excellent/Good boundary every few seconds.
        let loss = |t: u64| {
            if (t / 3_000).is_multiple_of(2) {
                0.0
            } else {
                0.1
            }
        };
        let start = Instant::now();
        let unheld = QualityConfig {
            hold: Duration::ZERO,
            ..QualityConfig::default()
        };
        let mut monitor = QualityMonitor::new(start, unheld);
        let flapping = simulate(&mut monitor, start, 0..60_000, |_| true, |t| (40, loss(t)));
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let held = simulate(&mut monitor, start, 0..60_000, |_| true, |t| (40, loss(t)));
        assert!(flapping.len() >= 10, "{flapping:?}");
        assert!(held.len() <= 2, "{held:?}");
    }

    #[test]
    fn silence_is_lost_at_once_and_return_is_immediate() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let reports = simulate(
            &mut monitor,
            start,
            0..20_000,
            |t| !(5_000..12_000).contains(&t),
            |_| (40, 0.0),
        );
        assert_eq!(
            reports,
            [
                (0, ConnectionQuality::Excellent),
                // Last datagram at 4.9 s, lost 4 s later.
                (8_900, ConnectionQuality::Lost),
                (12_000, ConnectionQuality::Excellent),
            ]
        );
    }

    #[test]
    fn a_peer_that_never_sends_is_lost() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let reports = simulate(&mut monitor, start, 0..6_000, |_| false, |_| (40, 0.0));
        assert_eq!(reports, [(4_000, ConnectionQuality::Lost)]);
    }

    #[test]
    fn jitter_in_rtp_units_is_converted_with_the_clock_rate() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        monitor.datagram_received(start);
        monitor.peer_stats(&peer_stats(start, 100, 0.0));
        // 4800 units at 48 kHz: 100 ms of jitter. Latency 50 + 200 + 10 ms: R 79.2, Good.
        monitor.ingress_stats(&ingress_stats(start, 4_800), Frequency::FORTY_EIGHT_KHZ);
        assert!((monitor.r_factor() - 79.2).abs() < 1e-9);
        assert_eq!(monitor.poll(start), Some(ConnectionQuality::Good));

        // The peer's report on our video: 900 units at 90 kHz, 10 ms.
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let egress = MediaEgressStats {
            mid: Mid::from("1"),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: Some(Duration::from_millis(60)),
            loss: None,
            timestamp: start,
            remote: Some(RemoteIngressStats {
                jitter: 900,
                maximum_sequence_number: 1.into(),
                packets_lost: 0,
            }),
        };
        monitor.egress_stats(&egress, Frequency::NINETY_KHZ);
        // Latency 30 + 20 + 10 ms.
        assert!((monitor.r_factor() - (93.2 - 60.0 / 40.0)).abs() < 1e-9);
    }

    #[test]
    fn rtt_falls_back_to_the_ice_round_trip_and_bad_numbers_are_ignored() {
        let start = Instant::now();
        let mut monitor = QualityMonitor::new(start, QualityConfig::default());
        let mut stats = peer_stats(start, 0, f32::NAN);
        stats.rtt = None;
        stats.ingress_loss_fraction = Some(f32::INFINITY);
        monitor.peer_stats(&stats);
        assert_eq!(monitor.loss, None);
        assert_eq!(monitor.rtt_ms, None);
        stats.egress_loss_fraction = Some(-3.0);
        stats.ingress_loss_fraction = Some(7.0);
        monitor.peer_stats(&stats);
        assert_eq!(monitor.loss, Some(1.0));
        assert_eq!(monitor.r_factor(), 0.0);

        let local = CandidateStats {
            addr: "127.0.0.1:5000".parse().expect("address literal"),
        };
        stats.selected_candidate_pair = Some(CandidatePairStats {
            protocol: Protocol::Udp,
            local: local.clone(),
            remote: local,
            current_round_trip_time: Some(Duration::from_millis(80)),
            total_round_trip_time: Duration::ZERO,
            responses_received: 0,
        });
        monitor.peer_stats(&stats);
        assert_eq!(monitor.rtt_ms, Some(80.0));
    }
}
