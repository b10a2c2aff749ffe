//! The recorder of classroom: records every live lesson and publishes it as a replay.
//!
//! - [`live`]: while a lesson is recorded, an in-process subscriber of every track of its room
//!   (the SFU's local subscriber API) writes what arrives to disk, append-only: one framed
//!   file per track ([`track_file`]) and an events file ([`events`]) with chat, stage, hands,
//!   attendance and pauses. On start, recordings left unfinished by a crash are found
//!   ([`live::unfinished`]) and queued.
//! - [`worker`]: the durable job queue (behind [`worker::JobQueue`], kept in the database by
//!   the server) and the workers that run the [`pipeline`]: depacketize, place every track on
//!   one timeline, and have ffmpeg make HLS and MP4 of the main view with all voices mixed.
//!   The same workers prepare course [`documents`] (slides, handouts): pages and their text.
//!   The slides and the whiteboard shown live are drawn into the replay's main view with
//!   tiny-skia ([`board`]: no browser; text strokes with resvg and the system's fonts).
//!
//! Layout under the data directory:
//!
//! ```text
//! recordings/<room>-<unix ms>/            one per recording; <room> is lesson-<lesson>, or
//!                                         lesson-<lesson>-breakout-<round>-<index>
//!     events.jsonl                        timeline events, one JSON object per line
//!     track-<id>.rtp                      one per recorded track (see track_file)
//!     queued                              present once its replay job is queued
//! replays/<replay id>/
//!     index.m3u8, seg-00000.ts, ...       HLS (H.264 + AAC), VOD playlist
//!     replay.mp4                          the download
//!     chapters.json, chat.json, chat.vtt  chapters and the chat as a timed track
//!     moments.json                        polls, shown results, slide turns at their time
//! documents/<document id>/
//!     source.<pdf|pptx|odp|docx>          the upload
//!     pages/                              document.pdf, page-<n>.png, thumb-<n>.png, text.json
//! ```
//!
//! Invariants: the recording path never slows forwarding (the SFU drops what a recorder
//! cannot take; the loss is counted and logged once per burst from outside the writer, which
//! may be blocked on the disk, see [`drops`]); nothing read from disk can panic the pipeline; a failed
//! job leaves a reason.

pub mod board;
pub mod config;
pub mod documents;
pub mod drops;
pub mod events;
pub mod live;
pub mod pipeline;
pub mod stats;
pub mod track_file;
pub mod worker;

pub use config::RecorderConfig;
pub use documents::DocumentConfig;
pub use live::{FinishedRecording, LiveRecorder};
pub use stats::{RecorderSnapshot, RecorderStats};
pub use worker::{
    EnqueueError, Folders, Job, JobOutput, JobQueue, QueueError, Task, WebhookSender, Workers,
};
