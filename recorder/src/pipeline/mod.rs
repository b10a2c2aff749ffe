//! The VOD pipeline: a finished recording folder in, a replay folder out.
//!
//! 1. Read the events ([`crate::events`]).
//! 2. Go through each track file twice, record by record ([`crate::track_file::Reader`]),
//!    depacketizing as it goes ([`depacketize`]): the first pass finds where its frames sit
//!    on the recording's clock ([`timeline::Runs`]), the second places them on the replay's
//!    timeline ([`timeline::Placer`]; one arrival clock for all tracks keeps them in sync,
//!    pauses are cut out) and writes them as a Matroska file ([`mkv`]). Memory stays that of
//!    a frame and a Matroska cluster, however long the lesson.
//! 3. The slides and the board, when they were shown, are drawn again as frames of a track
//!    of their own ([`board`]).
//! 4. One ffmpeg run composes the main view (the slide or board while one was shown, else a
//!    screen share when present, else the teacher's camera, switching as it did live; under
//!    a slide the view it took the place of shows small in a corner, as live) over a black
//!    canvas, mixes every voice, and encodes
//!    H.264 + AAC into `replay.mp4` with a keyframe every segment; a second run cuts it into
//!    HLS (`index.m3u8`, `seg-NNNNN.ts`) without encoding again.
//! 5. Chapters (a slide's with its title) and the chat (`chapters.json`, `chat.json`,
//!    `chat.vtt`) go beside them, and the polls, their shown results and the slides turned
//!    (`moments.json`).

pub mod board;
pub mod depacketize;
pub mod mkv;
pub mod moments;
pub mod timeline;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::board::scene::SceneLimits;
use crate::config::RecorderConfig;
use crate::events::{self, Event};
use crate::live::EVENTS_FILE;
use crate::track_file::{self, TrackCodec, TrackHeader};
use board::{BOARD_TRACK, BoardError, BoardJob, PageTitles};
use depacketize::{Depacketizer, Frame};
use mkv::{MkvTrack, MkvWriter};
use timeline::{Chapter, Cuts, Placer, Roster, Runs, Shot, VideoSpan};

pub const PLAYLIST: &str = "index.m3u8";
pub const MP4: &str = "replay.mp4";
pub const CHAPTERS: &str = "chapters.json";
pub const CHAT_JSON: &str = "chat.json";
pub const CHAT_VTT: &str = "chat.vtt";
/// Polls, their shown results and slide turns at their replay time ([`moments`]).
pub const MOMENTS: &str = "moments.json";
const WORK: &str = "work";
const FPS: u32 = 30;

/// Why a recording could not be made into a replay. The message is shown to admins.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("the recording {0} has no readable events file")]
    NoEvents(String),
    #[error("the recording's track file {file} is unreadable: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("cannot run ffmpeg ({program}): {reason}")]
    FfmpegMissing { program: String, reason: String },
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    #[error("cannot draw the slides and the board: {0}")]
    Board(#[from] BoardError),
    #[error("cannot write the replay: {0}")]
    Io(#[from] std::io::Error),
}

impl ProcessError {
    /// Whether another attempt could succeed: not when the board took too long to draw (it
    /// would again).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProcessError::Board(BoardError::TimedOut { .. }))
    }
}

/// What a finished replay is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayOutput {
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub chapters: Vec<Chapter>,
}

/// One track ready for ffmpeg.
struct Prepared {
    path: PathBuf,
    kind: InputKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Audio,
    Video,
    /// The board's frames, an ffconcat list.
    Board,
}

/// The replay's picture: `config.height` high (even), 16:9.
fn picture_size(config: &RecorderConfig) -> (u32, u32) {
    let height = (config.height.max(90) / 2) * 2;
    let width = (height * 16 / 9 / 2) * 2;
    (width, height)
}

/// Makes the replay of the recording in `recording` into `out` (emptied first); the slides
/// shown in it are the course documents' under `documents`.
pub fn process(
    config: &RecorderConfig,
    recording: &Path,
    documents: &Path,
    out: &Path,
) -> Result<ReplayOutput, ProcessError> {
    let name = recording.display().to_string();
    let text = fs::read_to_string(recording.join(EVENTS_FILE))
        .map_err(|_| ProcessError::NoEvents(name.clone()))?;
    let events = events::parse(&text);
    if !events
        .iter()
        .any(|e| matches!(e.event, Event::Started { .. }))
    {
        return Err(ProcessError::NoEvents(name));
    }
    let mut tracks = Vec::new();
    for path in track_files(recording)? {
        tracks.push(scan(&path)?);
    }
    let mut cuts = Cuts::from_events(&events);
    if !events
        .iter()
        .any(|e| matches!(e.event, Event::Stopped { .. }))
    {
        // Never stopped (the server went down): it lasted as long as its last packet.
        let last = tracks
            .iter()
            .filter_map(|t| t.last_arrival_us)
            .map(|us| us as f64 / 1000.0)
            .fold(0.0, f64::max);
        cuts.end_ms = cuts.end_ms.max(last);
    }
    let roster = Roster::from_events(&events);
    let duration_ms = cuts.duration_ms();

    if out.exists() {
        fs::remove_dir_all(out)?;
    }
    let work = out.join(WORK);
    fs::create_dir_all(&work)?;

    let mut prepared: Vec<(u64, Prepared)> = Vec::new();
    let mut spans: Vec<VideoSpan> = Vec::new();
    for track in tracks {
        let codec = track.header.codec;
        if codec == TrackCodec::Other {
            continue;
        }
        let id = track.header.track;
        let mkv_path = work.join(format!("track-{id}.mkv"));
        let Some((first, last)) = write_track(track, &cuts, &mkv_path)? else {
            continue;
        };
        if !codec.is_audio() {
            let (source, role, name) = roster.describe(id);
            spans.push(VideoSpan {
                track: id,
                source,
                role,
                name,
                from_ms: first,
                to_ms: (last + 1000.0 / f64::from(FPS)).min(duration_ms),
            });
        }
        prepared.push((
            id,
            Prepared {
                path: mkv_path,
                kind: if codec.is_audio() {
                    InputKind::Audio
                } else {
                    InputKind::Video
                },
            },
        ));
    }

    let (width, height) = picture_size(config);
    let board = board::render_board(
        &BoardJob {
            documents,
            work: &work.join("board"),
            width,
            height,
            deadline: Instant::now() + Duration::from_secs(config.board_time_limit_secs),
            limit_secs: config.board_time_limit_secs,
            limits: SceneLimits::default(),
        },
        &events,
        &cuts,
        duration_ms,
    )?;
    // Under the board, the main view it took the place of (shown small, as live).
    let beneath = timeline::main_view(&spans, duration_ms);
    let mut shots = beneath.clone();
    let mut corner = Vec::new();
    if let Some(board) = &board {
        if board.blank_pages > 0 {
            tracing::warn!(recording = %name, pages = board.blank_pages, "slides without their image are blank in the replay");
        }
        let mut with_board = spans.clone();
        // The board outranks every track by its id; its source and role play no part.
        with_board.extend(board.shown.iter().map(|&(from_ms, to_ms)| VideoSpan {
            track: BOARD_TRACK,
            source: classroom_protocol::TrackSource::Screen,
            role: None,
            name: "board".into(),
            from_ms,
            to_ms,
        }));
        shots = timeline::main_view(&with_board, duration_ms);
        corner = timeline::beneath(&shots, &beneath, BOARD_TRACK);
        prepared.push((
            BOARD_TRACK,
            Prepared {
                path: board.list.clone(),
                kind: InputKind::Board,
            },
        ));
    }
    let args = ffmpeg_args(
        config,
        &prepared,
        &Shots {
            main: &shots,
            corner: &corner,
        },
        duration_ms,
        &out.join(MP4),
    );
    run_ffmpeg(config, &args, out)?;
    let seg = config.segment_secs.max(1).to_string();
    let hls: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        MP4,
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        &seg,
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        "seg-%05d.ts",
        PLAYLIST,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_ffmpeg(config, &hls, out)?;

    let mut chapters = timeline::chapters(&events, &spans, &cuts);
    let mut titles = PageTitles::new(documents);
    chapters.extend(crate::board::page_chapters(&events, &cuts, |d, p| {
        titles.title(d, p)
    }));
    chapters.sort_by_key(|c| c.at_ms);
    let chat = timeline::chat(&events, &cuts);
    fs::write(
        out.join(CHAPTERS),
        serde_json::to_vec(&chapters).unwrap_or_default(),
    )?;
    fs::write(
        out.join(CHAT_JSON),
        serde_json::to_vec(&chat).unwrap_or_default(),
    )?;
    fs::write(out.join(CHAT_VTT), timeline::webvtt(&chat))?;
    fs::write(
        out.join(MOMENTS),
        serde_json::to_vec(&moments::moments(&events, &cuts)).unwrap_or_default(),
    )?;
    fs::remove_dir_all(&work)?;
    let size_bytes = folder_size(out)?;
    Ok(ReplayOutput {
        duration_ms: duration_ms.round() as i64,
        size_bytes: size_bytes as i64,
        chapters,
    })
}

/// The track files of a recording, in a stable order.
fn track_files(recording: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(recording)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rtp"))
        .collect();
    files.sort();
    Ok(files)
}

/// What the first pass over a track file found.
struct Scanned {
    path: PathBuf,
    header: TrackHeader,
    /// Its runs' anchors, for the second pass.
    runs: Runs,
    last_arrival_us: Option<u64>,
    /// The picture size of its first VP8 keyframe that declares one.
    vp8_size: Option<(u16, u16)>,
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ProcessError {
    ProcessError::Corrupt {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        reason: reason.to_string(),
    }
}

fn open_track(path: &Path) -> Result<track_file::Reader<File>, ProcessError> {
    track_file::Reader::new(File::open(path)?).map_err(|e| corrupt(path, e))
}

/// Goes through a track file's frames once, record by record: `each` sees every frame.
/// Returns the arrival of the last record.
fn each_frame(
    path: &Path,
    mut reader: track_file::Reader<File>,
    mut each: impl FnMut(Frame),
) -> Result<Option<u64>, ProcessError> {
    let mut depacketizer = Depacketizer::new(reader.header().codec);
    let mut frames = Vec::new();
    let mut last_arrival_us = None;
    while let Some(record) = reader.next_record().map_err(|e| corrupt(path, e))? {
        last_arrival_us = Some(record.arrival_us);
        depacketizer.push(record, &mut frames);
        frames.drain(..).for_each(&mut each);
    }
    depacketizer.finish(&mut frames);
    frames.drain(..).for_each(&mut each);
    Ok(last_arrival_us)
}

/// The first pass over a track file.
fn scan(path: &Path) -> Result<Scanned, ProcessError> {
    let reader = open_track(path)?;
    let header = reader.header().clone();
    let codec = header.codec;
    let mut runs = Runs::new(codec.clock_rate());
    let mut vp8_size = None;
    let last_arrival_us = each_frame(path, reader, |frame| {
        runs.push(frame.timestamp, frame.arrival_us);
        if codec == TrackCodec::Vp8 && vp8_size.is_none() && frame.keyframe {
            vp8_size = classroom_codec::vp8::keyframe_size(&frame.data);
        }
    })?;
    Ok(Scanned {
        path: path.to_path_buf(),
        header,
        runs,
        last_arrival_us,
        vp8_size,
    })
}

/// The second pass: places a track's frames on the replay's timeline and writes them as
/// Matroska to `path`. Frames inside pauses are left out, and video after a pause restarts at
/// a keyframe. Returns the replay times of the first and last frames written, or `None` (and
/// no file) when none was.
fn write_track(
    track: Scanned,
    cuts: &Cuts,
    path: &Path,
) -> Result<Option<(f64, f64)>, ProcessError> {
    let codec = track.header.codec;
    let kind = match codec {
        TrackCodec::Opus => MkvTrack::Opus,
        TrackCodec::H264 => MkvTrack::H264,
        _ => {
            let (width, height) = track.vp8_size.unwrap_or((640, 360));
            MkvTrack::Vp8 { width, height }
        }
    };
    let mut writer = MkvWriter::new(BufWriter::new(File::create(path)?), kind)?;
    let mut placer: Placer = track.runs.placer();
    let mut need_keyframe = false;
    let mut previous = f64::NEG_INFINITY;
    let mut written: Option<(f64, f64)> = None;
    let mut failed: Option<std::io::Error> = None;
    let reader = open_track(&track.path)?;
    each_frame(&track.path, reader, |frame| {
        if failed.is_some() {
            return;
        }
        let t = placer.place(frame.timestamp, frame.arrival_us);
        if !codec.is_audio() && cuts.resumes_between(previous, t) {
            need_keyframe = true;
        }
        previous = t;
        let Some(replay) = cuts.replay_ms(t) else {
            return;
        };
        if need_keyframe && !frame.keyframe {
            return;
        }
        need_keyframe = false;
        if let Err(e) = writer.frame(replay.max(0.0).round() as u64, frame.keyframe, &frame.data) {
            failed = Some(e);
            return;
        }
        written = Some(written.map_or((replay, replay), |(first, _)| (first, replay)));
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    writer.finish()?.flush()?;
    if written.is_none() {
        fs::remove_file(path)?;
    }
    Ok(written)
}

/// The main view's shots, and what shows small in the corner under the board.
struct Shots<'a> {
    main: &'a [Shot],
    corner: &'a [Shot],
}

/// ffmpeg's `enable` expression for a track's shots; `None` when it has none.
fn enable(shots: &[Shot], track: u64) -> Option<String> {
    let spans: Vec<String> = shots
        .iter()
        .filter(|s| s.track == track)
        .map(|s| {
            format!(
                "between(t,{:.3},{:.3})",
                s.from_ms / 1000.0,
                s.to_ms / 1000.0
            )
        })
        .collect();
    (!spans.is_empty()).then(|| spans.join("+"))
}

/// The arguments of the ffmpeg run that makes the MP4.
fn ffmpeg_args(
    config: &RecorderConfig,
    tracks: &[(u64, Prepared)],
    shots: &Shots,
    duration_ms: f64,
    mp4: &Path,
) -> Vec<String> {
    let (width, height) = picture_size(config);
    // The corner picture: a quarter of the width, as the live stage's small tile.
    let (corner_w, corner_h) = ((width / 4 / 2) * 2, (height / 4 / 2) * 2);
    let margin = (height / 60).max(2);
    let duration = format!("{:.3}", (duration_ms / 1000.0).max(0.1));
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-copyts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut graph = vec![format!(
        "color=c=black:s={width}x{height}:r={FPS}:d={duration},format=yuv420p[base0]"
    )];
    let mut input = 0;
    let mut base = 0;
    let mut audio_labels = Vec::new();
    let mut corners = Vec::new();
    for (track, prepared) in tracks {
        if prepared.kind == InputKind::Audio {
            continue;
        }
        let Some(main) = enable(shots.main, *track) else {
            continue;
        };
        if prepared.kind == InputKind::Board {
            // Paths in the list are its own folder's.
            args.extend(["-f", "concat", "-safe", "0"].map(String::from));
        }
        args.extend(["-i".to_string(), prepared.path.display().to_string()]);
        let corner = enable(shots.corner, *track);
        let split = if corner.is_some() {
            format!(",split[v{input}][c{input}]")
        } else {
            format!("[v{input}]")
        };
        graph.push(format!(
            "[{input}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p{split}"
        ));
        graph.push(format!(
            "[base{base}][v{input}]overlay=eof_action=pass:enable='{main}'[base{}]",
            base + 1
        ));
        base += 1;
        if let Some(corner) = corner {
            corners.push((input, corner));
        }
        input += 1;
    }
    // The corners go over everything (the board included).
    for (input, corner) in corners {
        graph.push(format!(
            "[c{input}]scale={corner_w}:{corner_h},setsar=1[cs{input}]"
        ));
        graph.push(format!(
            "[base{base}][cs{input}]overlay=x=W-w-{margin}:y=H-h-{margin}:eof_action=pass:enable='{corner}'[base{}]",
            base + 1
        ));
        base += 1;
    }
    for (_, prepared) in tracks.iter().filter(|(_, p)| p.kind == InputKind::Audio) {
        args.extend(["-i".to_string(), prepared.path.display().to_string()]);
        graph.push(format!(
            "[{input}:a]aresample=48000:async=1:first_pts=0,aformat=sample_rates=48000:channel_layouts=stereo[a{input}]"
        ));
        audio_labels.push(format!("[a{input}]"));
        input += 1;
    }
    graph.push(format!("[base{base}]null[vout]"));
    match audio_labels.len() {
        0 => graph.push(format!(
            "anullsrc=r=48000:cl=stereo,atrim=end={duration}[aout]"
        )),
        1 => graph.push(format!(
            "{}apad,atrim=end={duration}[aout]",
            audio_labels[0]
        )),
        n => graph.push(format!(
            "{}amix=inputs={n}:duration=longest:normalize=0,apad,atrim=end={duration}[aout]",
            audio_labels.concat()
        )),
    }
    let seg = config.segment_secs.max(1);
    args.extend(
        [
            "-filter_complex",
            &graph.join(";"),
            "-map",
            "[vout]",
            "-map",
            "[aout]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-r",
            &FPS.to_string(),
            "-force_key_frames",
            &format!("expr:gte(t,n_forced*{seg})"),
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-t",
            &duration,
            "-movflags",
            "+faststart",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(mp4.display().to_string());
    args
}

fn run_ffmpeg(config: &RecorderConfig, args: &[String], dir: &Path) -> Result<(), ProcessError> {
    let program = config.ffmpeg.display().to_string();
    let output = Command::new(&config.ffmpeg)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| ProcessError::FfmpegMissing {
            program: program.clone(),
            reason: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(ProcessError::Ffmpeg(format!(
        "{} ({})",
        tail.join(" | "),
        output.status
    )))
}

fn folder_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
