//! The task of one restream: frames of the main view, voices on a 20 ms clock, the two ffmpeg
//! children, and the destinations' queues (see the module above for the shape).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use classroom_codec::flv::AvcTagger;
use classroom_codec::ivf;
use classroom_codec::mkv::{self, Clusters, MkvTrack};
use classroom_codec::opus::{OPUS_SILENCE, packet_samples};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::dial::Dialer;
use super::ffmpeg::{self, Ffmpeg, FfmpegEvent};
use super::frames::{FrameAssembler, FrameData, VideoCodec, ivf_header};
use super::push::{self, Feed, PushTarget, SharedHeaders, StreamHeaders};
use super::select::assign_slots;
use super::tags::{Tag, TagKind};
use super::{Control, MediaPacket, Notice, RestreamConfig, TrackRef, VOICE_SLOTS};

/// The voices' clock steps this often.
const STEP_MILLIS: u64 = 20;
/// Voices are written this long after now: room for packets that arrive a little late.
const VOICE_DELAY_MILLIS: u64 = 60;
/// Packets kept per voice; beyond this the oldest go (the voice was far behind).
const VOICE_QUEUE: usize = 25;
/// Keyframe requests for the main view at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// A transcoder that dies this many times is given up.
const MAX_TRANSCODER_STARTS: u32 = 5;
/// RTP time and arrival time may drift apart this much before the clock is set again.
const MAX_DRIFT_MILLIS: i64 = 1_000;

pub(super) async fn run(
    config: RestreamConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut packets: mpsc::Receiver<(TrackRef, MediaPacket)>,
    notices: mpsc::UnboundedSender<Notice>,
) {
    let (output_tx, mut output) = mpsc::channel::<FfmpegEvent>(256);
    let mut pipeline = Pipeline::new(config, notices, output_tx);
    pipeline.start_mixer();
    let mut tick = tokio::time::interval(Duration::from_millis(STEP_MILLIS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = control.recv() => match message {
                Some(message) => pipeline.control(message),
                None => return,
            },
            Some((track, packet)) = packets.recv() => pipeline.packet(track, packet),
            Some(out) = output.recv() => pipeline.ffmpeg_output(out),
            _ = tick.tick() => pipeline.step_voices(),
        }
    }
}

struct Destination {
    feed: Feed,
    task: JoinHandle<()>,
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The main view being shown.
struct MainView {
    track: TrackRef,
    assembler: FrameAssembler,
    /// (RTP timestamp, lesson millis) of the frame the clock was set by.
    anchor: Option<(u32, u64)>,
    waiting_for_keyframe: bool,
    last_keyframe_request: Option<Instant>,
}

struct Voice {
    track: Option<TrackRef>,
    queue: VecDeque<Arc<[u8]>>,
    /// The voice's packets cover time up to here.
    busy_until: u64,
}

struct Pipeline {
    config: RestreamConfig,
    started: Instant,
    notices: mpsc::UnboundedSender<Notice>,
    output_tx: mpsc::Sender<FfmpegEvent>,
    next_generation: u64,
    headers: SharedHeaders,
    destinations: HashMap<u64, Destination>,

    main: Option<MainView>,
    last_video_millis: Option<u64>,
    transcoder: Option<Ffmpeg>,
    transcoder_starts: u32,
    passthrough: AvcTagger,

    voices: Vec<Voice>,
    mixer: Option<Ffmpeg>,
    mixer_starts: u32,
    mkv: Clusters,
    voice_clock: Option<u64>,
}

impl Pipeline {
    fn new(
        config: RestreamConfig,
        notices: mpsc::UnboundedSender<Notice>,
        output_tx: mpsc::Sender<FfmpegEvent>,
    ) -> Self {
        Pipeline {
            config,
            started: Instant::now(),
            notices,
            output_tx,
            next_generation: 0,
            headers: Arc::new(Mutex::new(StreamHeaders::default())),
            destinations: HashMap::new(),
            main: None,
            last_video_millis: None,
            transcoder: None,
            transcoder_starts: 0,
            passthrough: AvcTagger::new(),
            voices: (0..VOICE_SLOTS)
                .map(|_| Voice {
                    track: None,
                    queue: VecDeque::new(),
                    busy_until: 0,
                })
                .collect(),
            mixer: None,
            mixer_starts: 0,
            mkv: Clusters::new(),
            voice_clock: None,
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::MainView(view) => self.set_main_view(view),
            Control::Voices(voices) => {
                let mut slots: Vec<Option<TrackRef>> =
                    self.voices.iter().map(|v| v.track).collect();
                assign_slots(&mut slots, &voices);
                for (voice, track) in self.voices.iter_mut().zip(slots) {
                    if voice.track != track {
                        voice.track = track;
                        voice.queue.clear();
                    }
                }
            }
            Control::Destinations(targets) => self.set_destinations(targets),
        }
    }

    fn set_destinations(&mut self, targets: Vec<(u64, PushTarget)>) {
        self.destinations
            .retain(|id, _| targets.iter().any(|(t, _)| t == id));
        for (id, target) in targets {
            if self.destinations.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(push::DESTINATION_QUEUE);
            let (statuses_tx, mut statuses_rx) = mpsc::unbounded_channel();
            let notices = self.notices.clone();
            // Statuses go straight to the server.
            tokio::spawn(async move {
                while let Some(status) = statuses_rx.recv().await {
                    let _ = notices.send(Notice::Status(status));
                }
            });
            let task = tokio::spawn(push::run_destination(
                id,
                target,
                self.config.retry,
                Dialer {
                    tls: self.config.tls.clone(),
                    outbound: self.config.outbound.clone(),
                },
                rx,
                self.headers.clone(),
                statuses_tx,
            ));
            self.destinations.insert(
                id,
                Destination {
                    feed: Feed::new(tx),
                    task,
                },
            );
        }
    }

    fn set_main_view(&mut self, view: Option<(TrackRef, super::VideoCodec)>) {
        let current = self.main.as_ref().map(|m| (m.track, m.assembler.codec()));
        if current == view {
            return;
        }
        let Some((track, codec)) = view else {
            self.main = None;
            self.transcoder = None;
            return;
        };
        self.main = Some(MainView {
            track,
            assembler: FrameAssembler::new(codec),
            anchor: None,
            waiting_for_keyframe: true,
            last_keyframe_request: None,
        });
        match codec {
            VideoCodec::H264 => {
                self.transcoder = None;
                self.passthrough = AvcTagger::new();
            }
            VideoCodec::Vp8 => {
                if self.transcoder.is_none() {
                    self.start_transcoder();
                }
            }
        }
        self.want_keyframe(Instant::now());
    }

    fn want_keyframe(&mut self, now: Instant) {
        let Some(main) = self.main.as_mut() else {
            return;
        };
        let recent = main
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_REQUEST_INTERVAL);
        if !recent {
            main.last_keyframe_request = Some(now);
            let _ = self.notices.send(Notice::KeyframeWanted(main.track));
        }
    }

    fn packet(&mut self, track: TrackRef, packet: MediaPacket) {
        if self.main.as_ref().is_some_and(|m| m.track == track) {
            self.video_packet(packet);
            return;
        }
        if let Some(voice) = self.voices.iter_mut().find(|v| v.track == Some(track)) {
            if voice.queue.len() >= VOICE_QUEUE {
                voice.queue.pop_front();
            }
            voice.queue.push_back(packet.payload);
        }
    }

    fn video_packet(&mut self, packet: MediaPacket) {
        let arrival = self.millis(packet.arrival);
        let Some(main) = self.main.as_mut() else {
            return;
        };
        let mut lost = false;
        let frame = main.assembler.push(
            packet.seq_no,
            packet.timestamp,
            packet.marker,
            &packet.payload,
            &mut lost,
        );
        let skip = match &frame {
            Some(f) => main.waiting_for_keyframe && !f.keyframe,
            None => false,
        };
        if lost || skip {
            if lost {
                main.waiting_for_keyframe = true;
            }
            self.want_keyframe(packet.arrival);
        }
        let Some(frame) = frame.filter(|_| !skip) else {
            return;
        };
        let Some(main) = self.main.as_mut() else {
            return;
        };
        main.waiting_for_keyframe = false;
        // Lesson time of the frame: by its RTP time since the anchor, re-anchored when that
        // drifts too far from its arrival (the publisher restarted its clock).
        let mut millis = match main.anchor {
            Some((rtp, at)) => {
                let delta = i64::from(frame.timestamp.wrapping_sub(rtp) as i32) / 90;
                (at as i64 + delta).max(0) as u64
            }
            None => arrival,
        };
        if main.anchor.is_none() || (millis as i64 - arrival as i64).abs() > MAX_DRIFT_MILLIS {
            main.anchor = Some((frame.timestamp, arrival));
            millis = arrival;
        }
        if let Some(last) = self.last_video_millis
            && millis <= last
        {
            millis = last + 1;
        }
        self.last_video_millis = Some(millis);
        match frame.data {
            FrameData::H264(units) => {
                for body in self.passthrough.frame(&units, frame.keyframe) {
                    self.fan_out(Tag {
                        kind: TagKind::Video,
                        millis,
                        body,
                    });
                }
            }
            FrameData::Vp8(data) => {
                // A frame is at most a few MiB (the assembler's bound): it fits IVF's size field.
                let fed = ivf::frame(&data, millis)
                    .is_ok_and(|f| self.transcoder.as_ref().is_some_and(|t| t.feed(f)));
                if !fed {
                    if let Some(main) = self.main.as_mut() {
                        main.waiting_for_keyframe = true;
                    }
                    self.want_keyframe(packet.arrival);
                }
            }
        }
    }

    /// Writes every voice up to `now - VOICE_DELAY`, 20 ms at a time: its next packet, or
    /// silence when it has none (muted, no voice in the slot, or a packet lost).
    fn step_voices(&mut self) {
        let now = self.millis(Instant::now());
        let Some(target) = now.checked_sub(VOICE_DELAY_MILLIS) else {
            return;
        };
        let clock = *self.voice_clock.get_or_insert(target);
        let mut clock = clock.max(target.saturating_sub(1_000)); // after a stall, skip ahead
        let mut out = Vec::new();
        while clock <= target {
            for (slot, voice) in self.voices.iter_mut().enumerate() {
                if voice.busy_until > clock {
                    continue;
                }
                let (packet, millis): (Arc<[u8]>, u64) = match voice.queue.pop_front() {
                    Some(p) => {
                        let samples = packet_samples(&p).unwrap_or(960);
                        let millis = u64::from(samples / 48).max(STEP_MILLIS);
                        (p, millis)
                    }
                    None => (Arc::from(&OPUS_SILENCE[..]), STEP_MILLIS),
                };
                // One piece per block: a lagging mixer loses whole blocks.
                let mut block = Vec::with_capacity(packet.len() + 16);
                // Slots are few (VOICE_SLOTS): the track number fits its byte.
                let track = (slot + 1) as u8;
                self.mkv.block(&mut block, track, clock, true, &packet);
                out.push(Bytes::from(block));
                voice.busy_until = clock + millis;
            }
            clock += STEP_MILLIS;
        }
        self.voice_clock = Some(clock);
        if let Some(mixer) = &self.mixer {
            for piece in out {
                // A mixer that lags loses audio, not the lesson.
                let _ = mixer.feed(piece);
            }
        }
    }

    fn start_mixer(&mut self) {
        if self.mixer_starts >= MAX_TRANSCODER_STARTS {
            return;
        }
        self.mixer_starts += 1;
        self.mkv = Clusters::new();
        let args = ffmpeg::mixer_args(VOICE_SLOTS, self.config.audio_kbps);
        self.mixer = self.spawn(&args);
        if let Some(mixer) = &self.mixer {
            let voices = [MkvTrack::Opus; VOICE_SLOTS];
            mixer.feed(Bytes::from(mkv::header("classroom restream", &voices)));
        }
    }

    fn start_transcoder(&mut self) {
        if self.transcoder_starts >= MAX_TRANSCODER_STARTS {
            return;
        }
        self.transcoder_starts += 1;
        let args = ffmpeg::video_args(
            self.config.width,
            self.config.height,
            self.config.video_kbps,
        );
        self.transcoder = self.spawn(&args);
        if let Some(transcoder) = &self.transcoder {
            transcoder.feed(ivf_header());
        }
        if let Some(main) = self.main.as_mut() {
            main.waiting_for_keyframe = true;
        }
        let mut headers = self
            .headers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        headers.width = Some(self.config.width);
        headers.height = Some(self.config.height);
    }

    fn spawn(&mut self, args: &[String]) -> Option<Ffmpeg> {
        self.next_generation += 1;
        match Ffmpeg::spawn(
            &self.config.ffmpeg,
            args,
            self.next_generation,
            self.output_tx.clone(),
        ) {
            Ok(child) => Some(child),
            Err(e) => {
                let _ = self.notices.send(Notice::TranscoderFailed(format!(
                    "ffmpeg could not start: {e}"
                )));
                None
            }
        }
    }

    fn ffmpeg_output(&mut self, output: FfmpegEvent) {
        match output {
            FfmpegEvent::Tag(tag) => self.fan_out(tag),
            FfmpegEvent::Ended { generation, error } => {
                if self
                    .mixer
                    .as_ref()
                    .is_some_and(|m| m.generation == generation)
                {
                    let _ = self
                        .notices
                        .send(Notice::TranscoderFailed(format!("audio mixer: {error}")));
                    self.mixer = None;
                    self.start_mixer();
                } else if self
                    .transcoder
                    .as_ref()
                    .is_some_and(|t| t.generation == generation)
                {
                    let _ = self.notices.send(Notice::TranscoderFailed(format!(
                        "video transcoder: {error}"
                    )));
                    self.transcoder = None;
                    self.start_transcoder();
                    self.want_keyframe(Instant::now());
                }
            }
        }
    }

    fn fan_out(&mut self, tag: Tag) {
        if tag.is_sequence_header() {
            let mut headers = self
                .headers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match tag.kind {
                TagKind::Video => headers.video = Some(tag.clone()),
                TagKind::Audio => headers.audio = Some(tag.clone()),
            }
        }
        for destination in self.destinations.values_mut() {
            destination.feed.offer(tag.clone());
        }
    }
}
