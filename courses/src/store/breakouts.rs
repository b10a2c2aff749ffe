//! Breakout rooms in attendance: each student's stays in a lesson's breakout rooms (see
//! `migrations/*/0014_attendance_breakouts.sql`), written as the main room moves them.

use classroom_protocol::{LessonId, UserId};
use sqlx::Row;
use time::OffsetDateTime;

use super::Store;
use crate::error::StoreResult;
use crate::model::{from_millis, to_millis};

/// One stay of a student in a breakout room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakoutStay {
    pub lesson: LessonId,
    pub user: UserId,
    /// The room's index in its round, from 0.
    pub room: u32,
    pub started_at: OffsetDateTime,
    /// `None` while the student is still there.
    pub ended_at: Option<OffsetDateTime>,
}

impl Store {
    /// `user` went to breakout room `room` of `lesson` at `at`, or back to the main room
    /// (`None`), or left the lesson (`None`): their open stay ends, and a new one opens.
    pub async fn attendance_breakout(
        &self,
        lesson: LessonId,
        user: UserId,
        room: Option<u32>,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let at = to_millis(at);
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "UPDATE attendance_breakouts SET \
               ended_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END \
             WHERE lesson_id = $1 AND user_id = $2 AND ended_at IS NULL",
        )
        .bind(lesson.0)
        .bind(user.0)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if let Some(room) = room {
            sqlx::query(
                "INSERT INTO attendance_breakouts (lesson_id, user_id, room, started_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(lesson.0)
            .bind(user.0)
            .bind(i64::from(room))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The lesson ended at `at`: every stay still open ends there.
    pub async fn attendance_breakouts_ended(
        &self,
        lesson: LessonId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attendance_breakouts SET \
               ended_at = CASE WHEN started_at > $2 THEN started_at ELSE $2 END \
             WHERE lesson_id = $1 AND ended_at IS NULL",
        )
        .bind(lesson.0)
        .bind(to_millis(at))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Every stay in `lesson`'s breakout rooms, by student, then in time order.
    pub async fn lesson_breakout_stays(&self, lesson: LessonId) -> StoreResult<Vec<BreakoutStay>> {
        let rows = sqlx::query(
            "SELECT lesson_id, user_id, room, started_at, ended_at FROM attendance_breakouts \
             WHERE lesson_id = $1 ORDER BY user_id, started_at, id",
        )
        .bind(lesson.0)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(stay_from_row).collect()
    }
}

/// One row of `attendance_breakouts` (all its columns but the id).
pub(super) fn stay_from_row(row: &sqlx::any::AnyRow) -> StoreResult<BreakoutStay> {
    let room: i64 = row.try_get("room")?;
    Ok(BreakoutStay {
        lesson: LessonId(row.try_get("lesson_id")?),
        user: UserId(row.try_get("user_id")?),
        room: u32::try_from(room).unwrap_or(u32::MAX),
        started_at: from_millis(row.try_get("started_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_millis),
    })
}
