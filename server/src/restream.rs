//! Restream wiring: while a lesson is live and has destinations, an in-process subscriber of
//! its room feeds a [`classroom_rtmp::restream::Restream`] with the main view and the voices,
//! chosen again whenever a track starts or ends and twice a second (a screen share's source is
//! learnt from signaling shortly after its track starts). Destination states go to the
//! [`RestreamBoard`] (API, metrics). The restream stops when the lesson ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use classroom_courses::Store;
use classroom_courses::restream::{
    Destination, DestinationId, DestinationState, DestinationStatus, RestreamBoard,
};
use classroom_media::driver::{LocalSubscription, MediaHandle};
use classroom_media::{Codec, LocalEvent, LocalTrackId, Mid, PeerId, TrackKind};
use classroom_protocol::outbound::{BadNetwork, OutboundPolicy};
use classroom_protocol::{LessonId, ParticipantRole, RoomName, TrackSource};
use classroom_rtmp::restream::select::{VideoCandidate, VideoSource, main_view};
use classroom_rtmp::restream::{
    Control, MediaPacket, Notice, PushState, PushTarget, PushTls, Restream, RestreamConfig,
    RetryPolicy, TlsSetupError, TrackRef, VideoCodec,
};
use classroom_signaling::{LessonEffect, RoomEvent, Rooms};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::Overflow;

/// `[restream]`: pushing live lessons to third-party live services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestreamSettings {
    /// The ffmpeg to transcode with; empty: `ffmpeg` from PATH.
    pub ffmpeg: String,
    /// Size of transcoded video (H.264 from an encoder passes through at its own size).
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    /// A destination that fails is retried after this delay, doubling up to the maximum.
    pub retry_first_delay_ms: u64,
    pub retry_max_delay_secs: u64,
    /// Failures in a row before a destination is given up (until the next live lesson).
    pub retry_max_failures: u32,
    /// A destination live this long has its failures forgotten.
    pub retry_reset_after_secs: u64,
    /// A PEM file of CA certificates trusted for `rtmps://` destinations on top of Mozilla's
    /// roots (a school's own media server with a private CA); empty: none.
    pub extra_ca_file: String,
    /// Networks (CIDRs) destinations may resolve to besides public addresses, such as a
    /// school's own media server on `10.0.5.0/24`; empty: public addresses only.
    pub allowed_networks: Vec<String>,
}

impl Default for RestreamSettings {
    fn default() -> Self {
        RestreamSettings {
            ffmpeg: String::new(),
            width: 1280,
            height: 720,
            video_kbps: 2500,
            audio_kbps: 128,
            retry_first_delay_ms: 1000,
            retry_max_delay_secs: 30,
            retry_max_failures: 10,
            retry_reset_after_secs: 60,
            extra_ca_file: String::new(),
            allowed_networks: Vec::new(),
        }
    }
}

impl RestreamSettings {
    /// The addresses destinations may resolve to (checked when added and at every connect).
    pub fn outbound(&self) -> Result<OutboundPolicy, BadNetwork> {
        OutboundPolicy::new(&self.allowed_networks)
    }

    fn to_config(&self, outbound: Arc<OutboundPolicy>) -> Result<RestreamConfig, TlsSetupError> {
        let extra_ca = Some(Path::new(&self.extra_ca_file)).filter(|p| !p.as_os_str().is_empty());
        Ok(RestreamConfig {
            ffmpeg: if self.ffmpeg.is_empty() {
                PathBuf::from("ffmpeg")
            } else {
                PathBuf::from(&self.ffmpeg)
            },
            width: self.width.max(16) & !1,
            height: self.height.max(16) & !1,
            video_kbps: self.video_kbps.max(100),
            audio_kbps: self.audio_kbps.max(32),
            retry: RetryPolicy {
                first_delay: Duration::from_millis(self.retry_first_delay_ms.max(10)),
                max_delay: Duration::from_secs(self.retry_max_delay_secs.max(1)),
                max_failures: self.retry_max_failures,
                reset_after: Duration::from_secs(self.retry_reset_after_secs),
            },
            tls: PushTls::new(extra_ca)?,
            outbound,
        })
    }
}

/// What the rest of the server tells the restream.
#[derive(Debug, Clone, Copy)]
enum Command {
    Live(LessonId),
    Ended(LessonId),
}

/// Tells the restream when lessons go live and end.
#[derive(Debug, Clone)]
pub struct Restreams {
    commands: mpsc::UnboundedSender<Command>,
}

impl Restreams {
    pub fn lesson_live(&self, lesson: LessonId) {
        let _ = self.commands.send(Command::Live(lesson));
    }

    pub fn lesson_ended(&self, lesson: LessonId) {
        let _ = self.commands.send(Command::Ended(lesson));
    }
}

/// The restream waits for room for lesson events: a lost start never restreams the lesson, a
/// lost end restreams it on. It needs nothing else from rooms.
pub const OVERFLOW: Overflow = Overflow::WaitFor(|e| matches!(e, RoomEvent::Lesson(_)));

/// Starts and stops lessons' restreams as they go live and end, until the dispatcher stops.
pub async fn follow_lessons(restreams: Restreams, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            RoomEvent::Lesson(LessonEffect::WentLive(lesson)) => restreams.lesson_live(lesson),
            RoomEvent::Lesson(LessonEffect::Ended(lesson)) => restreams.lesson_ended(lesson),
            _ => {}
        }
    }
}

/// What a lesson's restream needs from the server.
#[derive(Clone)]
struct Shared {
    store: Store,
    media: MediaHandle,
    rooms: Arc<Rooms>,
    board: RestreamBoard,
    config: RestreamConfig,
}

/// Starts the restream manager; `changes` is the board's "destinations changed" receiver.
pub fn start(
    settings: &RestreamSettings,
    outbound: Arc<OutboundPolicy>,
    store: Store,
    media: MediaHandle,
    rooms: Arc<Rooms>,
    board: RestreamBoard,
    changes: mpsc::UnboundedReceiver<LessonId>,
) -> Result<Restreams, TlsSetupError> {
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let shared = Shared {
        store,
        media,
        rooms,
        board,
        config: settings.to_config(outbound)?,
    };
    tokio::spawn(manage(shared, commands_rx, changes));
    Ok(Restreams { commands })
}

/// One task for all lessons: which are live, and the restream of each that has destinations.
async fn manage(
    shared: Shared,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut changes: mpsc::UnboundedReceiver<LessonId>,
) {
    let mut live: HashSet<LessonId> = HashSet::new();
    let mut running: HashMap<LessonId, mpsc::UnboundedSender<Vec<Destination>>> = HashMap::new();
    loop {
        let lesson = tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Live(lesson)) => {
                    live.insert(lesson);
                    lesson
                }
                Some(Command::Ended(lesson)) => {
                    live.remove(&lesson);
                    // Dropping the sender stops the lesson's restream.
                    running.remove(&lesson);
                    continue;
                }
                None => return,
            },
            Some(lesson) = changes.recv() => lesson,
        };
        if !live.contains(&lesson) {
            continue;
        }
        let destinations = match shared.store.destinations(lesson).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%lesson, error = %e, "cannot read the restream destinations");
                continue;
            }
        };
        if destinations.is_empty() {
            running.remove(&lesson);
            continue;
        }
        if let Some(updates) = running.get(&lesson)
            && updates.send(destinations.clone()).is_ok()
        {
            continue;
        }
        let (updates, updates_rx) = mpsc::unbounded_channel();
        let _ = updates.send(destinations);
        running.insert(lesson, updates);
        tokio::spawn(run_lesson(shared.clone(), lesson, updates_rx));
    }
}

/// A track of the room as the restream sees it.
struct Track {
    publisher: PeerId,
    mid: Mid,
    kind: TrackKind,
    /// Known from its first packet.
    codec: Option<Codec>,
}

/// The restream of one live lesson, until its destinations are all gone or it ends.
async fn run_lesson(
    shared: Shared,
    lesson: LessonId,
    mut updates: mpsc::UnboundedReceiver<Vec<Destination>>,
) {
    let peer = classroom_media::local::next_local_peer();
    let room = RoomName::for_lesson(lesson);
    let mut subscription = match shared.media.add_local_subscriber(peer, room).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%lesson, error = ?e, "the restream cannot subscribe to the lesson");
            return;
        }
    };
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let restream = Restream::start(shared.config.clone(), notices_tx);
    let mut lesson_state = LessonRestream {
        shared: &shared,
        restream,
        tracks: BTreeMap::new(),
        main: None,
        voices: Vec::new(),
        destinations: Vec::new(),
        restarts: HashMap::new(),
    };
    tracing::info!(%lesson, "restream started");
    let mut reselect = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some(destinations) if !destinations.is_empty() => {
                    lesson_state.set_destinations(destinations);
                }
                // The lesson ended, or its last destination was removed.
                _ => break,
            },
            event = subscription.recv() => match event {
                Some(event) => lesson_state.event(event),
                None => break,
            },
            Some(notice) = notices.recv() => lesson_state.notice(notice, &subscription),
            _ = reselect.tick() => lesson_state.reselect(),
        }
    }
    for id in &lesson_state.destinations {
        shared.board.clear(*id);
    }
    tracing::info!(%lesson, "restream stopped");
}

struct LessonRestream<'a> {
    shared: &'a Shared,
    restream: Restream,
    tracks: BTreeMap<LocalTrackId, Track>,
    main: Option<(TrackRef, VideoCodec)>,
    voices: Vec<TrackRef>,
    destinations: Vec<DestinationId>,
    restarts: HashMap<u64, u64>,
}

impl LessonRestream<'_> {
    fn set_destinations(&mut self, destinations: Vec<Destination>) {
        let ids: Vec<DestinationId> = destinations.iter().map(|d| d.id).collect();
        for gone in self.destinations.iter().filter(|id| !ids.contains(id)) {
            self.shared.board.clear(*gone);
        }
        self.destinations = ids;
        let targets = destinations
            .into_iter()
            .map(|d| {
                let target = PushTarget {
                    host: d.url.host().to_owned(),
                    port: d.url.port(),
                    app: d.url.app().to_owned(),
                    url: d.url.as_str().to_owned(),
                    stream_key: d.stream_key.expose().to_owned(),
                    tls: d.url.tls(),
                };
                (d.id.0 as u64, target)
            })
            .collect();
        self.restream.control(Control::Destinations(targets));
    }

    fn event(&mut self, event: LocalEvent) {
        match event {
            LocalEvent::TrackStarted {
                track,
                publisher,
                mid,
                kind,
            } => {
                self.tracks.insert(
                    track,
                    Track {
                        publisher,
                        mid,
                        kind,
                        codec: None,
                    },
                );
            }
            LocalEvent::TrackEnded { track } => {
                self.tracks.remove(&track);
                self.reselect();
            }
            LocalEvent::Packet {
                track,
                codec,
                arrival,
                packet,
            } => {
                if let Some(t) = self.tracks.get_mut(&track)
                    && t.codec.is_none()
                {
                    t.codec = Some(codec);
                    self.reselect();
                }
                let reference = TrackRef(track.0);
                let chosen = self.main.is_some_and(|(t, _)| t == reference)
                    || self.voices.contains(&reference);
                if chosen {
                    self.restream.packet(
                        reference,
                        MediaPacket {
                            seq_no: packet.seq_no,
                            timestamp: packet.timestamp,
                            marker: packet.marker,
                            payload: packet.payload,
                            arrival,
                        },
                    );
                }
            }
        }
    }

    /// Chooses the main view and the voices again; tells the restream what changed.
    fn reselect(&mut self) {
        let mut candidates = Vec::new();
        let mut codecs = HashMap::new();
        let mut voices = Vec::new();
        for (id, track) in &self.tracks {
            let reference = TrackRef(id.0);
            match (track.kind, track.codec) {
                (TrackKind::Audio, Some(Codec::Opus)) => voices.push(reference),
                (TrackKind::Video, Some(codec)) => {
                    let codec = match codec {
                        Codec::Vp8 => VideoCodec::Vp8,
                        Codec::H264 { .. } => VideoCodec::H264,
                        // Not shown: only VP8 and H.264 are transcoded or passed through.
                        _ => continue,
                    };
                    codecs.insert(reference, codec);
                    let (source, teacher) = self.source(track);
                    candidates.push(VideoCandidate {
                        track: reference,
                        source,
                        teacher,
                    });
                }
                _ => {}
            }
        }
        let main = main_view(&candidates).and_then(|t| Some((t, *codecs.get(&t)?)));
        if main != self.main {
            self.main = main;
            self.restream.control(Control::MainView(main));
        }
        if voices != self.voices {
            self.voices = voices.clone();
            self.restream.control(Control::Voices(voices));
        }
    }

    /// What a video track shows, from what its publisher declared in signaling. A publisher
    /// signaling does not know is in-process: the RTMP encoder.
    fn source(&self, track: &Track) -> (VideoSource, bool) {
        match self
            .shared
            .rooms
            .track_source(track.publisher, track.mid.as_str())
        {
            None => (VideoSource::Encoder, true),
            Some((role, source)) => {
                let teacher = role == ParticipantRole::Teacher;
                let source = match source {
                    Some(TrackSource::Screen) => VideoSource::Screen,
                    Some(TrackSource::Encoder) => VideoSource::Encoder,
                    _ => VideoSource::Camera,
                };
                (source, teacher)
            }
        }
    }

    fn notice(&mut self, notice: Notice, subscription: &LocalSubscription) {
        match notice {
            Notice::Status(status) => {
                let (state, reason) = match status.state {
                    PushState::Connecting => (DestinationState::Connecting, None),
                    PushState::Live => (DestinationState::Live, None),
                    PushState::Retrying(reason) => (DestinationState::Retrying, Some(reason)),
                    PushState::Failed(reason) => (DestinationState::Failed, Some(reason)),
                };
                let previous = self.restarts.insert(status.destination, status.restarts);
                if previous.is_some_and(|p| status.restarts > p) {
                    self.shared.board.count_restart();
                }
                let id = DestinationId(status.destination as i64);
                // A destination removed meanwhile stays off the board.
                if self.destinations.contains(&id) {
                    self.shared.board.set(
                        id,
                        DestinationStatus {
                            state,
                            reason,
                            restarts: status.restarts,
                        },
                    );
                }
            }
            Notice::KeyframeWanted(track) => {
                if let Some(t) = self.tracks.get(&LocalTrackId(track.0)) {
                    subscription.request_keyframe(t.publisher, t.mid.clone());
                }
            }
            Notice::TranscoderFailed(message) => {
                tracing::warn!(%message, "restream transcoder");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_file_that_cannot_be_read_stops_the_server_with_the_reason() {
        let settings = RestreamSettings {
            extra_ca_file: "/nonexistent/ca.pem".into(),
            ..RestreamSettings::default()
        };
        let error = settings
            .to_config(Arc::default())
            .map(drop)
            .expect_err("refused");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        assert!(
            RestreamSettings::default()
                .to_config(Arc::default())
                .is_ok(),
            "no file: roots only"
        );
    }
}
