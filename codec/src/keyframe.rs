//! Which RTP packet starts a keyframe, per codec, from the payload alone: what the SFU asks
//! of every video packet it forwards (a subscriber starts or switches layers there). On the
//! hot path: no allocation, no copy, one pass over at most the payload's headers.

use crate::h264::{FU_A, NAL_IDR, NAL_SPS, STAP_A, stap_a_unit};
use crate::vp8;

/// H.264: the packet holds a sequence parameter set or an IDR slice (a single NAL unit, any
/// unit of a STAP-A up to a broken length, or the first fragment of an FU-A). The SPS counts
/// because browsers send it before the IDR picture: starting at the IDR would leave the
/// decoder without its parameter sets.
#[inline]
pub fn h264(payload: &[u8]) -> bool {
    let starts = |header: u8| matches!(header & 0x1f, NAL_SPS | NAL_IDR);
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        1..=23 => starts(header),
        STAP_A => {
            let mut rest = &payload[1..];
            while let Some((unit, tail)) = stap_a_unit(rest) {
                if unit.first().is_some_and(|&h| starts(h)) {
                    return true;
                }
                rest = tail;
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && starts(fu)),
        _ => false,
    }
}

/// VP8: the first packet of a frame (S = 1, partition 0) whose frame tag says key.
#[inline]
pub fn vp8(payload: &[u8]) -> bool {
    // S = 1 and partition 0 first: most packets stop here.
    if payload.first().is_none_or(|b| b & 0x17 != 0x10) {
        return false;
    }
    vp8::descriptor_len(payload)
        .and_then(|len| payload.get(len))
        .is_some_and(|tag| tag & 1 == 0)
}

/// VP9: the P bit of the payload descriptor is 0 (an independently decodable frame).
#[inline]
pub fn vp9(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x40 == 0)
}

/// AV1: the N bit of the aggregation header is set (a new coded video sequence starts).
#[inline]
pub fn av1(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_keyframes_start_at_the_parameter_sets_or_the_idr() {
        assert!(h264(&[0x67, 0x42]) && h264(&[0x65, 0x88]));
        assert!(!h264(&[0x41, 0x9a]) && !h264(&[0x68, 1]) && !h264(&[]));
        // STAP-A: any unit counts, up to a broken length.
        assert!(h264(&[24, 0, 2, 0x09, 0xf0, 0, 2, 0x67, 1]));
        assert!(h264(&[24, 0, 1, 0x67, 0xff, 0xff]));
        assert!(!h264(&[24, 0xff, 0xff, 0x67]));
        assert!(!h264(&[24, 0, 1, 0x41, 0]));
        assert!(!h264(&[24]));
        // FU-A: the first fragment only.
        assert!(h264(&[0x7c, 0x85, 1]) && !h264(&[0x7c, 0x05, 1]) && !h264(&[0x7c]));
        assert!(!h264(&[0x7c, 0x81, 1]));
        // Types mode 1 does not use.
        assert!(!h264(&[0x60 | 25, 0x67]) && !h264(&[0x60, 0x65]));
    }

    #[test]
    fn vp8_keyframes_start_at_partition_zero_with_the_key_bit() {
        assert!(vp8(&[0x10, 0x50]));
        assert!(vp8(&[0x90, 0x80, 0x81, 0x01, 0x50]));
        assert!(!vp8(&[0x10, 0x51]), "a delta frame");
        assert!(!vp8(&[0x00, 0x50]), "not a frame start");
        assert!(!vp8(&[0x11, 0x50]), "partition 1");
        assert!(!vp8(&[0x10]) && !vp8(&[0x90, 0x80]) && !vp8(&[]));
    }

    #[test]
    fn vp9_and_av1_read_one_bit() {
        assert!(vp9(&[0x80]) && !vp9(&[0x40]) && !vp9(&[]));
        assert!(av1(&[0x08]) && !av1(&[0x00]) && !av1(&[]));
    }
}
