//! RTMP stream keys: one per lesson, `<lesson id>-<secret>`. The lesson id in front lets the
//! ingest find the one stored hash to compare, so the comparison is a single constant-time
//! equality check and the database is never searched by secret. Only the secret's hash is
//! stored ([`crate::auth::at_rest`]): the key is shown once, when it is made, and a teacher
//! who lost it makes a new one.

use std::fmt;

use classroom_protocol::{LessonId, UserId};
use sqlx::Row;
use time::OffsetDateTime;

use super::{Store, fixed};
use crate::auth::at_rest::{hash_stream_secret, stream_secret_matches};
use crate::auth::random_token;
use crate::error::StoreResult;
use crate::model::{from_millis, to_millis};

/// Random bytes in a secret (hex-encoded: 48 characters).
const SECRET_BYTES: usize = 24;

/// A lesson's stream key, as made: the only time its secret is known. Debug hides the secret;
/// [`StreamKey::expose`] is for the one answer that shows it to the lesson's teachers.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey {
    pub lesson: LessonId,
    secret: String,
    pub created_at: OffsetDateTime,
}

impl StreamKey {
    /// The full key an encoder is configured with.
    pub fn expose(&self) -> String {
        format!("{}-{}", self.lesson, self.secret)
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamKey")
            .field("lesson", &self.lesson)
            .field("secret", &"<hidden>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Store {
    /// When the lesson's key was made, if it has one (the key itself is not kept).
    pub async fn stream_key_created(
        &self,
        lesson: LessonId,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let row = sqlx::query(fixed(
            "SELECT created_at FROM lesson_stream_keys WHERE lesson_id = $1",
        ))
        .bind(lesson.0)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row
            .map(|row| row.try_get("created_at"))
            .transpose()?
            .map(from_millis))
    }

    /// Makes the lesson a new random key, replacing any it had: the old key stops working at
    /// once (for new publishes; the ingest decides about one already streaming).
    pub async fn rotate_stream_key(
        &self,
        lesson: LessonId,
        by: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<StreamKey> {
        let secret = random_token(SECRET_BYTES);
        // Delete + insert rather than an upsert: the same SQL on SQLite and PostgreSQL.
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(fixed("DELETE FROM lesson_stream_keys WHERE lesson_id = $1"))
            .bind(lesson.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(fixed(
            "INSERT INTO lesson_stream_keys (lesson_id, secret_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4)",
        ))
        .bind(lesson.0)
        .bind(hash_stream_secret(&secret))
        .bind(by.0)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StreamKey {
            lesson,
            secret,
            // As stored (milliseconds), so that a later read shows the same time.
            created_at: from_millis(to_millis(now)),
        })
    }

    /// Who created (or last rotated) the lesson's key: the teacher an encoder publishing with
    /// it streams for.
    pub async fn stream_key_owner(&self, lesson: LessonId) -> StoreResult<Option<UserId>> {
        let row = sqlx::query(fixed(
            "SELECT created_by FROM lesson_stream_keys WHERE lesson_id = $1",
        ))
        .bind(lesson.0)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("created_by"))
            .transpose()?
            .map(UserId))
    }

    /// The lesson a key publishes to: `None` for a malformed or wrong key, and for a lesson
    /// that has ended or was cancelled. The secret's hash is compared in constant time.
    pub async fn lesson_for_stream_key(&self, key: &str) -> StoreResult<Option<LessonId>> {
        let Some((lesson, secret)) = key.split_once('-') else {
            return Ok(None);
        };
        let Ok(lesson) = lesson.parse::<i64>().map(LessonId) else {
            return Ok(None);
        };
        let row = sqlx::query(fixed(
            "SELECT k.secret_hash, l.state FROM lesson_stream_keys k \
             JOIN lessons l ON l.id = k.lesson_id WHERE k.lesson_id = $1",
        ))
        .bind(lesson.0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("secret_hash")?;
        let state: String = row.try_get("state")?;
        let matches = stream_secret_matches(&stored, secret);
        let open = matches!(state.as_str(), "scheduled" | "live");
        Ok((matches && open).then_some(lesson))
    }
}
