//! A minimal Matroska writer: one track, frames with millisecond timestamps. It is how the
//! pipeline hands each recorded track to ffmpeg with its place on the replay's timeline: the
//! block timestamps carry gaps and late starts exactly, which IVF and Ogg do not for our
//! purposes (Ogg granules cannot start late; IVF has no audio).

use std::io::{self, Write};

/// What the single track of a file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MkvTrack {
    Opus,
    Vp8 {
        width: u16,
        height: u16,
    },
    /// Annex B access units, parameter sets in band (ffmpeg's decoder reads them so).
    H264,
}

/// A new cluster starts at this distance from the last one (relative times are 16-bit).
const CLUSTER_MS: u64 = 5_000;

pub struct MkvWriter<W: Write> {
    out: W,
    cluster: Option<Cluster>,
    last_ms: Option<u64>,
}

struct Cluster {
    start_ms: u64,
    blocks: Vec<u8>,
}

impl<W: Write> MkvWriter<W> {
    pub fn new(mut out: W, track: MkvTrack) -> io::Result<Self> {
        let mut header = Vec::new();
        element(
            &mut header,
            &[0x1A, 0x45, 0xDF, 0xA3],
            &[
                uint(&[0x42, 0x86], 1),
                uint(&[0x42, 0xF7], 1),
                uint(&[0x42, 0xF2], 4),
                uint(&[0x42, 0xF3], 8),
                bytes(&[0x42, 0x82], b"matroska"),
                uint(&[0x42, 0x87], 4),
                uint(&[0x42, 0x85], 2),
            ]
            .concat(),
        );
        // The Segment, of unknown size: clusters are appended as they come.
        header.extend([
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        element(
            &mut header,
            &[0x15, 0x49, 0xA9, 0x66],
            &[
                uint(&[0x2A, 0xD7, 0xB1], 1_000_000),
                bytes(&[0x4D, 0x80], b"classroom"),
                bytes(&[0x57, 0x41], b"classroom"),
            ]
            .concat(),
        );
        let (kind, codec, private, settings) = match track {
            MkvTrack::Opus => (
                2,
                &b"A_OPUS"[..],
                Some(opus_head()),
                bytes(
                    &[0xE1],
                    &[bytes(&[0xB5], &48_000f64.to_be_bytes()), uint(&[0x9F], 2)].concat(),
                ),
            ),
            MkvTrack::Vp8 { width, height } => {
                (1, &b"V_VP8"[..], None, video_settings(width, height))
            }
            MkvTrack::H264 => (1, &b"V_MPEG4/ISO/AVC"[..], None, Vec::new()),
        };
        let mut entry = [
            uint(&[0xD7], 1),
            uint(&[0x73, 0xC5], 1),
            uint(&[0x83], kind),
            bytes(&[0x86], codec),
        ]
        .concat();
        if let Some(private) = private {
            entry.extend(bytes(&[0x63, 0xA2], &private));
        }
        entry.extend(settings);
        let tracks = bytes(&[0xAE], &entry);
        element(&mut header, &[0x16, 0x54, 0xAE, 0x6B], &tracks);
        out.write_all(&header)?;
        Ok(MkvWriter {
            out,
            cluster: None,
            last_ms: None,
        })
    }

    /// Appends a frame at `at_ms`; times must not go back (a frame that would is moved to
    /// just after the last one).
    pub fn frame(&mut self, at_ms: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let at_ms = match self.last_ms {
            Some(last) if at_ms <= last => last + 1,
            _ => at_ms,
        };
        self.last_ms = Some(at_ms);
        let fits = self
            .cluster
            .as_ref()
            .is_some_and(|c| at_ms - c.start_ms < CLUSTER_MS);
        if !fits {
            self.flush_cluster()?;
            self.cluster = Some(Cluster {
                start_ms: at_ms,
                blocks: Vec::new(),
            });
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return Ok(());
        };
        let relative = (at_ms - cluster.start_ms) as i16;
        let mut block = vec![0x81];
        block.extend(relative.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        cluster.blocks.extend(bytes(&[0xA3], &block));
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.flush_cluster()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn flush_cluster(&mut self) -> io::Result<()> {
        if let Some(cluster) = self.cluster.take() {
            let mut body = uint(&[0xE7], cluster.start_ms);
            body.extend(cluster.blocks);
            let mut out = Vec::new();
            element(&mut out, &[0x1F, 0x43, 0xB6, 0x75], &body);
            self.out.write_all(&out)?;
        }
        Ok(())
    }
}

fn video_settings(width: u16, height: u16) -> Vec<u8> {
    bytes(
        &[0xE0],
        &[
            uint(&[0xB0], u64::from(width)),
            uint(&[0xBA], u64::from(height)),
        ]
        .concat(),
    )
}

/// The Opus identification header (RFC 7845) Matroska carries as codec private data.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(2); // channels
    head.extend(0u16.to_le_bytes()); // pre-skip: WebRTC streams start mid-stream
    head.extend(48_000u32.to_le_bytes());
    head.extend(0i16.to_le_bytes()); // gain
    head.push(0); // mapping family
    head
}

fn element(out: &mut Vec<u8>, id: &[u8], body: &[u8]) {
    out.extend_from_slice(id);
    out.extend(size(body.len() as u64));
    out.extend_from_slice(body);
}

fn bytes(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    element(&mut out, id, body);
    out
}

fn uint(id: &[u8], value: u64) -> Vec<u8> {
    let be = value.to_be_bytes();
    let skip = be.iter().take(7).take_while(|b| **b == 0).count();
    bytes(id, &be[skip..])
}

/// An EBML size: always 8 bytes long, simple and valid for any length.
fn size(len: u64) -> [u8; 8] {
    let mut out = len.to_be_bytes();
    out[0] = 0x01;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_integers_are_ebml() {
        assert_eq!(size(5), [1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(uint(&[0xD7], 1), vec![0xD7, 1, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(uint(&[0xE7], 0), vec![0xE7, 1, 0, 0, 0, 0, 0, 0, 1, 0]);
        let mut writer = MkvWriter::new(Vec::new(), MkvTrack::Opus).expect("in memory");
        writer.frame(20, true, &[1]).expect("in memory");
        writer.frame(20, true, &[2]).expect("in memory");
        writer.frame(7_000, true, &[3]).expect("in memory");
        let out = writer.finish().expect("in memory");
        let clusters = out
            .windows(4)
            .filter(|w| *w == [0x1F, 0x43, 0xB6, 0x75])
            .count();
        assert_eq!(clusters, 2);
    }
}
