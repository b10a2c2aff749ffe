//! The current group of pictures: every video packet since the last keyframe, so that a
//! subscriber who arrives mid-stream starts decoding at once. An encoder cannot be asked for a
//! keyframe (RTMP has no feedback channel), and its keyframe interval is often several seconds.

use classroom_codec::rtp::RtpPacket;

/// Bounded: a GOP longer than this (a broken or very long keyframe interval) is dropped whole
/// and the cache waits for the next keyframe.
pub const MAX_GOP_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct GopCache {
    packets: Vec<RtpPacket>,
    bytes: usize,
    overflowed: bool,
}

impl GopCache {
    /// Records a video packet: a keyframe's first packet starts a new GOP.
    pub fn push(&mut self, packet: &RtpPacket) {
        let starts_gop = packet.keyframe
            && self
                .packets
                .last()
                .is_none_or(|last| !last.keyframe || last.timestamp != packet.timestamp);
        if starts_gop {
            self.packets.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.packets.is_empty() || self.overflowed {
            // No keyframe yet to start from.
            return;
        }
        if self.bytes + packet.payload.len() > MAX_GOP_BYTES {
            self.packets.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += packet.payload.len();
        self.packets.push(packet.clone());
    }

    /// The packets from the last keyframe on, in sending order; empty before the first keyframe.
    pub fn packets(&self) -> &[RtpPacket] {
        &self.packets
    }

    pub fn clear(&mut self) {
        *self = GopCache::default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(seq: u16, ts: u32, keyframe: bool) -> RtpPacket {
        RtpPacket {
            payload: Bytes::from_static(&[1, 2, 3]),
            marker: false,
            timestamp: ts,
            sequence_number: seq,
            keyframe,
        }
    }

    #[test]
    fn keeps_packets_since_the_last_keyframe() {
        let mut gop = GopCache::default();
        gop.push(&packet(0, 0, false));
        assert!(gop.packets().is_empty());
        gop.push(&packet(1, 10, true));
        gop.push(&packet(2, 10, true));
        gop.push(&packet(3, 20, false));
        assert_eq!(gop.packets().len(), 3);
        gop.push(&packet(4, 30, true));
        let seqs: Vec<u16> = gop.packets().iter().map(|p| p.sequence_number).collect();
        assert_eq!(seqs, vec![4]);
    }
}
