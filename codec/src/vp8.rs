//! VP8 in RTP (RFC 7741): the payload descriptor in front of every packet's data, and what a
//! frame's first bytes say (RFC 6386 9.1: keyframe bit, a keyframe's size).

use crate::CodecError;

/// One RTP payload: the descriptor read, the VP8 data after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Payload<'a> {
    /// The packet starts a frame: the S bit set on partition 0.
    pub frame_start: bool,
    /// The 7- or 15-bit picture id, when the descriptor carries one.
    pub picture_id: Option<u16>,
    /// The frame's bytes in this packet (may be empty).
    pub data: &'a [u8],
}

impl<'a> Vp8Payload<'a> {
    /// Reads the payload descriptor. Errors: an empty payload, a descriptor whose announced
    /// extension bytes are not there.
    pub fn parse(payload: &'a [u8]) -> Result<Self, CodecError> {
        let first = *payload.first().ok_or(CodecError::EmptyPayload)?;
        let truncated = || CodecError::Truncated("VP8 payload descriptor");
        let len = descriptor_len(payload).ok_or_else(truncated)?;
        // The picture id, when there is one, is the byte after the extension byte (its M bit
        // set: 15 bits over two bytes); descriptor_len checked that those bytes are there.
        let picture_id = (first & 0x80 != 0 && payload[1] & 0x80 != 0).then(|| {
            let high = payload[2];
            match high & 0x80 != 0 {
                true => u16::from_be_bytes([high & 0x7f, payload[3]]),
                false => u16::from(high),
            }
        });
        Ok(Vp8Payload {
            // |X|R|N|S|R|PID (3 bits)|: a frame starts at S = 1 with partition id 0.
            frame_start: first & 0x10 != 0 && first & 0x07 == 0,
            picture_id,
            data: payload.get(len..).ok_or_else(truncated)?,
        })
    }

    /// Whether this packet starts a keyframe (a frame start whose frame tag says key).
    pub fn is_keyframe_start(&self) -> bool {
        self.frame_start && is_keyframe(self.data)
    }

    /// The size a keyframe declares, when this packet starts one and holds its header.
    pub fn keyframe_start_size(&self) -> Option<(u16, u16)> {
        self.frame_start.then(|| keyframe_size(self.data)).flatten()
    }
}

/// Cuts one frame into RTP payloads as browsers send them: a 4-byte descriptor (X=1, S=1 on
/// the first packet, partition 0, I=1 with the 15-bit `picture_id`), then at most `max_data`
/// bytes of the frame. An empty frame gives no payload.
pub fn packetize(
    frame: &[u8],
    picture_id: u16,
    max_data: usize,
) -> impl ExactSizeIterator<Item = Vec<u8>> + '_ {
    let id = [0x80 | (picture_id >> 8) as u8 & 0x7f, picture_id as u8];
    frame
        .chunks(max_data.max(1))
        .enumerate()
        .map(move |(i, chunk)| {
            let first = if i == 0 { 0x90 } else { 0x80 };
            let mut payload = Vec::with_capacity(chunk.len() + 4);
            payload.extend([first, 0x80, id[0], id[1]]);
            payload.extend_from_slice(chunk);
            payload
        })
}

/// The length of a payload's descriptor; `None` for an empty payload or one whose announced
/// extension bytes are not all there (the data may still be empty).
#[inline]
pub fn descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    // |I|L|T|K| RSV |: which optional fields follow.
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        // Picture id: 7 bits, or 15 with the M bit.
        len += if payload.get(2)? & 0x80 != 0 { 2 } else { 1 };
    }
    len += usize::from(ext & 0x40 != 0); // TL0PICIDX
    len += usize::from(ext & 0x30 != 0); // TID/Y/KEYIDX
    (len <= payload.len()).then_some(len)
}

/// Whether a frame (its first bytes, after the descriptor) is a keyframe: bit 0 of the frame
/// tag is 0. An empty frame is not.
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// The size (width, height) a VP8 keyframe declares; `None` for anything else.
pub fn keyframe_size(keyframe: &[u8]) -> Option<(u16, u16)> {
    let header = keyframe.get(..10)?;
    if header[0] & 1 != 0 || header[3..6] != [0x9D, 0x01, 0x2A] {
        return None;
    }
    Some((
        u16::from_le_bytes([header[6], header[7]]) & 0x3FFF,
        u16::from_le_bytes([header[8], header[9]]) & 0x3FFF,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 10] = [0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xB4, 0x00];

    #[test]
    fn descriptors_of_every_shape_are_read() {
        let short = Vp8Payload::parse(&[0x10, 0x50, 1]).expect("valid");
        assert_eq!(
            short,
            Vp8Payload {
                frame_start: true,
                picture_id: None,
                data: &[0x50, 1]
            }
        );
        assert!(short.is_keyframe_start());
        // X, I with a 15-bit picture id, L and T/K: five descriptor bytes.
        let long = Vp8Payload::parse(&[0x90, 0xF0, 0x81, 0x02, 7, 8, 0x51]).expect("valid");
        assert_eq!(long.picture_id, Some(0x0102));
        assert_eq!(long.data, &[0x51]);
        assert!(long.frame_start && !long.is_keyframe_start());
        // A 7-bit picture id; partition 1 does not start a frame.
        let mid = Vp8Payload::parse(&[0x91, 0x80, 0x05]).expect("valid");
        assert_eq!((mid.frame_start, mid.picture_id), (false, Some(5)));
        assert!(mid.data.is_empty());
    }

    #[test]
    fn frames_cut_into_payloads_read_back_whole() {
        let frame: Vec<u8> = (0..=250).collect();
        let payloads: Vec<Vec<u8>> = packetize(&frame, 0x7123, 100).collect();
        assert_eq!(payloads.len(), 3);
        let mut joined = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let parsed = Vp8Payload::parse(payload).expect("our own");
            assert_eq!(parsed.frame_start, i == 0);
            assert_eq!(parsed.picture_id, Some(0x7123));
            joined.extend_from_slice(parsed.data);
        }
        assert_eq!(joined, frame);
        assert_eq!(packetize(&[], 0, 100).len(), 0);
        assert_eq!(packetize(&[1, 2], u16::MAX, 0).len(), 2);
        let key: Vec<u8> = packetize(&KEY, 1, 1200).next().expect("one");
        let parsed = Vp8Payload::parse(&key).expect("our own");
        assert_eq!(parsed.keyframe_start_size(), Some((320, 180)));
    }

    #[test]
    fn truncated_descriptors_are_errors() {
        assert_eq!(Vp8Payload::parse(&[]), Err(CodecError::EmptyPayload));
        for bad in [
            &[0x80][..],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x80],
            &[0x90, 0x40],
            &[0x90, 0x30],
            &[0x90, 0xF0, 0x81, 0x02, 7],
        ] {
            assert!(
                matches!(Vp8Payload::parse(bad), Err(CodecError::Truncated(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_keyframe_declares_its_size_and_a_delta_frame_none() {
        assert_eq!(keyframe_size(&KEY), Some((320, 180)));
        assert!(is_keyframe(&KEY));
        let mut delta = KEY;
        delta[0] |= 1;
        assert_eq!(keyframe_size(&delta), None);
        assert!(!is_keyframe(&delta) && !is_keyframe(&[]));
        assert_eq!(keyframe_size(&KEY[..9]), None);
        let mut no_code = KEY;
        no_code[4] = 0;
        assert_eq!(keyframe_size(&no_code), None);
    }
}
