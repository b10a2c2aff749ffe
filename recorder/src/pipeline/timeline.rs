//! The replay's timeline, worked out from a recording's events and packets, with no I/O.
//!
//! - Recording time: milliseconds since the recording started (arrival of packets, events).
//! - Replay time: recording time with the paused parts cut out.
//! - Each track's frames are placed by their RTP timestamps (smooth, the sender's clock),
//!   anchored to arrival times: per run of frames whose timestamps keep pace with their
//!   arrivals, the anchor is the earliest arrival relative to its timestamp (the packet that
//!   waited least in the network). A jump of more than a second between the two clocks (a
//!   source switch, a restarted sender) starts a new run. Every track is anchored to the same
//!   arrival clock, so audio and video stay in sync, across pauses and source switches.

use std::collections::{BTreeMap, HashMap};

use classroom_protocol::signal::{ParticipantId, ServerMessage};
use classroom_protocol::{ParticipantRole, TrackSource};
use serde::{Deserialize, Serialize};

use super::depacketize::Frame;
use crate::events::{Event, TimedEvent};

/// Clocks further apart than this start a new run.
const RUN_BREAK_MS: f64 = 1000.0;
/// A chat message stays on screen this long in the WebVTT track.
const CHAT_CUE_MS: u64 = 6000;

/// Recording time → replay time.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuts {
    /// Paused intervals in recording time, in order.
    pauses: Vec<(f64, f64)>,
    /// When the recording stopped, in recording time.
    pub end_ms: f64,
}

impl Cuts {
    pub fn from_events(events: &[TimedEvent]) -> Cuts {
        let mut pauses = Vec::new();
        let mut paused_at: Option<f64> = None;
        let mut end_ms = 0.0f64;
        for e in events {
            let t = e.t_ms as f64;
            end_ms = end_ms.max(t);
            match e.event {
                Event::Paused if paused_at.is_none() => paused_at = Some(t),
                Event::Resumed => {
                    if let Some(from) = paused_at.take() {
                        pauses.push((from, t));
                    }
                }
                Event::Stopped { .. } => {
                    end_ms = t;
                    break;
                }
                _ => {}
            }
        }
        if let Some(from) = paused_at {
            // Stopped while paused: nothing after the pause belongs to the replay.
            pauses.push((from, end_ms));
        }
        Cuts { pauses, end_ms }
    }

    /// The replay time of a recording time; `None` inside a pause or after the end.
    pub fn replay_ms(&self, t: f64) -> Option<f64> {
        if t > self.end_ms {
            return None;
        }
        let mut cut = 0.0;
        for &(from, to) in &self.pauses {
            if t >= to {
                cut += to - from;
            } else if t >= from {
                return None;
            }
        }
        Some((t - cut).max(0.0))
    }

    /// Like [`Cuts::replay_ms`], but a time inside a pause maps to where the pause was cut.
    pub fn replay_ms_clamped(&self, t: f64) -> f64 {
        let t = t.min(self.end_ms);
        let mut cut = 0.0;
        for &(from, to) in &self.pauses {
            if t >= to {
                cut += to - from;
            } else if t >= from {
                return from - cut;
            }
        }
        (t - cut).max(0.0)
    }

    /// Whether a pause ends between two recording times (video must restart at a keyframe).
    pub fn resumes_between(&self, a: f64, b: f64) -> bool {
        self.pauses.iter().any(|&(_, to)| to > a && to <= b)
    }

    pub fn duration_ms(&self) -> f64 {
        self.replay_ms_clamped(self.end_ms)
    }
}

/// Recording-time positions (ms) of frames, by the rules in the module documentation (all
/// in memory: tests; the pipeline streams with [`Runs`] and [`Placer`]).
pub fn place(frames: &[Frame], clock_rate: u32) -> Vec<f64> {
    let mut runs = Runs::new(clock_rate);
    for f in frames {
        runs.push(f.timestamp, f.arrival_us);
    }
    let mut placer = runs.placer();
    frames
        .iter()
        .map(|f| placer.place(f.timestamp, f.arrival_us))
        .collect()
}

/// The run a frame belongs to: its first frame, and its anchor once known.
#[derive(Debug, Clone, Copy)]
struct Run {
    first_timestamp: i64,
    first_arrival_us: u64,
    anchor_ms: f64,
}

impl Run {
    fn start(timestamp: i64, arrival_us: u64) -> Run {
        Run {
            first_timestamp: timestamp,
            first_arrival_us: arrival_us,
            anchor_ms: f64::INFINITY,
        }
    }

    /// Milliseconds since the run's first frame by the sender's clock.
    fn by_clock(&self, timestamp: i64, per_ms: f64) -> f64 {
        (timestamp - self.first_timestamp) as f64 / per_ms
    }

    /// Whether a frame's clocks are too far apart for this run.
    fn breaks_at(&self, timestamp: i64, arrival_us: u64, per_ms: f64) -> bool {
        let by_arrival = (arrival_us as f64 - self.first_arrival_us as f64) / 1000.0;
        (self.by_clock(timestamp, per_ms) - by_arrival).abs() > RUN_BREAK_MS
    }
}

/// The first pass over a track's frames, one at a time: finds its runs and their anchors,
/// keeping one number per run (runs break only on clock jumps, a handful per lesson).
#[derive(Debug)]
pub struct Runs {
    per_ms: f64,
    current: Option<Run>,
    anchors: Vec<f64>,
}

impl Runs {
    pub fn new(clock_rate: u32) -> Runs {
        Runs {
            per_ms: f64::from(clock_rate) / 1000.0,
            current: None,
            anchors: Vec::new(),
        }
    }

    pub fn push(&mut self, timestamp: i64, arrival_us: u64) {
        let per_ms = self.per_ms;
        let run = match self.current.as_mut() {
            Some(run) if !run.breaks_at(timestamp, arrival_us, per_ms) => run,
            _ => {
                if let Some(done) = self.current.take() {
                    self.anchors.push(done.anchor_ms);
                }
                self.current.insert(Run::start(timestamp, arrival_us))
            }
        };
        let anchor = arrival_us as f64 / 1000.0 - run.by_clock(timestamp, per_ms);
        run.anchor_ms = run.anchor_ms.min(anchor);
    }

    /// The second pass: the same frames again, in the same order, get their places.
    pub fn placer(mut self) -> Placer {
        if let Some(done) = self.current.take() {
            self.anchors.push(done.anchor_ms);
        }
        Placer {
            per_ms: self.per_ms,
            anchors: self.anchors,
            next: 0,
            current: None,
        }
    }
}

/// Places frames with the anchors [`Runs`] found, one at a time.
#[derive(Debug)]
pub struct Placer {
    per_ms: f64,
    anchors: Vec<f64>,
    next: usize,
    current: Option<Run>,
}

impl Placer {
    /// The recording-time position (ms) of the next frame.
    pub fn place(&mut self, timestamp: i64, arrival_us: u64) -> f64 {
        let per_ms = self.per_ms;
        let run = match self.current.as_mut() {
            Some(run) if !run.breaks_at(timestamp, arrival_us, per_ms) => run,
            _ => {
                let mut run = Run::start(timestamp, arrival_us);
                // Frames the first pass did not see (it cannot happen with the same input)
                // are placed by their arrival.
                run.anchor_ms = self
                    .anchors
                    .get(self.next)
                    .copied()
                    .unwrap_or(arrival_us as f64 / 1000.0);
                self.next += 1;
                self.current.insert(run)
            }
        };
        run.anchor_ms + run.by_clock(timestamp, per_ms)
    }
}

/// Who was in the recorded room, from its events: who publishes what, who is who.
#[derive(Debug, Default)]
pub struct Roster {
    /// track → (peer, mid)
    pub tracks: HashMap<u64, (u64, String)>,
    /// peer → (participant, sources by mid)
    pub publishers: HashMap<u64, (ParticipantId, BTreeMap<String, TrackSource>)>,
    pub roles: HashMap<ParticipantId, (ParticipantRole, String)>,
}

impl Roster {
    pub fn from_events(events: &[TimedEvent]) -> Roster {
        let mut roster = Roster::default();
        for e in events {
            match &e.event {
                Event::TrackStarted {
                    track, peer, mid, ..
                } => {
                    roster.tracks.insert(*track, (*peer, mid.clone()));
                }
                Event::Publisher {
                    peer,
                    participant,
                    sources,
                } => {
                    roster
                        .publishers
                        .insert(*peer, (*participant, sources.clone()));
                }
                Event::Participants { participants } => {
                    for p in participants {
                        roster.roles.insert(p.id, (p.role, p.name.clone()));
                    }
                }
                Event::Room {
                    message:
                        ServerMessage::ParticipantJoined { participant }
                        | ServerMessage::ParticipantUpdated { participant },
                } => {
                    roster
                        .roles
                        .insert(participant.id, (participant.role, participant.name.clone()));
                }
                _ => {}
            }
        }
        roster
    }

    /// The source of a video track and its publisher's role and name; a track of a peer
    /// signaling never described (an in-process publisher such as the RTMP encoder) counts as
    /// the teacher's encoder.
    pub fn describe(&self, track: u64) -> (TrackSource, Option<ParticipantRole>, String) {
        let Some((peer, mid)) = self.tracks.get(&track) else {
            return (
                TrackSource::Encoder,
                Some(ParticipantRole::Teacher),
                "encoder".into(),
            );
        };
        let Some((participant, sources)) = self.publishers.get(peer) else {
            return (
                TrackSource::Encoder,
                Some(ParticipantRole::Teacher),
                "encoder".into(),
            );
        };
        let source = sources.get(mid).copied().unwrap_or(TrackSource::Camera);
        let (role, name) = self
            .roles
            .get(participant)
            .map_or((None, String::new()), |(r, n)| (Some(*r), n.clone()));
        (source, role, name)
    }
}

/// A video track's presence on the replay timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSpan {
    pub track: u64,
    pub source: TrackSource,
    pub role: Option<ParticipantRole>,
    pub name: String,
    /// Replay time of its first and last frame (plus one frame).
    pub from_ms: f64,
    pub to_ms: f64,
}

impl VideoSpan {
    /// Higher shows first: a screen share, then the teacher's camera or encoder, then anyone.
    fn rank(&self) -> u8 {
        match (self.source, self.role) {
            (TrackSource::Screen, _) => 3,
            (_, Some(ParticipantRole::Teacher | ParticipantRole::Assistant)) => 2,
            _ => 1,
        }
    }
}

/// One stretch of the main view: which track shows from when to when (replay time).
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    pub track: u64,
    pub from_ms: f64,
    pub to_ms: f64,
}

/// The main view over time: at each moment the highest-ranked track present, the most
/// recently started among equals (switching as it switched live).
pub fn main_view(spans: &[VideoSpan], duration_ms: f64) -> Vec<Shot> {
    let mut points: Vec<f64> = spans
        .iter()
        .flat_map(|s| [s.from_ms, s.to_ms])
        .chain([0.0, duration_ms])
        .filter(|t| *t >= 0.0 && *t <= duration_ms)
        .collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    let mut shots: Vec<Shot> = Vec::new();
    for pair in points.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let mid = (from + to) / 2.0;
        let best = spans
            .iter()
            .filter(|s| s.from_ms <= mid && mid < s.to_ms)
            .max_by(|a, b| {
                a.rank()
                    .cmp(&b.rank())
                    .then(a.from_ms.total_cmp(&b.from_ms))
            });
        let Some(best) = best else { continue };
        match shots.last_mut() {
            Some(last) if last.track == best.track && (last.to_ms - from).abs() < 1e-6 => {
                last.to_ms = to;
            }
            _ => shots.push(Shot {
                track: best.track,
                from_ms: from,
                to_ms: to,
            }),
        }
    }
    shots
}

/// A chapter mark of the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapter {
    pub at_ms: u64,
    pub title: String,
}

/// Chapters: the start, screen shares starting and ending, participants coming on and off
/// stage.
pub fn chapters(events: &[TimedEvent], spans: &[VideoSpan], cuts: &Cuts) -> Vec<Chapter> {
    let mut out = vec![Chapter {
        at_ms: 0,
        title: "Lesson".into(),
    }];
    for span in spans.iter().filter(|s| s.source == TrackSource::Screen) {
        let who = if span.name.is_empty() {
            String::new()
        } else {
            format!(" by {}", span.name)
        };
        out.push(Chapter {
            at_ms: span.from_ms as u64,
            title: format!("Screen share{who}"),
        });
        if span.to_ms + 500.0 < cuts.duration_ms() {
            out.push(Chapter {
                at_ms: span.to_ms as u64,
                title: "Screen share ended".into(),
            });
        }
    }
    let mut on_stage: HashMap<ParticipantId, bool> = HashMap::new();
    for e in events {
        let participants = match &e.event {
            Event::Participants { participants } => participants.clone(),
            Event::Room {
                message:
                    ServerMessage::ParticipantJoined { participant }
                    | ServerMessage::ParticipantUpdated { participant },
            } => vec![participant.clone()],
            _ => continue,
        };
        for p in participants {
            let before = on_stage.insert(p.id, p.on_stage);
            let changed = before.is_some_and(|b| b != p.on_stage);
            if changed && p.role == ParticipantRole::Student {
                let what = if p.on_stage { "on stage" } else { "off stage" };
                out.push(Chapter {
                    at_ms: cuts.replay_ms_clamped(e.t_ms as f64) as u64,
                    title: format!("{} {what}", p.name),
                });
            }
        }
    }
    out.sort_by_key(|c| c.at_ms);
    out
}

/// One chat message on the replay's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub at_ms: u64,
    pub name: String,
    pub text: String,
}

pub fn chat(events: &[TimedEvent], cuts: &Cuts) -> Vec<ChatLine> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Room {
                message: ServerMessage::Chat { message },
            } => Some(ChatLine {
                at_ms: cuts.replay_ms_clamped(e.t_ms as f64) as u64,
                name: message.name.clone(),
                text: message.text.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The chat as a WebVTT text track.
pub fn webvtt(lines: &[ChatLine]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n<v {}>{}\n\n",
            i + 1,
            vtt_time(line.at_ms),
            vtt_time(line.at_ms + CHAT_CUE_MS),
            escape(&line.name.replace('>', "")),
            escape(&line.text).replace("\n\n", "\n"),
        ));
    }
    out
}

fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("-->", "--&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64, event: Event) -> TimedEvent {
        TimedEvent { t_ms, event }
    }

    #[test]
    fn pauses_are_cut_out() {
        let events = [
            at(1000, Event::Paused),
            at(4000, Event::Resumed),
            at(9000, Event::Stopped { recovered: false }),
        ];
        let cuts = Cuts::from_events(&events);
        assert_eq!(cuts.replay_ms(500.0), Some(500.0));
        assert_eq!(cuts.replay_ms(2000.0), None);
        assert_eq!(cuts.replay_ms(5000.0), Some(2000.0));
        assert_eq!(cuts.replay_ms(9500.0), None);
        assert_eq!(cuts.duration_ms(), 6000.0);
        assert_eq!(cuts.replay_ms_clamped(2000.0), 1000.0);
        assert!(cuts.resumes_between(3000.0, 4100.0));
        let stopped_paused = Cuts::from_events(&[
            at(1000, Event::Paused),
            at(3000, Event::Stopped { recovered: true }),
        ]);
        assert_eq!(stopped_paused.duration_ms(), 1000.0);
    }

    #[test]
    fn frames_follow_their_clock_anchored_to_the_least_delayed_arrival() {
        let frame = |timestamp: i64, arrival_ms: u64| Frame {
            timestamp,
            arrival_us: arrival_ms * 1000,
            keyframe: true,
            data: vec![],
        };
        // 20 ms apart by the clock; the first arrived 30 ms late. Then the sender restarts
        // its clock (a source switch): a new run.
        let frames = [
            frame(0, 130),
            frame(960, 120),
            frame(1920, 141),
            frame(500_000, 200),
            frame(500_960, 220),
        ];
        assert_eq!(
            place(&frames, 48_000),
            vec![100.0, 120.0, 140.0, 200.0, 220.0]
        );
    }

    #[test]
    fn the_main_view_prefers_screen_then_teacher_and_switches_as_live() {
        let span = |track, source, role, from_ms, to_ms| VideoSpan {
            track,
            source,
            role: Some(role),
            name: String::new(),
            from_ms,
            to_ms,
        };
        let spans = [
            span(1, TrackSource::Camera, ParticipantRole::Teacher, 0.0, 100.0),
            span(2, TrackSource::Camera, ParticipantRole::Student, 10.0, 90.0),
            span(3, TrackSource::Screen, ParticipantRole::Teacher, 30.0, 60.0),
        ];
        let shots = main_view(&spans, 120.0);
        let summary: Vec<(u64, f64, f64)> = shots
            .iter()
            .map(|s| (s.track, s.from_ms, s.to_ms))
            .collect();
        assert_eq!(
            summary,
            vec![(1, 0.0, 30.0), (3, 30.0, 60.0), (1, 60.0, 100.0)]
        );
    }

    #[test]
    fn chat_becomes_webvtt_safely() {
        let lines = [ChatLine {
            at_ms: 61_500,
            name: "Ann".into(),
            text: "a <b> & --> c".into(),
        }];
        assert_eq!(
            webvtt(&lines),
            "WEBVTT\n\n1\n00:01:01.500 --> 00:01:07.500\n<v Ann>a &lt;b&gt; &amp; --&gt; c\n\n"
        );
    }
}
