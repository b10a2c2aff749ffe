//! Webhooks and their deliveries (see [`crate::webhook`]). An event is stored once per
//! webhook it is for, with its body, and queued as a `webhook` job in the same transaction;
//! the unique (webhook, event id) makes a second enqueue of one event a no-op.

use classroom_protocol::{CourseId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::recording_jobs::{JOB_COLUMNS, finish_claimed_job, job_from_row};
use super::{Store, count, fixed};
use crate::error::{StoreError, StoreResult};
use crate::model::{JobKind, JobState, RecordingJob, from_millis, to_millis};
use crate::webhook::{Delivery, MAX_WEBHOOKS, Webhook, WebhookTarget, WebhookUrl};

const WEBHOOK_COLUMNS: &str = "id, course_id, url, created_at";

fn webhook_from_row(row: &AnyRow) -> Result<Webhook, sqlx::Error> {
    Ok(Webhook {
        id: row.try_get("id")?,
        course_id: row.try_get::<Option<i64>, _>("course_id")?.map(CourseId),
        url: row.try_get("url")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

impl Store {
    /// Adds a webhook for `course` (or the school, `None`); refused beyond [`MAX_WEBHOOKS`].
    pub async fn create_webhook(
        &self,
        course: Option<CourseId>,
        url: &WebhookUrl,
        secret: &str,
        by: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        if let Some(course) = course {
            self.course(course).await?;
        }
        let mut tx = self.db.pool().begin().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) FROM webhooks WHERE COALESCE(course_id, 0) = COALESCE($1, 0)",
        )
        .bind(course.map(|c| c.0))
        .fetch_one(&mut *tx)
        .await?;
        if count(&row)? >= MAX_WEBHOOKS {
            return Err(StoreError::conflict(
                "too_many_webhooks",
                format!("at most {MAX_WEBHOOKS} webhooks each for the school and for a course"),
            ));
        }
        let sql = format!(
            "INSERT INTO webhooks (course_id, url, secret, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {WEBHOOK_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(course.map(|c| c.0))
            .bind(url.as_str())
            .bind(self.sealer.seal(secret))
            .bind(by.0)
            .bind(to_millis(now))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(webhook_from_row(&row)?)
    }

    /// The webhooks of `course` (or the school's, `None`), oldest first.
    pub async fn webhooks(&self, course: Option<CourseId>) -> StoreResult<Vec<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
             WHERE COALESCE(course_id, 0) = COALESCE($1, 0) ORDER BY id"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(course.map(|c| c.0))
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows
            .iter()
            .map(webhook_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Removes a webhook of `course` (or of the school); its pending deliveries go with it.
    pub async fn delete_webhook(&self, course: Option<CourseId>, id: i64) -> StoreResult<()> {
        let deleted = sqlx::query(
            "DELETE FROM webhooks WHERE id = $1 AND COALESCE(course_id, 0) = COALESCE($2, 0)",
        )
        .bind(id)
        .bind(course.map(|c| c.0))
        .execute(self.db.pool())
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        Ok(())
    }

    /// Stores an event of `course` for each webhook of the school and of the course, and
    /// queues its delivery; an event already stored for a webhook is not queued again.
    /// Returns the jobs queued.
    pub async fn enqueue_webhook_event(
        &self,
        course: CourseId,
        event_id: &str,
        event: &str,
        body: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<RecordingJob>> {
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let hooks: Vec<i64> = sqlx::query(
            "SELECT id FROM webhooks WHERE course_id IS NULL OR course_id = $1 ORDER BY id",
        )
        .bind(course.0)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        let mut jobs = Vec::new();
        for hook in hooks {
            let delivery = sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, event, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (webhook_id, event_id) DO NOTHING \
                 RETURNING id",
            )
            .bind(hook)
            .bind(event_id)
            .bind(event)
            .bind(body)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(delivery) = delivery else { continue };
            let delivery: i64 = delivery.try_get(0)?;
            let sql = format!(
                "INSERT INTO recording_jobs (kind, delivery_id, state, attempts, run_after, \
                 created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $4, $4) \
                 RETURNING {JOB_COLUMNS}"
            );
            let row = sqlx::query(fixed(&sql))
                .bind(JobKind::Webhook.as_str())
                .bind(delivery)
                .bind(JobState::Queued.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            jobs.push(job_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// A delivery with its webhook's URL and secret, for the sender.
    pub async fn webhook_delivery(&self, id: i64) -> StoreResult<Delivery> {
        let row = sqlx::query(
            "SELECT d.id, d.event_id, d.body, w.url, w.secret FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(StoreError::NotFound("webhook delivery"))?;
        let url: String = row.try_get("url")?;
        let sealed: String = row.try_get("secret")?;
        let secret = self.sealer.open(&sealed).map_err(|e| {
            sqlx::Error::Decode(format!("the secret of webhook delivery {id}: {e}").into())
        })?;
        Ok(Delivery {
            id: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            body: row.try_get("body")?,
            target: WebhookTarget {
                url: WebhookUrl::parse(&url).map_err(|e| {
                    sqlx::Error::Decode(format!("the URL of webhook delivery {id}: {e}").into())
                })?,
                secret,
            },
        })
    }

    /// The receiver took the delivery: its job is done.
    pub async fn complete_webhook_job(
        &self,
        id: i64,
        worker: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let job = self.recording_job(id).await?;
        let delivery = job
            .delivery_id
            .ok_or(StoreError::NotFound("webhook delivery"))?;
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        finish_claimed_job(&mut tx, id, worker, now).await?;
        sqlx::query("UPDATE webhook_deliveries SET delivered_at = $1 WHERE id = $2")
            .bind(now)
            .bind(delivery)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
