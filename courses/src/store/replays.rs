//! The replay library: replays of a course's lessons. The recorder registers them; here they
//! are listed for the course's members.

use classroom_protocol::{CourseId, LessonId, ReplayId, UserId, UserRole};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Store, decode_err, fixed};
use crate::error::{StoreError, StoreResult};
use crate::model::{Replay, ReplayBreakout, ReplayState, Title, from_millis, to_millis};

pub(super) const REPLAY_COLUMNS: &str = "id, lesson_id, course_id, title, state, duration_ms, \
     size_bytes, created_at, ready_at, chapters, error, breakout_round, breakout_room";

/// Whether a user may fetch a replay's files now (checked on every file request: a link's
/// token outlives a removal from the course or a disabled account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayAccess {
    Allowed,
    /// No such replay, or it is not ready.
    NoReplay,
    /// The account is disabled or gone.
    AccountDisabled,
    /// Not (or no longer) a teacher or student of the replay's course, nor an admin.
    NotMember,
}

/// A replay to register for a lesson (the recorder's side).
#[derive(Debug, Clone)]
pub struct NewReplay {
    pub lesson: LessonId,
    pub title: Title,
}

pub(super) fn replay_from_row(row: &AnyRow) -> Result<Replay, sqlx::Error> {
    let state: String = row.try_get("state")?;
    // Written only by us; an unreadable value shows no chapters rather than no replay.
    let chapters = row
        .try_get::<Option<String>, _>("chapters")?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    Ok(Replay {
        id: ReplayId(row.try_get("id")?),
        lesson_id: LessonId(row.try_get("lesson_id")?),
        course_id: CourseId(row.try_get("course_id")?),
        title: row.try_get("title")?,
        state: ReplayState::parse(&state).ok_or_else(|| decode_err("replay state", &state))?,
        duration_ms: row.try_get("duration_ms")?,
        size_bytes: row.try_get("size_bytes")?,
        created_at: from_millis(row.try_get("created_at")?),
        ready_at: row.try_get::<Option<i64>, _>("ready_at")?.map(from_millis),
        chapters,
        error: row.try_get("error")?,
        breakout: breakout_from_row(row)?,
    })
}

/// The breakout room of a replay: both columns or neither (a value out of range is read as
/// none, like unreadable chapters: the replay stays listed).
fn breakout_from_row(row: &AnyRow) -> Result<Option<ReplayBreakout>, sqlx::Error> {
    let round: Option<i64> = row.try_get("breakout_round")?;
    let room: Option<i64> = row.try_get("breakout_room")?;
    Ok(match (round, room) {
        (Some(round), Some(room)) => u32::try_from(round)
            .ok()
            .zip(u32::try_from(room).ok())
            .map(|(round, room)| ReplayBreakout { round, room }),
        _ => None,
    })
}

impl Store {
    /// Registers a replay that is being processed.
    pub async fn create_replay(&self, new: NewReplay, now: OffsetDateTime) -> StoreResult<Replay> {
        let lesson = self.lesson(new.lesson).await?;
        let sql = format!(
            "INSERT INTO replays (lesson_id, course_id, title, state, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {REPLAY_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(lesson.id.0)
            .bind(lesson.course_id.0)
            .bind(new.title.as_str())
            .bind(ReplayState::Processing.as_str())
            .bind(to_millis(now))
            .fetch_one(self.db.pool())
            .await?;
        Ok(replay_from_row(&row)?)
    }

    /// Marks a replay playable, with its duration and size.
    pub async fn mark_replay_ready(
        &self,
        id: ReplayId,
        duration_ms: i64,
        size_bytes: i64,
        now: OffsetDateTime,
    ) -> StoreResult<Replay> {
        let sql = format!(
            "UPDATE replays SET state = $1, duration_ms = $2, size_bytes = $3, ready_at = $4 \
             WHERE id = $5 RETURNING {REPLAY_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(ReplayState::Ready.as_str())
            .bind(duration_ms)
            .bind(size_bytes)
            .bind(to_millis(now))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(replay_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("replay"))
    }

    pub async fn replay(&self, id: ReplayId) -> StoreResult<Replay> {
        let sql = format!("SELECT {REPLAY_COLUMNS} FROM replays WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(replay_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("replay"))
    }

    /// A course's replays, newest lesson first.
    pub async fn replays_of_course(&self, course: CourseId) -> StoreResult<Vec<Replay>> {
        let sql = format!(
            "SELECT {REPLAY_COLUMNS} FROM replays WHERE course_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(course.0)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(replay_from_row).collect::<Result<_, _>>()?)
    }

    /// A lesson's replays (usually one; more when recording was stopped and started again,
    /// and one per recorded breakout room): the main room's first, then each round's rooms
    /// in order, each in the order they were made.
    pub async fn replays_of_lesson(&self, lesson: LessonId) -> StoreResult<Vec<Replay>> {
        let sql = format!(
            "SELECT {REPLAY_COLUMNS} FROM replays WHERE lesson_id = $1 \
             ORDER BY CASE WHEN breakout_round IS NULL THEN 0 ELSE 1 END, breakout_round, \
             breakout_room, created_at, id"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(lesson.0)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(replay_from_row).collect::<Result<_, _>>()?)
    }

    /// Whether `user` may fetch the files of `replay` now: one query (the replay, the
    /// account and both memberships by primary key or index), cheap enough for every
    /// playlist and segment request.
    pub async fn replay_file_access(
        &self,
        replay: ReplayId,
        user: UserId,
    ) -> StoreResult<ReplayAccess> {
        let row = sqlx::query(
            "SELECT r.state, u.disabled_at, u.role, \
               (SELECT COUNT(*) FROM course_teachers t \
                 WHERE t.course_id = r.course_id AND t.user_id = u.id), \
               (SELECT COUNT(*) FROM enrollments e \
                 WHERE e.course_id = r.course_id AND e.user_id = u.id) \
             FROM replays r LEFT JOIN users u ON u.id = $1 WHERE r.id = $2",
        )
        .bind(user.0)
        .bind(replay.0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(ReplayAccess::NoReplay);
        };
        let state: String = row.try_get(0)?;
        if state != ReplayState::Ready.as_str() {
            return Ok(ReplayAccess::NoReplay);
        }
        let disabled: Option<i64> = row.try_get(1)?;
        let role: Option<String> = row.try_get(2)?;
        let Some(role) = role else {
            return Ok(ReplayAccess::AccountDisabled);
        };
        if disabled.is_some() {
            return Ok(ReplayAccess::AccountDisabled);
        }
        let teaches: i64 = row.try_get(3)?;
        let enrolled: i64 = row.try_get(4)?;
        let admin = UserRole::parse(&role) == Some(UserRole::Admin);
        Ok(if teaches > 0 || enrolled > 0 || admin {
            ReplayAccess::Allowed
        } else {
            ReplayAccess::NotMember
        })
    }
}
