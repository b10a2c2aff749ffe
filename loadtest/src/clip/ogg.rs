//! Opus in Ogg (RFC 7845): pages of lacing segments that make up packets; the first two
//! packets are the OpusHead and OpusTags headers, every later one an Opus packet.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OggError {
    #[error("not an Ogg page at byte {0} (no OggS capture pattern)")]
    NotOgg(usize),
    #[error("the Ogg file is cut short at byte {0}")]
    Truncated(usize),
    #[error("the Ogg stream is not Opus (no OpusHead)")]
    NotOpus,
    #[error("the Ogg file holds no audio packets")]
    Empty,
}

/// The Opus packets of a file, in order, without the two header packets.
pub fn opus_packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>, OggError> {
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.get(at..at + 4) != Some(b"OggS") {
            return Err(OggError::NotOgg(at));
        }
        let segments = usize::from(*bytes.get(at + 26).ok_or(OggError::Truncated(at))?);
        let table = bytes
            .get(at + 27..at + 27 + segments)
            .ok_or(OggError::Truncated(at))?;
        let mut data_at = at + 27 + segments;
        for &lace in table {
            let lace = usize::from(lace);
            let data = bytes
                .get(data_at..data_at + lace)
                .ok_or(OggError::Truncated(data_at))?;
            partial.extend_from_slice(data);
            data_at += lace;
            // A lacing value below 255 ends a packet; 255 continues it.
            if lace < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        at = data_at;
    }
    let mut packets = packets.into_iter();
    match packets.next() {
        Some(head) if head.starts_with(b"OpusHead") => {}
        _ => return Err(OggError::NotOpus),
    }
    let audio: Vec<Vec<u8>> = packets.skip(1).filter(|p| !p.is_empty()).collect();
    if audio.is_empty() {
        return Err(OggError::Empty);
    }
    Ok(audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(packets: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for p in packets {
            let mut left = p.len();
            while left >= 255 {
                table.push(255u8);
                left -= 255;
            }
            table.push(left as u8);
            data.extend_from_slice(p);
        }
        let mut out = b"OggS".to_vec();
        out.extend([0u8; 22]);
        out.push(table.len() as u8);
        out.extend(table);
        out.extend(data);
        out
    }

    #[test]
    fn reads_packets_across_laces_and_pages() {
        let long = vec![7u8; 300];
        let mut file = page(&[b"OpusHead\x01\x01", b"OpusTags"]);
        file.extend(page(&[&[0x78, 1], &long]));
        file.extend(page(&[&[0x78, 2]]));
        let packets = opus_packets(&file).expect("valid");
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0], vec![0x78, 1]);
        assert_eq!(packets[1].len(), 300);
        assert_eq!(packets[2], vec![0x78, 2]);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(opus_packets(b"RIFFxxxx"), Err(OggError::NotOgg(0)));
        assert_eq!(
            opus_packets(&page(&[b"Vorbis", b"tags", b"x"])),
            Err(OggError::NotOpus)
        );
        assert_eq!(
            opus_packets(&page(&[b"OpusHead", b"OpusTags"])),
            Err(OggError::Empty)
        );
        let mut cut = page(&[b"OpusHead", b"OpusTags", &[1, 2, 3]]);
        cut.pop();
        assert!(matches!(opus_packets(&cut), Err(OggError::Truncated(_))));
        assert_eq!(opus_packets(&[b'O'; 10]), Err(OggError::NotOgg(0)));
    }
}
