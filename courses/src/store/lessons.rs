//! Lessons and their state: scheduled → live → ended, or scheduled → cancelled. The rules
//! are `LessonState::apply`; updates are conditional on the state they were checked against,
//! so two nodes racing on one lesson cannot both win.

use classroom_protocol::{CourseId, LessonId, RoomName, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Page, Paged, Store, count, decode_err, fixed};
use crate::error::{StoreError, StoreResult};
use crate::model::{FieldError, Lesson, LessonEvent, LessonState, Title, from_millis, to_millis};

pub(super) const LESSON_COLUMNS: &str =
    "id, course_id, title, starts_at, ends_at, state, live_at, ended_at";

/// A lesson to schedule. Constructed by [`NewLesson::parse`], so the times are ordered.
#[derive(Debug, Clone)]
pub struct NewLesson {
    pub title: Title,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

impl NewLesson {
    pub fn parse(
        title: &str,
        starts_at: OffsetDateTime,
        ends_at: OffsetDateTime,
    ) -> Result<Self, FieldError> {
        let title = Title::parse(title)?;
        check_times(starts_at, ends_at)?;
        Ok(NewLesson {
            title,
            starts_at,
            ends_at,
        })
    }
}

/// Changes to a scheduled lesson; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct LessonChanges {
    pub title: Option<Title>,
    pub starts_at: Option<OffsetDateTime>,
    pub ends_at: Option<OffsetDateTime>,
}

fn check_times(starts_at: OffsetDateTime, ends_at: OffsetDateTime) -> Result<(), FieldError> {
    if ends_at <= starts_at {
        return Err(FieldError::new("ends_at", "must be later than starts_at"));
    }
    if ends_at - starts_at > time::Duration::days(1) {
        return Err(FieldError::new(
            "ends_at",
            "a lesson lasts at most 24 hours",
        ));
    }
    Ok(())
}

pub(super) fn lesson_from_row(row: &AnyRow) -> Result<Lesson, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let id = LessonId(row.try_get("id")?);
    Ok(Lesson {
        id,
        course_id: CourseId(row.try_get("course_id")?),
        title: row.try_get("title")?,
        starts_at: from_millis(row.try_get("starts_at")?),
        ends_at: from_millis(row.try_get("ends_at")?),
        state: LessonState::parse(&state).ok_or_else(|| decode_err("lesson state", &state))?,
        live_at: row.try_get::<Option<i64>, _>("live_at")?.map(from_millis),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_millis),
        room: RoomName::for_lesson(id),
    })
}

impl Store {
    pub async fn create_lesson(
        &self,
        course: CourseId,
        lesson: NewLesson,
        created_by: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Lesson> {
        let sql = format!(
            "INSERT INTO lessons \
               (course_id, title, starts_at, ends_at, state, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {LESSON_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(lesson.title.as_str())
            .bind(to_millis(lesson.starts_at))
            .bind(to_millis(lesson.ends_at))
            .bind(LessonState::Scheduled.as_str())
            .bind(created_by.0)
            .bind(to_millis(now))
            .fetch_one(self.db.pool())
            .await?;
        Ok(lesson_from_row(&row)?)
    }

    pub async fn lesson(&self, id: LessonId) -> StoreResult<Lesson> {
        let sql = format!("SELECT {LESSON_COLUMNS} FROM lessons WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(lesson_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("lesson"))
    }

    /// A course's lessons in start order, optionally only those in one state.
    pub async fn lessons_of(
        &self,
        course: CourseId,
        state: Option<LessonState>,
        page: Page,
    ) -> StoreResult<Paged<Lesson>> {
        let state = state.map(LessonState::as_str).unwrap_or_default();
        let condition = "course_id = $1 AND ($2 = '' OR state = $2)";
        let sql = format!(
            "SELECT {LESSON_COLUMNS} FROM lessons WHERE {condition} \
             ORDER BY starts_at, id LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(state)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let total = sqlx::query(fixed(&format!(
            "SELECT COUNT(*) FROM lessons WHERE {condition}"
        )))
        .bind(course.0)
        .bind(state)
        .fetch_one(self.db.pool())
        .await?;
        Ok(Paged {
            items: rows.iter().map(lesson_from_row).collect::<Result<_, _>>()?,
            total: count(&total)?,
        })
    }

    /// Changes title or times of a lesson that has not started.
    pub async fn update_lesson(
        &self,
        id: LessonId,
        changes: LessonChanges,
        now: OffsetDateTime,
    ) -> StoreResult<Lesson> {
        let current = self.lesson(id).await?;
        current.state.apply(LessonEvent::Edit)?;
        let title = changes
            .title
            .map(|t| t.as_str().to_string())
            .unwrap_or(current.title);
        let starts_at = changes.starts_at.unwrap_or(current.starts_at);
        let ends_at = changes.ends_at.unwrap_or(current.ends_at);
        check_times(starts_at, ends_at)?;
        let sql = format!(
            "UPDATE lessons SET title = $1, starts_at = $2, ends_at = $3, updated_at = $4 \
             WHERE id = $5 AND state = $6 RETURNING {LESSON_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(title)
            .bind(to_millis(starts_at))
            .bind(to_millis(ends_at))
            .bind(to_millis(now))
            .bind(id.0)
            .bind(current.state.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(row) => Ok(lesson_from_row(&row)?),
            None => Err(StoreError::conflict(
                "lesson_changed",
                "the lesson changed state while being edited; reload it and try again",
            )),
        }
    }

    /// Moves a lesson through its life (go live, end, cancel) by the rules of
    /// [`LessonState::apply`]. Going live again while live is accepted and changes nothing.
    pub async fn transition_lesson(
        &self,
        id: LessonId,
        event: LessonEvent,
        now: OffsetDateTime,
    ) -> StoreResult<Lesson> {
        let current = self.lesson(id).await?;
        let next = current.state.apply(event)?;
        if next == current.state {
            return Ok(current);
        }
        let now = to_millis(now);
        let stamp = match next {
            LessonState::Live => "live_at = $1,",
            LessonState::Ended | LessonState::Cancelled => "ended_at = $1,",
            LessonState::Scheduled => "",
        };
        let sql = format!(
            "UPDATE lessons SET {stamp} state = $2, updated_at = $1 \
             WHERE id = $3 AND state = $4 RETURNING {LESSON_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(now)
            .bind(next.as_str())
            .bind(id.0)
            .bind(current.state.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(row) => Ok(lesson_from_row(&row)?),
            // Someone else moved it first; judge the event against the state they left.
            None => {
                let latest = self.lesson(id).await?;
                latest.state.apply(event)?;
                Ok(latest)
            }
        }
    }
}
