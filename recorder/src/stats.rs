//! The recorder's counters, read by the server's metrics module.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct RecorderStats {
    recordings_active: AtomicI64,
    /// Recordings losing packets now (the disk does not keep up).
    recordings_degraded: AtomicI64,
    tracks_recorded: AtomicU64,
    bytes_written: AtomicU64,
    packets_dropped: AtomicU64,
    jobs_succeeded: AtomicU64,
    jobs_failed: AtomicU64,
    /// Sum of the run times of finished jobs, in milliseconds.
    job_millis: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderSnapshot {
    pub recordings_active: i64,
    pub recordings_degraded: i64,
    pub tracks_recorded: u64,
    pub bytes_written: u64,
    pub packets_dropped: u64,
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    pub job_millis: u64,
}

impl RecorderStats {
    pub fn snapshot(&self) -> RecorderSnapshot {
        RecorderSnapshot {
            recordings_active: self.recordings_active.load(Ordering::Relaxed),
            recordings_degraded: self.recordings_degraded.load(Ordering::Relaxed),
            tracks_recorded: self.tracks_recorded.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            packets_dropped: self.packets_dropped.load(Ordering::Relaxed),
            jobs_succeeded: self.jobs_succeeded.load(Ordering::Relaxed),
            jobs_failed: self.jobs_failed.load(Ordering::Relaxed),
            job_millis: self.job_millis.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn recording_started(&self) {
        self.recordings_active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn recording_ended(&self) {
        self.recordings_active.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn track_recorded(&self) {
        self.tracks_recorded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wrote(&self, bytes: usize) {
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn degraded(&self, now: bool) {
        let step = if now { 1 } else { -1 };
        self.recordings_degraded.fetch_add(step, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, packets: u64) {
        self.packets_dropped.fetch_add(packets, Ordering::Relaxed);
    }

    pub(crate) fn job_finished(&self, ok: bool, millis: u64) {
        let counter = if ok {
            &self.jobs_succeeded
        } else {
            &self.jobs_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.job_millis.fetch_add(millis, Ordering::Relaxed);
    }
}
