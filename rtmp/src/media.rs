//! Per-source media state that outlives one encoder connection: packetizers, RTP clocks and
//! the current GOP. Handing it to the next connection of the same lesson is what makes a
//! reconnecting encoder "resume the same source" (sequence numbers and timestamps continue).

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::gop::GopCache;
use crate::rtp::{DEFAULT_MAX_PAYLOAD, H264Packetizer, OpusPacketizer, RtpPacket};

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

/// Groups NAL units read back from an Annex-B stream into access units (pictures), with the
/// rules of H.264 7.4.1.2.3: a picture ends where an AUD, SEI, SPS or PPS follows a slice, or a
/// slice whose first_mb_in_slice is 0.
#[derive(Debug, Default)]
pub(crate) struct AccessUnitAssembler {
    pending: Vec<Bytes>,
    has_slice: bool,
}

impl AccessUnitAssembler {
    /// Adds a NAL unit; returns the previous access unit if this one starts a new one.
    pub(crate) fn push(&mut self, nal: Bytes) -> Option<Vec<Bytes>> {
        let kind = nal.first().map(|b| b & 0x1f).unwrap_or(0);
        let is_slice = kind == 1 || kind == 5;
        // first_mb_in_slice is ue(v): a leading 1 bit encodes 0.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = self.has_slice && (first_slice || matches!(kind, 6..=9));
        let done = if starts_new {
            self.has_slice = false;
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        };
        // Access unit delimiters are not forwarded: RTP marks picture ends itself.
        if kind != 9 {
            self.pending.push(nal);
        }
        self.has_slice |= is_slice;
        done
    }
}

/// NAL unit type of H.264.
pub(crate) fn nal_type(nal: &Bytes) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}

pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;

/// Puts the parameter sets in front of an IDR access unit that lacks them: browsers decode
/// nothing without in-band SPS/PPS (they never see the RTMP sequence header).
pub(crate) fn with_parameter_sets(au: Vec<Bytes>, sps: &[Bytes], pps: &[Bytes]) -> Vec<Bytes> {
    let is_idr = au.iter().any(|n| nal_type(n) == NAL_IDR);
    let has_sps = au.iter().any(|n| nal_type(n) == NAL_SPS);
    if !is_idr || has_sps {
        return au;
    }
    sps.iter().chain(pps).cloned().chain(au).collect()
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

    #[test]
    fn access_units_split_on_first_slices_and_parameter_sets() {
        let mut a = AccessUnitAssembler::default();
        let sps = Bytes::from_static(&[0x67, 1]);
        let idr = Bytes::from_static(&[0x65, 0x88]);
        let idr2 = Bytes::from_static(&[0x65, 0x40]);
        let p = Bytes::from_static(&[0x41, 0x9a]);
        assert_eq!(a.push(Bytes::from_static(&[0x09, 0xf0])), None);
        assert_eq!(a.push(sps.clone()), None);
        assert_eq!(a.push(idr.clone()), None);
        assert_eq!(a.push(idr2.clone()), None);
        assert_eq!(
            a.push(Bytes::from_static(&[0x09, 0xf0])),
            Some(vec![sps, idr, idr2])
        );
        assert_eq!(a.push(p.clone()), None);
        assert_eq!(a.push(p.clone()), Some(vec![p]));
    }

    #[test]
    fn parameter_sets_go_before_idr_only() {
        let sps = [Bytes::from_static(&[0x67])];
        let pps = [Bytes::from_static(&[0x68])];
        let idr = vec![Bytes::from_static(&[0x06]), Bytes::from_static(&[0x65])];
        assert_eq!(with_parameter_sets(idr.clone(), &sps, &pps).len(), 4);
        let p = vec![Bytes::from_static(&[0x41])];
        assert_eq!(with_parameter_sets(p.clone(), &sps, &pps), p);
    }
}
