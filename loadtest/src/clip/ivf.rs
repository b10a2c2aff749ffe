//! VP8 clips read from IVF files (the container is `classroom_codec::ivf`).

use classroom_codec::{CodecError, ivf, vp8};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IvfError {
    #[error("not an IVF file: {0}")]
    Ivf(#[from] CodecError),
    #[error("the IVF file holds {0:?}, not VP8")]
    NotVp8([u8; 4]),
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
        let (header, frames) = ivf::parse(bytes)?;
        if &header.fourcc != b"VP80" {
            return Err(IvfError::NotVp8(header.fourcc));
        }
        let fps = if header.scale == 0 {
            30.0
        } else {
            f64::from(header.rate) / f64::from(header.scale)
        };
        let frames: Vec<VideoFrame> = frames
            .into_iter()
            .map(|f| VideoFrame {
                keyframe: vp8::is_keyframe(f.data),
                data: f.data.to_vec(),
            })
            .collect();
        if frames.is_empty() {
            return Err(IvfError::Empty);
        }
        Ok(Ivf {
            width: header.width,
            height: header.height,
            fps,
            frames,
        })
    }
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
        assert!(matches!(Ivf::parse(b"RIFF"), Err(IvfError::Ivf(_))));
        assert_eq!(Ivf::parse(&file(&[])), Err(IvfError::Empty));
        let mut cut = file(&[&[0x10, 1, 2, 3]]);
        cut.truncate(cut.len() - 1);
        assert!(matches!(Ivf::parse(&cut), Err(IvfError::Ivf(_))));
        let mut vp9 = file(&[&[0x10]]);
        vp9[8..12].copy_from_slice(b"VP90");
        assert_eq!(Ivf::parse(&vp9), Err(IvfError::NotVp8(*b"VP90")));
        assert!(matches!(
            Ivf::parse(&file(&[])[..20]),
            Err(IvfError::Ivf(_))
        ));
    }
}
