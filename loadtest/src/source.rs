//! What a publisher sends and when: the clips cut into RTP payloads on a schedule (Opus every
//! 20 ms, VP8 at the clip's frame rate), looped, with a keyframe restart on request. Sans-IO:
//! [`TrackSource::due`] takes the time and returns the packets to write; the peer driver
//! stamps and encrypts them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_codec::vp8::{self, Vp8Payload};

use crate::clip::Clips;

/// Largest VP8 payload per packet, leaving room for headers, SRTP and extensions in 1200 bytes.
const MAX_VP8_PAYLOAD: usize = 1100;
/// At most one keyframe restart per this interval, however many PLIs arrive; a request within
/// it is served when it ends (as browsers' encoders throttle, without forgetting a request).
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// One RTP packet to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPacket {
    /// Index of the simulcast layer (0 for audio and single-layer video).
    pub layer: usize,
    /// Extended sequence number of this stream.
    pub seq: u64,
    /// RTP timestamp (90 kHz video, 48 kHz audio).
    pub rtp_time: u32,
    pub marker: bool,
    pub keyframe: bool,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// Per-layer sending state.
#[derive(Debug)]
struct LayerState {
    seq: u64,
    picture_id: u16,
}

/// One sending track (audio, or video with one or more simulcast layers).
#[derive(Debug)]
pub struct TrackSource {
    pub kind: TrackKind,
    clips: Arc<Clips>,
    /// Video: indexes into `clips.layers` that this track sends.
    layers: Vec<usize>,
    state: Vec<LayerState>,
    start: Instant,
    /// Frames sent so far; frame `n` is due at `start + n * period`.
    frames: u64,
    /// Position in the clip (restarts at 0 on a keyframe request).
    position: usize,
    last_restart: Option<Instant>,
    /// A keyframe was asked for within the interval: restart once it has passed.
    restart_pending: bool,
}

impl TrackSource {
    pub fn audio(clips: Arc<Clips>, start: Instant) -> TrackSource {
        TrackSource::new(TrackKind::Audio, clips, vec![0], start)
    }

    /// Video sending these layers (indexes into the clips, lowest first), one RTP stream each.
    pub fn video(clips: Arc<Clips>, layers: Vec<usize>, start: Instant) -> TrackSource {
        TrackSource::new(TrackKind::Video, clips, layers, start)
    }

    fn new(kind: TrackKind, clips: Arc<Clips>, layers: Vec<usize>, start: Instant) -> Self {
        let state = layers
            .iter()
            .enumerate()
            .map(|(i, _)| LayerState {
                // Random-looking but fixed starting points, different per layer.
                seq: 1000 + 7919 * i as u64,
                picture_id: (i as u16).wrapping_mul(3001) & 0x7FFF,
            })
            .collect();
        TrackSource {
            kind,
            clips,
            layers,
            state,
            start,
            frames: 0,
            position: 0,
            last_restart: None,
            restart_pending: false,
        }
    }

    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    fn period(&self) -> Duration {
        match self.kind {
            TrackKind::Audio => Duration::from_millis(20),
            TrackKind::Video => {
                let fps = self
                    .layers
                    .first()
                    .and_then(|&l| self.clips.layers.get(l))
                    .map_or(30.0, |l| l.clip.fps);
                Duration::from_secs_f64(1.0 / fps.clamp(1.0, 120.0))
            }
        }
    }

    fn clip_len(&self) -> usize {
        match self.kind {
            TrackKind::Audio => self.clips.audio.len(),
            TrackKind::Video => self
                .layers
                .iter()
                .filter_map(|&l| self.clips.layers.get(l))
                .map(|l| l.clip.frames.len())
                .min()
                .unwrap_or(0),
        }
    }

    /// Starts the schedule over at `now` from the clip's first frame (a keyframe); sequence
    /// numbers and RTP timestamps continue.
    pub fn restart_at(&mut self, now: Instant) {
        self.start = now
            .checked_sub(self.period() * self.frames as u32)
            .unwrap_or(now);
        self.position = 0;
    }

    /// When the next frame is due.
    pub fn next_due(&self) -> Instant {
        self.start + self.period() * self.frames as u32
    }

    /// A receiver asked for a keyframe: restart the clip at its first frame (a keyframe in
    /// every layer), at most once per [`KEYFRAME_MIN_INTERVAL`].
    pub fn keyframe_requested(&mut self, now: Instant) {
        if self.kind == TrackKind::Video && self.clips.keyframe_restarts {
            self.restart_pending = true;
            self.restart_if_allowed(now);
        }
    }

    fn restart_if_allowed(&mut self, now: Instant) {
        let allowed = self
            .last_restart
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_MIN_INTERVAL);
        if self.restart_pending && allowed {
            self.restart_pending = false;
            self.last_restart = Some(now);
            self.position = 0;
        }
    }

    /// The packets of every frame due by `now`. After a stall (a slow machine) frames due long
    /// ago are skipped rather than sent in a burst.
    pub fn due(&mut self, now: Instant, out: &mut Vec<OutPacket>) {
        let period = self.period();
        let behind = now.saturating_duration_since(self.next_due());
        if behind > period * 5 {
            self.frames += (behind.as_nanos() / period.as_nanos().max(1)) as u64;
        }
        while self.next_due() <= now {
            self.restart_if_allowed(self.next_due());
            self.frame(out);
        }
    }

    fn frame(&mut self, out: &mut Vec<OutPacket>) {
        let len = self.clip_len();
        if len == 0 {
            self.frames += 1;
            return;
        }
        let index = self.position % len;
        match self.kind {
            TrackKind::Audio => {
                let rtp_time = (self.frames * 960) as u32;
                if let (Some(packet), Some(state)) =
                    (self.clips.audio.get(index), self.state.first_mut())
                {
                    out.push(OutPacket {
                        layer: 0,
                        seq: state.seq,
                        rtp_time,
                        marker: false,
                        keyframe: false,
                        payload: packet.clone(),
                    });
                    state.seq += 1;
                }
            }
            TrackKind::Video => {
                let rtp_time =
                    (self.frames as f64 * 90_000.0 * self.period().as_secs_f64()).round() as u32;
                for (slot, &layer) in self.layers.iter().enumerate() {
                    let (Some(clip), Some(state)) =
                        (self.clips.layers.get(layer), self.state.get_mut(slot))
                    else {
                        continue;
                    };
                    let Some(frame) = clip.clip.frames.get(index) else {
                        continue;
                    };
                    vp8_packets(slot, state, rtp_time, &frame.data, frame.keyframe, out);
                }
            }
        }
        self.frames += 1;
        self.position = index + 1;
    }
}

/// Cuts one VP8 frame into RTP payloads (RFC 7741) with a 15-bit picture id, as browsers send.
fn vp8_packets(
    layer: usize,
    state: &mut LayerState,
    rtp_time: u32,
    frame: &[u8],
    keyframe: bool,
    out: &mut Vec<OutPacket>,
) {
    let pid = state.picture_id;
    let payloads = vp8::packetize(frame, pid, MAX_VP8_PAYLOAD);
    let count = payloads.len();
    for (i, payload) in payloads.enumerate() {
        out.push(OutPacket {
            layer,
            seq: state.seq,
            rtp_time,
            marker: i + 1 == count,
            keyframe,
            payload,
        });
        state.seq += 1;
    }
    state.picture_id = (pid + 1) & 0x7FFF;
}

/// What a received VP8 payload says: whether it starts a keyframe, and the frame's size when it
/// does. `None` when it is not the first packet of a frame or is malformed.
pub fn vp8_keyframe_start(payload: &[u8]) -> Option<(u16, u16)> {
    Vp8Payload::parse(payload).ok()?.keyframe_start_size()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_sends_one_packet_every_20_ms() {
        let clips = Clips::builtin().expect("clips");
        let start = Instant::now();
        let mut audio = TrackSource::audio(clips, start);
        let mut out = Vec::new();
        audio.due(start + Duration::from_millis(99), &mut out);
        assert_eq!(out.len(), 5);
        let times: Vec<u32> = out.iter().map(|p| p.rtp_time).collect();
        assert_eq!(times, vec![0, 960, 1920, 2880, 3840]);
        assert!(out.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert_eq!(audio.next_due(), start + Duration::from_millis(100));
    }

    #[test]
    fn video_frames_are_cut_marked_and_recognised_by_receivers() {
        let clips = Clips::builtin().expect("clips");
        let start = Instant::now();
        let mut video = TrackSource::video(clips, vec![0, 2], start);
        let mut out = Vec::new();
        video.due(start, &mut out);
        for layer in [0, 1] {
            let packets: Vec<&OutPacket> = out.iter().filter(|p| p.layer == layer).collect();
            assert!(
                packets
                    .iter()
                    .all(|p| p.keyframe && p.payload.len() <= 1104)
            );
            assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
            assert!(packets.last().is_some_and(|p| p.marker));
            let size = vp8_keyframe_start(&packets[0].payload);
            assert_eq!(
                size,
                Some(if layer == 0 { (320, 180) } else { (1280, 720) })
            );
            assert!(
                packets[1..]
                    .iter()
                    .all(|p| vp8_keyframe_start(&p.payload).is_none())
            );
        }
        // The next frame is a delta frame, a keyframe request restarts the clip.
        out.clear();
        video.due(start + Duration::from_millis(34), &mut out);
        assert!(out.iter().all(|p| !p.keyframe && p.rtp_time == 3000));
        out.clear();
        video.keyframe_requested(start + Duration::from_millis(40));
        video.due(start + Duration::from_millis(67), &mut out);
        assert!(out.iter().all(|p| p.keyframe && p.rtp_time == 6000));
        // Another request soon after is not forgotten: it is served by the first frame 500 ms
        // after the last restart (40 ms): frame 17, due at 566 ms.
        video.keyframe_requested(start + Duration::from_millis(100));
        let keyframe_times = |video: &mut TrackSource, until: u64| {
            let mut out = Vec::new();
            video.due(start + Duration::from_millis(until), &mut out);
            out.iter()
                .filter(|p| p.keyframe)
                .map(|p| p.rtp_time)
                .collect::<Vec<_>>()
        };
        assert!(keyframe_times(&mut video, 500).is_empty());
        let served = keyframe_times(&mut video, 600);
        assert!(
            !served.is_empty() && served.iter().all(|&t| t == 51_000),
            "{served:?}"
        );
    }

    #[test]
    fn a_stalled_sender_skips_rather_than_bursts() {
        let clips = Clips::builtin().expect("clips");
        let start = Instant::now();
        let mut audio = TrackSource::audio(clips, start);
        let mut out = Vec::new();
        audio.due(start + Duration::from_secs(10), &mut out);
        assert!(out.len() <= 6, "{} packets", out.len());
    }

    #[test]
    fn malformed_vp8_payloads_are_not_keyframes() {
        assert_eq!(vp8_keyframe_start(&[]), None);
        assert_eq!(vp8_keyframe_start(&[0x90]), None);
        assert_eq!(vp8_keyframe_start(&[0x90, 0x80, 0x80]), None);
        assert_eq!(
            vp8_keyframe_start(&[0x10, 0x00, 0, 0, 0x9D, 0x01, 0x2A, 1, 0, 1]),
            None
        );
        assert_eq!(
            vp8_keyframe_start(&[0x10, 0x00, 0, 0, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xB4, 0x00]),
            Some((320, 180))
        );
    }
}
