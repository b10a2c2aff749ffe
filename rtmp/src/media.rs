//! Per-source media state that outlives one encoder connection: packetizers, RTP clocks and
//! the current GOP. Handing it to the next connection of the same lesson is what makes a
//! reconnecting encoder "resume the same source" (sequence numbers and timestamps continue).

use std::sync::{Arc, Mutex};

use classroom_codec::h264::H264Packetizer;
use classroom_codec::opus::OpusPacketizer;
use classroom_codec::rtp::{DEFAULT_MAX_PAYLOAD, RtpPacket};

use crate::gop::GopCache;

/// The media state of one lesson's encoder source.
#[derive(Debug)]
pub struct SourceMedia {
    pub(crate) video: H264Packetizer,
    pub(crate) audio: OpusPacketizer,
    pub(crate) video_clock: Timeline,
    pub(crate) audio_clock: Timeline,
    /// The SFU has been told about this source (a Publish event went out).
    pub(crate) published: bool,
    pub(crate) gop: SharedGop,
}

/// The GOP is read by whoever adds a subscriber while the connection task writes it.
pub type SharedGop = Arc<Mutex<GopCache>>;

impl SourceMedia {
    /// `seed` varies the first sequence numbers and timestamps (RFC 3550 asks for random ones).
    pub fn new(seed: u32) -> Self {
        SourceMedia {
            video: H264Packetizer::new(DEFAULT_MAX_PAYLOAD, seed as u16),
            audio: OpusPacketizer::new((seed >> 16) as u16),
            video_clock: Timeline::new(90, seed.rotate_left(7)),
            audio_clock: Timeline::new(48, seed.rotate_left(13)),
            published: false,
            gop: SharedGop::default(),
        }
    }

    pub fn gop(&self) -> SharedGop {
        self.gop.clone()
    }

    pub fn published(&self) -> bool {
        self.published
    }

    /// A new connection takes over: its timestamps start a new segment of each clock.
    pub(crate) fn reanchor(&mut self) {
        self.video_clock.reanchor();
        self.audio_clock.reanchor();
        if let Ok(mut gop) = self.gop.lock() {
            gop.clear();
        }
    }

    pub(crate) fn record_video(&self, packets: &[RtpPacket]) {
        if let Ok(mut gop) = self.gop.lock() {
            for p in packets {
                gop.push(p);
            }
        }
    }
}

/// Maps encoder timestamps (milliseconds, restarting at every connection) onto one continuous
/// RTP clock.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    ticks_per_ms: u32,
    anchor: Option<(i64, u32)>,
    next_start: u32,
    last: Option<u32>,
}

impl Timeline {
    fn new(ticks_per_ms: u32, start: u32) -> Self {
        Timeline {
            ticks_per_ms,
            anchor: None,
            next_start: start,
            last: None,
        }
    }

    /// RTP time of an encoder time in milliseconds.
    pub(crate) fn at_ms(&mut self, ms: i64) -> u32 {
        let (anchor_ms, anchor_rtp) = *self.anchor.get_or_insert((ms, self.next_start));
        let ticks = (ms - anchor_ms).wrapping_mul(i64::from(self.ticks_per_ms));
        let rtp = anchor_rtp.wrapping_add(ticks as u32);
        self.last = Some(rtp);
        rtp
    }

    /// RTP time `ticks` after the anchor (for audio counted in samples).
    pub(crate) fn at_ticks(&mut self, anchor_ms: i64, ticks: u32) -> u32 {
        let (_, anchor_rtp) = *self.anchor.get_or_insert((anchor_ms, self.next_start));
        let rtp = anchor_rtp.wrapping_add(ticks);
        self.last = Some(rtp);
        rtp
    }

    /// The next segment starts shortly after the last timestamp used, never before it.
    fn reanchor(&mut self) {
        if let Some(last) = self.last {
            // 100 ms: a gap a jitter buffer accepts, longer than any frame.
            self.next_start = last.wrapping_add(100 * self.ticks_per_ms);
        }
        self.anchor = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    #[test]
    fn timeline_continues_after_reanchor() {
        let mut t = Timeline::new(90, 1000);
        assert_eq!(t.at_ms(5000), 1000);
        assert_eq!(t.at_ms(5033), 1000 + 33 * 90);
        t.reanchor();
        // The encoder restarted its clock at 0.
        assert_eq!(t.at_ms(0), 1000 + 33 * 90 + 9000);
    }
}
