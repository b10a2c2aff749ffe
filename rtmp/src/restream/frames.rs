//! Frames from RTP payloads, for the transcoder's input: VP8 (RFC 7741) and H.264 (RFC 6184,
//! packetization mode 1) frames are reassembled from the packets of one RTP timestamp. A frame
//! with a missing packet is dropped whole; the next keyframe heals the picture.

use bytes::{BufMut, Bytes, BytesMut};
use classroom_codec::h264;
use classroom_codec::ivf::IvfHeader;
use classroom_codec::vp8::{self, Vp8Payload};

/// Largest frame accepted; a bigger one is dropped (a 4K keyframe is well below this).
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The codec of a video track the restream can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp (90 kHz).
    pub timestamp: u32,
    pub keyframe: bool,
    /// VP8: the frame as a decoder takes it. H.264: the NAL units (without start codes).
    pub data: FrameData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameData {
    Vp8(Bytes),
    H264(Vec<Bytes>),
}

/// Reassembles the frames of one track.
#[derive(Debug)]
pub struct FrameAssembler {
    codec: VideoCodec,
    timestamp: Option<u32>,
    next_seq: Option<u64>,
    payloads: Vec<Bytes>,
    size: usize,
    /// A packet of the current frame went missing: drop it.
    broken: bool,
}

impl FrameAssembler {
    pub fn new(codec: VideoCodec) -> Self {
        FrameAssembler {
            codec,
            timestamp: None,
            next_seq: None,
            payloads: Vec::new(),
            size: 0,
            broken: false,
        }
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Takes one packet; returns a frame when its last packet (marker) arrived. `lost` is set
    /// when packets went missing (a keyframe should be asked for).
    pub fn push(
        &mut self,
        seq_no: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        lost: &mut bool,
    ) -> Option<Frame> {
        if let Some(expected) = self.next_seq
            && seq_no != expected
        {
            if seq_no < expected {
                return None; // Late or duplicate.
            }
            *lost = true;
            self.broken = true;
        }
        self.next_seq = Some(seq_no + 1);
        if self.timestamp != Some(timestamp) {
            // A new frame began without the last one's marker: that one is incomplete. Packets
            // missing just before this one belonged to it, or to this frame's start, which
            // the codec checks catch.
            self.payloads.clear();
            self.size = 0;
            self.broken = false;
            self.timestamp = Some(timestamp);
        }
        self.size += payload.len();
        if self.size > MAX_FRAME_BYTES {
            self.broken = true;
        } else {
            self.payloads.push(Bytes::copy_from_slice(payload));
        }
        if !marker {
            return None;
        }
        let payloads = std::mem::take(&mut self.payloads);
        let broken = std::mem::replace(&mut self.broken, false);
        self.size = 0;
        self.timestamp = None;
        if broken {
            return None;
        }
        let frame = match self.codec {
            VideoCodec::Vp8 => vp8_frame(&payloads),
            VideoCodec::H264 => h264_frame(&payloads),
        };
        if frame.is_none() {
            *lost = true;
        }
        let (keyframe, data) = frame?;
        Some(Frame {
            timestamp,
            keyframe,
            data,
        })
    }
}

/// Strips each packet's VP8 payload descriptor and joins the rest; `None` if malformed or not
/// starting at a partition start.
fn vp8_frame(payloads: &[Bytes]) -> Option<(bool, FrameData)> {
    let mut frame = BytesMut::new();
    for (i, payload) in payloads.iter().enumerate() {
        let packet = Vp8Payload::parse(payload).ok()?;
        if i == 0 && !packet.frame_start {
            return None;
        }
        frame.put_slice(packet.data);
    }
    if frame.is_empty() {
        return None;
    }
    Some((vp8::is_keyframe(&frame), FrameData::Vp8(frame.freeze())))
}

fn h264_frame(payloads: &[Bytes]) -> Option<(bool, FrameData)> {
    let units = h264::depacketize(payloads).ok()?;
    let keyframe = units.iter().any(|u| h264::is_idr(u));
    Some((keyframe, FrameData::H264(units)))
}

/// The header of the IVF stream of VP8 frames ffmpeg reads on its stdin; timestamps in
/// milliseconds.
pub fn ivf_header() -> Bytes {
    IvfHeader {
        fourcc: *b"VP80",
        // Nominal size: the decoder takes the real one from each keyframe.
        width: 640,
        height: 480,
        rate: 1000,
        scale: 1,
        frame_count: 0, // unknown: live
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp8_packet(start: bool, body: &[u8]) -> Vec<u8> {
        // X=1 with a 15-bit picture id, S flag, partition 0.
        let mut p = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x80, 0x01];
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn vp8_frames_are_joined_and_keyframes_seen() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let mut lost = false;
        assert_eq!(
            a.push(1, 90, false, &vp8_packet(true, &[0x10, 1]), &mut lost),
            None
        );
        let frame = a
            .push(2, 90, true, &vp8_packet(false, &[2, 3]), &mut lost)
            .expect("a frame");
        assert!(frame.keyframe);
        assert_eq!(
            frame.data,
            FrameData::Vp8(Bytes::from_static(&[0x10, 1, 2, 3]))
        );
        let frame = a
            .push(3, 180, true, &vp8_packet(true, &[0x11]), &mut lost)
            .expect("a frame");
        assert!(!frame.keyframe);
        assert!(!lost);
    }

    #[test]
    fn a_frame_with_a_lost_packet_is_dropped() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let mut lost = false;
        a.push(1, 90, false, &vp8_packet(true, &[0x10]), &mut lost);
        assert_eq!(
            a.push(3, 90, true, &vp8_packet(false, &[1]), &mut lost),
            None
        );
        assert!(lost);
        // The next frame is whole again.
        assert!(
            a.push(4, 180, true, &vp8_packet(true, &[0x10]), &mut lost)
                .is_some()
        );
        // Garbage is dropped, never a panic.
        for bad in [&[][..], &[0x80], &[0x90, 0x80], &[0x90, 0x80, 0x80]] {
            let mut a = FrameAssembler::new(VideoCodec::Vp8);
            assert_eq!(a.push(1, 1, true, bad, &mut lost), None);
        }
    }

    /// Browsers' payloads are network input: random packets never panic the assembler or the
    /// passthrough tagger (a small xorshift keeps the test deterministic and dependency-free).
    #[test]
    fn random_payloads_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let mut assembler = FrameAssembler::new(codec);
            let mut tagger = classroom_codec::flv::AvcTagger::new();
            let (mut seq, mut timestamp) = (0u64, 0u32);
            for _ in 0..20_000 {
                let r = next();
                seq += r % 3;
                if r & 0x10 != 0 {
                    timestamp = timestamp.wrapping_add(3000);
                }
                let len = (next() % 40) as usize;
                let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if r & 0x20 != 0 && !payload.is_empty() {
                    payload[0] = [0x10, 24, 28, 0x67, 0x65][(r >> 8) as usize % 5];
                }
                let mut lost = false;
                let frame = assembler.push(seq, timestamp, r & 0x40 != 0, &payload, &mut lost);
                if let Some(Frame {
                    data: FrameData::H264(units),
                    keyframe,
                    ..
                }) = frame
                {
                    tagger.frame(&units, keyframe);
                }
            }
        }
    }

    #[test]
    fn h264_frames_keep_their_nal_units() {
        let mut a = FrameAssembler::new(VideoCodec::H264);
        let mut lost = false;
        // STAP-A with SPS and PPS, then an IDR slice in two FU-A fragments.
        let stap = [24, 0, 2, 0x67, 1, 0, 2, 0x68, 2];
        a.push(10, 900, false, &stap, &mut lost);
        a.push(11, 900, false, &[0x7c, 0x85, 0xaa], &mut lost);
        let frame = a
            .push(12, 900, true, &[0x7c, 0x45, 0xbb], &mut lost)
            .expect("frame");
        assert!(frame.keyframe);
        let FrameData::H264(units) = frame.data else {
            panic!("H.264");
        };
        assert_eq!(units.len(), 3);
        assert_eq!(&units[2][..], &[0x65, 0xaa, 0xbb]);
    }
}
