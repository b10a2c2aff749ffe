//! Attendance as rooms report it: intervals in the room and on stage, and per lesson and user
//! the role and counts (hands raised, chat messages). Written one event at a time by the
//! server's attendance subscriber (`server/src/attendance.rs`), read whole for reports
//! ([`crate::attendance`]). See `migrations/*/0011_attendance.sql` for the crash-safety
//! design: open intervals carry a last stamp, refreshed while their room runs.

use std::collections::HashSet;

use classroom_protocol::{CourseId, LessonId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::lessons::{LESSON_COLUMNS, lesson_from_row};
use super::{Page, Paged, Store, count, decode_err, fixed};
use crate::attendance::{AttendeeRecord, IntervalKind, IntervalRecord};
use crate::error::StoreResult;
use crate::model::{Lesson, from_millis, to_millis};

/// The most rows one report reads (a lesson's attendees, or a page's intervals): far above a
/// class, a bound on what one request can make the server hold.
const MAX_REPORT_ROWS: i64 = 100_000;

/// What a user did that is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttendanceCount {
    HandRaised,
    ChatSent,
}

const INTERVAL_COLUMNS: &str =
    "lesson_id, user_id, kind, started_at, ended_at, last_seen_at, end_reason";

fn interval_from_row(row: &AnyRow) -> Result<IntervalRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(IntervalRecord {
        lesson: LessonId(row.try_get("lesson_id")?),
        user: UserId(row.try_get("user_id")?),
        kind: IntervalKind::parse(&kind).ok_or_else(|| decode_err("interval kind", &kind))?,
        started_at: from_millis(row.try_get("started_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_millis),
        last_seen_at: from_millis(row.try_get("last_seen_at")?),
        end_reason: row.try_get("end_reason")?,
    })
}

fn attendee_from_row(row: &AnyRow) -> Result<AttendeeRecord, sqlx::Error> {
    Ok(AttendeeRecord {
        lesson: LessonId(row.try_get("lesson_id")?),
        user: UserId(row.try_get("user_id")?),
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        hands_raised: row.try_get("hands_raised")?,
        chat_messages: row.try_get("chat_messages")?,
        poll_answers: row.try_get("poll_answers")?,
        quiz_answers: row.try_get("quiz_answers")?,
        quiz_correct: row.try_get("quiz_correct")?,
    })
}

/// The columns of an attendee row (`lesson_attendance a JOIN users u`): who, their counts, and
/// their answers to the lesson's polls (named polls only: anonymous ones keep no users).
const ATTENDEE_COLUMNS: &str = "a.lesson_id, a.user_id, u.name, u.email, a.role, \
     a.hands_raised, a.chat_messages, \
     (SELECT COUNT(*) FROM lesson_poll_answers pa JOIN lesson_polls p ON p.id = pa.poll_id \
      WHERE p.lesson_id = a.lesson_id AND pa.user_id = a.user_id) AS poll_answers, \
     (SELECT COUNT(*) FROM lesson_poll_answers pa JOIN lesson_polls p ON p.id = pa.poll_id \
      WHERE p.lesson_id = a.lesson_id AND pa.user_id = a.user_id AND pa.correct IS NOT NULL) \
      AS quiz_answers, \
     (SELECT COUNT(*) FROM lesson_poll_answers pa JOIN lesson_polls p ON p.id = pa.poll_id \
      WHERE p.lesson_id = a.lesson_id AND pa.user_id = a.user_id AND pa.correct = 1) \
      AS quiz_correct";

/// An enrolled student, as the course summary lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentRecord {
    pub user: UserId,
    pub name: String,
    pub email: String,
}

/// Everything a course summary page is computed from.
#[derive(Debug, Clone)]
pub struct CourseAttendanceRecords {
    /// The course's lessons that took place (live or ended), in start order.
    pub lessons: Vec<Lesson>,
    pub students: Paged<StudentRecord>,
    pub attendees: Vec<AttendeeRecord>,
    pub intervals: Vec<IntervalRecord>,
    /// The students' stays in the breakout rooms of those lessons.
    pub breakouts: Vec<super::breakouts::BreakoutStay>,
}

impl Store {
    /// `user` took a place in `lesson`'s room as `role` at `at`: a new open interval. An
    /// interval of theirs still open there was left by a server that stopped (the room
    /// reports one place once): it is closed at its last stamp first.
    pub async fn attendance_joined(
        &self,
        lesson: LessonId,
        user: UserId,
        role: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let at = to_millis(at);
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "UPDATE attendance_intervals SET ended_at = last_seen_at, end_reason = 'lost' \
             WHERE lesson_id = $1 AND user_id = $2 AND ended_at IS NULL",
        )
        .bind(lesson.0)
        .bind(user.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO attendance_intervals \
               (lesson_id, user_id, kind, started_at, last_seen_at) \
             VALUES ($1, $2, 'present', $3, $3)",
        )
        .bind(lesson.0)
        .bind(user.0)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO lesson_attendance (lesson_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (lesson_id, user_id) DO NOTHING",
        )
        .bind(lesson.0)
        .bind(user.0)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `user` gave up their place in `lesson` at `at` (`reason`): their open intervals, in
    /// the room and on stage, end.
    pub async fn attendance_left(
        &self,
        lesson: LessonId,
        user: UserId,
        reason: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attendance_intervals SET \
               ended_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END, \
               last_seen_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END, \
               end_reason = $4 \
             WHERE lesson_id = $1 AND user_id = $2 AND ended_at IS NULL",
        )
        .bind(lesson.0)
        .bind(user.0)
        .bind(to_millis(at))
        .bind(reason)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// A student went on stage (`on_stage`) or off it at `at`.
    pub async fn attendance_stage(
        &self,
        lesson: LessonId,
        user: UserId,
        on_stage: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let at = to_millis(at);
        let sql = if on_stage {
            "INSERT INTO attendance_intervals \
               (lesson_id, user_id, kind, started_at, last_seen_at) \
             SELECT $1, $2, 'stage', $3, $3 WHERE NOT EXISTS (SELECT 1 FROM attendance_intervals \
               WHERE lesson_id = $1 AND user_id = $2 AND kind = 'stage' AND ended_at IS NULL)"
        } else {
            "UPDATE attendance_intervals SET \
               ended_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END, \
               last_seen_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END, \
               end_reason = 'left' \
             WHERE lesson_id = $1 AND user_id = $2 AND kind = 'stage' AND ended_at IS NULL"
        };
        sqlx::query(sql)
            .bind(lesson.0)
            .bind(user.0)
            .bind(at)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Counts one hand raised or chat message of `user` in `lesson`.
    pub async fn attendance_count(
        &self,
        lesson: LessonId,
        user: UserId,
        what: AttendanceCount,
    ) -> StoreResult<()> {
        let sql = match what {
            AttendanceCount::HandRaised => {
                "UPDATE lesson_attendance SET hands_raised = hands_raised + 1 \
                 WHERE lesson_id = $1 AND user_id = $2"
            }
            AttendanceCount::ChatSent => {
                "UPDATE lesson_attendance SET chat_messages = chat_messages + 1 \
                 WHERE lesson_id = $1 AND user_id = $2"
            }
        };
        sqlx::query(sql)
            .bind(lesson.0)
            .bind(user.0)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The lesson ended at `at`: whatever is still open in it ends there.
    pub async fn attendance_lesson_ended(
        &self,
        lesson: LessonId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attendance_intervals SET \
               ended_at = CASE WHEN started_at > $2 THEN started_at ELSE $2 END, \
               last_seen_at = CASE WHEN started_at > $2 THEN started_at ELSE $2 END, \
               end_reason = 'lesson_ended' \
             WHERE lesson_id = $1 AND ended_at IS NULL",
        )
        .bind(lesson.0)
        .bind(to_millis(at))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Stamps the open intervals of `lesson` opened since `since` (by this server: older ones
    /// were left by a server that stopped, and must go stale) as seen at `at`; how many
    /// there were.
    pub async fn attendance_seen(
        &self,
        lesson: LessonId,
        since: OffsetDateTime,
        at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE attendance_intervals SET last_seen_at = $3 \
             WHERE lesson_id = $1 AND ended_at IS NULL AND started_at >= $2",
        )
        .bind(lesson.0)
        .bind(to_millis(since))
        .bind(to_millis(at))
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Closes, at their last stamp, the open intervals last seen before `stale_before`: the
    /// server that kept them stopped. How many there were.
    pub async fn attendance_close_stale(&self, stale_before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE attendance_intervals SET ended_at = last_seen_at, end_reason = 'lost' \
             WHERE ended_at IS NULL AND last_seen_at < $1",
        )
        .bind(to_millis(stale_before))
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Who took part in `lesson` (by name), one page, or all of them (`None`, bounded).
    pub async fn lesson_attendees(
        &self,
        lesson: LessonId,
        page: Option<Page>,
    ) -> StoreResult<Paged<AttendeeRecord>> {
        let (limit, offset) = page.map_or((MAX_REPORT_ROWS, 0), |p| (p.limit(), p.offset()));
        let sql = format!(
            "SELECT {ATTENDEE_COLUMNS} \
             FROM lesson_attendance a JOIN users u ON u.id = a.user_id \
             WHERE a.lesson_id = $1 ORDER BY u.name, a.user_id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(lesson.0)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.db.pool())
            .await?;
        let total = sqlx::query("SELECT COUNT(*) FROM lesson_attendance WHERE lesson_id = $1")
            .bind(lesson.0)
            .fetch_one(self.db.pool())
            .await?;
        Ok(Paged {
            items: rows
                .iter()
                .map(attendee_from_row)
                .collect::<Result<_, _>>()?,
            total: count(&total)?,
        })
    }

    /// The intervals of `lesson`, of the users `users` names (all when `None`).
    pub async fn lesson_intervals(
        &self,
        lesson: LessonId,
        users: Option<&[UserId]>,
    ) -> StoreResult<Vec<IntervalRecord>> {
        let sql = format!(
            "SELECT {INTERVAL_COLUMNS} FROM attendance_intervals WHERE lesson_id = $1 \
             ORDER BY user_id, started_at LIMIT $2"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(lesson.0)
            .bind(MAX_REPORT_ROWS)
            .fetch_all(self.db.pool())
            .await?;
        let all = rows
            .iter()
            .map(interval_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match users {
            Some(users) => {
                let users: HashSet<UserId> = users.iter().copied().collect();
                all.into_iter()
                    .filter(|i| users.contains(&i.user))
                    .collect()
            }
            None => all,
        })
    }

    /// The lessons of `course` that took place (live or ended), in start order.
    pub async fn held_lessons(&self, course: CourseId) -> StoreResult<Vec<Lesson>> {
        let sql = format!(
            "SELECT {LESSON_COLUMNS} FROM lessons \
             WHERE course_id = $1 AND state IN ('live', 'ended') ORDER BY starts_at, id LIMIT $2"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(MAX_REPORT_ROWS)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(lesson_from_row).collect::<Result<_, _>>()?)
    }

    /// What a course summary needs for one page of its enrolled students (by name), or all
    /// of them (`None`, bounded), or only `only` (a student's own).
    pub async fn course_attendance(
        &self,
        course: CourseId,
        page: Option<Page>,
        only: Option<UserId>,
    ) -> StoreResult<CourseAttendanceRecords> {
        let (limit, offset) = page.map_or((MAX_REPORT_ROWS, 0), |p| (p.limit(), p.offset()));
        let only = only.map_or(0, |u| u.0);
        // The page of students, named once and used by each query below.
        let students_page = "SELECT e.user_id FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.course_id = $1 AND ($2 = 0 OR e.user_id = $2) \
             ORDER BY u.name, e.user_id LIMIT $3 OFFSET $4";
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.email FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.course_id = $1 AND ($2 = 0 OR e.user_id = $2) \
             ORDER BY u.name, e.user_id LIMIT $3 OFFSET $4",
        )
        .bind(course.0)
        .bind(only)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        let students = rows
            .iter()
            .map(|row| {
                Ok(StudentRecord {
                    user: UserId(row.try_get("id")?),
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let total = sqlx::query(
            "SELECT COUNT(*) FROM enrollments WHERE course_id = $1 AND ($2 = 0 OR user_id = $2)",
        )
        .bind(course.0)
        .bind(only)
        .fetch_one(self.db.pool())
        .await?;
        let held = "SELECT id FROM lessons WHERE course_id = $1 AND state IN ('live', 'ended')";
        // The page's attendees, intervals and breakout stays: one query shape, five parameters.
        let pool = self.db.pool();
        let page_rows = |sql: String| async move {
            sqlx::query(fixed(&sql))
                .bind(course.0)
                .bind(only)
                .bind(limit)
                .bind(offset)
                .bind(MAX_REPORT_ROWS)
                .fetch_all(pool)
                .await
        };
        let attendees = page_rows(format!(
            "SELECT {ATTENDEE_COLUMNS} \
             FROM lesson_attendance a JOIN users u ON u.id = a.user_id \
             WHERE a.lesson_id IN ({held}) AND a.user_id IN ({students_page}) LIMIT $5"
        ))
        .await?
        .iter()
        .map(attendee_from_row)
        .collect::<Result<_, _>>()?;
        let intervals = page_rows(format!(
            "SELECT {INTERVAL_COLUMNS} FROM attendance_intervals \
             WHERE lesson_id IN ({held}) AND user_id IN ({students_page}) LIMIT $5"
        ))
        .await?
        .iter()
        .map(interval_from_row)
        .collect::<Result<_, _>>()?;
        let breakouts = page_rows(format!(
            "SELECT lesson_id, user_id, room, started_at, ended_at FROM attendance_breakouts \
             WHERE lesson_id IN ({held}) AND user_id IN ({students_page}) \
             ORDER BY lesson_id, user_id, started_at, id LIMIT $5"
        ))
        .await?
        .iter()
        .map(super::breakouts::stay_from_row)
        .collect::<StoreResult<_>>()?;
        Ok(CourseAttendanceRecords {
            lessons: self.held_lessons(course).await?,
            students: Paged {
                items: students,
                total: count(&total)?,
            },
            attendees,
            intervals,
            breakouts,
        })
    }
}
