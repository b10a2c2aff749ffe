//! The statistics a receiver keeps, as plain values fed with numbers (no clock, no I/O):
//! loss from RTP sequence numbers (with wrap-around, reordering and duplicates), RFC 3550
//! interarrival jitter, and a compact histogram for latency percentiles.

/// Loss of one RTP stream, from its 16-bit sequence numbers (RFC 3550 appendix A.1).
///
/// A packet arriving late (reordered) still counts as received; a duplicate (a retransmission
/// of a packet that already arrived) counts once. Loss is `expected - received`, where
/// `expected` spans the first to the highest sequence number seen.
#[derive(Debug, Clone, Default)]
pub struct SeqLoss {
    /// Extended (wrap-counted) number of the first packet.
    base: u64,
    /// Extended number of the highest packet so far.
    highest: u64,
    received: u64,
    duplicates: u64,
    /// Bit `i` set: packet `highest - i` arrived (the last 64 packets).
    window: u64,
    started: bool,
}

impl SeqLoss {
    /// Counts one packet.
    pub fn packet(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            // Start one wrap in, so that a packet reordered before the first one still fits.
            self.base = (1 << 16) + u64::from(seq);
            self.highest = self.base;
            self.received = 1;
            self.window = 1;
            return;
        }
        let extended = self.extend(seq);
        if extended > self.highest {
            let shift = extended - self.highest;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.highest = extended;
            self.received += 1;
        } else {
            let back = self.highest - extended;
            if back < 64 && self.window & (1 << back) != 0 {
                self.duplicates += 1;
                return;
            }
            if back < 64 {
                self.window |= 1 << back;
            }
            if extended < self.base {
                self.base = extended;
            }
            self.received += 1;
        }
    }

    /// The extended sequence number of `seq`: the one nearest to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let cycle = self.highest & !0xFFFF;
        let candidates = [cycle.saturating_sub(1 << 16), cycle, cycle + (1 << 16)];
        candidates
            .into_iter()
            .map(|c| c | u64::from(seq))
            .min_by_key(|e| e.abs_diff(self.highest))
            .unwrap_or(cycle | u64::from(seq))
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn expected(&self) -> u64 {
        if self.started {
            self.highest - self.base + 1
        } else {
            0
        }
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// RFC 3550 interarrival jitter (section 6.4.1), in RTP timestamp units.
#[derive(Debug, Clone, Default)]
pub struct Jitter {
    /// Transit time of the previous packet (arrival minus RTP timestamp), in clock units.
    last_transit: Option<f64>,
    jitter: f64,
}

impl Jitter {
    /// Feeds one packet: its arrival time in seconds (any origin) and its RTP timestamp;
    /// `clock_rate` is the codec clock (90000 for video, 48000 for Opus).
    pub fn packet(&mut self, arrival_secs: f64, rtp_timestamp: u32, clock_rate: u32) {
        let arrival = arrival_secs * f64::from(clock_rate);
        let transit = arrival - f64::from(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            // A timestamp wrap shows up as a jump of 2^32 units: fold it back.
            if d > f64::from(u32::MAX) / 2.0 {
                d = (d - f64::from(u32::MAX) - 1.0).abs();
            }
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The jitter estimate in clock units.
    pub fn units(&self) -> f64 {
        self.jitter
    }

    /// The jitter estimate in milliseconds.
    pub fn millis(&self, clock_rate: u32) -> f64 {
        self.jitter * 1000.0 / f64::from(clock_rate)
    }
}

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3%).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

/// A histogram of non-negative integers (microseconds, say) with relative precision of about
/// 3% and a fixed size of a few KiB, so that every receiver can keep one for every packet.
/// Values below 32 are exact.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB as usize],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        let index = bucket_of(value);
        if let Some(count) = self.counts.get_mut(index) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The values recorded since `earlier` (an older copy of this histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        Histogram {
            total: counts.iter().sum(),
            counts,
            max: self.max,
        }
    }

    /// The value below which `p` percent of the values lie (nearest rank), or `None` when
    /// empty. The answer is the lowest value of its bucket, never above the largest value.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = nearest_rank(p, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_floor(index).min(self.max));
            }
        }
        Some(self.max)
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = (value >> shift) - SUB; // 0..SUB
    ((shift + 1) as usize) * SUB as usize + sub as usize
}

fn bucket_floor(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = index / SUB - 1;
    let sub = index % SUB;
    (SUB + sub) << shift
}

/// The 1-based nearest rank of percentile `p` among `n` values.
fn nearest_rank(p: f64, n: u64) -> u64 {
    let p = p.clamp(0.0, 100.0);
    ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n)
}

/// The nearest-rank percentile of exact values (join times: few of them). `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = nearest_rank(p, sorted.len() as u64);
    sorted.get(rank as usize - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN, 4.0], 50.0), Some(4.0));
    }

    #[test]
    fn histogram_is_exact_for_small_values_and_close_for_large_ones() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), None);
        for v in 1..=20 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(10));
        assert_eq!(h.percentile(100.0), Some(20));

        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 100); // 100 µs .. 1 s
        }
        for (p, exact) in [(50.0, 500_000.0), (95.0, 950_000.0), (99.0, 990_000.0)] {
            let got = h.percentile(p).expect("values") as f64;
            assert!(
                (got - exact).abs() / exact < 0.035,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.count(), 10_000);
        // Huge values fit and are capped by the largest seen.
        let mut h = Histogram::default();
        h.record(u64::MAX);
        assert_eq!(h.percentile(99.0), Some(bucket_floor(bucket_of(u64::MAX))));
    }

    #[test]
    fn histograms_merge() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 0..10 {
            a.record(v);
            b.record(v + 10);
        }
        a.merge(&b);
        assert_eq!(a.count(), 20);
        assert_eq!(a.percentile(50.0), Some(9));
        assert_eq!(a.percentile(100.0), Some(19));
        let mut later = a.clone();
        for _ in 0..5 {
            later.record(1000);
        }
        let window = later.since(&a);
        assert_eq!(window.count(), 5);
        assert_eq!(window.percentile(50.0), Some(992));
    }

    #[test]
    fn buckets_round_trip() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 1000, 123_456, 1 << 40] {
            let floor = bucket_floor(bucket_of(v));
            assert!(
                floor <= v && (v - floor) as f64 <= v as f64 / 32.0,
                "{v} -> {floor}"
            );
        }
    }

    fn loss_of(seqs: &[u16]) -> SeqLoss {
        let mut loss = SeqLoss::default();
        for &s in seqs {
            loss.packet(s);
        }
        loss
    }

    #[test]
    fn loss_counts_gaps() {
        let loss = loss_of(&[1, 2, 3, 4, 5]);
        assert_eq!((loss.expected(), loss.received(), loss.lost()), (5, 5, 0));
        let loss = loss_of(&[1, 2, 5, 6]);
        assert_eq!((loss.expected(), loss.lost()), (6, 2));
        assert_eq!(SeqLoss::default().lost(), 0);
    }

    #[test]
    fn loss_survives_wrap_around() {
        let loss = loss_of(&[65533, 65534, 65535, 0, 1, 2]);
        assert_eq!((loss.expected(), loss.lost()), (6, 0));
        let loss = loss_of(&[65534, 65535, 1, 2]);
        assert_eq!((loss.expected(), loss.lost()), (5, 1));
        // Many wraps in a row.
        let mut loss = SeqLoss::default();
        for i in 0..200_000u32 {
            if i % 1000 != 0 {
                loss.packet(i as u16);
            }
        }
        assert_eq!(loss.lost(), 199, "the first packet opens the count");
    }

    #[test]
    fn reordered_packets_are_not_lost() {
        let loss = loss_of(&[1, 3, 2, 4, 6, 5]);
        assert_eq!((loss.expected(), loss.received(), loss.lost()), (6, 6, 0));
        // Reordered across the wrap, and before the first packet.
        let loss = loss_of(&[0, 65535, 1, 2]);
        assert_eq!((loss.expected(), loss.lost()), (4, 0));
        let loss = loss_of(&[10, 8, 9, 11]);
        assert_eq!((loss.expected(), loss.lost()), (4, 0));
    }

    #[test]
    fn duplicates_count_once() {
        let loss = loss_of(&[1, 2, 2, 3, 1, 5]);
        assert_eq!((loss.expected(), loss.received(), loss.lost()), (5, 4, 1));
        assert_eq!(loss.duplicates(), 2);
    }

    #[test]
    fn jitter_is_zero_for_a_steady_stream() {
        let mut j = Jitter::default();
        for i in 0..100u32 {
            j.packet(f64::from(i) * 0.02, i * 960, 48_000);
        }
        assert!(j.units() < 1e-6);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        // Packets every 20 ms (960 units), arrivals alternately on time and 10 ms late.
        let mut j = Jitter::default();
        let mut expected = 0.0;
        for i in 0..50u32 {
            let late = if i % 2 == 1 { 0.010 } else { 0.0 };
            j.packet(f64::from(i) * 0.02 + late, i * 960, 48_000);
            if i > 0 {
                expected += (480.0 - expected) / 16.0; // |D| = 10 ms = 480 units every time
            }
        }
        assert!(
            (j.units() - expected).abs() < 1e-6,
            "{} vs {expected}",
            j.units()
        );
        assert!((j.millis(48_000) - expected / 48.0).abs() < 1e-9);
        // It converges to |D|.
        assert!(j.units() > 450.0);
    }

    #[test]
    fn jitter_ignores_the_timestamp_wrap() {
        let mut j = Jitter::default();
        let start = u32::MAX - 960 * 5;
        for i in 0..10u32 {
            j.packet(f64::from(i) * 0.02, start.wrapping_add(i * 960), 48_000);
        }
        assert!(j.units() < 1e-3, "{}", j.units());
    }
}
