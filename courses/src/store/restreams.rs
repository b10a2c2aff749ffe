//! Restream destinations of lessons (see [`crate::restream`]). Their stream keys are stored
//! sealed ([`crate::auth::at_rest`]): the database alone does not give them away.

use classroom_protocol::{LessonId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Store, count, decode_err, fixed};
use crate::auth::KeySealer;
use crate::error::{StoreError, StoreResult};
use crate::model::{from_millis, to_millis};
use crate::restream::{
    Destination, DestinationId, MAX_DESTINATIONS_PER_LESSON, NewDestination, RestreamUrl,
    StreamSecret,
};

const DESTINATION_COLUMNS: &str = "id, lesson_id, url, stream_key, created_at";

fn destination_from_row(sealer: &KeySealer, row: &AnyRow) -> Result<Destination, sqlx::Error> {
    let url: String = row.try_get("url")?;
    let sealed: String = row.try_get("stream_key")?;
    let key = sealer.open(&sealed).map_err(|e| {
        let id: i64 = row.try_get("id").unwrap_or_default();
        sqlx::Error::Decode(format!("the stream key of restream destination {id}: {e}").into())
    })?;
    Ok(Destination {
        id: DestinationId(row.try_get("id")?),
        lesson: LessonId(row.try_get("lesson_id")?),
        url: RestreamUrl::parse(&url).map_err(|_| decode_err("restream URL", &url))?,
        // Never put the key into the error.
        stream_key: StreamSecret::parse(&key)
            .map_err(|_| decode_err("restream stream key", "<hidden>"))?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

impl Store {
    /// Adds a destination to a lesson; refused beyond [`MAX_DESTINATIONS_PER_LESSON`].
    pub async fn add_destination(
        &self,
        lesson: LessonId,
        new: NewDestination,
        by: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Destination> {
        let mut tx = self.db.pool().begin().await?;
        let row = sqlx::query(fixed(
            "SELECT COUNT(*) FROM restream_destinations WHERE lesson_id = $1",
        ))
        .bind(lesson.0)
        .fetch_one(&mut *tx)
        .await?;
        if count(&row)? >= MAX_DESTINATIONS_PER_LESSON as i64 {
            return Err(StoreError::conflict(
                "too_many_destinations",
                format!(
                    "a lesson has at most {MAX_DESTINATIONS_PER_LESSON} restream destinations; \
                     remove one first"
                ),
            ));
        }
        let sql = format!(
            "INSERT INTO restream_destinations (lesson_id, url, stream_key, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {DESTINATION_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(lesson.0)
            .bind(new.url.as_str())
            .bind(self.sealer.seal(new.stream_key.expose()))
            .bind(by.0)
            .bind(to_millis(now))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(destination_from_row(&self.sealer, &row)?)
    }

    /// A lesson's destinations, oldest first.
    pub async fn destinations(&self, lesson: LessonId) -> StoreResult<Vec<Destination>> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM restream_destinations WHERE lesson_id = $1 \
             ORDER BY id"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(lesson.0)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| destination_from_row(&self.sealer, row))
            .collect::<Result<_, _>>()?)
    }

    /// Removes a destination of a lesson; not found if it belongs to another lesson.
    pub async fn remove_destination(&self, lesson: LessonId, id: DestinationId) -> StoreResult<()> {
        let done = sqlx::query(fixed(
            "DELETE FROM restream_destinations WHERE id = $1 AND lesson_id = $2",
        ))
        .bind(id.0)
        .bind(lesson.0)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("restream destination"));
        }
        Ok(())
    }
}
