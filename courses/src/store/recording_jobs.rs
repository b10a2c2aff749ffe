//! The durable job queue (table `recording_jobs`): one replay job per finished recording, one
//! document job per uploaded document (`kind`). Both kinds share the claim, the lease and
//! the retries; what a finished or failed job changes (a replay, a document) depends on it.
//!
//! Claiming is one statement that picks the oldest due job and marks it running: on
//! PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`, so several nodes never take the same job
//! and never wait on each other; on SQLite the statement runs under the database's single
//! writer lock, which gives the same guarantee on one node. A running job whose worker has
//! not renewed its claim within the lease is due again (its node died).

use classroom_protocol::{DocumentId, LessonId, ReplayId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::{Duration, OffsetDateTime};

use super::replays::{REPLAY_COLUMNS, replay_from_row};
use super::{Store, decode_err, fixed};
use crate::db::Backend;
use crate::error::{StoreError, StoreResult};
use crate::model::{
    DocumentState, JobKind, JobState, RecordingJob, Replay, ReplayBreakout, ReplayChapter,
    ReplayState, from_millis, to_millis,
};

pub(super) const JOB_COLUMNS: &str = "id, kind, recording, lesson_id, replay_id, document_id, \
     delivery_id, state, attempts, run_after, worker, error, created_at, updated_at, finished_at";

pub(super) fn job_from_row(row: &AnyRow) -> Result<RecordingJob, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let kind: String = row.try_get("kind")?;
    Ok(RecordingJob {
        id: row.try_get("id")?,
        kind: JobKind::parse(&kind).ok_or_else(|| decode_err("job kind", &kind))?,
        recording: row.try_get("recording")?,
        lesson_id: row.try_get::<Option<i64>, _>("lesson_id")?.map(LessonId),
        replay_id: row.try_get::<Option<i64>, _>("replay_id")?.map(ReplayId),
        document_id: row
            .try_get::<Option<i64>, _>("document_id")?
            .map(DocumentId),
        delivery_id: row.try_get("delivery_id")?,
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
    /// Queues the replay job of a finished recording of the lesson's main room and registers
    /// its replay (processing) in the course's library. Queueing a recording again returns
    /// its existing job.
    pub async fn enqueue_recording(
        &self,
        lesson: LessonId,
        recording: &str,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        self.enqueue_room_recording(lesson, None, recording, now)
            .await
    }

    /// [`Store::enqueue_recording`] for a recording of the lesson's main room (`breakout`
    /// `None`) or of one of its breakout rooms, whose replay is listed with the lesson's and
    /// keeps its round and room.
    pub async fn enqueue_room_recording(
        &self,
        lesson: LessonId,
        breakout: Option<ReplayBreakout>,
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
            "INSERT INTO replays (lesson_id, course_id, title, state, created_at, \
             breakout_round, breakout_room) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(lesson.id.0)
        .bind(lesson.course_id.0)
        .bind(lesson.title.as_str())
        .bind(ReplayState::Processing.as_str())
        .bind(now_ms)
        .bind(breakout.map(|b| i64::from(b.round)))
        .bind(breakout.map(|b| i64::from(b.room)))
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
        let replay = job.replay_id.ok_or(StoreError::NotFound("replay"))?;
        let now = to_millis(now);
        let chapters = serde_json::to_string(chapters).unwrap_or_else(|_| "[]".into());
        let mut tx = self.db.pool().begin().await?;
        finish_claimed_job(&mut tx, id, worker, now).await?;
        let sql = format!(
            "UPDATE replays SET state = 'ready', duration_ms = $1, size_bytes = $2, ready_at = $3, \
             chapters = $4, error = NULL WHERE id = $5 RETURNING {REPLAY_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(duration_ms)
            .bind(size_bytes)
            .bind(now)
            .bind(chapters)
            .bind(replay.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("replay"))?;
        let replay = replay_from_row(&row)?;
        tx.commit().await?;
        Ok(replay)
    }

    /// An attempt failed: the job is retried after the backoff, or, out of attempts, stays
    /// failed with `reason` (and so does its replay or document).
    pub async fn fail_recording_job(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        policy: RetryPolicy,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        self.fail_job(id, worker, reason, Some(policy), now).await
    }

    /// An attempt failed in a way another attempt cannot mend (the input is bad): the job
    /// stays failed with `reason` at once.
    pub async fn give_up_job(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        self.fail_job(id, worker, reason, None, now).await
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        policy: Option<RetryPolicy>,
        now: OffsetDateTime,
    ) -> StoreResult<RecordingJob> {
        let job = self.recording_job(id).await?;
        let (give_up, run_after) = match policy {
            Some(policy) => {
                let doublings =
                    u32::try_from(job.attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
                (
                    job.attempts >= i64::from(policy.max_attempts),
                    now + policy.backoff * 2f64.powi(doublings as i32),
                )
            }
            None => (true, now),
        };
        let state = if give_up {
            JobState::Failed
        } else {
            JobState::Queued
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
        if let Some((table, target, state)) = JobSubject::of(&job)?.row(give_up) {
            let sql = format!("UPDATE {table} SET state = $1, error = $2 WHERE id = $3");
            sqlx::query(fixed(&sql))
                .bind(state)
                .bind(reason)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
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
        if let Some((table, target, state)) = JobSubject::of(&job)?.row(false) {
            let sql = format!("UPDATE {table} SET state = $1 WHERE id = $2");
            sqlx::query(fixed(&sql))
                .bind(state)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
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

    /// How many replay jobs are in each state (the replay metrics; document jobs are not
    /// counted here).
    pub async fn recording_job_counts(&self) -> StoreResult<Vec<(JobState, i64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM recording_jobs WHERE kind = 'replay' GROUP BY state",
        )
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

/// What a job works on besides its own row.
enum JobSubject {
    Replay(ReplayId),
    Document(DocumentId),
    /// A webhook delivery: it has no state of its own beyond its job's.
    Delivery,
}

impl JobSubject {
    fn of(job: &RecordingJob) -> StoreResult<Self> {
        match (job.replay_id, job.document_id) {
            (None, None) if job.delivery_id.is_some() => Ok(JobSubject::Delivery),
            (Some(replay), _) => Ok(JobSubject::Replay(replay)),
            (None, Some(document)) => Ok(JobSubject::Document(document)),
            (None, None) => Err(StoreError::NotFound("replay or document")),
        }
    }

    /// The table and id of the row whose state follows the job's (none for a delivery), and
    /// that state while the job is queued again or, `failed`, when it stays failed.
    fn row(&self, failed: bool) -> Option<(&'static str, i64, &'static str)> {
        match self {
            JobSubject::Replay(replay) => {
                let state = if failed {
                    ReplayState::Failed
                } else {
                    ReplayState::Processing
                };
                Some(("replays", replay.0, state.as_str()))
            }
            JobSubject::Document(document) => {
                let state = if failed {
                    DocumentState::Failed
                } else {
                    DocumentState::Processing
                };
                Some(("documents", document.0, state.as_str()))
            }
            JobSubject::Delivery => None,
        }
    }
}

/// Marks the job `worker` runs done, in `tx`: refused ([`claim_lost`]) when its claim was
/// taken over. What the job made is stored by the caller in the same transaction.
pub(super) async fn finish_claimed_job(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    worker: &str,
    now_ms: i64,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE recording_jobs SET state = 'done', error = NULL, updated_at = $1, \
         finished_at = $1 WHERE id = $2 AND state = 'running' AND worker = $3",
    )
    .bind(now_ms)
    .bind(id)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(claim_lost());
    }
    Ok(())
}

/// A worker's claim was taken over by another (its lease ran out while it was slow): what it
/// reports about the job is refused, so the other worker's outcome stands.
pub fn claim_lost() -> StoreError {
    StoreError::conflict(
        "claim_lost",
        "another worker took this job over after its claim lapsed; its outcome stands",
    )
}
