//! H.264 pictures back from RTP (RFC 6184, packetization mode 1: single NAL units, STAP-A,
//! FU-A) as Annex-B, for a test that compares what a student received with what the encoder
//! sent, byte for byte.

/// Reassembles one stream's pictures; a picture ends with the marker bit.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    picture: Vec<u8>,
    /// The NAL unit being reassembled from FU-A fragments.
    fragment: Option<Vec<u8>>,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

impl H264Depacketizer {
    /// Takes one packet's payload; returns the picture (Annex-B) it completed, if any. A
    /// malformed payload is skipped (the picture will show the gap).
    pub fn push(&mut self, payload: &[u8], marker: bool) -> Option<Vec<u8>> {
        match payload.first().map(|h| h & 0x1f) {
            Some(1..=23) => self.nal(payload),
            Some(24) => {
                let mut rest = payload.get(1..).unwrap_or_default();
                while rest.len() > 2 {
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let Some(nal) = rest.get(2..2 + len) else {
                        break;
                    };
                    self.nal(nal);
                    rest = rest.get(2 + len..).unwrap_or_default();
                }
            }
            Some(28) => {
                if let (Some(&indicator), Some(&fu), Some(data)) =
                    (payload.first(), payload.get(1), payload.get(2..))
                {
                    if fu & 0x80 != 0 {
                        self.fragment = Some(vec![(indicator & 0xe0) | (fu & 0x1f)]);
                    }
                    if let Some(fragment) = &mut self.fragment {
                        fragment.extend_from_slice(data);
                    }
                    if fu & 0x40 != 0
                        && let Some(nal) = self.fragment.take()
                    {
                        self.nal(&nal);
                    }
                }
            }
            _ => {}
        }
        (marker && !self.picture.is_empty()).then(|| std::mem::take(&mut self.picture))
    }

    fn nal(&mut self, nal: &[u8]) {
        self.picture.extend_from_slice(&START_CODE);
        self.picture.extend_from_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_come_back_whole_however_they_were_packetized() {
        let mut d = H264Depacketizer::default();
        let (sps, pps) = ([0x67, 1, 2], [0x68, 3]);
        let mut stap = vec![24];
        for nal in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert_eq!(d.push(&stap, false), None);
        let slice: Vec<u8> = std::iter::once(0x65).chain(1..=10).collect();
        assert_eq!(d.push(&[0x7c, 0x85, 1, 2, 3], false), None);
        assert_eq!(d.push(&[0x7c, 0x05, 4, 5, 6, 7], false), None);
        let picture = d.push(&[0x7c, 0x45, 8, 9, 10], true).expect("a picture");
        let mut want = Vec::new();
        for nal in [&sps[..], &pps[..], &slice[..]] {
            want.extend_from_slice(&START_CODE);
            want.extend_from_slice(nal);
        }
        assert_eq!(picture, want);
        let single = [0x41, 9, 9];
        assert_eq!(
            d.push(&single, true),
            Some([&START_CODE[..], &single].concat())
        );
    }
}
