//! What the pipeline tests share: H.264 from ffmpeg cut into access units and packetized
//! as RTP payloads, and what ffprobe says of a replay.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use classroom_codec::h264::{self, H264Packetizer};
use classroom_recorder::track_file::{self, TrackCodec, TrackHeader};

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
    let mut splitter = AnnexBSplitter::new();
    let mut nals = splitter.push(stream).expect("ffmpeg's Annex B");
    nals.extend(splitter.finish());
    h264::access_units(nals)
        .into_iter()
        .map(|unit| unit.iter().map(|nal| nal.to_vec()).collect())
        .collect()
}

/// RTP payloads of one access unit (`classroom_codec`'s packetizer: single NAL units,
/// STAP-A, FU-A).
pub fn packetize(unit: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let nals: Vec<Bytes> = unit.iter().map(|nal| Bytes::copy_from_slice(nal)).collect();
    H264Packetizer::new(MAX_PAYLOAD, 0)
        .packetize(&nals, 0)
        .into_iter()
        .map(|packet| packet.payload.to_vec())
        .collect()
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

/// H.264 of one colour, `seconds` long at 30 fps, written as track `track` arriving from
/// `from_ms` on.
pub fn video_track(dir: &Path, track: u64, colour: &str, seconds: f64, from_ms: u64) {
    let raw = dir.join(format!("video-{track}.h264"));
    let source = format!("color=c={colour}:s=320x180:r=30:d={seconds}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "h264",
        raw.to_str().expect("utf-8"),
    ]);
    let units = access_units(&std::fs::read(&raw).expect("the clip"));
    let mut file = header(track, TrackCodec::H264);
    let mut seq = 1;
    for (i, unit) in units.iter().enumerate() {
        let arrival_us = from_ms * 1000 + i as u64 * 33_333;
        let packets = packetize(unit);
        let count = packets.len();
        for (n, payload) in packets.into_iter().enumerate() {
            let last = n + 1 == count;
            track_file::write_record(
                &mut file,
                seq,
                i as u32 * 3000,
                arrival_us,
                last,
                false,
                &payload,
            )
            .expect("in memory");
            seq += 1;
        }
    }
    std::fs::write(dir.join(format!("track-{track}.rtp")), file).expect("the track");
}

pub fn header(track: u64, codec: TrackCodec) -> Vec<u8> {
    let mut file = Vec::new();
    track_file::write_header(&mut file, &TrackHeader { track, codec }).expect("in memory");
    file
}
