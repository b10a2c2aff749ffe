//! Active speaker detection for one room, from the audio level header extension (RFC 6464).
//!
//! Every audio packet of a publisher carries the level of its frame in -dBov (str0m gives it
//! as `ext_vals.audio_level: Option<i8>`, from 0 for the loudest down to -127 for silence). The
//! SFU never decodes audio, so the level is all it knows about who talks; the client shows the
//! result as a highlighted tile. The extension's voice activity flag is not used: encoders
//! differ in whether and how they set it (some never do), and the level alone, with the burst
//! and hold rules below, tells speech from background noise well enough.
//!
//! What a person expects from that highlight sets the rules:
//!
//! - A cough, a click or a door does not make a speaker: a peer *enters* after a burst of loud
//!   packets lasting [`SpeakerConfig::enter_after`] (~200 ms), where a burst tolerates the short
//!   dips between syllables ([`SpeakerConfig::burst_gap`]).
//! - The pauses between words and sentences do not end a turn: a speaker *leaves* only after
//!   [`SpeakerConfig::hold`] (~1 s) without a loud packet. Silence often arrives as no packets
//!   at all (Opus DTX), which is why leaving is decided by [`ActiveSpeakers::poll`], on the
//!   clock, and not by packets.
//! - Two people talking over each other do not swap places in the list with every syllable:
//!   speakers are ranked by a level smoothed over about a second, the current first speaker
//!   keeps a small bonus, and the list is reported at most every
//!   [`SpeakerConfig::report_interval`].
//!
//! Per packet the work is one hash lookup and a few arithmetic operations, with a fixed-size
//! state per peer.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::PeerId;

/// Thresholds and timings of speaker detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SpeakerConfig {
    /// Packets at least this loud, in -dBov as str0m reports it, count as speech. Default
    /// -45: speech on a laptop microphone sits around -40 to -20 dBov, background noise after
    /// a browser's noise suppression below -55.
    pub(crate) threshold: i8,
    /// How long a burst of loud packets must last for a peer to become a speaker.
    pub(crate) enter_after: Duration,
    /// The longest quiet gap that still continues a burst.
    pub(crate) burst_gap: Duration,
    /// A speaker with no loud packet for this long is no longer one.
    pub(crate) hold: Duration,
    /// [`ActiveSpeakers::poll`] reports at most this often.
    pub(crate) report_interval: Duration,
    /// Time constant of the level that orders the speakers.
    pub(crate) ranking_window: Duration,
    /// Extra level, in dB, the first speaker of the last report keeps in the ranking, so that
    /// another takes the first place only by being clearly louder.
    pub(crate) first_speaker_bonus: f32,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            threshold: -45,
            enter_after: Duration::from_millis(200),
            burst_gap: Duration::from_millis(150),
            hold: Duration::from_secs(1),
            report_interval: Duration::from_millis(300),
            ranking_window: Duration::from_secs(1),
            first_speaker_bonus: 3.0,
        }
    }
}

/// The active speakers of one room.
#[derive(Debug)]
pub(crate) struct ActiveSpeakers {
    config: SpeakerConfig,
    peers: FxHashMap<PeerId, PeerLevel>,
    /// The list last reported, loudest first.
    reported: Vec<PeerId>,
    /// Scratch for the next list: (ranking level, peer).
    ranking: Vec<(f32, PeerId)>,
    next_poll: Option<Instant>,
    /// Someone joined the room since the last report: the next one goes out even unchanged.
    repeat: bool,
}

/// What is kept per publishing peer: a fixed size, whatever the packet rate.
#[derive(Debug, Clone, Copy)]
struct PeerLevel {
    /// Start of the current burst of loud packets.
    burst_start: Option<Instant>,
    /// Arrival of the last loud packet.
    last_loud: Option<Instant>,
    /// Arrival of the last packet, loud or not.
    last_packet: Instant,
    /// Level above silence (0 = silence, 127 = loudest), smoothed over the ranking window.
    smoothed: f32,
    speaking: bool,
}

impl ActiveSpeakers {
    pub(crate) fn new(config: SpeakerConfig) -> Self {
        ActiveSpeakers {
            config,
            peers: FxHashMap::default(),
            reported: Vec::new(),
            ranking: Vec::new(),
            next_poll: None,
            repeat: false,
        }
    }

    /// An audio packet of `peer` arrived with audio level `level` (-dBov: 0 loudest, -127
    /// silence; out-of-range values are clamped). The voice activity flag (`_vad`) is not
    /// required nor used (see the module's notes).
    pub(crate) fn record(&mut self, now: Instant, peer: PeerId, level: i8, _vad: Option<bool>) {
        let config = self.config;
        let above_silence = f32::from(level.clamp(-127, 0)) + 127.0;
        let loud = level >= config.threshold;
        let state = self.peers.entry(peer).or_insert(PeerLevel {
            burst_start: None,
            last_loud: None,
            last_packet: now,
            smoothed: above_silence,
            speaking: false,
        });
        // Exponential smoothing with a weight from the time since the last packet, so that the
        // packet rate (20 ms frames, 60 ms frames, DTX) does not change the window.
        let elapsed = now
            .saturating_duration_since(state.last_packet)
            .as_secs_f32();
        let window = config.ranking_window.as_secs_f32().max(f32::EPSILON);
        let weight = 1.0 - (-elapsed / window).exp();
        state.smoothed += (above_silence - state.smoothed) * weight;
        state.last_packet = state.last_packet.max(now);
        if !loud {
            return;
        }
        let continues = state
            .last_loud
            .is_some_and(|last| now.saturating_duration_since(last) <= config.burst_gap);
        if !continues {
            state.burst_start = Some(now);
        }
        state.last_loud = Some(state.last_loud.map_or(now, |last| last.max(now)));
        if state
            .burst_start
            .is_some_and(|start| now.saturating_duration_since(start) >= config.enter_after)
        {
            state.speaking = true;
        }
    }

    /// Someone joined the room: they have not heard who is speaking, and the list is sent only
    /// when it changes. The next report (within the report interval, as usual) repeats it
    /// when anyone speaks.
    pub(crate) fn report_again(&mut self) {
        self.repeat = true;
    }

    /// The peer left the room or stopped publishing audio.
    pub(crate) fn remove(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// When [`ActiveSpeakers::poll`] next looks at the levels.
    #[cfg(test)]
    pub(crate) fn next_poll(&self) -> Option<Instant> {
        self.next_poll
    }

    /// The speakers, loudest first, when the list differs from the last one reported; `None`
    /// when it does not, or when called again within the report interval.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Vec<PeerId>> {
        if self.next_poll.is_some_and(|next| now < next) {
            return None;
        }
        self.next_poll = now.checked_add(self.config.report_interval);
        let config = self.config;
        let first = self.reported.first().copied();
        self.ranking.clear();
        for (peer, state) in &mut self.peers {
            let quiet_for = state
                .last_loud
                .map_or(Duration::MAX, |last| now.saturating_duration_since(last));
            if quiet_for >= config.hold {
                state.speaking = false;
            }
            if state.speaking {
                let bonus = if Some(*peer) == first {
                    config.first_speaker_bonus
                } else {
                    0.0
                };
                self.ranking.push((state.smoothed + bonus, *peer));
            }
        }
        // Loudest first; equal levels by peer id, so that the order does not depend on the
        // hash map's.
        self.ranking
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let unchanged = self.ranking.len() == self.reported.len()
            && self
                .ranking
                .iter()
                .zip(&self.reported)
                .all(|((_, ranked), reported)| ranked == reported);
        let repeat = std::mem::take(&mut self.repeat) && !self.ranking.is_empty();
        if unchanged && !repeat {
            return None;
        }
        self.reported.clear();
        self.reported
            .extend(self.ranking.iter().map(|(_, peer)| *peer));
        Some(self.reported.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerId = PeerId(1);
    const B: PeerId = PeerId(2);

    /// One 20-ms audio frame per peer that `packet(peer, t)` gives a level for (t in ms), and a
    /// poll after each frame; returns the reports with their times.
    fn simulate(
        speakers: &mut ActiveSpeakers,
        start: Instant,
        range: std::ops::Range<u64>,
        packet: impl Fn(PeerId, u64) -> Option<(i8, Option<bool>)>,
    ) -> Vec<(u64, Vec<PeerId>)> {
        let mut reports = Vec::new();
        for t in range.step_by(20) {
            let now = start + Duration::from_millis(t);
            for peer in [A, B] {
                if let Some((level, vad)) = packet(peer, t) {
                    speakers.record(now, peer, level, vad);
                }
            }
            if let Some(list) = speakers.poll(now) {
                reports.push((t, list));
            }
        }
        reports
    }

    fn talk(level: i8) -> Option<(i8, Option<bool>)> {
        Some((level, Some(true)))
    }

    const SILENCE: Option<(i8, Option<bool>)> = Some((-127, Some(false)));

    #[test]
    fn a_speaker_enters_after_a_sustained_burst() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let start = Instant::now();
        let reports = simulate(&mut speakers, start, 0..2_000, |peer, _| {
            (peer == A).then_some((-30, Some(true)))
        });
        assert_eq!(reports.len(), 1);
        let (at, list) = &reports[0];
        assert_eq!(list, &[A]);
        // At least the 200 ms burst, at most that plus one report interval.
        assert!((200..=500).contains(at), "entered at {at} ms");
    }

    #[test]
    fn a_cough_is_not_a_speaker() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let reports = simulate(&mut speakers, Instant::now(), 0..3_000, |peer, t| {
            match (peer, t) {
                (A, 0..140) => talk(-10),
                (A, _) => SILENCE,
                _ => None,
            }
        });
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn quiet_sound_is_not_speech_and_the_voice_flag_is_not_required() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let reports = simulate(&mut speakers, Instant::now(), 0..3_000, |peer, _| {
            match peer {
                // Background noise below the threshold, marked as voice.
                A => talk(-60),
                // Loud, from an encoder that never sets the voice activity flag.
                _ => Some((-10, Some(false))),
            }
        });
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].1, vec![B], "only the loud one speaks");
    }

    #[test]
    fn pauses_between_words_do_not_end_a_turn() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        // 400 ms of speech with 100-ms dips inside, then 600 ms of pause, over and over.
        let reports = simulate(&mut speakers, Instant::now(), 0..10_000, |peer, t| {
            match (peer, t % 1_000) {
                (A, 0..150 | 250..400) => talk(-30),
                (A, _) => talk(-80),
                _ => None,
            }
        });
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].1, [A]);
    }

    #[test]
    fn a_speaker_leaves_after_a_second_of_silence_even_without_packets() {
        for silence in [SILENCE, None] {
            let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
            let reports = simulate(&mut speakers, Instant::now(), 0..4_000, |peer, t| {
                match (peer, t) {
                    (A, 0..1_000) => talk(-30),
                    // Silence frames, or nothing at all (Opus DTX).
                    (A, _) => silence,
                    _ => None,
                }
            });
            assert_eq!(reports.len(), 2, "{reports:?}");
            let (left_at, list) = &reports[1];
            assert!(list.is_empty());
            // The last loud frame was at 980 ms: out after the 1 s hold, within one interval.
            assert!((1_980..=2_300).contains(left_at), "left at {left_at} ms");
        }
    }

    #[test]
    fn two_speakers_over_each_other_do_not_flicker() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        // A averages -25 dBov, B -28; both swing 10 dB from frame to frame, out of phase, so
        // that frame by frame the louder one alternates.
        let reports = simulate(&mut speakers, Instant::now(), 0..20_000, |peer, t| {
            let up = (t / 20) % 2 == 0;
            match peer {
                A => talk(if up { -20 } else { -30 }),
                _ => talk(if up { -33 } else { -23 }),
            }
        });
        // Both enter together, loudest first, and then nothing changes.
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].1, [A, B]);
    }

    #[test]
    fn a_clearly_louder_speaker_takes_the_first_place() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let reports = simulate(&mut speakers, Instant::now(), 0..10_000, |peer, t| {
            match (peer, t) {
                (A, _) => talk(-30),
                (B, 0..3_000) => talk(-40),
                (_, _) => talk(-15),
            }
        });
        let lists: Vec<_> = reports.iter().map(|(_, list)| list.clone()).collect();
        assert_eq!(lists, [vec![A, B], vec![B, A]]);
        // Within the smoothing window and a report interval of B raising its voice.
        assert!((3_000..=4_500).contains(&reports[1].0), "{reports:?}");
    }

    #[test]
    fn reports_are_spaced_by_the_interval() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        // Short turns that alternate as fast as the rules allow.
        let reports = simulate(&mut speakers, Instant::now(), 0..20_000, |peer, t| {
            let a_turn = (t / 1_500) % 2 == 0;
            match peer {
                A if a_turn => talk(-20),
                B if !a_turn => talk(-20),
                _ => None,
            }
        });
        assert!(reports.len() > 4);
        for pair in reports.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 300, "{reports:?}");
        }
        let start = Instant::now();
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        assert_eq!(speakers.poll(start), None);
        assert_eq!(
            speakers.next_poll(),
            Some(start + Duration::from_millis(300))
        );
    }

    #[test]
    fn a_removed_speaker_leaves_the_list() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let start = Instant::now();
        let reports = simulate(&mut speakers, start, 0..1_000, |_, _| talk(-30));
        assert_eq!(reports.last().map(|(_, list)| list.len()), Some(2));
        speakers.remove(A);
        speakers.remove(PeerId(99));
        assert_eq!(
            speakers.poll(start + Duration::from_millis(1_300)),
            Some(vec![B])
        );
    }

    #[test]
    fn a_newcomer_hears_the_current_list_at_the_next_report() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let start = Instant::now();
        let reports = simulate(&mut speakers, start, 0..2_000, |peer, _| {
            (peer == A).then_some((-30, Some(true)))
        });
        assert_eq!(reports.len(), 1, "A speaks, reported once: {reports:?}");
        // A keeps speaking: nothing new to report, until someone joins.
        let later = start + Duration::from_millis(2_000);
        speakers.record(later, A, -30, None);
        assert_eq!(speakers.poll(later), None);
        speakers.report_again();
        let next = later + SpeakerConfig::default().report_interval;
        speakers.record(next, A, -30, None);
        assert_eq!(speakers.poll(next), Some(vec![A]));
        let after = next + SpeakerConfig::default().report_interval;
        speakers.record(after, A, -30, None);
        assert_eq!(speakers.poll(after), None, "once");
        // Nobody speaking: a newcomer has nothing to hear.
        let mut quiet = ActiveSpeakers::new(SpeakerConfig::default());
        quiet.report_again();
        assert_eq!(quiet.poll(start), None);
    }

    #[test]
    fn out_of_range_levels_and_clocks_do_not_panic() {
        let mut speakers = ActiveSpeakers::new(SpeakerConfig::default());
        let start = Instant::now() + Duration::from_secs(10);
        for (i, level) in [i8::MIN, -127, 0, 1, i8::MAX].into_iter().enumerate() {
            let jitter = Duration::from_millis(i as u64 * 7);
            speakers.record(start + jitter, A, level, None);
            speakers.record(start - jitter, A, level, Some(true));
            speakers.record(start, B, level, Some(false));
        }
        speakers.poll(start - Duration::from_secs(5));
        speakers.poll(start + Duration::from_secs(5));
    }
}
