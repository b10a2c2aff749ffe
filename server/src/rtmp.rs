//! The RTMP ingest inside classroomd: the listener of `classroom-rtmp`, with stream keys
//! checked against the database and each encoder published into its lesson's room.
//!
//! An encoder that starts publishing enters the room as a participant of its own (see
//! `classroom_signaling::room` for why, and why it makes the lesson live), then publishes its
//! tracks through the SFU's in-process publisher interface: H.264 with its current GOP kept
//! for late joiners, Opus. Browsers receive them like any other publication, with the source
//! `encoder`. Moderators hear of every state change and refusal (`encoder` messages).
//!
//! The SFU only forwards H.264 to a browser that offered the same profile, and Chromium
//! offers constrained baseline and main but not high (x264's and OBS's default), although it
//! decodes all three. So the track is announced as main when the stream is main, and as
//! constrained baseline otherwise, with the stream's level ([`browser_profile`]).

mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use classroom_courses::Store;
use classroom_media::driver::{LocalPublisher, MediaHandle};
use classroom_media::{Codec, LocalPacket, LocalTrack, Mid};
use classroom_protocol::signal::EncoderState;
use classroom_protocol::{AccessChange, LessonId, RoomName, UserId};
use classroom_rtmp::{
    ConnectionId, IngestConfig, IngestEvent, IngestHandle, IngestServer, IngestSink, IngestTrack,
    RtpPacket, SessionConfig, StreamKey, StreamKeys, TrackKind,
};
use classroom_signaling::{EncoderIdentity, RoomEvent, Rooms};
use sources::EncoderSources;
use tokio::sync::{mpsc, watch};

use crate::config::RtmpConfig;
use crate::events::Overflow;

const VIDEO_MID: &str = "video";
const AUDIO_MID: &str = "audio";

/// The running ingest.
#[derive(Clone)]
pub struct Ingest {
    /// The address encoders connect to (the real port when configured with port 0).
    pub addr: SocketAddr,
    pub handle: IngestHandle,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("addr", &self.addr).finish()
    }
}

/// Binds the listener and serves encoders until `shutdown` turns true.
pub async fn start(
    config: &RtmpConfig,
    store: Store,
    rooms: Arc<Rooms>,
    media: MediaHandle,
    whip: Arc<crate::whip::WhipSessions>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Ingest> {
    let ingest_config = IngestConfig {
        listen: config.addr,
        session: SessionConfig::default(),
        max_connections: config.max_connections,
        reconnect_grace: Duration::from_secs(config.reconnect_grace_secs),
        ffmpeg: Some(config.ffmpeg.as_str())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from),
    };
    let server = IngestServer::bind(ingest_config)
        .await
        .with_context(|| format!("cannot listen for RTMP encoders on {}", config.addr))?;
    let addr = server.local_addr()?;
    let handle = server.handle();
    let sink = Arc::new(LessonSink {
        rooms,
        media,
        store: store.clone(),
        ingest: handle.clone(),
        grace: config.reconnect_grace_secs,
        whip,
        encoders: Mutex::new(EncoderSources::default()),
        control: tokio::sync::Mutex::new(()),
    });
    tokio::spawn(server.run(Arc::new(StoreKeys(store)), sink, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%addr, transcoder = handle.transcoder_available(), "RTMP ingest listening");
    Ok(Ingest { addr, handle })
}

/// The URL teachers are shown for their encoder: the configured one, else derived from the
/// bound address (`{host}`, the web page's host name, for a wildcard address).
pub fn public_url(config: &RtmpConfig, bound: SocketAddr) -> String {
    if !config.public_url.is_empty() {
        return config.public_url.clone();
    }
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "{host}".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("rtmp://{host}:{}/live", bound.port())
}

/// The ingest waits for room for a lesson's end: a lost one would leave the encoder
/// publishing into an ended lesson. It needs nothing else from rooms.
pub const OVERFLOW: Overflow = Overflow::WaitFor(|e| {
    matches!(
        e,
        RoomEvent::Lesson(classroom_signaling::LessonEffect::Ended(_))
    )
});

/// Closes the encoder of each lesson that ends, until the dispatcher stops.
pub async fn follow_lessons(ingest: IngestHandle, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        if let RoomEvent::Lesson(classroom_signaling::LessonEffect::Ended(lesson)) = event {
            ingest.stop_publisher(lesson);
        }
    }
}

/// Stops the encoders whose teacher may no longer stream, when access changes: a stream key
/// is checked when an encoder connects, so one already publishing is checked again here (its
/// teacher's account disabled, the teacher taken off the course, the lesson cancelled).
pub async fn follow_access_change(ingest: &IngestHandle, store: &Store, change: &AccessChange) {
    if matches!(change, AccessChange::Readmitted { .. }) {
        return;
    }
    for lesson in ingest.publishing() {
        match store.encoder_may_stream(lesson).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%lesson, ?change, "encoder stopped: its teacher may no longer stream");
                ingest.stop_publisher(lesson);
            }
            Err(e) => {
                tracing::warn!(%lesson, error = %e, "could not re-check a streaming encoder");
            }
        }
    }
}

/// Stream keys are the database's; the secret is compared there in constant time.
struct StoreKeys(Store);

impl StreamKeys for StoreKeys {
    async fn lesson_for_key(&self, key: &StreamKey) -> Option<LessonId> {
        match self.0.lesson_for_stream_key(key.expose_secret()).await {
            Ok(lesson) => lesson,
            Err(e) => {
                tracing::warn!(error = %e, "could not look up a stream key");
                None
            }
        }
    }
}

/// Publishes each lesson's encoder into its room.
struct LessonSink {
    rooms: Arc<Rooms>,
    media: MediaHandle,
    store: Store,
    ingest: IngestHandle,
    grace: u64,
    /// The WHIP encoders: a lesson has one encoder at a time, over RTMP or WHIP.
    whip: Arc<crate::whip::WhipSessions>,
    encoders: Mutex<EncoderSources<Arc<Encoder>>>,
    /// Held while a publish, an interruption, a stop or a refusal is applied: each changes the
    /// room and the SFU across awaits, and the events of two connections to one lesson (an old
    /// one stopping, a new one publishing) must not interleave there.
    control: tokio::sync::Mutex<()>,
}

/// One lesson's encoder in the SFU.
struct Encoder {
    publisher: LocalPublisher,
    video: Option<Track>,
    audio: Option<Track>,
}

/// RTP sequence numbers extended to 64 bits, and where pictures start.
struct Track {
    mid: Mid,
    state: Mutex<TrackState>,
}

struct TrackState {
    last: Option<u64>,
    /// The previous packet ended a picture: the next one starts one.
    at_picture_start: bool,
}

impl IngestSink for LessonSink {
    async fn deliver(&self, source: ConnectionId, event: IngestEvent) {
        if let IngestEvent::Packet {
            lesson,
            track,
            packet,
        } = event
        {
            return self.packet(lesson, source, track, packet).await;
        }
        let _control = self.control.lock().await;
        match event {
            IngestEvent::Packet { .. } => {}
            IngestEvent::Publish {
                lesson,
                tracks,
                resumed,
            } => self.publish(lesson, source, tracks, resumed).await,
            IngestEvent::Interrupted { lesson } => {
                if !self.is_current(lesson, source) {
                    tracing::debug!(%lesson, %source, "a stale interruption ignored");
                    return;
                }
                let reason = format!(
                    "The encoder's connection dropped; its stream waits {} s for it to come back.",
                    self.grace
                );
                let state = EncoderState::Interrupted;
                self.rooms
                    .encoder_changed(lesson, state, Some(reason))
                    .await;
            }
            IngestEvent::Unpublish { lesson } => self.unpublish(lesson, source).await,
            IngestEvent::Refused {
                lesson: Some(lesson),
                reason,
            } => {
                // Whichever connection it comes from: a second encoder refused while the first
                // one streams is news for the teacher too.
                let state = EncoderState::Refused;
                self.rooms
                    .encoder_changed(lesson, state, Some(reason))
                    .await;
            }
            // A key that opens no lesson: nobody to tell (the driver logged it).
            IngestEvent::Refused { lesson: None, .. } => {}
        }
    }
}

impl LessonSink {
    async fn packet(
        &self,
        lesson: LessonId,
        source: ConnectionId,
        kind: TrackKind,
        packet: RtpPacket,
    ) {
        // Packets of a connection that no longer owns the lesson's encoder are dropped.
        let Some(encoder) = self.encoders.lock().ok().and_then(|e| e.of(lesson, source)) else {
            return;
        };
        let track = match kind {
            TrackKind::Video => encoder.video.as_ref(),
            TrackKind::Audio => encoder.audio.as_ref(),
        };
        let Some(track) = track else { return };
        let packet = track.local_packet(packet);
        if encoder
            .publisher
            .write(track.mid.clone(), packet)
            .await
            .is_err()
        {
            tracing::error!(%lesson, "the media driver has stopped");
        }
    }

    async fn publish(
        &self,
        lesson: LessonId,
        source: ConnectionId,
        tracks: Vec<IngestTrack>,
        resumed: bool,
    ) {
        let resumed_here = resumed
            && self
                .encoders
                .lock()
                .is_ok_and(|mut e| e.resume(lesson, source));
        if resumed_here {
            self.rooms
                .encoder_changed(lesson, EncoderState::Live, None)
                .await;
            return;
        }
        // One encoder per key: a WHIP encoder publishing to the lesson keeps it.
        if self.whip.publishing(lesson, &self.media) {
            tracing::info!(%lesson, %source, "RTMP publish refused: a WHIP encoder publishes");
            self.ingest.stop_connection(lesson, source);
            let reason = crate::whip::ENCODER_IN_USE.to_owned();
            self.rooms
                .encoder_changed(lesson, EncoderState::Refused, Some(reason))
                .await;
            return;
        }
        // An encoder of an older connection whose stop has not arrived yet goes (its stop,
        // when it comes, is stale and ignored), once the new peer is filed: the room then
        // knows the old peer's end is no news.
        let replaced = self.encoders.lock().ok().and_then(|mut e| e.clear(lesson));
        let identity = encoder_identity(&self.store, lesson).await;
        let local: Vec<LocalTrack> = tracks.iter().map(local_track).collect();
        let mids = local.iter().map(|t| t.mid.to_string()).collect();
        let started = self.rooms.encoder_started(lesson, identity, mids).await;
        drop(replaced);
        let peer = match started {
            Ok(peer) => peer,
            Err(e) => {
                tracing::info!(%lesson, "RTMP publish stopped: {e}");
                self.ingest.stop_connection(lesson, source);
                return;
            }
        };
        let added = self
            .media
            .add_local_publisher(peer, RoomName::for_lesson(lesson), local.clone(), true)
            .await;
        let publisher = match added {
            Ok(publisher) => publisher,
            Err(e) => {
                tracing::error!(%lesson, error = %e, "the SFU refused the encoder's tracks");
                self.ingest.stop_connection(lesson, source);
                let state = EncoderState::Stopped;
                let reason = "the server could not publish the stream".to_owned();
                self.rooms
                    .encoder_changed(lesson, state, Some(reason))
                    .await;
                return;
            }
        };
        let track_of = |codec_kind: classroom_media::TrackKind| {
            local
                .iter()
                .find(|t| t.codec.kind() == codec_kind)
                .map(|t| Track::new(t.mid.clone()))
        };
        let encoder = Encoder {
            video: track_of(classroom_media::TrackKind::Video),
            audio: track_of(classroom_media::TrackKind::Audio),
            publisher,
        };
        tracing::info!(%lesson, %source, ?tracks, "encoder published");
        let replaced = self
            .encoders
            .lock()
            .ok()
            .and_then(|mut e| e.publish(lesson, source, Arc::new(encoder)));
        drop(replaced);
    }

    async fn unpublish(&self, lesson: LessonId, source: ConnectionId) {
        if !self.is_current(lesson, source) {
            tracing::info!(%lesson, %source, "a stale stop ignored: a newer encoder publishes");
            return;
        }
        // The participant leaves first (its peer goes with it), then the handle is dropped:
        // the SFU publisher is removed with it.
        self.rooms
            .encoder_changed(lesson, EncoderState::Stopped, None)
            .await;
        let removed = self
            .encoders
            .lock()
            .ok()
            .and_then(|mut e| e.stop(lesson, source));
        drop(removed);
        tracing::info!(%lesson, %source, "encoder unpublished");
    }

    /// Whether `source`'s news about the lesson's encoder applies (see [`EncoderSources`]):
    /// never while a WHIP encoder publishes (the connection was refused, it owns nothing).
    fn is_current(&self, lesson: LessonId, source: ConnectionId) -> bool {
        self.encoders
            .lock()
            .is_ok_and(|e| e.is_current(lesson, source))
            && !self.whip.publishing(lesson, &self.media)
    }
}

/// The teacher who holds the lesson's stream key, named as their encoder (RTMP and WHIP
/// alike).
pub(crate) async fn encoder_identity(store: &Store, lesson: LessonId) -> EncoderIdentity {
    let owner = match store.stream_key_owner(lesson).await {
        Ok(Some(owner)) => store.user(owner).await.ok(),
        _ => None,
    };
    match owner {
        Some(user) => EncoderIdentity {
            user: user.id,
            name: format!("{} (encoder)", user.name),
        },
        None => EncoderIdentity {
            user: UserId(0),
            name: "Encoder".to_owned(),
        },
    }
}

fn local_track(track: &IngestTrack) -> LocalTrack {
    match track {
        IngestTrack::H264 { profile_level_id } => LocalTrack {
            mid: Mid::from(VIDEO_MID),
            codec: Codec::H264 {
                profile_level_id: browser_profile(profile_level_id),
            },
            // An encoder cannot be asked for a keyframe: late joiners start from the last one.
            keep_gop: true,
        },
        IngestTrack::Opus { .. } => LocalTrack {
            mid: Mid::from(AUDIO_MID),
            codec: Codec::Opus,
            keep_gop: false,
        },
    }
}

/// The profile-level-id to announce for a stream whose SPS says `sps_profile` (six hex
/// digits): main stays main, anything else becomes constrained baseline; the level is kept.
pub fn browser_profile(sps_profile: &str) -> u32 {
    const CONSTRAINED_BASELINE: u32 = 0x42e0;
    const MAIN: u32 = 0x4d00;
    let Ok(value) = u32::from_str_radix(sps_profile, 16) else {
        return (CONSTRAINED_BASELINE << 8) | 0x1f;
    };
    let (profile_idc, level) = ((value >> 16) & 0xff, value & 0xff);
    let level = if level == 0 { 0x1f } else { level };
    let profile = if profile_idc == 77 {
        MAIN
    } else {
        CONSTRAINED_BASELINE
    };
    (profile << 8) | level
}

impl Track {
    fn new(mid: Mid) -> Self {
        Track {
            mid,
            state: Mutex::new(TrackState {
                last: None,
                at_picture_start: true,
            }),
        }
    }

    /// The SFU's packet for one of ours: the sequence number extended, and `keyframe` on the
    /// first packet of a keyframe only (where the SFU's GOP cache starts).
    fn local_packet(&self, packet: RtpPacket) -> LocalPacket {
        let (seq_no, starts_picture) = match self.state.lock() {
            Ok(mut state) => {
                let seq_no = extend(state.last, packet.sequence_number);
                state.last = Some(seq_no);
                let starts = std::mem::replace(&mut state.at_picture_start, packet.marker);
                (seq_no, starts)
            }
            Err(_) => (u64::from(packet.sequence_number), false),
        };
        LocalPacket {
            seq_no,
            timestamp: packet.timestamp,
            marker: packet.marker,
            keyframe: packet.keyframe && starts_picture,
            payload: Arc::from(packet.payload.as_ref()),
        }
    }
}

/// Extends a 16-bit sequence number next to the last extended one (starting one cycle up,
/// so that a packet just before the first cannot go below zero).
fn extend(last: Option<u64>, seq: u16) -> u64 {
    match last {
        None => (1 << 16) + u64::from(seq),
        Some(last) => {
            let delta = i64::from(seq.wrapping_sub(last as u16) as i16);
            last.saturating_add_signed(delta)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_browsers_accept() {
        assert_eq!(
            browser_profile("640020"),
            0x42e020,
            "high → constrained baseline"
        );
        assert_eq!(browser_profile("4d401f"), 0x4d001f);
        assert_eq!(browser_profile("42c01e"), 0x42e01e);
        assert_eq!(browser_profile("nonsense"), 0x42e01f);
    }

    #[test]
    fn sequence_numbers_extend_across_wraps() {
        assert_eq!(extend(None, 5), 65_541);
        assert_eq!(extend(Some(65_536 + 65_535), 0), 2 * 65_536);
        assert_eq!(extend(Some(2 * 65_536), 65_535), 2 * 65_536 - 1);
    }

    #[test]
    fn keyframes_are_marked_on_their_first_packet_only() {
        let track = Track::new(Mid::from("video"));
        let packet = |seq: u16, marker: bool, keyframe: bool| RtpPacket {
            payload: bytes::Bytes::from_static(&[0x65]),
            marker,
            timestamp: 0,
            sequence_number: seq,
            keyframe,
        };
        let flags: Vec<bool> = [
            packet(1, false, true),
            packet(2, true, true),
            packet(3, true, false),
        ]
        .into_iter()
        .map(|p| track.local_packet(p).keyframe)
        .collect();
        assert_eq!(flags, [true, false, false]);
    }

    #[test]
    fn public_urls() {
        let config = RtmpConfig::default();
        let bound: SocketAddr = "0.0.0.0:1935".parse().expect("addr");
        assert_eq!(public_url(&config, bound), "rtmp://{host}:1935/live");
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(public_url(&config, bound), "rtmp://127.0.0.1:40000/live");
        let configured = RtmpConfig {
            public_url: "rtmp://cam.example/live".into(),
            ..RtmpConfig::default()
        };
        assert_eq!(public_url(&configured, bound), "rtmp://cam.example/live");
    }
}
