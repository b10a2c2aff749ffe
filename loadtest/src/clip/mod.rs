//! The media the simulated participants send: short pre-encoded clips committed under
//! `loadtest/media/` (made by `media/generate.sh`) and built into the binary, so a run needs
//! neither ffmpeg nor the files.

pub mod ivf;

use std::path::Path;
use std::sync::Arc;

use classroom_codec::CodecError;

pub use ivf::{Ivf, IvfError, VideoFrame};

/// One simulcast layer: its rid, size and frames.
#[derive(Debug)]
pub struct VideoLayer {
    pub rid: &'static str,
    pub clip: Ivf,
}

/// Everything a publisher sends, parsed once and shared by every publisher.
#[derive(Debug)]
pub struct Clips {
    /// Lowest layer first.
    pub layers: Vec<VideoLayer>,
    /// Opus packets of 20 ms each.
    pub audio: Vec<Vec<u8>>,
    /// A keyframe request restarts the video at the clip's first frame (the built-in clips
    /// have one keyframe only). Clips with regular keyframes turn this off so that video keeps
    /// time with audio (a recording's A/V sync test needs that).
    pub keyframe_restarts: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("video clip {0}: {1}")]
    Video(&'static str, IvfError),
    #[error("audio clip: {0}")]
    Audio(CodecError),
    #[error("audio clip: the Ogg file holds no audio packets")]
    NoAudio,
    #[error("cannot read clip {0}: {1}")]
    Read(String, std::io::Error),
}

const LAYERS: [(&str, &[u8]); 3] = [
    ("q", include_bytes!("../../media/video-180p.ivf")),
    ("h", include_bytes!("../../media/video-360p.ivf")),
    ("f", include_bytes!("../../media/video-720p.ivf")),
];
const AUDIO: &[u8] = include_bytes!("../../media/audio.opus.ogg");

/// The Opus packets of an Ogg Opus file; at least one.
fn opus_packets(file: &[u8]) -> Result<Vec<Vec<u8>>, ClipError> {
    let packets = classroom_codec::ogg::opus_packets(file).map_err(ClipError::Audio)?;
    if packets.is_empty() {
        return Err(ClipError::NoAudio);
    }
    Ok(packets.iter().map(|p| p.to_vec()).collect())
}

impl Clips {
    /// The built-in clips.
    pub fn builtin() -> Result<Arc<Clips>, ClipError> {
        let layers = LAYERS
            .iter()
            .map(|(rid, bytes)| {
                Ivf::parse(bytes)
                    .map(|clip| VideoLayer { rid, clip })
                    .map_err(|e| ClipError::Video(rid, e))
            })
            .collect::<Result<_, _>>()?;
        let audio = opus_packets(AUDIO)?;
        Ok(Arc::new(Clips {
            layers,
            audio,
            keyframe_restarts: true,
        }))
    }

    /// Clips from files: a VP8 IVF sent at every simulcast layer, and Ogg Opus in 20 ms
    /// frames. A keyframe request does not restart them: the video needs regular keyframes.
    pub fn from_files(video: &Path, audio: &Path) -> Result<Arc<Clips>, ClipError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| ClipError::Read(path.display().to_string(), e))
        };
        let clip = Ivf::parse(&read(video)?).map_err(|e| ClipError::Video("file", e))?;
        let layers = ["q", "h", "f"]
            .into_iter()
            .map(|rid| VideoLayer {
                rid,
                clip: clip.clone(),
            })
            .collect();
        let audio = opus_packets(&read(audio)?)?;
        Ok(Arc::new(Clips {
            layers,
            audio,
            keyframe_restarts: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_clips_parse() {
        let clips = Clips::builtin().expect("the committed clips parse");
        let sizes: Vec<(u16, u16)> = clips
            .layers
            .iter()
            .map(|l| (l.clip.width, l.clip.height))
            .collect();
        assert_eq!(sizes, vec![(320, 180), (640, 360), (1280, 720)]);
        for layer in &clips.layers {
            assert!(
                layer.clip.frames[0].keyframe,
                "{} starts with a keyframe",
                layer.rid
            );
            assert_eq!(layer.clip.fps, 30.0);
            assert!(layer.clip.frames.len() >= 60);
        }
        // 2 s of 20 ms frames (plus the encoder's pre-skip), each with a 20 ms TOC config.
        assert!(
            (100..=101).contains(&clips.audio.len()),
            "{}",
            clips.audio.len()
        );
        let twenty_ms = [1, 5, 9, 13, 15, 19, 23, 27, 31];
        assert!(
            clips
                .audio
                .iter()
                .all(|p| p.first().is_some_and(|toc| twenty_ms.contains(&(toc >> 3))))
        );
    }
}
