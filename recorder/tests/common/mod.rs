//! What the pipeline tests share: H.264 from ffmpeg cut into access units and packetized
//! as RTP payloads, and what ffprobe says of a replay.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const MAX_PAYLOAD: usize = 1100;

/// Runs ffmpeg quietly; panics with its error when it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Annex B access units: the parameter sets and SEI before each slice, with the slice.
pub fn access_units(stream: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut nals = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let end = if stream[i - 1] == 0 { i - 1 } else { i };
                nals.push(stream[s..end].to_vec());
            }
            start = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(stream[s..].to_vec());
    }
    let mut units = Vec::new();
    let mut unit = Vec::new();
    for nal in nals {
        let slice = matches!(nal.first().map(|h| h & 0x1F), Some(1 | 5));
        unit.push(nal);
        if slice {
            units.push(std::mem::take(&mut unit));
        }
    }
    units
}

/// RTP payloads of one access unit: single NAL units, or FU-A fragments when too large.
pub fn packetize(unit: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for nal in unit {
        if nal.len() <= MAX_PAYLOAD {
            out.push(nal.clone());
            continue;
        }
        let header = nal[0];
        let body = &nal[1..];
        let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut fu = (header & 0x1F) | if i == 0 { 0x80 } else { 0 };
            if i + 1 == chunks.len() {
                fu |= 0x40;
            }
            let mut payload = vec![(header & 0xE0) | 28, fu];
            payload.extend_from_slice(chunk);
            out.push(payload);
        }
    }
    out
}

pub fn codecs(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}
