//! One recorded track on disk: an append-only framed file, written as packets arrive.
//!
//! Layout: the magic `CLRTRK1\n`, a header (`u32` little-endian length, then JSON
//! [`TrackHeader`]), then one record per RTP packet: `u32` length of the body, then the body:
//! `u64` extended sequence number, `u32` RTP timestamp, `u64` arrival in microseconds since
//! the recording started, `u8` flags (1: marker, 2: keyframe), the RTP payload untouched.
//! All integers little-endian.
//!
//! Nothing is ever rewritten, so a crash loses only what was not yet flushed; a reader stops
//! at the first incomplete record (the tail a `kill -9` cut off) and keeps what came before.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

const MAGIC: &[u8; 8] = b"CLRTRK1\n";
/// Larger headers or records are corruption, not data (RTP payloads are under 1500 bytes).
const MAX_HEADER: usize = 64 * 1024;
const MAX_RECORD: usize = 256 * 1024;
const FIXED: usize = 8 + 4 + 8 + 1;

/// The codec of a recorded track, as the VOD pipeline needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackCodec {
    Opus,
    Vp8,
    H264,
    /// Kept for the record but not turned into a replay (VP9, AV1, ...).
    Other,
}

impl TrackCodec {
    pub fn clock_rate(self) -> u32 {
        match self {
            TrackCodec::Opus => 48_000,
            _ => 90_000,
        }
    }

    pub fn is_audio(self) -> bool {
        self == TrackCodec::Opus
    }
}

impl From<classroom_media::Codec> for TrackCodec {
    fn from(codec: classroom_media::Codec) -> Self {
        match codec {
            classroom_media::Codec::Opus => TrackCodec::Opus,
            classroom_media::Codec::Vp8 => TrackCodec::Vp8,
            classroom_media::Codec::H264 { .. } => TrackCodec::H264,
            _ => TrackCodec::Other,
        }
    }
}

/// What a track file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackHeader {
    /// The SFU's track id (unique for the server's run), as in the events file.
    pub track: u64,
    pub codec: TrackCodec,
}

/// One recorded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRecord {
    pub seq: u64,
    pub timestamp: u32,
    /// Microseconds since the recording started.
    pub arrival_us: u64,
    pub marker: bool,
    pub keyframe: bool,
    pub payload: Vec<u8>,
}

/// Writes the magic and the header of a new track file.
pub fn write_header(out: &mut impl Write, header: &TrackHeader) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

/// Appends one packet; returns the bytes written.
pub fn write_record(
    out: &mut impl Write,
    seq: u64,
    timestamp: u32,
    arrival_us: u64,
    marker: bool,
    keyframe: bool,
    payload: &[u8],
) -> io::Result<usize> {
    let body = FIXED + payload.len();
    let mut fixed = [0u8; 4 + FIXED];
    fixed[0..4].copy_from_slice(&(body as u32).to_le_bytes());
    fixed[4..12].copy_from_slice(&seq.to_le_bytes());
    fixed[12..16].copy_from_slice(&timestamp.to_le_bytes());
    fixed[16..24].copy_from_slice(&arrival_us.to_le_bytes());
    fixed[24] = u8::from(marker) | (u8::from(keyframe) << 1);
    out.write_all(&fixed)?;
    out.write_all(payload)?;
    Ok(4 + body)
}

/// Why a track file cannot be read at all.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrackFileError {
    #[error("not a track file (bad magic)")]
    NotATrackFile,
    #[error("the track file's header is cut short or invalid: {0}")]
    BadHeader(String),
    #[error("record at byte {0} is larger than any RTP packet: the file is corrupt")]
    Corrupt(usize),
}

/// A whole track file: its header and every complete record (a cut-off tail is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub header: TrackHeader,
    pub records: Vec<TrackRecord>,
    /// Bytes at the end that did not make a whole record (a crash's tail).
    pub truncated_bytes: usize,
}

pub fn read(bytes: &[u8]) -> Result<TrackFile, TrackFileError> {
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(TrackFileError::NotATrackFile);
    }
    let len = u32_at(bytes, 8)
        .map(|n| n as usize)
        .filter(|n| *n <= MAX_HEADER)
        .ok_or_else(|| TrackFileError::BadHeader("length".into()))?;
    let json = bytes
        .get(12..12 + len)
        .ok_or_else(|| TrackFileError::BadHeader("cut short".into()))?;
    let header: TrackHeader =
        serde_json::from_slice(json).map_err(|e| TrackFileError::BadHeader(e.to_string()))?;
    let mut at = 12 + len;
    let mut records = Vec::new();
    while let Some(body_len) = u32_at(bytes, at) {
        let body_len = body_len as usize;
        if !(FIXED..=MAX_RECORD).contains(&body_len) {
            return Err(TrackFileError::Corrupt(at));
        }
        let Some(body) = bytes.get(at + 4..at + 4 + body_len) else {
            break;
        };
        let (Some(seq), Some(timestamp), Some(arrival_us)) =
            (u64_at(body, 0), u32_at(body, 8), u64_at(body, 12))
        else {
            return Err(TrackFileError::Corrupt(at));
        };
        let flags = body[20];
        records.push(TrackRecord {
            seq,
            timestamp,
            arrival_us,
            marker: flags & 1 != 0,
            keyframe: flags & 2 != 0,
            payload: body[FIXED..].to_vec(),
        });
        at += 4 + body_len;
    }
    Ok(TrackFile {
        header,
        records,
        truncated_bytes: bytes.len() - at,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_cut_tail_is_dropped() {
        let mut file = Vec::new();
        let header = TrackHeader {
            track: 4,
            codec: TrackCodec::Vp8,
        };
        write_header(&mut file, &header).expect("in memory");
        write_record(&mut file, 1, 90_000, 1_000, false, true, b"abc").expect("in memory");
        write_record(&mut file, 2, 93_000, 34_000, true, false, b"de").expect("in memory");
        let whole = read(&file).expect("readable");
        assert_eq!(whole.header, header);
        assert_eq!(whole.records.len(), 2);
        assert_eq!(whole.records[1].payload, b"de");
        assert!(whole.records[0].keyframe && whole.records[1].marker);
        for cut in 1..=(4 + FIXED + 2) {
            let part = read(&file[..file.len() - cut]).expect("a cut tail is fine");
            assert_eq!(part.records.len(), 1, "cut {cut}");
            assert_eq!(part.truncated_bytes, 4 + FIXED + 2 - cut);
        }
        assert_eq!(read(b"garbage!"), Err(TrackFileError::NotATrackFile));
        let mut corrupt = file.clone();
        let first_record = corrupt.len() - 2 * (4 + FIXED) - 5;
        corrupt[first_record..first_record + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read(&corrupt), Err(TrackFileError::Corrupt(_))));
    }
}
