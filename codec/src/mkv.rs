//! A live Matroska writer: how our frames reach ffmpeg with timestamps we choose (the
//! recorder's tracks with their gaps and late starts, the restream's mixer voices in step).
//! Segment and clusters have unknown sizes, as in live WebM, so nothing is held back and
//! nothing is patched afterwards: [`header`] once, then [`Clusters::block`]s in time order.
//! Timestamps are milliseconds.

/// What one track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MkvTrack {
    /// Opus at 48 kHz, stereo (the decoder also takes mono).
    Opus,
    Vp8 {
        width: u16,
        height: u16,
    },
    /// Annex-B access units, parameter sets in band (ffmpeg's decoder reads them so).
    H264,
}

/// A new cluster starts at least this often (block times are 16-bit offsets from the
/// cluster's).
pub const CLUSTER_MILLIS: u64 = 5_000;

/// Element sizes are written on 8 bytes: simple, and valid for any length.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// EBML header, the segment's start, its info and the tracks, numbered from 1 in the order
/// given (at most 127: a block names its track in one byte). `app` names the writer.
pub fn header(app: &str, tracks: &[MkvTrack]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ebml = Vec::new();
    element_uint(&mut ebml, 0x4286, 1); // EBMLVersion
    element_uint(&mut ebml, 0x42F7, 1); // EBMLReadVersion
    element_uint(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
    element_uint(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
    element(&mut ebml, 0x4282, b"matroska"); // DocType
    element_uint(&mut ebml, 0x4287, 4); // DocTypeVersion
    element_uint(&mut ebml, 0x4285, 2); // DocTypeReadVersion
    element(&mut out, 0x1A45_DFA3, &ebml);
    put_id(&mut out, 0x1853_8067); // Segment, unknown size: clusters follow as they come
    out.extend_from_slice(&UNKNOWN_SIZE);
    let mut info = Vec::new();
    element_uint(&mut info, 0x2A_D7B1, 1_000_000); // TimestampScale: milliseconds
    element(&mut info, 0x4D80, app.as_bytes()); // MuxingApp
    element(&mut info, 0x5741, app.as_bytes()); // WritingApp
    element(&mut out, 0x1549_A966, &info);
    let mut entries = Vec::new();
    for (number, track) in (1..=127u64).zip(tracks) {
        let mut entry = Vec::new();
        element_uint(&mut entry, 0xD7, number); // TrackNumber
        element_uint(&mut entry, 0x73C5, number); // TrackUID
        match *track {
            MkvTrack::Opus => {
                element_uint(&mut entry, 0x83, 2); // TrackType: audio
                element_uint(&mut entry, 0x9C, 0); // FlagLacing
                element(&mut entry, 0x86, b"A_OPUS"); // CodecID
                element(&mut entry, 0x63A2, &opus_head()); // CodecPrivate
                let mut audio = Vec::new();
                element(&mut audio, 0xB5, &48_000f64.to_be_bytes()); // SamplingFrequency
                element_uint(&mut audio, 0x9F, 2); // Channels
                element(&mut entry, 0xE1, &audio);
            }
            MkvTrack::Vp8 { width, height } => {
                element_uint(&mut entry, 0x83, 1); // TrackType: video
                element(&mut entry, 0x86, b"V_VP8");
                let mut video = Vec::new();
                element_uint(&mut video, 0xB0, u64::from(width)); // PixelWidth
                element_uint(&mut video, 0xBA, u64::from(height)); // PixelHeight
                element(&mut entry, 0xE0, &video);
            }
            MkvTrack::H264 => {
                element_uint(&mut entry, 0x83, 1);
                element(&mut entry, 0x86, b"V_MPEG4/ISO/AVC");
            }
        }
        element(&mut entries, 0xAE, &entry); // TrackEntry
    }
    element(&mut out, 0x1654_AE6B, &entries); // Tracks
    out
}

/// Writes blocks into clusters of unknown size, opening a cluster when time has moved past
/// the current one's reach (or back before its start).
#[derive(Debug, Default, Clone)]
pub struct Clusters {
    start: Option<u64>,
}

impl Clusters {
    pub fn new() -> Self {
        Clusters::default()
    }

    /// Appends one frame of `track` (1 to 127; a larger number is taken modulo 128) at
    /// `millis` to `out`, after a new cluster's start when needed.
    pub fn block(
        &mut self,
        out: &mut Vec<u8>,
        track: u8,
        millis: u64,
        keyframe: bool,
        data: &[u8],
    ) {
        let start = match self.start {
            Some(start) if millis >= start && millis - start < CLUSTER_MILLIS => start,
            _ => {
                put_id(out, 0x1F43_B675); // Cluster, unknown size
                out.extend_from_slice(&UNKNOWN_SIZE);
                element_uint(out, 0xE7, millis); // Timestamp
                self.start = Some(millis);
                millis
            }
        };
        // Below CLUSTER_MILLIS: fits the 16-bit relative time.
        let relative = (millis - start) as i16;
        put_id(out, 0xA3); // SimpleBlock
        put_size(out, data.len() + 4);
        out.push(0x80 | (track & 0x7f)); // the track number as a 1-byte vint
        out.extend_from_slice(&relative.to_be_bytes());
        out.push(if keyframe { 0x80 } else { 0 });
        out.extend_from_slice(data);
    }
}

/// The Opus identification header (RFC 7845 5.1) Matroska carries as codec private data:
/// stereo, 48 kHz, no pre-skip (WebRTC streams start mid-stream), no gain, mapping family 0.
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

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// An element's size as an 8-byte EBML variable-length integer.
fn put_size(out: &mut Vec<u8>, size: usize) {
    out.push(0x01);
    out.extend_from_slice(&(size as u64).to_be_bytes()[1..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len());
    out.extend_from_slice(body);
}

fn element_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::OPUS_SILENCE;

    const CLUSTER: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

    fn block(c: &mut Clusters, track: u8, millis: u64) -> Vec<u8> {
        let mut out = Vec::new();
        c.block(&mut out, track, millis, true, &OPUS_SILENCE);
        out
    }

    #[test]
    fn sizes_and_integers_are_ebml() {
        let mut out = Vec::new();
        element_uint(&mut out, 0xD7, 1);
        assert_eq!(out, [0xD7, 1, 0, 0, 0, 0, 0, 0, 1, 1]);
        out.clear();
        element_uint(&mut out, 0xE7, 0);
        assert_eq!(out, [0xE7, 1, 0, 0, 0, 0, 0, 0, 1, 0]);
        out.clear();
        element_uint(&mut out, 0x2A_D7B1, u64::MAX);
        assert_eq!(&out[..3], &[0x2A, 0xD7, 0xB1]);
        assert_eq!(out.len(), 3 + 8 + 8);
    }

    #[test]
    fn the_header_names_every_track() {
        let tracks = [
            MkvTrack::Opus,
            MkvTrack::Vp8 {
                width: 640,
                height: 360,
            },
            MkvTrack::H264,
        ];
        let h = header("classroom", &tracks);
        assert_eq!(&h[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        let has = |needle: &[u8]| h.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"A_OPUS") && has(b"OpusHead") && has(b"V_VP8") && has(b"V_MPEG4/ISO/AVC"));
        assert!(has(b"classroom"));
        // More tracks than a block can name: the first 127 are written.
        let many = header("x", &[MkvTrack::Opus; 200]);
        let entries = many.windows(6).filter(|w| *w == b"A_OPUS").count();
        assert_eq!(entries, 127);
    }

    #[test]
    fn blocks_open_clusters_as_time_goes_on_or_back() {
        let mut c = Clusters::new();
        let first = block(&mut c, 1, 100);
        assert_eq!(&first[..4], &CLUSTER, "a cluster first");
        let second = block(&mut c, 2, 120);
        assert_eq!(second[0], 0xA3, "same cluster");
        // SimpleBlock: size (8), track 2, +20 ms, keyframe, the packet.
        assert_eq!(&second[9..], &[0x82, 0, 20, 0x80, 0xf8, 0xff, 0xfe]);
        assert_eq!(&block(&mut c, 1, 5_100)[..4], &CLUSTER, "a new cluster");
        assert_eq!(
            &block(&mut c, 1, 5_000)[..4],
            &CLUSTER,
            "earlier: new cluster"
        );
        assert_eq!(&block(&mut c, 1, u64::MAX)[..4], &CLUSTER);
        assert_eq!(block(&mut c, 1, u64::MAX)[0], 0xA3);
        assert_eq!(&block(&mut c, 1, 0)[..4], &CLUSTER);
        // A delta frame, an empty frame, a track number beyond one byte.
        let mut out = Vec::new();
        c.block(&mut out, 200, 1, false, &[]);
        assert_eq!(&out[9..], &[0x80 | (200 & 0x7f), 0, 1, 0]);
    }
}
