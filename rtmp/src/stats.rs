//! Counters of the ingest, kept with plain atomics; the server's metrics module reads a
//! [`IngestSnapshot`] at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

/// How an encoder connection ended up, once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// Published to a lesson (a new source).
    Accepted,
    /// Published to a lesson whose source was waiting for it (a reconnect).
    Resumed,
    /// The stream key matched no open lesson.
    WrongKey,
    /// Another encoder was streaming to the lesson.
    InUse,
    /// The media could not be used (unsupported codec, B-frames without ffmpeg, a failed
    /// transcoder).
    Unsupported,
    /// Closed before any publish: bad bytes, a failed handshake, a timeout.
    NoPublish,
    /// Over the connection limit: closed at once.
    OverLimit,
}

impl SessionOutcome {
    pub const ALL: [SessionOutcome; 7] = [
        SessionOutcome::Accepted,
        SessionOutcome::Resumed,
        SessionOutcome::WrongKey,
        SessionOutcome::InUse,
        SessionOutcome::Unsupported,
        SessionOutcome::NoPublish,
        SessionOutcome::OverLimit,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOutcome::Accepted => "accepted",
            SessionOutcome::Resumed => "resumed",
            SessionOutcome::WrongKey => "wrong_key",
            SessionOutcome::InUse => "in_use",
            SessionOutcome::Unsupported => "unsupported",
            SessionOutcome::NoPublish => "no_publish",
            SessionOutcome::OverLimit => "over_limit",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct IngestStats {
    outcomes: [AtomicU64; SessionOutcome::ALL.len()],
    bytes_in: AtomicU64,
    video_frames_in: AtomicU64,
    audio_frames_in: AtomicU64,
    transcoders_running: AtomicU64,
}

/// The ingest's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSnapshot {
    /// Encoder connections by outcome, in the order of [`SessionOutcome::ALL`].
    pub sessions: Vec<(SessionOutcome, u64)>,
    /// Lessons with an encoder source (publishing, or waiting for a reconnect).
    pub active_encoders: u64,
    /// Bytes read from encoders.
    pub bytes_in: u64,
    /// Video pictures and audio frames that went out to the SFU.
    pub video_frames_in: u64,
    pub audio_frames_in: u64,
    /// ffmpeg processes converting B-frame video or AAC audio now.
    pub transcoders_running: u64,
}

impl IngestStats {
    pub(crate) fn session(&self, outcome: SessionOutcome) {
        if let Some(i) = SessionOutcome::ALL.iter().position(|o| *o == outcome)
            && let Some(counter) = self.outcomes.get(i)
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn bytes(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn video_frame(&self) {
        self.video_frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn audio_frame(&self) {
        self.audio_frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn transcoder_started(&self) {
        self.transcoders_running.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn transcoder_stopped(&self) {
        let _ = self
            .transcoders_running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub(crate) fn snapshot(&self, active_encoders: u64) -> IngestSnapshot {
        IngestSnapshot {
            sessions: SessionOutcome::ALL
                .iter()
                .zip(&self.outcomes)
                .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
                .collect(),
            active_encoders,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            video_frames_in: self.video_frames_in.load(Ordering::Relaxed),
            audio_frames_in: self.audio_frames_in.load(Ordering::Relaxed),
            transcoders_running: self.transcoders_running.load(Ordering::Relaxed),
        }
    }
}
