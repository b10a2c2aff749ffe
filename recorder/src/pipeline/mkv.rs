//! Each recorded track goes to ffmpeg as a Matroska file (`classroom_codec::mkv`) with its
//! place on the replay's timeline: the block timestamps carry gaps and late starts exactly,
//! which IVF and Ogg do not for our purposes (Ogg granules cannot start late; IVF has no
//! audio). This is the file edge: one track, times that never go back.

use std::io::{self, Write};

pub use classroom_codec::mkv::MkvTrack;
use classroom_codec::mkv::{self, Clusters};

pub struct MkvWriter<W: Write> {
    out: W,
    clusters: Clusters,
    last_ms: Option<u64>,
    /// One block's bytes, reused.
    block: Vec<u8>,
}

impl<W: Write> MkvWriter<W> {
    pub fn new(mut out: W, track: MkvTrack) -> io::Result<Self> {
        out.write_all(&mkv::header("classroom", &[track]))?;
        Ok(MkvWriter {
            out,
            clusters: Clusters::new(),
            last_ms: None,
            block: Vec::new(),
        })
    }

    /// Appends a frame at `at_ms`; times must not go back (a frame that would is moved to
    /// just after the last one).
    pub fn frame(&mut self, at_ms: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let at_ms = match self.last_ms {
            Some(last) if at_ms <= last => last.saturating_add(1),
            _ => at_ms,
        };
        self.last_ms = Some(at_ms);
        self.block.clear();
        self.clusters
            .block(&mut self.block, 1, at_ms, keyframe, data);
        self.out.write_all(&self.block)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_that_would_go_back_in_time_follow_the_last_one() {
        let mut writer = MkvWriter::new(Vec::new(), MkvTrack::Opus).expect("in memory");
        writer.frame(20, true, &[1]).expect("in memory");
        writer.frame(20, true, &[2]).expect("in memory");
        writer.frame(7_000, true, &[3]).expect("in memory");
        writer.frame(6_000, true, &[4]).expect("in memory");
        let out = writer.finish().expect("in memory");
        let clusters = out
            .windows(4)
            .filter(|w| *w == [0x1F, 0x43, 0xB6, 0x75])
            .count();
        assert_eq!(clusters, 2);
        // The second frame sits 1 ms after the first, the last 1 ms after 7 s.
        // A block's body: track 1, the time from its cluster's, keyframe, the data.
        let block = |data: u8| {
            let body = out
                .windows(5)
                .find(|w| w[0] == 0x81 && w[3] == 0x80 && w[4] == data)
                .expect("written");
            i16::from_be_bytes([body[1], body[2]])
        };
        assert_eq!((block(1), block(2), block(3), block(4)), (0, 1, 0, 1));
    }
}
