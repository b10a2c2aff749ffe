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

    /// The lesson a key publishes to: `None` for a malformed or wrong key, for a lesson that
    /// has ended or was cancelled, and for a key whose teacher may no longer stream to it
    /// (their account disabled, or no longer a teacher of the course). The secret's hash is
    /// compared in constant time.
    pub async fn lesson_for_stream_key(&self, key: &str) -> StoreResult<Option<LessonId>> {
        let Some((lesson, secret)) = key.split_once('-') else {
            return Ok(None);
        };
        let Ok(lesson) = lesson.parse::<i64>().map(LessonId) else {
            return Ok(None);
        };
        let Some(standing) = self.stream_key_standing(lesson).await? else {
            return Ok(None);
        };
        let matches = stream_secret_matches(&standing.secret_hash, secret);
        Ok((matches && standing.may_stream).then_some(lesson))
    }

    /// Whether an encoder already publishing to `lesson` may go on: the lesson still open, the
    /// key's teacher still enabled and still teaching the course. Asked again whenever access
    /// changes (an account disabled, a teacher removed, a lesson cancelled), since the key
    /// itself is checked only when an encoder connects.
    pub async fn encoder_may_stream(&self, lesson: LessonId) -> StoreResult<bool> {
        Ok(self
            .stream_key_standing(lesson)
            .await?
            .is_some_and(|standing| standing.may_stream))
    }

    async fn stream_key_standing(&self, lesson: LessonId) -> StoreResult<Option<KeyStanding>> {
        let row = sqlx::query(fixed(
            "SELECT k.secret_hash, l.state, u.disabled_at, \
               (SELECT COUNT(*) FROM course_teachers t \
                 WHERE t.course_id = l.course_id AND t.user_id = k.created_by) AS teaches \
             FROM lesson_stream_keys k \
             JOIN lessons l ON l.id = k.lesson_id \
             JOIN users u ON u.id = k.created_by \
             WHERE k.lesson_id = $1",
        ))
        .bind(lesson.0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.try_get("state")?;
        let disabled: Option<i64> = row.try_get("disabled_at")?;
        let teaches: i64 = row.try_get("teaches")?;
        Ok(Some(KeyStanding {
            secret_hash: row.try_get("secret_hash")?,
            may_stream: matches!(state.as_str(), "scheduled" | "live")
                && disabled.is_none()
                && teaches > 0,
        }))
    }
}

/// A lesson's stored key and whether its teacher may stream with it now.
struct KeyStanding {
    secret_hash: String,
    may_stream: bool,
}
