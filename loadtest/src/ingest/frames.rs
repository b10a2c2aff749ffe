//! Which H.264 picture is which, by content: the ingest passes H.264 through untouched, so
//! the first bytes of a picture's slice are the same in the FLV tag the publisher sends and in
//! the RTP packet a student receives. The publisher notes when it sent each picture; a
//! student's peer looks its arrivals up, and the difference is the latency the server added
//! (RTMP in, FLV parsing, packetization, the SFU, WebRTC out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use classroom_codec::annexb;
use classroom_codec::h264::{self, H264Payload};

/// Bytes of a slice NAL unit (header included) that identify a picture: the slice header
/// (frame number, picture order) and the start of the coded data.
const KEY_BYTES: usize = 64;

/// When each picture was sent, by content key. The clip loops, so a key comes back every
/// loop: the latest send counts (a loop lasts far longer than any latency measured).
#[derive(Debug, Default)]
pub struct SentFrames {
    sent: Mutex<HashMap<u64, SystemTime>>,
}

impl SentFrames {
    pub fn sent(&self, key: u64, at: SystemTime) {
        self.lock().insert(key, at);
    }

    pub fn sent_at(&self, key: u64) -> Option<SystemTime> {
        self.lock().get(&key).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SystemTime>> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The key of a NAL unit if it is a slice (types 1 and 5).
pub fn nal_key(nal: &[u8]) -> Option<u64> {
    let (&header, rest) = nal.split_first()?;
    slice_key(header, rest)
}

/// The key of a slice from its header byte and the bytes after it (which may be only the
/// first fragment's).
fn slice_key(header: u8, rest: &[u8]) -> Option<u64> {
    matches!(header & 0x1f, h264::NAL_SLICE | h264::NAL_IDR).then(|| {
        let rest = rest.get(..KEY_BYTES - 1).unwrap_or(rest);
        fnv1a(fnv1a(FNV_OFFSET, &[header]), rest)
    })
}

/// The keys of the slices in an FLV video tag body (AVC, NAL units with `length_size`-byte
/// lengths); none for a sequence header or anything else.
pub fn flv_keys(body: &[u8], length_size: usize) -> Vec<u64> {
    let mut keys = Vec::new();
    // Codec 7 (AVC) and packet type 1 (NAL units); three bytes of composition time follow.
    if body.first().map(|b| b & 0x0f) != Some(7) || body.get(1) != Some(&1) {
        return keys;
    }
    let Ok(units) = annexb::avcc_units(body.get(5..).unwrap_or_default(), length_size) else {
        return keys;
    };
    // The slices before a broken length still count.
    keys.extend(units.map_while(Result::ok).filter_map(nal_key));
    keys
}

/// The key of the slice that starts in this RTP payload (RFC 6184: a single NAL unit, the
/// first slice of a STAP-A, or the first fragment of an FU-A), if one does.
pub fn rtp_key(payload: &[u8]) -> Option<u64> {
    match H264Payload::parse(payload).ok()? {
        H264Payload::Single(nal) => nal_key(nal),
        H264Payload::StapA(mut units) => units.find_map(nal_key),
        H264Payload::FuA(fu) if fu.start => slice_key(fu.nal_header, fu.data),
        H264Payload::FuA(_) => None,
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_has_one_key_in_flv_and_in_rtp_however_it_is_packetized() {
        let slice: Vec<u8> = std::iter::once(0x65)
            .chain((0..200).map(|i| i as u8))
            .collect();
        let key = nal_key(&slice).expect("a slice");
        let mut body = vec![0x17, 1, 0, 0, 0];
        let sps = [0x67, 1, 2, 3];
        for nal in [&sps[..], &slice[..]] {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        assert_eq!(flv_keys(&body, 4), vec![key]);

        assert_eq!(rtp_key(&slice), Some(key), "single NAL unit");
        let mut fu_a = vec![0x60 | 28, 0x80 | 5];
        fu_a.extend_from_slice(&slice[1..100]);
        assert_eq!(rtp_key(&fu_a), Some(key), "first fragment");
        fu_a[1] = 5;
        assert_eq!(rtp_key(&fu_a), None, "a middle fragment starts nothing");
        let mut stap = vec![24, 0, 4];
        stap.extend_from_slice(&sps);
        stap.extend_from_slice(&(slice.len() as u16).to_be_bytes());
        stap.extend_from_slice(&slice);
        assert_eq!(rtp_key(&stap), Some(key), "aggregated");
        assert_eq!(rtp_key(&sps), None);
        assert_eq!(rtp_key(&[]), None);
    }

    #[test]
    fn a_picture_sent_again_counts_from_its_latest_send() {
        let frames = SentFrames::default();
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(2);
        frames.sent(7, t0);
        frames.sent(7, t1);
        assert_eq!(frames.sent_at(7), Some(t1));
        assert_eq!(frames.sent_at(8), None);
    }
}
