//! Courses, their teachers and their enrolled students.

use classroom_protocol::{CourseId, UserId, UserRole};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::users::user_from_row;
use super::{Page, Paged, Store, count, fixed};
use crate::error::{StoreError, StoreResult, is_unique_violation};
use crate::model::{Course, CourseMembership, Description, Title, User, from_millis, to_millis};

const COURSE_COLUMNS: &str =
    "c.id, c.title, c.description, c.created_by, c.created_at, c.record_by_default";
const MEMBER_COLUMNS: &str = "u.id, u.email, u.name, u.role, u.disabled_at, u.created_at";

/// Changes to a course; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CourseChanges {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub record_by_default: Option<bool>,
}

fn course_from_row(row: &AnyRow) -> Result<Course, sqlx::Error> {
    Ok(Course {
        id: CourseId(row.try_get("id")?),
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: from_millis(row.try_get("created_at")?),
        record_by_default: row.try_get::<i64, _>("record_by_default")? != 0,
    })
}

/// Which membership table a roster operation works on.
#[derive(Debug, Clone, Copy)]
enum Roster {
    Teachers,
    Students,
}

impl Roster {
    fn table(self) -> &'static str {
        match self {
            Roster::Teachers => "course_teachers",
            Roster::Students => "enrollments",
        }
    }

    fn time_column(self) -> &'static str {
        match self {
            Roster::Teachers => "added_at",
            Roster::Students => "enrolled_at",
        }
    }

    fn required_role(self) -> UserRole {
        match self {
            Roster::Teachers => UserRole::Teacher,
            Roster::Students => UserRole::Student,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Roster::Teachers => "course teacher",
            Roster::Students => "enrollment",
        }
    }
}

impl Store {
    /// Creates a course; a teacher who creates one becomes its first teacher.
    pub async fn create_course(
        &self,
        title: Title,
        description: Description,
        creator: &User,
        now: OffsetDateTime,
    ) -> StoreResult<Course> {
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let row = sqlx::query(
            "INSERT INTO courses (title, description, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             RETURNING id, title, description, created_by, created_at, record_by_default",
        )
        .bind(title.as_str())
        .bind(description.as_str())
        .bind(creator.id.0)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let course = course_from_row(&row)?;
        if creator.role == UserRole::Teacher {
            sqlx::query(
                "INSERT INTO course_teachers (course_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(course.id.0)
            .bind(creator.id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(course)
    }

    pub async fn course(&self, id: CourseId) -> StoreResult<Course> {
        let sql = format!("SELECT {COURSE_COLUMNS} FROM courses c WHERE c.id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(course_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("course"))
    }

    /// The courses a user belongs to: all of them for an admin, taught ones for a teacher,
    /// enrolled ones for a student.
    pub async fn courses_of(&self, user: &User, page: Page) -> StoreResult<Paged<Course>> {
        let from = match user.role {
            UserRole::Admin => "courses c WHERE $1 = $1",
            UserRole::Teacher => {
                "courses c JOIN course_teachers m ON m.course_id = c.id WHERE m.user_id = $1"
            }
            UserRole::Student => {
                "courses c JOIN enrollments m ON m.course_id = c.id WHERE m.user_id = $1"
            }
        };
        let sql = format!(
            "SELECT {COURSE_COLUMNS} FROM {from} ORDER BY c.title, c.id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(user.id.0)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let total = sqlx::query(fixed(&format!("SELECT COUNT(*) FROM {from}")))
            .bind(user.id.0)
            .fetch_one(self.db.pool())
            .await?;
        Ok(Paged {
            items: rows.iter().map(course_from_row).collect::<Result<_, _>>()?,
            total: count(&total)?,
        })
    }

    /// How `user` relates to the course, or `None` if not at all.
    pub async fn membership(
        &self,
        course: CourseId,
        user: &User,
    ) -> StoreResult<Option<CourseMembership>> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM course_teachers WHERE course_id = $1 AND user_id = $2), \
               (SELECT COUNT(*) FROM enrollments WHERE course_id = $1 AND user_id = $2)",
        )
        .bind(course.0)
        .bind(user.id.0)
        .fetch_one(self.db.pool())
        .await?;
        let teaches: i64 = row.try_get(0)?;
        let enrolled: i64 = row.try_get(1)?;
        Ok(if teaches > 0 {
            Some(CourseMembership::Teacher)
        } else if enrolled > 0 {
            Some(CourseMembership::Student)
        } else if user.role == UserRole::Admin {
            Some(CourseMembership::Admin)
        } else {
            None
        })
    }

    pub async fn update_course(
        &self,
        id: CourseId,
        changes: CourseChanges,
        now: OffsetDateTime,
    ) -> StoreResult<Course> {
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        if let Some(title) = &changes.title {
            sqlx::query("UPDATE courses SET title = $1, updated_at = $2 WHERE id = $3")
                .bind(title.as_str())
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(description) = &changes.description {
            sqlx::query("UPDATE courses SET description = $1, updated_at = $2 WHERE id = $3")
                .bind(description.as_str())
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(record) = changes.record_by_default {
            sqlx::query("UPDATE courses SET record_by_default = $1, updated_at = $2 WHERE id = $3")
                .bind(i64::from(record))
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!("SELECT {COURSE_COLUMNS} FROM courses c WHERE c.id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let course = row
            .as_ref()
            .map(course_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("course"))?;
        tx.commit().await?;
        Ok(course)
    }

    pub async fn add_teacher(
        &self,
        course: CourseId,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        self.add_to_roster(Roster::Teachers, course, user, now)
            .await
    }

    pub async fn enroll(
        &self,
        course: CourseId,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        self.add_to_roster(Roster::Students, course, user, now)
            .await
    }

    pub async fn remove_teacher(&self, course: CourseId, user: UserId) -> StoreResult<()> {
        self.remove_from_roster(Roster::Teachers, course, user)
            .await
    }

    pub async fn unenroll(&self, course: CourseId, user: UserId) -> StoreResult<()> {
        self.remove_from_roster(Roster::Students, course, user)
            .await
    }

    pub async fn teachers_of(&self, course: CourseId, page: Page) -> StoreResult<Paged<User>> {
        self.roster(Roster::Teachers, course, page).await
    }

    pub async fn students_of(&self, course: CourseId, page: Page) -> StoreResult<Paged<User>> {
        self.roster(Roster::Students, course, page).await
    }

    async fn add_to_roster(
        &self,
        roster: Roster,
        course: CourseId,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        self.course(course).await?;
        let user = self.user(user_id).await?;
        let required = roster.required_role();
        if user.role != required {
            // The request is well formed; the account it names is of another kind: a
            // conflict with the school's data, not a bad field.
            return Err(StoreError::conflict(
                "wrong_role",
                format!(
                    "{} is a {}; only a {} can be added as {}",
                    user.email,
                    user.role.as_str(),
                    required.as_str(),
                    roster.what()
                ),
            ));
        }
        let sql = format!(
            "INSERT INTO {} (course_id, user_id, {}) VALUES ($1, $2, $3)",
            roster.table(),
            roster.time_column()
        );
        sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(user_id.0)
            .bind(to_millis(now))
            .execute(self.db.pool())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::duplicate(
                        "already_member",
                        format!(
                            "{} is already a {} of this course",
                            user.email,
                            required.as_str()
                        ),
                    )
                } else {
                    e.into()
                }
            })?;
        Ok(user)
    }

    async fn remove_from_roster(
        &self,
        roster: Roster,
        course: CourseId,
        user: UserId,
    ) -> StoreResult<()> {
        self.course(course).await?;
        let sql = format!(
            "DELETE FROM {} WHERE course_id = $1 AND user_id = $2",
            roster.table()
        );
        let done = sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(user.0)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(roster.what()));
        }
        Ok(())
    }

    async fn roster(
        &self,
        roster: Roster,
        course: CourseId,
        page: Page,
    ) -> StoreResult<Paged<User>> {
        self.course(course).await?;
        let from = format!(
            "users u JOIN {} m ON m.user_id = u.id WHERE m.course_id = $1",
            roster.table()
        );
        let sql =
            format!("SELECT {MEMBER_COLUMNS} FROM {from} ORDER BY u.name, u.id LIMIT $2 OFFSET $3");
        let rows = sqlx::query(fixed(&sql))
            .bind(course.0)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let total = sqlx::query(fixed(&format!("SELECT COUNT(*) FROM {from}")))
            .bind(course.0)
            .fetch_one(self.db.pool())
            .await?;
        Ok(Paged {
            items: rows.iter().map(user_from_row).collect::<Result<_, _>>()?,
            total: count(&total)?,
        })
    }
}
