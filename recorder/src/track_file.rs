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
//!
//! A lesson's track file can be gigabytes: [`Reader`] goes through it record by record with
//! a fixed buffer, so reading needs the memory of one record, whatever the file's length.

use std::io::{self, BufReader, Read, Write};

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
    #[error("cannot read the record at byte {at}: {reason}")]
    Io { at: usize, reason: String },
}

/// A whole track file: its header and every complete record (a cut-off tail is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub header: TrackHeader,
    pub records: Vec<TrackRecord>,
    /// Bytes at the end that did not make a whole record (a crash's tail).
    pub truncated_bytes: usize,
}

/// A whole track file in memory (small files, tests); long ones go through [`Reader`].
pub fn read(bytes: &[u8]) -> Result<TrackFile, TrackFileError> {
    let mut reader = Reader::new(bytes)?;
    let header = reader.header().clone();
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok(TrackFile {
        header,
        records,
        truncated_bytes: reader.truncated_bytes(),
    })
}

/// The read buffer of [`Reader`]: records are read through it, never the whole file.
pub const READ_BUFFER: usize = 64 * 1024;

/// Reads a track file record by record, in the memory of one record.
#[derive(Debug)]
pub struct Reader<R: Read> {
    input: BufReader<R>,
    header: TrackHeader,
    /// Bytes consumed so far (for the positions in errors).
    at: usize,
    /// Bytes of an incomplete last record, once the end was reached.
    truncated: usize,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads the magic and the header.
    pub fn new(input: R) -> Result<Self, TrackFileError> {
        Self::with_buffer(input, READ_BUFFER)
    }

    pub fn with_buffer(input: R, buffer: usize) -> Result<Self, TrackFileError> {
        let mut input = BufReader::with_capacity(buffer.max(1), input);
        let mut magic = [0u8; 8];
        if read_full(&mut input, &mut magic).ok() != Some(8) || &magic != MAGIC {
            return Err(TrackFileError::NotATrackFile);
        }
        let mut len = [0u8; 4];
        let len = match read_full(&mut input, &mut len) {
            Ok(4) => u32::from_le_bytes(len) as usize,
            _ => return Err(TrackFileError::BadHeader("length".into())),
        };
        if len > MAX_HEADER {
            return Err(TrackFileError::BadHeader("length".into()));
        }
        let mut json = vec![0u8; len];
        if read_full(&mut input, &mut json).ok() != Some(len) {
            return Err(TrackFileError::BadHeader("cut short".into()));
        }
        let header: TrackHeader =
            serde_json::from_slice(&json).map_err(|e| TrackFileError::BadHeader(e.to_string()))?;
        Ok(Reader {
            input,
            header,
            at: 12 + len,
            truncated: 0,
            done: false,
        })
    }

    pub fn header(&self) -> &TrackHeader {
        &self.header
    }

    /// Bytes at the end that did not make a whole record (known once the end was reached).
    pub fn truncated_bytes(&self) -> usize {
        self.truncated
    }

    /// The next record; `None` at the end, or at a cut-off tail (a crash's).
    pub fn next_record(&mut self) -> Result<Option<TrackRecord>, TrackFileError> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        let got = read_full(&mut self.input, &mut len).map_err(|e| TrackFileError::Io {
            at: self.at,
            reason: e.to_string(),
        })?;
        if got < 4 {
            self.done = true;
            self.truncated = got;
            return Ok(None);
        }
        let body_len = u32::from_le_bytes(len) as usize;
        if !(FIXED..=MAX_RECORD).contains(&body_len) {
            self.done = true;
            return Err(TrackFileError::Corrupt(self.at));
        }
        let mut body = vec![0u8; body_len];
        let got = read_full(&mut self.input, &mut body).map_err(|e| TrackFileError::Io {
            at: self.at,
            reason: e.to_string(),
        })?;
        if got < body_len {
            self.done = true;
            self.truncated = 4 + got;
            return Ok(None);
        }
        self.at += 4 + body_len;
        let (Some(seq), Some(timestamp), Some(arrival_us)) =
            (u64_at(&body, 0), u32_at(&body, 8), u64_at(&body, 12))
        else {
            return Err(TrackFileError::Corrupt(self.at));
        };
        let flags = body[20];
        body.drain(..FIXED);
        Ok(Some(TrackRecord {
            seq,
            timestamp,
            arrival_us,
            marker: flags & 1 != 0,
            keyframe: flags & 2 != 0,
            payload: body,
        }))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

    #[test]
    fn a_file_many_times_the_read_buffer_is_read_record_by_record() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("track-1.rtp");
        let header = TrackHeader {
            track: 1,
            codec: TrackCodec::Vp8,
        };
        let mut out = io::BufWriter::new(std::fs::File::create(&path).expect("a file"));
        write_header(&mut out, &header).expect("written");
        // Payloads of 1 to 1300 bytes: records straddle every buffer boundary.
        let payload = |i: u64| vec![(i % 251) as u8; 1 + (i as usize * 7919) % 1300];
        let count = 4000u64;
        for i in 0..count {
            write_record(
                &mut out,
                i,
                i as u32 * 3000,
                i * 33_333,
                i % 3 == 0,
                i % 90 == 0,
                &payload(i),
            )
            .expect("written");
        }
        // A crash's cut-off tail: a length and part of a body.
        out.write_all(&200u32.to_le_bytes()).expect("written");
        out.write_all(&[1, 2, 3]).expect("written");
        out.flush().expect("flushed");
        drop(out);
        let size = std::fs::metadata(&path).expect("a size").len() as usize;
        assert!(size > 30 * READ_BUFFER, "{size} bytes");

        for buffer in [READ_BUFFER, 4096, 7] {
            let file = std::fs::File::open(&path).expect("opens");
            let mut reader = Reader::with_buffer(file, buffer).expect("a header");
            assert_eq!(reader.header(), &header);
            let mut i = 0;
            while let Some(record) = reader.next_record().expect("readable") {
                assert_eq!(record.seq, i, "buffer {buffer}");
                assert_eq!(record.arrival_us, i * 33_333);
                assert_eq!((record.marker, record.keyframe), (i % 3 == 0, i % 90 == 0));
                assert_eq!(record.payload, payload(i), "record {i}, buffer {buffer}");
                i += 1;
            }
            assert_eq!(i, count, "buffer {buffer}");
            assert_eq!(reader.truncated_bytes(), 7);
            assert_eq!(reader.next_record(), Ok(None));
        }
    }
}
