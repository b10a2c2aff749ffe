//! The IVF container (VP8 frames as libvpx and ffmpeg write them): a 32-byte file header,
//! then frames each with a 12-byte header (size, presentation timestamp).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IvfError {
    #[error("not an IVF file (no DKIF signature)")]
    NotIvf,
    #[error("the IVF file holds {0:?}, not VP8")]
    NotVp8([u8; 4]),
    #[error("the IVF file is cut short at byte {0}")]
    Truncated(usize),
    #[error("the IVF file holds no frames")]
    Empty,
}

/// A VP8 stream read from IVF.
#[derive(Debug, Clone, PartialEq)]
pub struct Ivf {
    pub width: u16,
    pub height: u16,
    /// Frames per second, as the header's rate / scale.
    pub fps: f64,
    pub frames: Vec<VideoFrame>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub keyframe: bool,
    pub data: Vec<u8>,
}

impl Ivf {
    pub fn parse(bytes: &[u8]) -> Result<Ivf, IvfError> {
        if bytes.get(0..4) != Some(b"DKIF") {
            return Err(IvfError::NotIvf);
        }
        let header_len = usize::from(le16(bytes, 6)?);
        let fourcc: [u8; 4] = bytes
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .ok_or(IvfError::Truncated(8))?;
        if &fourcc != b"VP80" {
            return Err(IvfError::NotVp8(fourcc));
        }
        let width = le16(bytes, 12)?;
        let height = le16(bytes, 14)?;
        let rate = le32(bytes, 16)?;
        let scale = le32(bytes, 20)?;
        let fps = if scale == 0 {
            30.0
        } else {
            f64::from(rate) / f64::from(scale)
        };
        let mut frames = Vec::new();
        let mut at = header_len.max(32);
        while at < bytes.len() {
            let size = le32(bytes, at)? as usize;
            let start = at + 12;
            let data = bytes
                .get(start..start.saturating_add(size))
                .ok_or(IvfError::Truncated(at))?;
            // VP8 frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 for a keyframe.
            let keyframe = data.first().is_some_and(|b| b & 1 == 0);
            frames.push(VideoFrame {
                keyframe,
                data: data.to_vec(),
            });
            at = start + size;
        }
        if frames.is_empty() {
            return Err(IvfError::Empty);
        }
        Ok(Ivf {
            width,
            height,
            fps,
            frames,
        })
    }
}

fn le16(bytes: &[u8], at: usize) -> Result<u16, IvfError> {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(IvfError::Truncated(at))
}

fn le32(bytes: &[u8], at: usize) -> Result<u32, IvfError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(IvfError::Truncated(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = b"DKIF".to_vec();
        out.extend(0u16.to_le_bytes());
        out.extend(32u16.to_le_bytes());
        out.extend(b"VP80");
        out.extend(320u16.to_le_bytes());
        out.extend(180u16.to_le_bytes());
        out.extend(30u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend((frames.len() as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            out.extend((f.len() as u32).to_le_bytes());
            out.extend((i as u64).to_le_bytes());
            out.extend(*f);
        }
        out
    }

    #[test]
    fn reads_frames_and_keyframes() {
        let ivf = Ivf::parse(&file(&[&[0x10, 1, 2], &[0x11, 3]])).expect("valid");
        assert_eq!((ivf.width, ivf.height, ivf.fps), (320, 180, 30.0));
        assert_eq!(ivf.frames.len(), 2);
        assert!(ivf.frames[0].keyframe);
        assert!(!ivf.frames[1].keyframe);
        assert_eq!(ivf.frames[1].data, vec![0x11, 3]);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(Ivf::parse(b"RIFF"), Err(IvfError::NotIvf));
        assert_eq!(Ivf::parse(&file(&[])), Err(IvfError::Empty));
        let mut cut = file(&[&[0x10, 1, 2, 3]]);
        cut.truncate(cut.len() - 1);
        assert_eq!(Ivf::parse(&cut), Err(IvfError::Truncated(32)));
        let mut vp9 = file(&[&[0x10]]);
        vp9[8..12].copy_from_slice(b"VP90");
        assert_eq!(Ivf::parse(&vp9), Err(IvfError::NotVp8(*b"VP90")));
        assert_eq!(Ivf::parse(&file(&[])[..20]), Err(IvfError::Truncated(20)));
    }
}
