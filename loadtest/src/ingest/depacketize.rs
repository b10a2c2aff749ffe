//! H.264 pictures back from RTP as Annex-B, for a test that compares what a student received
//! with what the encoder sent, byte for byte. The format is `classroom_codec::h264`'s; this
//! only says where a picture ends (the marker bit) and that a malformed payload is skipped
//! (the picture will show the gap).

use classroom_codec::annexb;
use classroom_codec::h264::H264Depacketizer;

/// Reassembles one stream's pictures.
#[derive(Debug, Default)]
pub struct PictureAssembler {
    picture: Vec<u8>,
    nal_units: H264Depacketizer,
}

impl PictureAssembler {
    /// Takes one packet's payload; returns the picture (Annex-B) it completed, if any.
    pub fn push(&mut self, payload: &[u8], marker: bool) -> Option<Vec<u8>> {
        let picture = &mut self.picture;
        // Skipped, not fatal: the comparison shows what is missing.
        let _malformed = self
            .nal_units
            .push(payload, |nal| annexb::push_nal(picture, nal));
        (marker && !self.picture.is_empty()).then(|| std::mem::take(&mut self.picture))
    }
}

#[cfg(test)]
mod tests {
    use classroom_codec::annexb::START_CODE;

    use super::*;

    #[test]
    fn pictures_come_back_whole_however_they_were_packetized() {
        let mut d = PictureAssembler::default();
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
        // A middle fragment without its start adds nothing.
        assert_eq!(d.push(&[0x7c, 0x05, 4], true), None);
    }
}
