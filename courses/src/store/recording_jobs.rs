//! The durable queue of replay jobs (table `recording_jobs`), one job per finished recording.
//!
//! Claiming is one statement that picks the oldest due job and marks it running: on
//! PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`, so several nodes never take the same job
//! and never wait on each other; on SQLite the statement runs under the database's single
//! writer lock, which gives the same guarantee on one node. A running job whose worker has
//! not renewed its claim within the lease is due again (its node died).

use classroom_protocol::{LessonId, ReplayId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::{Duration, OffsetDateTime};

use super::replays::{REPLAY_COLUMNS, replay_from_row};
use super::{Store, decode_err, fixed};
use crate::db::Backend;
use crate::error::{StoreError, StoreResult};
use crate::model::{
    JobState, RecordingJob, Replay, ReplayChapter, ReplayState, from_millis, to_millis,
};

const JOB_COLUMNS: &str = "id, recording, lesson_id, replay_id, state, attempts, run_after, \
     worker, error, created_at, updated_at, finished_at";

fn job_from_row(row: &AnyRow) -> Result<RecordingJob, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(RecordingJob {
        id: row.try_get("id")?,
        recording: row.try_get("recording")?,
        lesson_id: LessonId(row.try_get("lesson_id")?),
        replay_id: ReplayId(row.try_get("replay_id")?),
        state: JobState::parse(&state).ok_or_else(|| decode_err("job state", &state))?,
        attempts: row.try_get("attempts")?,
        run_after: from_millis(row.try_get("run_after")?),
        worker: row.try_get("worker")?,
        error: row.try_get("error")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(from_millis),
    })
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a job stays failed.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Store {
    /// Queues the replay job of a finished recording and registers its replay (processing)
    /// in the course's library. Queueing a recording again returns its existing job.
    pub async fn enqueue_recording(
        &self,
        lesson: LessonId,
        recording: &str,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        if let Some(job) = self.recording_job_of(recording).await? {
            return Ok(job);
        }
        let lesson = self.lesson(lesson).await?;
        let now_ms = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let replay: i64 = sqlx::query(
            "INSERT INTO replays (lesson_id, course_id, title, state, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(lesson.id.0)
        .bind(lesson.course_id.0)
        .bind(lesson.title.as_str())
        .bind(ReplayState::Processing.as_str())
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let sql = format!(
            "INSERT INTO recording_jobs (recording, lesson_id, replay_id, state, attempts, \
             run_after, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5, $5) \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(recording)
            .bind(lesson.id.0)
            .bind(replay)
            .bind(JobState::Queued.as_str())
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(job)
    }

    async fn recording_job_of(&self, recording: &str) -> StoreResult<Option<RecordingJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM recording_jobs WHERE recording = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(recording)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    pub async fn recording_job(&self, id: i64) -> StoreResult<RecordingJob> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM recording_jobs WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(job_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("recording job"))
    }

    /// Claims the oldest due job for `worker`: a queued job whose time has come, or a running
    /// one whose claim was not renewed within `lease`.
    pub async fn claim_recording_job(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> StoreResult<Option<RecordingJob>> {
        let lock = match self.db.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE recording_jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
             updated_at = $2 WHERE id = (SELECT id FROM recording_jobs \
             WHERE (state = 'queued' AND run_after <= $2) OR (state = 'running' AND updated_at < $3) \
             ORDER BY run_after, id LIMIT 1 {lock}) RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(worker)
            .bind(to_millis(now))
            .bind(to_millis(now - lease))
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    /// `worker` still runs the job: its claim is renewed. A claim another worker took over
    /// (after the lease ran out) is not: [`claim_lost`].
    pub async fn renew_recording_job(
        &self,
        id: i64,
        worker: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let renewed = sqlx::query(
            "UPDATE recording_jobs SET updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND worker = $3",
        )
        .bind(to_millis(now))
        .bind(id)
        .bind(worker)
        .execute(self.db.pool())
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(claim_lost());
        }
        Ok(())
    }

    /// The job made its replay: the replay is ready with its duration, size and chapters.
    pub async fn complete_recording_job(
        &self,
        id: i64,
        worker: &str,
        duration_ms: i64,
        size_bytes: i64,
        chapters: &[ReplayChapter],
        now: OffsetDateTime,
    ) -> StoreResult<Replay> {
        let job = self.recording_job(id).await?;
        let now = to_millis(now);
        let chapters = serde_json::to_string(chapters).unwrap_or_else(|_| "[]".into());
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE recording_jobs SET state = 'done', error = NULL, updated_at = $1, \
             finished_at = $1 WHERE id = $2 AND state = 'running' AND worker = $3",
        )
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(claim_lost());
        }
        let sql = format!(
            "UPDATE replays SET state = 'ready', duration_ms = $1, size_bytes = $2, ready_at = $3, \
             chapters = $4, error = NULL WHERE id = $5 RETURNING {REPLAY_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(duration_ms)
            .bind(size_bytes)
            .bind(now)
            .bind(chapters)
            .bind(job.replay_id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("replay"))?;
        let replay = replay_from_row(&row)?;
        tx.commit().await?;
        Ok(replay)
    }

    /// An attempt failed: the job is retried after the backoff, or, out of attempts, stays
    /// failed with `reason` (and so does its replay).
    pub async fn fail_recording_job(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        policy: RetryPolicy,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        let job = self.recording_job(id).await?;
        let give_up = job.attempts >= i64::from(policy.max_attempts);
        let doublings = u32::try_from(job.attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        let run_after = now + policy.backoff * 2f64.powi(doublings as i32);
        let (state, replay_state) = if give_up {
            (JobState::Failed, ReplayState::Failed)
        } else {
            (JobState::Queued, ReplayState::Processing)
        };
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let sql = format!(
            "UPDATE recording_jobs SET state = $1, error = $2, run_after = $3, updated_at = $4, \
             finished_at = $5 WHERE id = $6 AND state = 'running' AND worker = $7 \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(state.as_str())
            .bind(reason)
            .bind(to_millis(run_after))
            .bind(now)
            .bind(give_up.then_some(now))
            .bind(id)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(claim_lost)?;
        sqlx::query("UPDATE replays SET state = $1, error = $2 WHERE id = $3")
            .bind(replay_state.as_str())
            .bind(reason)
            .bind(job.replay_id.0)
            .execute(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(job)
    }

    /// An admin retries a failed job: it is queued now with its attempts reset.
    pub async fn retry_recording_job(
        &self,
        id: i64,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        let job = self.recording_job(id).await?;
        if job.state != JobState::Failed {
            return Err(StoreError::conflict(
                "job_not_failed",
                "only a failed job can be retried",
            ));
        }
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let sql = format!(
            "UPDATE recording_jobs SET state = 'queued', attempts = 0, run_after = $1, \
             updated_at = $1, finished_at = NULL WHERE id = $2 RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE replays SET state = 'processing' WHERE id = $1")
            .bind(job.replay_id.0)
            .execute(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(job)
    }

    /// Jobs, newest first, optionally of one state.
    pub async fn recording_jobs(&self, state: Option<JobState>) -> StoreResult<Vec<RecordingJob>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM recording_jobs WHERE ($1 = '' OR state = $1) \
             ORDER BY id DESC LIMIT 500"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(state.map_or("", JobState::as_str))
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
    }

    /// How many jobs are in each state.
    pub async fn recording_job_counts(&self) -> StoreResult<Vec<(JobState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM recording_jobs GROUP BY state")
            .fetch_all(self.db.pool())
            .await?;
        let mut counts: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            let state: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == state) {
                entry.1 = n;
            }
        }
        Ok(counts)
    }
}

/// A worker's claim was taken over by another (its lease ran out while it was slow): what it
/// reports about the job is refused, so the other worker's outcome stands.
pub fn claim_lost() -> StoreError {
    StoreError::conflict(
        "claim_lost",
        "another worker took this job over after its claim lapsed; its outcome stands",
    )
}
