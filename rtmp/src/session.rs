//! One encoder connection, sans-IO: bytes in, bytes out, events and transcoder work out.
//!
//! The driver feeds socket bytes with [`IngestSession::handle_input`], answers key checks with
//! [`IngestSession::publish_accepted`] / [`IngestSession::publish_refused`], feeds transcoder
//! output back, and drains [`IngestSession::poll_output`]. Time is an argument; the session never
//! reads the clock except inside rml_rtmp (which stamps its own outgoing messages).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use classroom_codec::CodecError;
use classroom_codec::annexb::{split_avcc, write_annexb};
use classroom_codec::flv::{
    AacConfig, AudioTag, AvcConfig, VideoTag, parse_audio_tag, parse_video_tag,
};
use classroom_codec::h264::{
    self, AccessUnitAssembler, NAL_PPS, NAL_SPS, nal_type, with_parameter_sets,
};
use classroom_codec::opus::packet_samples;
use classroom_protocol::LessonId;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use crate::chunk_guard::{ChunkGuard, ChunkLimits};
use crate::events::{IngestEvent, IngestTrack, StreamKey, TrackKind};
use crate::media::SourceMedia;

/// What the teacher reads when the encoder sends B-frames and no transcoder is available.
pub const B_FRAMES_REFUSAL: &str = "This stream has B-frames, which browsers cannot play live, \
and the server cannot convert it (ffmpeg is not installed). In OBS, open Settings > Output > \
Streaming and set x264 options to bframes=0 (or Profile to baseline), then start streaming again.";

/// Pictures waiting in the video transcoder; beyond this it is considered stuck.
const MAX_TRANSCODER_BACKLOG: usize = 300;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The RTMP application encoders publish to (`rtmp://host/APP/KEY`).
    pub app: String,
    /// From TCP accept to an accepted publish.
    pub publish_timeout: Duration,
    /// Longest silence from a publishing encoder.
    pub idle_timeout: Duration,
    pub limits: ChunkLimits,
    /// ffmpeg can be started: B-frame video and AAC audio can be transcoded.
    pub transcoder_available: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            app: "live".to_owned(),
            publish_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            limits: ChunkLimits::default(),
            transcoder_available: true,
        }
    }
}

/// Work for the driver.
#[derive(Debug)]
pub enum SessionOutput {
    /// Bytes for the encoder, in order.
    Send(Bytes),
    /// Look the key up and answer with `publish_accepted` or `publish_refused`.
    CheckKey(StreamKey),
    Event(IngestEvent),
    /// Annex-B bytes for the video transcoder (start it on first use).
    VideoToTranscoder(Bytes),
    /// ADTS bytes for the audio transcoder (start it on first use).
    AudioToTranscoder(Bytes),
    /// Close the connection. `clean`: the encoder said it stopped (unpublish now rather than
    /// waiting for a reconnect).
    Close {
        reason: String,
        clean: bool,
    },
}

enum Phase {
    Handshake(Box<Handshake>),
    Rtmp(Box<ServerSession>),
    Closed,
}

enum VideoPath {
    Passthrough,
    /// B-frames: pictures go through ffmpeg; `started` once a keyframe went in.
    Transcode {
        started: bool,
    },
}

struct Publishing {
    lesson: LessonId,
    media: SourceMedia,
    resumed: bool,
    /// This connection sent its Publish (a resumed source is announced again, as resumed).
    announced: bool,
}

pub struct IngestSession {
    config: SessionConfig,
    phase: Phase,
    guard: ChunkGuard,
    outputs: VecDeque<SessionOutput>,
    deadline: Instant,
    pending_publish: Option<u32>,
    publishing: Option<Publishing>,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    metadata_says_video: bool,
    video_path: VideoPath,
    /// Presentation times (ms) of pictures inside the transcoder; it returns them in order.
    transcoder_pts: BinaryHeap<Reverse<i64>>,
    assembler: AccessUnitAssembler,
    transcoded_sps: Vec<Bytes>,
    transcoded_pps: Vec<Bytes>,
    audio_anchor_ms: Option<i64>,
    audio_samples: u32,
    dropped_frames: u64,
}

impl IngestSession {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        IngestSession {
            guard: ChunkGuard::new(config.limits),
            deadline: now + config.publish_timeout,
            config,
            phase: Phase::Handshake(Box::new(Handshake::new(PeerType::Server))),
            outputs: VecDeque::new(),
            pending_publish: None,
            publishing: None,
            avc: None,
            aac: None,
            metadata_says_video: true,
            video_path: VideoPath::Passthrough,
            transcoder_pts: BinaryHeap::new(),
            assembler: AccessUnitAssembler::default(),
            transcoded_sps: Vec::new(),
            transcoded_pps: Vec::new(),
            audio_anchor_ms: None,
            audio_samples: 0,
            dropped_frames: 0,
        }
    }

    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// When [`IngestSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The lesson this connection publishes to, once accepted.
    pub fn lesson(&self) -> Option<LessonId> {
        self.publishing.as_ref().map(|p| p.lesson)
    }

    /// Video pictures dropped because they could not be used (bad NAL framing, no sequence
    /// header yet, waiting for a keyframe).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// The connection ended: returns the source's media state for the registry.
    pub fn into_media(self) -> Option<(LessonId, SourceMedia)> {
        self.publishing.map(|p| (p.lesson, p.media))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline || self.is_closed() {
            return;
        }
        let reason = if self.publishing.is_some() {
            "the encoder sent nothing for too long"
        } else {
            "no publish within the time limit"
        };
        self.close(reason.to_owned(), false);
    }

    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.publishing.is_some() {
            self.deadline = now + self.config.idle_timeout;
        }
        match &mut self.phase {
            Phase::Closed => {}
            Phase::Handshake(handshake) => match handshake.process_bytes(bytes) {
                Err(e) => self.close(format!("RTMP handshake failed: {e}"), false),
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    self.send(response_bytes);
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    self.send(response_bytes);
                    match ServerSession::new(ServerSessionConfig::new()) {
                        Ok((session, results)) => {
                            self.phase = Phase::Rtmp(Box::new(session));
                            self.handle_results(results);
                            self.handle_chunks(&remaining_bytes);
                        }
                        Err(e) => self.close(format!("RTMP session failed: {e}"), false),
                    }
                }
            },
            Phase::Rtmp(_) => self.handle_chunks(bytes),
        }
    }

    fn handle_chunks(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Err(e) = self.guard.check(bytes) {
            self.close(format!("bad RTMP chunk stream: {e}"), false);
            return;
        }
        let Phase::Rtmp(session) = &mut self.phase else {
            return;
        };
        match session.handle_input(bytes) {
            Ok(results) => self.handle_results(results),
            Err(e) => self.close(format!("bad RTMP message: {e}"), false),
        }
    }

    fn handle_results(&mut self, results: Vec<ServerSessionResult>) {
        for result in results {
            if self.is_closed() {
                return;
            }
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.send(packet.bytes),
                ServerSessionResult::RaisedEvent(event) => self.handle_event(event),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    fn handle_event(&mut self, event: ServerSessionEvent) {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name == self.config.app {
                    self.accept(request_id);
                } else {
                    let reason = format!(
                        "unknown application \"{app_name}\": publish to rtmp://HOST/{}/KEY",
                        self.config.app
                    );
                    self.reject(request_id, "NetConnection.Connect.Rejected", &reason);
                    self.close(reason, false);
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                if self.pending_publish.is_some() || self.publishing.is_some() {
                    self.close("a second publish on one connection".to_owned(), false);
                    return;
                }
                self.pending_publish = Some(request_id);
                self.outputs
                    .push_back(SessionOutput::CheckKey(StreamKey::new(stream_key)));
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.close("the encoder stopped publishing".to_owned(), true);
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.metadata_says_video =
                    metadata.video_codec_id.is_some() || metadata.video_width.is_some();
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.handle_video(data, i64::from(timestamp.value)),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.handle_audio(data, i64::from(timestamp.value)),
            _ => {}
        }
    }

    /// The key belongs to `lesson` and the registry gave this connection its source.
    pub fn publish_accepted(&mut self, lesson: LessonId, mut media: SourceMedia, resumed: bool) {
        let Some(request_id) = self.pending_publish.take() else {
            return;
        };
        media.reanchor();
        self.publishing = Some(Publishing {
            lesson,
            media,
            resumed,
            announced: false,
        });
        self.accept(request_id);
    }

    /// The key matched no lesson, or the lesson already has a publisher.
    pub fn publish_refused(&mut self, lesson: Option<LessonId>, reason: String) {
        let Some(request_id) = self.pending_publish.take() else {
            return;
        };
        self.reject(request_id, "NetStream.Publish.BadName", &reason);
        self.outputs
            .push_back(SessionOutput::Event(IngestEvent::Refused {
                lesson,
                reason: reason.clone(),
            }));
        self.close(reason, false);
    }

    fn handle_video(&mut self, data: Bytes, dts_ms: i64) {
        if self.publishing.is_none() {
            return;
        }
        let frame = match parse_video_tag(&data) {
            Ok(VideoTag::SequenceHeader(config)) => {
                self.avc = Some(config);
                return;
            }
            Ok(VideoTag::Ignored) => return,
            Ok(VideoTag::Frame(frame)) => frame,
            Err(e @ (CodecError::UnsupportedVideoCodec(_) | CodecError::EnhancedRtmp(_))) => {
                self.refuse_media(e.to_string());
                return;
            }
            Err(_) => {
                self.dropped_frames += 1;
                return;
            }
        };
        let Some(avc) = &self.avc else {
            self.dropped_frames += 1;
            return;
        };
        let Ok(nal_units) = split_avcc(&frame.data, avc.nal_length_size) else {
            self.dropped_frames += 1;
            return;
        };
        if frame.composition_time_ms != 0 && matches!(self.video_path, VideoPath::Passthrough) {
            if !self.config.transcoder_available {
                self.refuse_media(B_FRAMES_REFUSAL.to_owned());
                return;
            }
            tracing::info!(lesson = ?self.lesson(), "B-frames detected: transcoding the video");
            self.video_path = VideoPath::Transcode { started: false };
        }
        let pts_ms = dts_ms + i64::from(frame.composition_time_ms);
        match &mut self.video_path {
            VideoPath::Passthrough => {
                let au = with_parameter_sets(nal_units, &avc.sps, &avc.pps);
                self.send_video(au, pts_ms);
            }
            VideoPath::Transcode { started } => {
                if !*started && !frame.keyframe {
                    self.dropped_frames += 1;
                    return;
                }
                *started = true;
                if self.transcoder_pts.len() >= MAX_TRANSCODER_BACKLOG {
                    self.close("the video transcoder does not keep up".to_owned(), false);
                    return;
                }
                self.transcoder_pts.push(Reverse(pts_ms));
                let au = with_parameter_sets(nal_units, &avc.sps, &avc.pps);
                self.outputs
                    .push_back(SessionOutput::VideoToTranscoder(write_annexb(&au)));
            }
        }
    }

    /// A NAL unit read back from the video transcoder's Annex-B output.
    pub fn handle_transcoded_nal(&mut self, nal: Bytes) {
        match nal_type(&nal) {
            Some(NAL_SPS) => self.transcoded_sps = vec![nal.clone()],
            Some(NAL_PPS) => self.transcoded_pps = vec![nal.clone()],
            _ => {}
        }
        let Some(au) = self.assembler.push(nal) else {
            return;
        };
        // Without B-frames out, pictures leave in presentation order: the smallest pending
        // presentation time is this one's.
        let Some(Reverse(pts_ms)) = self.transcoder_pts.pop() else {
            return;
        };
        let au = with_parameter_sets(au, &self.transcoded_sps, &self.transcoded_pps);
        self.send_video(au, pts_ms);
    }

    fn send_video(&mut self, au: Vec<Bytes>, pts_ms: i64) {
        let Some(publishing) = &mut self.publishing else {
            return;
        };
        let timestamp = publishing.media.video_clock.at_ms(pts_ms);
        let packets = publishing.media.video.packetize(&au, timestamp);
        let sps = au.iter().find(|n| nal_type(n) == Some(NAL_SPS)).cloned();
        if !publishing.announced {
            // Announce once the stream can be decoded: from its first keyframe.
            let Some(sps) = sps else {
                return;
            };
            self.announce(Some(profile_level_id(&sps)));
        }
        let Some(publishing) = &mut self.publishing else {
            return;
        };
        publishing.media.record_video(&packets);
        let lesson = publishing.lesson;
        for packet in packets {
            self.outputs
                .push_back(SessionOutput::Event(IngestEvent::Packet {
                    lesson,
                    track: TrackKind::Video,
                    packet,
                }));
        }
    }

    fn handle_audio(&mut self, data: Bytes, ts_ms: i64) {
        if self.publishing.is_none() || !self.config.transcoder_available {
            return;
        }
        match parse_audio_tag(&data) {
            Ok(AudioTag::SequenceHeader(config)) => self.aac = Some(config),
            Ok(AudioTag::Frame(raw)) => {
                let Some(header) = self.aac.and_then(|c| c.adts_header(raw.len())) else {
                    return;
                };
                self.audio_anchor_ms.get_or_insert(ts_ms);
                let mut adts = BytesMut::with_capacity(7 + raw.len());
                adts.put_slice(&header);
                adts.put_slice(&raw);
                self.outputs
                    .push_back(SessionOutput::AudioToTranscoder(adts.freeze()));
            }
            Err(e) => {
                // The video can go on without sound; say why there is none.
                tracing::warn!(lesson = ?self.lesson(), "audio ignored: {e}");
            }
        }
    }

    /// One Opus packet from the audio transcoder.
    pub fn handle_opus(&mut self, packet: Bytes) {
        let Some(samples) = packet_samples(&packet) else {
            return;
        };
        let Some(anchor) = self.audio_anchor_ms else {
            return;
        };
        let needs_announce = self.publishing.as_ref().is_some_and(|p| !p.media.published);
        if needs_announce {
            if self.metadata_says_video {
                // Audio waits for the video's first keyframe, which announces both tracks.
                self.audio_samples = self.audio_samples.wrapping_add(samples);
                return;
            }
            self.announce(None);
        }
        let Some(publishing) = &mut self.publishing else {
            return;
        };
        let timestamp = publishing
            .media
            .audio_clock
            .at_ticks(anchor, self.audio_samples);
        self.audio_samples = self.audio_samples.wrapping_add(samples);
        let rtp = publishing.media.audio.packetize(packet, timestamp);
        let lesson = publishing.lesson;
        self.outputs
            .push_back(SessionOutput::Event(IngestEvent::Packet {
                lesson,
                track: TrackKind::Audio,
                packet: rtp,
            }));
    }

    fn announce(&mut self, video_profile: Option<String>) {
        let aac = self.aac;
        let transcode = self.config.transcoder_available;
        let Some(publishing) = &mut self.publishing else {
            return;
        };
        let mut tracks = Vec::new();
        if let Some(profile_level_id) = video_profile {
            tracks.push(IngestTrack::H264 { profile_level_id });
        }
        if let (Some(aac), true) = (aac, transcode) {
            tracks.push(IngestTrack::Opus {
                channels: aac.channels,
            });
        }
        publishing.media.published = true;
        publishing.announced = true;
        self.outputs
            .push_back(SessionOutput::Event(IngestEvent::Publish {
                lesson: publishing.lesson,
                tracks,
                resumed: publishing.resumed,
            }));
    }

    fn refuse_media(&mut self, reason: String) {
        self.outputs
            .push_back(SessionOutput::Event(IngestEvent::Refused {
                lesson: self.lesson(),
                reason: reason.clone(),
            }));
        // The encoder will not change by itself: end the publish cleanly.
        self.close(reason, true);
    }

    fn accept(&mut self, request_id: u32) {
        let Phase::Rtmp(session) = &mut self.phase else {
            return;
        };
        match session.accept_request(request_id) {
            Ok(results) => self.handle_results(results),
            Err(e) => self.close(format!("RTMP session failed: {e}"), false),
        }
    }

    fn reject(&mut self, request_id: u32, code: &str, reason: &str) {
        let Phase::Rtmp(session) = &mut self.phase else {
            return;
        };
        if let Ok(results) = session.reject_request(request_id, code, reason) {
            self.handle_results(results);
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.outputs
                .push_back(SessionOutput::Send(Bytes::from(bytes)));
        }
    }

    fn close(&mut self, reason: String, clean: bool) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        self.outputs
            .push_back(SessionOutput::Close { reason, clean });
    }
}

/// SDP profile-level-id from an SPS NAL unit; constrained baseline 3.1 when it is too short
/// to say.
fn profile_level_id(sps: &Bytes) -> String {
    h264::profile_level_id(sps).unwrap_or_else(|| "42e01f".to_owned())
}
