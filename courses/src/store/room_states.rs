//! What a lesson's room keeps across a restart or a move to another node, as the room wrote it
//! (JSON, from signaling's `RoomState` and, page by page, its `KeptBoard`s: this crate stores
//! them without reading them).

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

    /// Removes what `room` kept, boards included (its lesson ended).
    pub async fn forget_room_state(&self, room: &str) -> StoreResult<()> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM room_boards WHERE room = $1")
            .bind(room)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM room_states WHERE room = $1")
            .bind(room)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The boards stored for `room`: each page's key and board, by page key.
    pub async fn room_boards(&self, room: &str) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT page, board FROM room_boards WHERE room = $1 ORDER BY page")
            .bind(room)
            .fetch_all(self.db.pool())
            .await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get("page")?, row.try_get("board")?)))
            .collect()
    }

    /// Stores the board of `page` of `room`, replacing what was there.
    pub async fn save_room_board(
        &self,
        room: &str,
        lesson: LessonId,
        page: &str,
        board: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_boards (room, page, lesson_id, board, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (room, page) DO UPDATE SET board = excluded.board, \
             updated_at = excluded.updated_at",
        )
        .bind(room)
        .bind(page)
        .bind(lesson.0)
        .bind(board)
        .bind(to_millis(now))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Removes the board of `page` of `room` (it was cleared).
    pub async fn forget_room_board(&self, room: &str, page: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM room_boards WHERE room = $1 AND page = $2")
            .bind(room)
            .bind(page)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
