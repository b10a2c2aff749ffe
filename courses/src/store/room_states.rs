//! What a lesson's room keeps across a restart or a move to another node, as the room wrote it
//! (JSON, from signaling's `RoomState`: this crate stores it without reading it).

use classroom_protocol::LessonId;
use sqlx::Row;
use time::OffsetDateTime;

use super::Store;
use crate::error::StoreResult;
use crate::model::to_millis;

impl Store {
    /// The state stored for `room`, if any.
    pub async fn room_state(&self, room: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT state FROM room_states WHERE room = $1")
            .bind(room)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|row| row.try_get("state")).transpose()?)
    }

    /// Stores `state` for `room` of `lesson`, replacing what was there.
    pub async fn save_room_state(
        &self,
        room: &str,
        lesson: LessonId,
        state: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_states (room, lesson_id, state, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .bind(room)
        .bind(lesson.0)
        .bind(state)
        .bind(to_millis(now))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Removes what `room` kept (its lesson ended).
    pub async fn forget_room_state(&self, room: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM room_states WHERE room = $1")
            .bind(room)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
