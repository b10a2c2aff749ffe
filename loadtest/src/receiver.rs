//! What a subscriber measures on each stream it receives, fed one RTP packet at a time with
//! the arrival time (sans-IO): loss, jitter, one-way latency from the publisher's
//! abs-capture-time stamp, bytes per layer, keyframes, and when the first packet and the first
//! keyframe arrived.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use crate::source::vp8_keyframe_start;
use crate::stats::{Histogram, Jitter, SeqLoss};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Audio,
    Video,
}

impl StreamKind {
    pub fn clock_rate(self) -> u32 {
        match self {
            StreamKind::Audio => 48_000,
            StreamKind::Video => 90_000,
        }
    }
}

/// One received RTP packet, as the receiver sees it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub at: Instant,
    /// Wall-clock arrival, to compare with the sender's capture time.
    pub wall: SystemTime,
    pub seq: u16,
    pub rtp_time: u32,
    /// The stream's SSRC and payload type as received (after str0m undid any RTX wrapping).
    pub ssrc: u32,
    pub pt: u8,
    /// The last packet of a video frame.
    pub marker: bool,
    pub payload: &'a [u8],
    /// Bytes on the wire for bitrate (payload plus RTP header).
    pub size: usize,
    pub capture_time: Option<SystemTime>,
}

/// The statistics of one received stream (one m-line of a subscriber).
#[derive(Debug, Clone)]
pub struct StreamStats {
    pub kind: StreamKind,
    pub loss: SeqLoss,
    pub jitter: Jitter,
    /// One-way latency in microseconds.
    pub latency_us: Histogram,
    pub packets: u64,
    /// Frames: video packets with the marker bit (a frame's last), every audio packet.
    pub frames: u64,
    pub keyframes: u64,
    /// SSRC and payload type of the last packet (a relay in a test tells streams apart by them).
    pub ssrc: u32,
    pub pt: u8,
    pub first_packet: Option<Instant>,
    pub first_keyframe: Option<Instant>,
    /// Bytes by layer: the video height of the last keyframe (0 before the first one, and
    /// for audio).
    pub bytes_by_layer: BTreeMap<u16, u64>,
    /// The video height of the last keyframe: the simulcast layer arriving now.
    pub height: u16,
    /// Origin for jitter arrival times.
    origin: Option<Instant>,
}

impl StreamStats {
    pub fn new(kind: StreamKind) -> StreamStats {
        StreamStats {
            kind,
            loss: SeqLoss::default(),
            jitter: Jitter::default(),
            latency_us: Histogram::default(),
            packets: 0,
            frames: 0,
            keyframes: 0,
            ssrc: 0,
            pt: 0,
            first_packet: None,
            first_keyframe: None,
            bytes_by_layer: BTreeMap::new(),
            height: 0,
            origin: None,
        }
    }

    pub fn packet(&mut self, arrival: Arrival<'_>) {
        let origin = *self.origin.get_or_insert(arrival.at);
        self.first_packet.get_or_insert(arrival.at);
        self.packets += 1;
        if self.kind == StreamKind::Audio || arrival.marker {
            self.frames += 1;
        }
        self.ssrc = arrival.ssrc;
        self.pt = arrival.pt;
        self.loss.packet(arrival.seq);
        let arrival_secs = arrival.at.duration_since(origin).as_secs_f64();
        self.jitter
            .packet(arrival_secs, arrival.rtp_time, self.kind.clock_rate());
        if let Some(sent) = arrival.capture_time {
            // A clock that went backwards (or another machine's clock) gives no sample.
            if let Ok(latency) = arrival.wall.duration_since(sent) {
                self.latency_us.record(latency.as_micros() as u64);
            }
        }
        if self.kind == StreamKind::Video
            && let Some((_, height)) = vp8_keyframe_start(arrival.payload)
        {
            self.keyframes += 1;
            self.height = height;
            self.first_keyframe.get_or_insert(arrival.at);
        }
        *self.bytes_by_layer.entry(self.height).or_default() += arrival.size as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stream_counts_loss_latency_keyframes_and_layers() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let key = [
            0x90, 0x80, 0x80, 0x01, 0x00, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01,
        ];
        let delta = [0x90, 0x80, 0x80, 0x02, 0x01, 0, 0];
        let mut s = StreamStats::new(StreamKind::Video);
        for (i, seq) in [10u16, 11, 13, 14].into_iter().enumerate() {
            let at = start + Duration::from_millis(33 * i as u64 + 100);
            let sent = wall + Duration::from_millis(33 * i as u64);
            s.packet(Arrival {
                at,
                wall: wall + Duration::from_millis(33 * i as u64 + 2),
                seq,
                rtp_time: 3000 * i as u32,
                ssrc: 7,
                pt: 96,
                marker: i != 0,
                payload: if i == 1 { &key } else { &delta },
                size: 100,
                capture_time: Some(sent),
            });
        }
        assert_eq!((s.packets, s.loss.lost(), s.keyframes), (4, 1, 1));
        assert_eq!((s.frames, s.ssrc, s.pt, s.height), (3, 7, 96, 360));
        assert_eq!(s.first_packet, Some(start + Duration::from_millis(100)));
        assert_eq!(s.first_keyframe, Some(start + Duration::from_millis(133)));
        assert_eq!(s.latency_us.percentile(50.0), Some(1984)); // 2 ms, bucket floor
        // One packet before the keyframe (layer unknown), three at 640x360.
        assert_eq!(s.bytes_by_layer, BTreeMap::from([(0, 100), (360, 300)]));
        assert!(s.jitter.units() < 10.0, "{}", s.jitter.units());
    }
}
