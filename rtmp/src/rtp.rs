//! RTP payloads for the SFU: H.264 packetization mode 1 (RFC 6184) and one Opus frame per packet.
//!
//! The SFU owns the RTP headers' SSRC and payload type; this module gives each packet what the
//! header needs besides: sequence number, timestamp (90 kHz video, 48 kHz audio) and marker.

use bytes::{BufMut, Bytes, BytesMut};

/// Payload bytes per RTP packet: leaves room for the RTP header, extensions and SRTP under a
/// 1280-byte path MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

const NAL_TYPE_STAP_A: u8 = 24;
const NAL_TYPE_FU_A: u8 = 28;
const NAL_TYPE_IDR: u8 = 5;

/// One RTP packet's payload and the header fields that depend on the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload: Bytes,
    /// Set on the last packet of a video access unit (and on every audio packet).
    pub marker: bool,
    /// In the track's clock: 90 kHz for video, 48 kHz for Opus.
    pub timestamp: u32,
    pub sequence_number: u16,
    /// The packet belongs to an access unit that starts with an IDR picture (a decoder can start
    /// there).
    pub keyframe: bool,
}

/// Turns H.264 access units into RTP payloads. Sequence numbers continue across calls, so one
/// packetizer serves a source for its whole life, across encoder reconnects.
#[derive(Debug, Clone)]
pub struct H264Packetizer {
    max_payload: usize,
    next_sequence: u16,
}

impl H264Packetizer {
    pub fn new(max_payload: usize, first_sequence: u16) -> Self {
        // An FU-A needs two header bytes and at least one payload byte.
        H264Packetizer {
            max_payload: max_payload.max(3),
            next_sequence: first_sequence,
        }
    }

    /// Packetizes one access unit (all NAL units of a picture, without start codes or length
    /// prefixes). Small NAL units in a row are aggregated into STAP-A packets, NAL units larger
    /// than the payload limit fragmented into FU-A; the marker is set on the last packet.
    pub fn packetize(&mut self, nal_units: &[Bytes], timestamp: u32) -> Vec<RtpPacket> {
        let keyframe = nal_units.iter().any(|n| nal_type(n) == Some(NAL_TYPE_IDR));
        let mut payloads: Vec<Bytes> = Vec::new();
        let mut pending: Vec<&Bytes> = Vec::new();
        for nal in nal_units.iter().filter(|n| !n.is_empty()) {
            if nal.len() > self.max_payload {
                self.flush_aggregate(&mut pending, &mut payloads);
                fragment(nal, self.max_payload, &mut payloads);
                continue;
            }
            if stap_a_size(&pending, Some(nal)) > self.max_payload {
                self.flush_aggregate(&mut pending, &mut payloads);
            }
            pending.push(nal);
        }
        self.flush_aggregate(&mut pending, &mut payloads);

        let count = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| RtpPacket {
                payload,
                marker: i + 1 == count,
                timestamp,
                sequence_number: self.take_sequence(),
                keyframe,
            })
            .collect()
    }

    /// The sequence number the next packet will get.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    fn take_sequence(&mut self) -> u16 {
        let s = self.next_sequence;
        self.next_sequence = s.wrapping_add(1);
        s
    }

    fn flush_aggregate(&self, pending: &mut Vec<&Bytes>, out: &mut Vec<Bytes>) {
        match pending.as_slice() {
            [] => {}
            [single] => out.push((*single).clone()),
            many => {
                let mut buf = BytesMut::with_capacity(stap_a_size(many, None));
                // F bit: OR of all; NRI: the highest of the aggregated units.
                let f = many.iter().fold(0, |acc, n| acc | (first(n) & 0x80));
                let nri = many.iter().map(|n| first(n) & 0x60).max().unwrap_or(0);
                buf.put_u8(f | nri | NAL_TYPE_STAP_A);
                for nal in many {
                    // Fits: every aggregated NAL unit is at most max_payload (< 65536) bytes.
                    buf.put_u16(nal.len() as u16);
                    buf.put_slice(nal);
                }
                out.push(buf.freeze());
            }
        }
        pending.clear();
    }
}

fn first(nal: &Bytes) -> u8 {
    nal.first().copied().unwrap_or(0)
}

fn nal_type(nal: &Bytes) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Size of a STAP-A holding `pending` (and `extra`); a single unit is sent as itself.
fn stap_a_size(pending: &[&Bytes], extra: Option<&Bytes>) -> usize {
    let units: Vec<&Bytes> = pending.iter().copied().chain(extra).collect();
    match units.as_slice() {
        [] => 0,
        [one] => one.len(),
        many => 1 + many.iter().map(|n| 2 + n.len()).sum::<usize>(),
    }
}

fn fragment(nal: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let header = first(nal);
    let indicator = (header & 0xe0) | NAL_TYPE_FU_A;
    let body = nal.slice(1..);
    let chunk = max_payload - 2;
    let count = body.len().div_ceil(chunk);
    for (i, piece) in body.chunks(chunk).enumerate() {
        let mut fu_header = header & 0x1f;
        if i == 0 {
            fu_header |= 0x80;
        }
        if i + 1 == count {
            fu_header |= 0x40;
        }
        let mut buf = BytesMut::with_capacity(2 + piece.len());
        buf.put_u8(indicator);
        buf.put_u8(fu_header);
        buf.put_slice(piece);
        out.push(buf.freeze());
    }
}

/// Why RTP payloads could not be turned back into NAL units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepacketizeError {
    #[error("a STAP-A unit length runs past the packet")]
    StapOverrun,
    #[error("an FU-A fragment arrived without its start")]
    FuWithoutStart,
    #[error("an RTP payload is empty or too short")]
    Short,
}

/// Reassembles NAL units from mode-1 payloads in sequence order: the inverse of
/// [`H264Packetizer::packetize`], for tests and for consumers that need NAL units again
/// (recorder, restream).
pub fn depacketize(payloads: &[Bytes]) -> Result<Vec<Bytes>, DepacketizeError> {
    let mut units = Vec::new();
    let mut fu: Option<BytesMut> = None;
    for payload in payloads {
        let header = *payload.first().ok_or(DepacketizeError::Short)?;
        match header & 0x1f {
            NAL_TYPE_STAP_A => {
                let mut at = 1;
                while at < payload.len() {
                    let len = payload
                        .get(at..at + 2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                        .ok_or(DepacketizeError::StapOverrun)?;
                    let unit = payload
                        .get(at + 2..at + 2 + len)
                        .ok_or(DepacketizeError::StapOverrun)?;
                    units.push(Bytes::copy_from_slice(unit));
                    at += 2 + len;
                }
            }
            NAL_TYPE_FU_A => {
                let fu_header = *payload.get(1).ok_or(DepacketizeError::Short)?;
                let piece = payload.get(2..).unwrap_or_default();
                if fu_header & 0x80 != 0 {
                    let mut buf = BytesMut::new();
                    buf.put_u8((header & 0xe0) | (fu_header & 0x1f));
                    fu = Some(buf);
                }
                let buf = fu.as_mut().ok_or(DepacketizeError::FuWithoutStart)?;
                buf.put_slice(piece);
                if fu_header & 0x40 != 0 {
                    units.extend(fu.take().map(BytesMut::freeze));
                }
            }
            _ => units.push(payload.clone()),
        }
    }
    Ok(units)
}

/// Numbers Opus packets: one 20 ms frame per RTP packet.
#[derive(Debug, Clone)]
pub struct OpusPacketizer {
    next_sequence: u16,
}

impl OpusPacketizer {
    pub fn new(first_sequence: u16) -> Self {
        OpusPacketizer {
            next_sequence: first_sequence,
        }
    }

    pub fn packetize(&mut self, frame: Bytes, timestamp: u32) -> RtpPacket {
        let sequence_number = self.next_sequence;
        self.next_sequence = sequence_number.wrapping_add(1);
        RtpPacket {
            payload: frame,
            marker: false,
            timestamp,
            sequence_number,
            keyframe: false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    fn nal(kind: u8, len: usize) -> Bytes {
        let mut v = vec![0x60 | kind];
        v.extend((0..len - 1).map(|i| (i % 251) as u8));
        Bytes::from(v)
    }

    fn payloads(packets: &[RtpPacket]) -> Vec<Bytes> {
        packets.iter().map(|p| p.payload.clone()).collect()
    }

    #[test]
    fn small_units_share_a_stap_a_and_large_ones_fragment() {
        let mut p = H264Packetizer::new(1200, 65534);
        let au = vec![nal(7, 20), nal(8, 5), nal(5, 5000)];
        let packets = p.packetize(&au, 9000);
        assert_eq!(packets[0].payload[0] & 0x1f, NAL_TYPE_STAP_A);
        assert!(
            packets[1..]
                .iter()
                .all(|p| p.payload[0] & 0x1f == NAL_TYPE_FU_A)
        );
        assert!(
            packets
                .iter()
                .all(|p| p.payload.len() <= 1200 && p.keyframe)
        );
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        assert!(packets.last().unwrap().marker);
        let seqs: Vec<u16> = packets.iter().map(|p| p.sequence_number).collect();
        assert_eq!(&seqs[..3], &[65534, 65535, 0]);
        assert_eq!(depacketize(&payloads(&packets)).unwrap(), au);
    }

    #[test]
    fn a_unit_that_fits_goes_alone() {
        let mut p = H264Packetizer::new(1200, 0);
        let au = vec![nal(1, 1200)];
        let packets = p.packetize(&au, 0);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].payload, au[0]);
        assert!(!packets[0].keyframe);
    }

    #[test]
    fn round_trip_for_many_sizes() {
        let mut p = H264Packetizer::new(100, 7);
        for len in [1, 2, 50, 97, 98, 99, 100, 101, 197, 198, 199, 1000] {
            let au = vec![nal(6, 3), nal(1, len), nal(6, 2), nal(6, 2)];
            let packets = p.packetize(&au, 0);
            assert!(packets.iter().all(|p| p.payload.len() <= 100), "{len}");
            assert_eq!(depacketize(&payloads(&packets)).unwrap(), au, "{len}");
        }
    }

    #[test]
    fn broken_payloads_are_errors() {
        let stap = Bytes::from_static(&[24, 0, 9, 1]);
        assert_eq!(depacketize(&[stap]), Err(DepacketizeError::StapOverrun));
        let fu_mid = Bytes::from_static(&[28, 0x05, 1]);
        assert_eq!(
            depacketize(&[fu_mid]),
            Err(DepacketizeError::FuWithoutStart)
        );
    }
}
