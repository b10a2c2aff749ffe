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

use std::collections::HashMap;

use classroom_protocol::signal::{ParticipantId, ServerMessage};
use classroom_protocol::{ParticipantRole, TrackSource};
use serde::{Deserialize, Serialize};

use super::board::BOARD_TRACK;
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
///
/// A track's source is looked up by time, not by the last word: a track's media can start
/// before the offer that labels its m-line is answered (the label is written after the
/// track), and a later offer drops the labels of the m-lines it no longer sends on (a screen
/// share that stopped). So a track takes the label of its m-line in force when it started,
/// or else the first one given after it started.
#[derive(Debug, Default)]
pub struct Roster {
    /// track → (peer, mid, recording time it started)
    pub tracks: HashMap<u64, (u64, String, u64)>,
    /// peer → participant
    pub peers: HashMap<u64, ParticipantId>,
    /// (peer, mid) → its labels, in the order of the events file
    labels: HashMap<(u64, String), Vec<(u64, TrackSource)>>,
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
                    // A track seen again (after a resume) started the first time.
                    roster
                        .tracks
                        .entry(*track)
                        .or_insert_with(|| (*peer, mid.clone(), e.t_ms));
                }
                Event::Publisher {
                    peer,
                    participant,
                    sources,
                } => {
                    roster.peers.insert(*peer, *participant);
                    for (mid, source) in sources {
                        let labels = roster.labels.entry((*peer, mid.clone())).or_default();
                        // Every offer repeats the labels of the m-lines it keeps.
                        if labels.last().is_none_or(|(_, last)| last != source) {
                            labels.push((e.t_ms, *source));
                        }
                    }
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
        let encoder = || {
            (
                TrackSource::Encoder,
                Some(ParticipantRole::Teacher),
                "encoder".into(),
            )
        };
        let Some((peer, mid, started)) = self.tracks.get(&track) else {
            return encoder();
        };
        let Some(participant) = self.peers.get(peer) else {
            return encoder();
        };
        let labels = self
            .labels
            .get(&(*peer, mid.clone()))
            .map_or(&[][..], Vec::as_slice);
        let source = labels
            .iter()
            .rev()
            .find(|(t, _)| t <= started)
            .or_else(|| labels.first())
            .map_or(TrackSource::Camera, |(_, source)| *source);
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
    /// Higher shows first: the slides and board (the live stage's main view while shown), a
    /// screen share, then the teacher's camera or encoder, then anyone.
    fn rank(&self) -> u8 {
        if self.track == BOARD_TRACK {
            return 4;
        }
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

/// What `under` showed while `shots` showed `track`: the parts of `under`'s shots inside
/// each of `track`'s (the main view a slide took the place of, shown small in its corner).
pub fn beneath(shots: &[Shot], under: &[Shot], track: u64) -> Vec<Shot> {
    let mut out = Vec::new();
    for shot in shots.iter().filter(|s| s.track == track) {
        for below in under {
            let (from_ms, to_ms) = (below.from_ms.max(shot.from_ms), below.to_ms.min(shot.to_ms));
            if to_ms > from_ms {
                out.push(Shot {
                    track: below.track,
                    from_ms,
                    to_ms,
                });
            }
        }
    }
    out
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
        // The board, while shown, takes the main view from the screen share too; what it
        // took the place of shows in its corner.
        let mut with_board = spans.to_vec();
        with_board.push(span(
            BOARD_TRACK,
            TrackSource::Camera,
            ParticipantRole::Teacher,
            20.0,
            50.0,
        ));
        let board = main_view(&with_board, 120.0);
        let summary: Vec<(u64, f64, f64)> = board
            .iter()
            .map(|s| (s.track, s.from_ms, s.to_ms))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 0.0, 20.0),
                (BOARD_TRACK, 20.0, 50.0),
                (3, 50.0, 60.0),
                (1, 60.0, 100.0)
            ]
        );
        let corner: Vec<(u64, f64, f64)> = beneath(&board, &shots, BOARD_TRACK)
            .iter()
            .map(|s| (s.track, s.from_ms, s.to_ms))
            .collect();
        assert_eq!(corner, vec![(1, 20.0, 30.0), (3, 30.0, 50.0)]);
    }

    #[test]
    fn a_screen_share_labelled_after_its_media_started_is_a_chapter() {
        use classroom_protocol::UserId;
        use classroom_protocol::signal::ParticipantInfo;

        let teacher = ParticipantInfo {
            id: ParticipantId(1),
            user_id: UserId(1),
            name: "Tess".into(),
            role: ParticipantRole::Teacher,
            on_stage: true,
            hand_raised: false,
            muted: false,
            reconnecting: false,
        };
        let labels = |pairs: &[(&str, TrackSource)]| Event::Publisher {
            peer: 10,
            participant: ParticipantId(1),
            sources: pairs.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
        };
        let started = |track, mid: &str| Event::TrackStarted {
            track,
            peer: 10,
            mid: mid.into(),
            video: true,
        };
        let camera = ("0", TrackSource::Camera);
        let screen = ("2", TrackSource::Screen);
        let events = [
            at(
                0,
                Event::Participants {
                    participants: vec![teacher],
                },
            ),
            at(0, labels(&[camera])),
            at(0, started(1, "0")),
            // The screen's media arrives before the answer to the offer that labels it...
            at(1500, started(2, "2")),
            at(1600, labels(&[camera, screen])),
            at(3000, Event::TrackEnded { track: 2 }),
            // ...and the offer that stops it drops the label again.
            at(3100, labels(&[camera])),
            at(5000, Event::Stopped { recovered: false }),
        ];
        let cuts = Cuts::from_events(&events);
        let roster = Roster::from_events(&events);
        assert_eq!(roster.describe(1).0, TrackSource::Camera);
        assert_eq!(
            roster.describe(2),
            (
                TrackSource::Screen,
                Some(ParticipantRole::Teacher),
                "Tess".into()
            )
        );
        // An unlabelled peer is the encoder; an unlabelled m-line of a known peer a camera.
        assert_eq!(roster.describe(99).0, TrackSource::Encoder);
        let spans: Vec<VideoSpan> = [(1, 0.0, 5000.0), (2, 1500.0, 3000.0)]
            .into_iter()
            .map(|(track, from_ms, to_ms)| {
                let (source, role, name) = roster.describe(track);
                VideoSpan {
                    track,
                    source,
                    role,
                    name,
                    from_ms,
                    to_ms,
                }
            })
            .collect();
        let titles: Vec<(u64, String)> = chapters(&events, &spans, &cuts)
            .into_iter()
            .map(|c| (c.at_ms, c.title))
            .collect();
        assert_eq!(
            titles,
            vec![
                (0, "Lesson".to_string()),
                (1500, "Screen share by Tess".to_string()),
                (3000, "Screen share ended".to_string()),
            ]
        );
    }

    #[test]
    fn a_track_keeps_the_label_in_force_when_it_started() {
        let labels = |source| Event::Publisher {
            peer: 7,
            participant: ParticipantId(3),
            sources: [("1".to_string(), source)].into(),
        };
        let events = [
            at(0, labels(TrackSource::Screen)),
            at(
                100,
                Event::TrackStarted {
                    track: 4,
                    peer: 7,
                    mid: "1".into(),
                    video: true,
                },
            ),
            at(900, labels(TrackSource::Camera)),
        ];
        assert_eq!(
            Roster::from_events(&events).describe(4).0,
            TrackSource::Screen
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
