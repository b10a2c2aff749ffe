//! Lesson removals, and the check that admits a join token's holder to a lesson's room.
//!
//! A moderator's removal holds for the whole lesson, whatever join token the user presents,
//! until a teacher of the course lets them back in. The admission check reads the account, the
//! membership, the lesson and the removals in one query, when the signaling join is made: a
//! token issued before any of them changed is refused.

use classroom_protocol::{AccessDenied, CourseId, LessonId, ParticipantRole, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Store, decode_err};
use crate::error::{StoreError, StoreResult};
use crate::model::{LessonState, Removal, from_millis, to_millis};

fn removal_from_row(row: &AnyRow) -> Result<Removal, sqlx::Error> {
    Ok(Removal {
        user_id: UserId(row.try_get("user_id")?),
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        removed_by: UserId(row.try_get("removed_by")?),
        removed_at: from_millis(row.try_get("removed_at")?),
    })
}

impl Store {
    /// Records that `by` removed `user` from `lesson`. Removing again keeps the first record.
    pub async fn remove_from_lesson(
        &self,
        lesson: LessonId,
        user: UserId,
        by: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO lesson_removals (lesson_id, user_id, removed_by, removed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (lesson_id, user_id) DO NOTHING",
        )
        .bind(lesson.0)
        .bind(user.0)
        .bind(by.0)
        .bind(to_millis(now))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The users removed from `lesson`, most recent first.
    pub async fn removals_of(&self, lesson: LessonId) -> StoreResult<Vec<Removal>> {
        let rows = sqlx::query(
            "SELECT r.user_id, u.name, u.email, r.removed_by, r.removed_at \
             FROM lesson_removals r JOIN users u ON u.id = r.user_id \
             WHERE r.lesson_id = $1 ORDER BY r.removed_at DESC, r.user_id",
        )
        .bind(lesson.0)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(removal_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Lets a removed user back into `lesson`; `NotFound` when they were not removed.
    pub async fn readmit(&self, lesson: LessonId, user: UserId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM lesson_removals WHERE lesson_id = $1 AND user_id = $2")
            .bind(lesson.0)
            .bind(user.0)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("removal"));
        }
        Ok(())
    }

    pub async fn is_removed(&self, lesson: LessonId, user: UserId) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM lesson_removals WHERE lesson_id = $1 AND user_id = $2",
        )
        .bind(lesson.0)
        .bind(user.0)
        .fetch_one(self.db.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Whether `user` may be in the room of `lesson` (of `course`) now, in the participant
    /// `role` their join token names: the account exists and is enabled; a teacher still
    /// teaches the course (or is an admin), a student is still enrolled; the lesson is neither
    /// ended nor cancelled; no moderator removed them from it. One query, on every join.
    pub async fn admission(
        &self,
        user: UserId,
        lesson: LessonId,
        course: CourseId,
        role: ParticipantRole,
    ) -> StoreResult<Result<(), AccessDenied>> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM users WHERE id = $1), \
               (SELECT COUNT(*) FROM users WHERE id = $1 AND disabled_at IS NOT NULL), \
               (SELECT COUNT(*) FROM users WHERE id = $1 AND role = 'admin'), \
               (SELECT COUNT(*) FROM course_teachers WHERE course_id = $2 AND user_id = $1), \
               (SELECT COUNT(*) FROM enrollments WHERE course_id = $2 AND user_id = $1), \
               (SELECT state FROM lessons WHERE id = $3 AND course_id = $2), \
               (SELECT COUNT(*) FROM lesson_removals WHERE lesson_id = $3 AND user_id = $1)",
        )
        .bind(user.0)
        .bind(course.0)
        .bind(lesson.0)
        .fetch_one(self.db.pool())
        .await?;
        let count = |i: usize| row.try_get::<i64, _>(i).map(|n| n > 0);
        let (exists, disabled, admin) = (count(0)?, count(1)?, count(2)?);
        let (teaches, enrolled) = (count(3)?, count(4)?);
        let state: Option<String> = row.try_get(5)?;
        let removed = count(6)?;
        if !exists {
            return Ok(Err(AccessDenied::NotAMember));
        }
        if disabled {
            return Ok(Err(AccessDenied::AccountDisabled));
        }
        let member = match role {
            ParticipantRole::Teacher => teaches || admin,
            ParticipantRole::Student => enrolled,
            ParticipantRole::Assistant | ParticipantRole::Observer => teaches || enrolled || admin,
        };
        // A lesson that is not the course's is a token for something the user never had.
        let Some(state) = state.filter(|_| member) else {
            return Ok(Err(AccessDenied::NotAMember));
        };
        match LessonState::parse(&state).ok_or_else(|| decode_err("lesson state", &state))? {
            LessonState::Ended => return Ok(Err(AccessDenied::LessonEnded)),
            LessonState::Cancelled => return Ok(Err(AccessDenied::LessonCancelled)),
            LessonState::Scheduled | LessonState::Live => {}
        }
        if removed {
            return Ok(Err(AccessDenied::RemovedFromLesson));
        }
        Ok(Ok(()))
    }
}
