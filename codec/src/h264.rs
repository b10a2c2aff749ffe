//! H.264 in RTP, packetization mode 1 (RFC 6184): single NAL units, STAP-A aggregates and FU-A
//! fragments; NAL unit types; the keyframe (IDR) test.
//!
//! [`H264Payload::parse`] reads one payload without copying; [`H264Depacketizer`] puts NAL
//! units back together across packets; [`H264Packetizer`] is its inverse.

use bytes::{BufMut, Bytes, BytesMut};

use crate::CodecError;
use crate::rtp::RtpPacket;

/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture: a decoder can start there.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// RTP payload type of a single-time aggregation packet.
pub const STAP_A: u8 = 24;
/// RTP payload type of a fragmentation unit.
pub const FU_A: u8 = 28;

/// The largest NAL unit put together from FU-A fragments (a 4K IDR picture is far below it):
/// a sender that never ends a fragment cannot make the buffer grow without bound.
pub const MAX_NAL_BYTES: usize = 8 * 1024 * 1024;

/// The type of a NAL unit from its header byte; `None` for an empty unit.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Whether a NAL unit is a slice of an IDR picture.
pub fn is_idr(nal: &[u8]) -> bool {
    nal_type(nal) == Some(NAL_IDR)
}

/// One RTP payload of packetization mode 1, checked: every length in it fits the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Payload<'a> {
    /// One whole NAL unit (types 1 to 23).
    Single(&'a [u8]),
    /// A STAP-A: several NAL units of one picture.
    StapA(StapA<'a>),
    /// One fragment of a NAL unit.
    FuA(FuA<'a>),
}

/// The NAL units of a STAP-A, whose lengths were checked by [`H264Payload::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StapA<'a> {
    rest: &'a [u8],
}

/// One FU-A fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuA<'a> {
    /// The header byte of the fragmented NAL unit (the indicator's F and NRI bits, the FU
    /// header's type).
    pub nal_header: u8,
    /// The first fragment.
    pub start: bool,
    /// The last fragment.
    pub end: bool,
    /// This fragment's bytes of the NAL unit (after its header).
    pub data: &'a [u8],
}

impl<'a> H264Payload<'a> {
    /// Reads one RTP payload. Errors: an empty payload, a STAP-A length that runs past the
    /// payload (or a trailing byte that cannot be a length), an FU-A without its FU header,
    /// a payload type mode 1 does not use.
    pub fn parse(payload: &'a [u8]) -> Result<Self, CodecError> {
        let header = *payload.first().ok_or(CodecError::EmptyPayload)?;
        match header & 0x1f {
            1..=23 => Ok(H264Payload::Single(payload)),
            STAP_A => {
                let rest = &payload[1..];
                let mut check = StapA { rest };
                while check.try_next()?.is_some() {}
                Ok(H264Payload::StapA(StapA { rest }))
            }
            FU_A => {
                let fu = *payload.get(1).ok_or(CodecError::Truncated("FU-A header"))?;
                Ok(H264Payload::FuA(FuA {
                    nal_header: (header & 0xe0) | (fu & 0x1f),
                    start: fu & 0x80 != 0,
                    end: fu & 0x40 != 0,
                    data: &payload[2..],
                }))
            }
            other => Err(CodecError::UnsupportedNalType(other)),
        }
    }

    /// The first NAL unit that starts in this payload, or its first bytes for an FU-A start
    /// (header byte and data, apart); `None` for a fragment that continues one.
    pub fn first_unit(&self) -> Option<(u8, &'a [u8])> {
        match *self {
            H264Payload::Single(nal) => Some((nal[0], &nal[1..])),
            H264Payload::StapA(units) => units.into_iter().next().map(|n| (n[0], &n[1..])),
            H264Payload::FuA(fu) => fu.start.then_some((fu.nal_header, fu.data)),
        }
    }
}

/// The next unit of a STAP-A body and what follows it; `None` at the end, or where a size
/// is cut short or runs past the end.
#[inline]
pub(crate) fn stap_a_unit(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (len <= rest.len()).then(|| rest.split_at(len))
}

impl<'a> StapA<'a> {
    fn try_next(&mut self) -> Result<Option<&'a [u8]>, CodecError> {
        while !self.rest.is_empty() {
            let (unit, rest) =
                stap_a_unit(self.rest).ok_or(CodecError::LengthOverrun("STAP-A unit"))?;
            self.rest = rest;
            // An empty unit has no header: nothing a decoder could use.
            if !unit.is_empty() {
                return Ok(Some(unit));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for StapA<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Checked when parsed (or lenient): an error ends the units.
        self.try_next().ok().flatten()
    }
}

/// Puts NAL units back together from the payloads of one stream, in sequence order. The only
/// state is the NAL unit being reassembled from FU-A fragments; its buffer is reused.
#[derive(Debug, Default, Clone)]
pub struct H264Depacketizer {
    fragment: Vec<u8>,
    in_fragment: bool,
}

impl H264Depacketizer {
    pub fn new() -> Self {
        H264Depacketizer::default()
    }

    /// Takes the next payload; calls `nal` with every NAL unit it completes (header included,
    /// no start code or length). On an error nothing of this payload was passed to `nal`; an
    /// FU-A start drops a fragmented unit that was never ended.
    pub fn push(&mut self, payload: &[u8], mut nal: impl FnMut(&[u8])) -> Result<(), CodecError> {
        match H264Payload::parse(payload)? {
            H264Payload::Single(unit) => nal(unit),
            H264Payload::StapA(units) => units.for_each(nal),
            H264Payload::FuA(fu) => {
                if fu.start {
                    self.fragment.clear();
                    self.fragment.push(fu.nal_header);
                    self.in_fragment = true;
                } else if !self.in_fragment {
                    return Err(CodecError::FuWithoutStart);
                }
                let size = self.fragment.len() + fu.data.len();
                if size > MAX_NAL_BYTES {
                    self.reset();
                    return Err(CodecError::TooLarge(size));
                }
                self.fragment.extend_from_slice(fu.data);
                if fu.end {
                    self.in_fragment = false;
                    nal(&self.fragment);
                }
            }
        }
        Ok(())
    }

    /// Forgets a fragmented NAL unit under way (a packet was lost, a new frame began).
    pub fn reset(&mut self) {
        self.fragment.clear();
        self.in_fragment = false;
    }
}

/// The NAL units of whole payloads in sequence order (tests, and consumers that hold a
/// frame's packets anyway).
pub fn depacketize<P: AsRef<[u8]>>(payloads: &[P]) -> Result<Vec<Bytes>, CodecError> {
    let mut depacketizer = H264Depacketizer::new();
    let mut units = Vec::new();
    for payload in payloads {
        depacketizer.push(payload.as_ref(), |nal| {
            units.push(Bytes::copy_from_slice(nal));
        })?;
    }
    Ok(units)
}

/// Groups NAL units of an Annex-B stream into access units (pictures), with the rules of
/// H.264 7.4.1.2.3: a picture ends where an AUD, SEI, SPS or PPS follows a slice, or a slice
/// whose first_mb_in_slice is 0. Access unit delimiters are left out (RTP marks picture ends
/// itself).
#[derive(Debug, Default)]
pub struct AccessUnitAssembler {
    pending: Vec<Bytes>,
    has_slice: bool,
}

impl AccessUnitAssembler {
    pub fn new() -> Self {
        AccessUnitAssembler::default()
    }

    /// Adds a NAL unit; returns the previous access unit if this one starts a new one.
    pub fn push(&mut self, nal: Bytes) -> Option<Vec<Bytes>> {
        let kind = nal_type(&nal).unwrap_or(0);
        let is_slice = kind == NAL_SLICE || kind == NAL_IDR;
        // first_mb_in_slice is ue(v): a leading 1 bit encodes 0.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = self.has_slice && (first_slice || matches!(kind, NAL_SEI..=NAL_AUD));
        let done = if starts_new {
            self.has_slice = false;
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        };
        if kind != NAL_AUD {
            self.pending.push(nal);
        }
        self.has_slice |= is_slice;
        done
    }

    /// The end of the stream: the access unit under way, if it has a slice.
    pub fn finish(&mut self) -> Option<Vec<Bytes>> {
        let has_slice = std::mem::replace(&mut self.has_slice, false);
        let pending = std::mem::take(&mut self.pending);
        has_slice.then_some(pending)
    }
}

/// The access units of a whole stream of NAL units (tests and files; see
/// [`AccessUnitAssembler`]).
pub fn access_units(nal_units: impl IntoIterator<Item = Bytes>) -> Vec<Vec<Bytes>> {
    let mut assembler = AccessUnitAssembler::new();
    let mut units: Vec<Vec<Bytes>> = nal_units
        .into_iter()
        .filter_map(|nal| assembler.push(nal))
        .collect();
    units.extend(assembler.finish());
    units
}

/// Puts the parameter sets in front of an IDR access unit that lacks them: browsers decode
/// nothing without in-band SPS/PPS (they never see an RTMP sequence header).
pub fn with_parameter_sets(au: Vec<Bytes>, sps: &[Bytes], pps: &[Bytes]) -> Vec<Bytes> {
    let is_idr = au.iter().any(|n| is_idr(n));
    let has_sps = au.iter().any(|n| nal_type(n) == Some(NAL_SPS));
    if !is_idr || has_sps {
        return au;
    }
    sps.iter().chain(pps).cloned().chain(au).collect()
}

/// The SDP `profile-level-id` (six hex digits) of a sequence parameter set (its bytes 1 to
/// 3); `None` for one too short.
pub fn profile_level_id(sps: &[u8]) -> Option<String> {
    let b = sps.get(1..4)?;
    Some(format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
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
        // An FU-A needs two header bytes and at least one payload byte; a STAP-A length is
        // 16 bits.
        H264Packetizer {
            max_payload: max_payload.clamp(3, usize::from(u16::MAX)),
            next_sequence: first_sequence,
        }
    }

    /// Packetizes one access unit (all NAL units of a picture, without start codes or length
    /// prefixes). Small NAL units in a row are aggregated into STAP-A packets, NAL units larger
    /// than the payload limit fragmented into FU-A; the marker is set on the last packet.
    /// Empty NAL units are left out.
    pub fn packetize(&mut self, nal_units: &[Bytes], timestamp: u32) -> Vec<RtpPacket> {
        let keyframe = nal_units.iter().any(|n| is_idr(n));
        let mut payloads: Vec<Bytes> = Vec::new();
        let mut pending: Vec<&Bytes> = Vec::new();
        for nal in nal_units.iter().filter(|n| !n.is_empty()) {
            if nal.len() > self.max_payload {
                flush_aggregate(&mut pending, &mut payloads);
                fragment(nal, self.max_payload, &mut payloads);
                continue;
            }
            if stap_a_size(&pending, Some(nal)) > self.max_payload {
                flush_aggregate(&mut pending, &mut payloads);
            }
            pending.push(nal);
        }
        flush_aggregate(&mut pending, &mut payloads);

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
}

fn flush_aggregate(pending: &mut Vec<&Bytes>, out: &mut Vec<Bytes>) {
    match pending.as_slice() {
        [] => {}
        [single] => out.push((*single).clone()),
        many => {
            let mut buf = BytesMut::with_capacity(stap_a_size(many, None));
            // F bit: OR of all; NRI: the highest of the aggregated units.
            let f = many.iter().fold(0, |acc, n| acc | (first(n) & 0x80));
            let nri = many.iter().map(|n| first(n) & 0x60).max().unwrap_or(0);
            buf.put_u8(f | nri | STAP_A);
            for nal in many {
                // Fits: every aggregated NAL unit is at most max_payload (<= 65535) bytes.
                buf.put_u16(nal.len() as u16);
                buf.put_slice(nal);
            }
            out.push(buf.freeze());
        }
    }
    pending.clear();
}

fn first(nal: &Bytes) -> u8 {
    nal.first().copied().unwrap_or(0)
}

/// Size of a STAP-A holding `pending` (and `extra`); a single unit is sent as itself.
fn stap_a_size(pending: &[&Bytes], extra: Option<&Bytes>) -> usize {
    let count = pending.len() + usize::from(extra.is_some());
    let units = pending.iter().copied().chain(extra);
    match count {
        0 => 0,
        1 => units.map(|n| n.len()).sum(),
        _ => 1 + units.map(|n| 2 + n.len()).sum::<usize>(),
    }
}

fn fragment(nal: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let header = first(nal);
    let indicator = (header & 0xe0) | FU_A;
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

    fn collect(d: &mut H264Depacketizer, payload: &[u8]) -> Result<Vec<Vec<u8>>, CodecError> {
        let mut units = Vec::new();
        d.push(payload, |n| units.push(n.to_vec()))?;
        Ok(units)
    }

    #[test]
    fn small_units_share_a_stap_a_and_large_ones_fragment() {
        let mut p = H264Packetizer::new(1200, 65534);
        let au = vec![nal(7, 20), nal(8, 5), nal(5, 5000)];
        let packets = p.packetize(&au, 9000);
        assert_eq!(packets[0].payload[0] & 0x1f, STAP_A);
        assert!(packets[1..].iter().all(|p| p.payload[0] & 0x1f == FU_A));
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
    fn empty_units_and_an_empty_access_unit_make_no_packets() {
        let mut p = H264Packetizer::new(1200, 0);
        assert!(p.packetize(&[], 0).is_empty());
        assert!(p.packetize(&[Bytes::new(), Bytes::new()], 0).is_empty());
        assert_eq!(p.next_sequence(), 0);
        // An absurd payload limit is clamped to what the formats can express.
        let mut p = H264Packetizer::new(usize::MAX, 0);
        let packets = p.packetize(&[nal(1, 70_000)], 0);
        assert!(packets.iter().all(|p| p.payload.len() <= 65_535));
        let mut p = H264Packetizer::new(0, 0);
        assert!(
            p.packetize(&[nal(5, 10)], 0)
                .iter()
                .all(|p| p.payload.len() <= 3)
        );
    }

    #[test]
    fn stap_a_lengths_past_the_payload_are_errors_and_nothing_is_passed_on() {
        let mut d = H264Depacketizer::new();
        // First unit fine, second length runs past the end: the first is not passed on either.
        for bad in [
            &[24, 0, 1, 0x67, 0, 9, 1][..],
            &[24, 0xff, 0xff, 1],
            &[24, 0, 1, 0x67, 0],
        ] {
            assert!(
                matches!(collect(&mut d, bad), Err(CodecError::LengthOverrun(_))),
                "{bad:?}"
            );
        }
        // An empty STAP-A and empty units inside one carry nothing.
        assert_eq!(collect(&mut d, &[24]), Ok(vec![]));
        assert_eq!(
            collect(&mut d, &[24, 0, 0, 0, 1, 0x68]),
            Ok(vec![vec![0x68]])
        );
    }

    #[test]
    fn fu_a_without_its_start_is_an_error_and_a_new_start_drops_an_unended_unit() {
        let mut d = H264Depacketizer::new();
        assert_eq!(
            collect(&mut d, &[28, 0x05, 1]),
            Err(CodecError::FuWithoutStart)
        );
        assert_eq!(
            collect(&mut d, &[28]),
            Err(CodecError::Truncated("FU-A header"))
        );
        assert_eq!(collect(&mut d, &[0x7c, 0x85, 1]), Ok(vec![]));
        // Started again before the end: the first unit is gone.
        assert_eq!(collect(&mut d, &[0x7c, 0x85, 2]), Ok(vec![]));
        assert_eq!(
            collect(&mut d, &[0x7c, 0x45, 3]),
            Ok(vec![vec![0x65, 2, 3]])
        );
        // After the end, a middle fragment has no start.
        assert_eq!(
            collect(&mut d, &[0x7c, 0x05, 4]),
            Err(CodecError::FuWithoutStart)
        );
        // A start and end in one fragment, with no data: the header alone.
        assert_eq!(collect(&mut d, &[0x7c, 0xc5]), Ok(vec![vec![0x65]]));
        d.push(&[0x7c, 0x85, 1], |_| {}).unwrap();
        d.reset();
        assert_eq!(
            collect(&mut d, &[0x7c, 0x45, 4]),
            Err(CodecError::FuWithoutStart)
        );
    }

    #[test]
    fn a_fragment_that_never_ends_cannot_grow_past_the_limit() {
        let mut d = H264Depacketizer::new();
        let mut piece = vec![0x7c, 0x85];
        piece.extend(std::iter::repeat_n(0xaa, 60_000));
        d.push(&piece, |_| {}).unwrap();
        piece[1] = 0x05;
        let mut result = Ok(());
        for _ in 0..MAX_NAL_BYTES / 60_000 + 1 {
            result = d.push(&piece, |_| {});
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(CodecError::TooLarge(_))), "{result:?}");
        assert_eq!(
            collect(&mut d, &[0x7c, 0x45, 4]),
            Err(CodecError::FuWithoutStart)
        );
    }

    #[test]
    fn empty_payloads_and_unused_types_are_errors() {
        let mut d = H264Depacketizer::new();
        assert_eq!(collect(&mut d, &[]), Err(CodecError::EmptyPayload));
        for kind in [0u8, 25, 26, 27, 29, 30, 31] {
            assert_eq!(
                collect(&mut d, &[0x60 | kind, 1, 2]),
                Err(CodecError::UnsupportedNalType(kind))
            );
        }
    }

    #[test]
    fn the_first_unit_of_a_payload_is_found_however_it_was_packetized() {
        fn first(p: &[u8]) -> Option<(u8, &[u8])> {
            H264Payload::parse(p).ok()?.first_unit()
        }
        assert_eq!(first(&[0x65, 1, 2]), Some((0x65, &[1u8, 2][..])));
        assert_eq!(first(&[24, 0, 2, 0x67, 9]), Some((0x67, &[9u8][..])));
        assert_eq!(first(&[24]), None);
        assert_eq!(first(&[0x7c, 0x85, 7]), Some((0x65, &[7u8][..])));
        assert_eq!(first(&[0x7c, 0x05, 7]), None);
    }

    #[test]
    fn access_units_split_on_first_slices_and_parameter_sets() {
        let mut a = AccessUnitAssembler::new();
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
        assert_eq!(a.push(p.clone()), Some(vec![p.clone()]));
        // Empty and one-byte units never panic it.
        assert_eq!(a.push(Bytes::new()), None);
        assert_eq!(a.push(Bytes::from_static(&[0x65])), None);
        assert_eq!(
            a.finish(),
            Some(vec![p.clone(), Bytes::new(), Bytes::from_static(&[0x65])])
        );
        assert_eq!(a.finish(), None);
        let sei = Bytes::from_static(&[0x06, 5]);
        assert_eq!(
            access_units([sei.clone(), p.clone(), sei.clone(), p.clone(), sei.clone()]),
            vec![vec![sei.clone(), p.clone()], vec![sei, p]]
        );
    }

    #[test]
    fn parameter_sets_go_before_idr_only() {
        let sps = [Bytes::from_static(&[0x67])];
        let pps = [Bytes::from_static(&[0x68])];
        let idr = vec![Bytes::from_static(&[0x06]), Bytes::from_static(&[0x65])];
        assert_eq!(with_parameter_sets(idr.clone(), &sps, &pps).len(), 4);
        let p = vec![Bytes::from_static(&[0x41])];
        assert_eq!(with_parameter_sets(p.clone(), &sps, &pps), p);
        assert_eq!(
            profile_level_id(&[0x67, 0x42, 0xe0, 0x1f]).as_deref(),
            Some("42e01f")
        );
        assert_eq!(profile_level_id(&[0x67, 0x42]), None);
    }
}
