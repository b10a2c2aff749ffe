//! RTP payloads back into codec frames: VP8 (RFC 7741), H.264 packetization mode 1
//! (RFC 6184: single NAL units, STAP-A, FU-A; out as Annex B) and Opus (one frame per packet).
//!
//! A frame is the packets of one RTP timestamp. A frame with a missing packet (a gap in the
//! sequence numbers) is dropped, and so is every video frame after it until a keyframe: a
//! decoder fed a broken reference shows garbage, a short freeze is better.

use classroom_codec::annexb;
use classroom_codec::h264::{self, H264Depacketizer};
use classroom_codec::vp8::{self, Vp8Payload};

use crate::track_file::{TrackCodec, TrackRecord};

/// One decodable frame with the arrival of its first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Extended RTP timestamp (no wrap).
    pub timestamp: i64,
    pub arrival_us: u64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// The frames of a track's records, in order (all in memory: tests and short tracks).
pub fn frames(codec: TrackCodec, records: &[TrackRecord]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut depacketizer = Depacketizer::new(codec);
    for record in records {
        depacketizer.push(record.clone(), &mut out);
    }
    depacketizer.finish(&mut out);
    out
}

/// Turns a track's records into frames as they are read: it holds one frame being put
/// together, never the track.
pub struct Depacketizer {
    codec: TrackCodec,
    unwrap: Unwrapper,
    current: Option<Assembly>,
    need_keyframe: bool,
    last_seq: Option<u64>,
    /// An H.264 frame's NAL unit under way across FU-A fragments.
    h264: H264Depacketizer,
}

impl Depacketizer {
    pub fn new(codec: TrackCodec) -> Self {
        Depacketizer {
            codec,
            unwrap: Unwrapper::default(),
            current: None,
            need_keyframe: codec != TrackCodec::Opus,
            last_seq: None,
            h264: H264Depacketizer::new(),
        }
    }

    /// Takes the next record; frames it completes are appended to `out`.
    pub fn push(&mut self, record: TrackRecord, out: &mut Vec<Frame>) {
        let codec = self.codec;
        let timestamp = self.unwrap.extend(record.timestamp);
        // A lost packet breaks the frame it belonged to, whichever that was.
        let gap = self
            .last_seq
            .is_some_and(|last| last.checked_add(1) != Some(record.seq));
        self.last_seq = Some(record.seq);
        if codec == TrackCodec::Opus {
            if !record.payload.is_empty() {
                out.push(Frame {
                    timestamp,
                    arrival_us: record.arrival_us,
                    keyframe: true,
                    data: record.payload,
                });
            }
            return;
        }
        let continues = self
            .current
            .as_ref()
            .is_some_and(|a| a.timestamp == timestamp);
        if gap {
            if let Some(assembly) = self.current.as_mut() {
                assembly.broken = true;
            }
            self.need_keyframe = true;
        }
        if !continues {
            if let Some(done) = self.current.take() {
                finish(codec, done, &mut self.need_keyframe, out);
            }
            self.h264.reset();
            self.current = Some(Assembly {
                timestamp,
                arrival_us: record.arrival_us,
                broken: false,
                started: false,
                keyframe: false,
                data: Vec::new(),
            });
        }
        let Some(assembly) = self.current.as_mut() else {
            return;
        };
        let ok = match codec {
            TrackCodec::Vp8 => vp8_append(assembly, &record.payload),
            TrackCodec::H264 => h264_append(assembly, &mut self.h264, &record.payload),
            TrackCodec::Opus | TrackCodec::Other => false,
        };
        if !ok {
            assembly.broken = true;
        }
        if record.marker
            && let Some(done) = self.current.take()
        {
            finish(codec, done, &mut self.need_keyframe, out);
        }
    }

    /// The track ended: the frame under way, if whole, is appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        if let Some(done) = self.current.take() {
            finish(self.codec, done, &mut self.need_keyframe, out);
        }
    }
}

/// A frame being put together.
struct Assembly {
    timestamp: i64,
    arrival_us: u64,
    broken: bool,
    /// The first packet of the frame was seen.
    started: bool,
    /// H.264: an IDR slice was appended.
    keyframe: bool,
    data: Vec<u8>,
}

fn finish(codec: TrackCodec, frame: Assembly, need_keyframe: &mut bool, out: &mut Vec<Frame>) {
    if frame.broken || !frame.started || frame.data.is_empty() {
        *need_keyframe = true;
        return;
    }
    let keyframe = match codec {
        TrackCodec::Vp8 => vp8::is_keyframe(&frame.data),
        TrackCodec::H264 => frame.keyframe,
        _ => true,
    };
    if *need_keyframe && !keyframe {
        return;
    }
    *need_keyframe = false;
    out.push(Frame {
        timestamp: frame.timestamp,
        arrival_us: frame.arrival_us,
        keyframe,
        data: frame.data,
    });
}

/// Strips the VP8 payload descriptor; false for a malformed payload.
fn vp8_append(frame: &mut Assembly, payload: &[u8]) -> bool {
    let Ok(vp8) = Vp8Payload::parse(payload) else {
        return false;
    };
    if vp8.frame_start {
        if frame.started {
            return false; // two starts in one timestamp
        }
        frame.started = true;
    } else if !frame.started {
        return false; // the frame's first packet is missing
    }
    frame.data.extend_from_slice(vp8.data);
    true
}

/// Appends an H.264 payload as Annex B NAL units; false for a malformed payload.
fn h264_append(frame: &mut Assembly, h264: &mut H264Depacketizer, payload: &[u8]) -> bool {
    let data = &mut frame.data;
    let keyframe = &mut frame.keyframe;
    let appended = h264.push(payload, |nal| {
        *keyframe |= h264::is_idr(nal);
        annexb::push_nal(data, nal);
    });
    frame.started |= appended.is_ok();
    appended.is_ok()
}

/// Extends 32-bit RTP timestamps across wraps.
#[derive(Default)]
struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    fn extend(&mut self, timestamp: u32) -> i64 {
        let extended = match self.last {
            None => i64::from(timestamp),
            Some(last) => {
                let delta = timestamp.wrapping_sub(last as u32) as i32;
                last + i64::from(delta)
            }
        };
        self.last = Some(extended);
        extended
    }
}

#[cfg(test)]
mod tests {
    use classroom_codec::annexb::START_CODE;

    use super::*;

    fn record(seq: u64, timestamp: u32, marker: bool, payload: &[u8]) -> TrackRecord {
        TrackRecord {
            seq,
            timestamp,
            arrival_us: seq.wrapping_mul(1000),
            marker,
            keyframe: false,
            payload: payload.to_vec(),
        }
    }

    const KEY: [u8; 10] = [0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xB4, 0x00];

    #[test]
    fn vp8_frames_are_joined_and_broken_ones_skipped_until_a_keyframe() {
        // Timestamps start just before the 32-bit wrap and run across it.
        let base = u32::MAX - 5000;
        let ts = |n: u32| base.wrapping_add(n);
        let records = [
            // A delta frame first: no keyframe yet, skipped.
            record(1, ts(0), true, &[0x90, 0x80, 0x81, 0x00, 0x01, 0xAA]),
            // A keyframe in two packets (descriptor with a 15-bit picture id).
            record(
                2,
                ts(3000),
                false,
                &[0x90, 0x80, 0x81, 0x01, KEY[0], KEY[1], KEY[2]],
            ),
            record(
                3,
                ts(3000),
                true,
                &[
                    0x80, 0x80, 0x81, 0x01, KEY[3], KEY[4], KEY[5], KEY[6], KEY[7], KEY[8], KEY[9],
                ],
            ),
            // A delta frame that lost its second packet, then one that is whole: both skipped.
            record(4, ts(6000), false, &[0x90, 0x80, 0x81, 0x02, 0x01]),
            record(6, ts(9000), true, &[0x90, 0x80, 0x81, 0x03, 0x01, 0xBB]),
            // The next keyframe, then a delta frame (short descriptor).
            record(
                7,
                ts(12000),
                true,
                &[
                    0x10, KEY[0], KEY[1], KEY[2], KEY[3], KEY[4], KEY[5], KEY[6], KEY[7], KEY[8],
                    KEY[9],
                ],
            ),
            record(8, ts(15000), true, &[0x10, 0x01, 0xCC]),
        ];
        let frames = frames(TrackCodec::Vp8, &records);
        let summary: Vec<(i64, bool, usize)> = frames
            .iter()
            .map(|f| (f.timestamp - i64::from(base), f.keyframe, f.data.len()))
            .collect();
        assert_eq!(
            summary,
            vec![(3000, true, 10), (12000, true, 10), (15000, false, 2)]
        );
        assert_eq!(vp8::keyframe_size(&frames[0].data), Some((320, 180)));
    }

    #[test]
    fn h264_units_become_annex_b() {
        let sps = [0x67, 0x42, 0x00, 0x1F];
        let pps = [0x68, 0xCE];
        let mut stap = vec![24];
        for nal in [&sps[..], &pps[..]] {
            stap.extend((nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let records = [
            record(1, 0, false, &stap),
            // An IDR slice in two FU-A fragments.
            record(2, 0, false, &[0x7C, 0x85, 0xAA]),
            record(3, 0, true, &[0x7C, 0x45, 0xBB]),
            record(4, 3000, true, &[0x41, 0x9A]),
        ];
        let frames = frames(TrackCodec::H264, &records);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert_eq!(
            frames[0].data,
            [
                &START_CODE[..],
                &sps,
                &START_CODE,
                &pps,
                &START_CODE,
                &[0x65, 0xAA, 0xBB]
            ]
            .concat()
        );
        assert_eq!(frames[1].data, [0, 0, 0, 1, 0x41, 0x9A]);
    }

    #[test]
    fn opus_packets_are_frames_and_nothing_panics_on_garbage() {
        let records = [
            record(1, 960, false, &[0x78, 1, 2]),
            record(2, 1920, false, &[]),
        ];
        assert_eq!(frames(TrackCodec::Opus, &records).len(), 1);
        for codec in [TrackCodec::Vp8, TrackCodec::H264] {
            let garbage: Vec<TrackRecord> = (0..50u64)
                .map(|i| {
                    record(
                        i,
                        (i * 7919) as u32,
                        i % 3 == 0,
                        &[(i * 37) as u8, 0xFF, 0x80],
                    )
                })
                .collect();
            let _ = frames(codec, &garbage);
            // Sequence numbers come from the file: the largest one must not overflow.
            let edge = [
                record(u64::MAX, 0, true, &[0x90]),
                record(0, 0, true, &[0x90]),
            ];
            let _ = frames(codec, &edge);
        }
    }
}
