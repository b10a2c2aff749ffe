//! A live Matroska stream of Opus voices, one track per mixer slot: how the mixer's ffmpeg
//! gets every voice on one pipe with timestamps we choose (so voices stay in step with each
//! other and with the video). Segment and clusters have unknown sizes, as in live WebM.

use bytes::{BufMut, Bytes, BytesMut};

/// A new cluster at least this often (block times are 16-bit offsets from the cluster's).
const CLUSTER_MILLIS: u64 = 5_000;

/// The 20 ms Opus packet that decodes to silence (CELT, fullband, mono).
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Writes the stream: [`MkvWriter::header`] once, then [`MkvWriter::block`]s in time order.
#[derive(Debug)]
pub struct MkvWriter {
    tracks: usize,
    cluster_start: Option<u64>,
}

impl MkvWriter {
    pub fn new(tracks: usize) -> Self {
        MkvWriter {
            tracks,
            cluster_start: None,
        }
    }

    /// EBML header, the segment's start, its info and the Opus tracks.
    pub fn header(&self) -> Bytes {
        let mut out = BytesMut::new();
        let mut ebml = BytesMut::new();
        element_uint(&mut ebml, 0x4286, 1); // EBMLVersion
        element_uint(&mut ebml, 0x42F7, 1); // EBMLReadVersion
        element_uint(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
        element_uint(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
        element(&mut ebml, 0x4282, b"matroska"); // DocType
        element_uint(&mut ebml, 0x4287, 4); // DocTypeVersion
        element_uint(&mut ebml, 0x4285, 2); // DocTypeReadVersion
        element(&mut out, 0x1A45_DFA3, &ebml);
        put_id(&mut out, 0x1853_8067); // Segment, unknown size
        out.put_slice(&UNKNOWN_SIZE);
        let mut info = BytesMut::new();
        element_uint(&mut info, 0x2A_D7B1, 1_000_000); // TimestampScale: milliseconds
        element(&mut info, 0x4D80, b"classroom restream"); // MuxingApp
        element(&mut info, 0x5741, b"classroom restream"); // WritingApp
        element(&mut out, 0x1549_A966, &info);
        let mut tracks = BytesMut::new();
        for number in 1..=self.tracks as u64 {
            let mut entry = BytesMut::new();
            element_uint(&mut entry, 0xD7, number); // TrackNumber
            element_uint(&mut entry, 0x73C5, number); // TrackUID
            element_uint(&mut entry, 0x83, 2); // TrackType: audio
            element_uint(&mut entry, 0x9C, 0); // FlagLacing
            element(&mut entry, 0x86, b"A_OPUS"); // CodecID
            element(&mut entry, 0x63A2, &opus_head()); // CodecPrivate
            let mut audio = BytesMut::new();
            element(&mut audio, 0xB5, &48_000f64.to_be_bytes()); // SamplingFrequency
            element_uint(&mut audio, 0x9F, 2); // Channels
            element(&mut entry, 0xE1, &audio);
            element(&mut tracks, 0xAE, &entry);
        }
        element(&mut out, 0x1654_AE6B, &tracks);
        out.freeze()
    }

    /// One packet of track `track` (1-based) at `millis`; opens a cluster when needed.
    /// Times must not go backwards by more than the cluster length.
    pub fn block(&mut self, track: usize, millis: u64, packet: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(packet.len() + 32);
        let start = match self.cluster_start {
            Some(start) if millis >= start && millis - start < CLUSTER_MILLIS => start,
            _ => {
                put_id(&mut out, 0x1F43_B675); // Cluster, unknown size
                out.put_slice(&UNKNOWN_SIZE);
                element_uint(&mut out, 0xE7, millis); // Timestamp
                self.cluster_start = Some(millis);
                millis
            }
        };
        let relative = (millis - start) as i16;
        let mut block = BytesMut::with_capacity(packet.len() + 4);
        block.put_u8(0x80 | (track as u8 & 0x7f)); // track number as a 1-byte vint
        block.put_i16(relative);
        block.put_u8(0x80); // keyframe
        block.put_slice(packet);
        element(&mut out, 0xA3, &block); // SimpleBlock
        out.freeze()
    }
}

const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// The Opus identification header (RFC 7845 5.1): stereo, 48 kHz, no pre-skip.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(2); // channels
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family
    head
}

fn put_id(out: &mut BytesMut, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.put_slice(&bytes[skip..]);
}

/// An element's size as an 8-byte EBML variable-length integer.
fn put_size(out: &mut BytesMut, size: usize) {
    out.put_u8(0x01);
    out.put_slice(&(size as u64).to_be_bytes()[1..]);
}

fn element(out: &mut BytesMut, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len());
    out.put_slice(body);
}

fn element_uint(out: &mut BytesMut, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_open_clusters_as_time_goes_on() {
        let mut w = MkvWriter::new(2);
        let header = w.header();
        assert_eq!(&header[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        let first = w.block(1, 100, &OPUS_SILENCE);
        assert_eq!(&first[..4], &[0x1F, 0x43, 0xB6, 0x75], "a cluster first");
        let second = w.block(2, 120, &OPUS_SILENCE);
        assert_eq!(second[0], 0xA3, "same cluster");
        // SimpleBlock: size (8), track 2, +20 ms, keyframe, the packet.
        assert_eq!(&second[9..], &[0x82, 0, 20, 0x80, 0xf8, 0xff, 0xfe]);
        assert_eq!(w.block(1, 5_200, &OPUS_SILENCE)[0], 0x1F, "a new cluster");
        assert_eq!(
            w.block(1, 5_000, &OPUS_SILENCE)[0],
            0x1F,
            "earlier: new cluster"
        );
    }
}
