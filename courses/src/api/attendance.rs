//! Attendance reports: a lesson's (during and after it), a course's summary per student
//! across its held lessons, both as JSON pages and as CSV exports of the same numbers (the
//! course's teachers and admins); and a student's own attendance of a course. What the
//! numbers mean is in [`crate::attendance`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use classroom_protocol::{CourseId, LessonId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, CurrentUser};
use super::{ApiState, PageQuery, course_manager, course_member, csv_download};
use crate::attendance::{
    AttendeeRecord, BreakoutStayReport, IntervalRecord, LessonAttendee, LessonBrief,
    StudentSummary, course_csv, lesson_attendee, lesson_csv, student_summary,
};
use crate::model::{CourseMembership, Lesson};
use crate::store::{BreakoutStay, CourseAttendanceRecords, Page};

/// One page of a lesson's attendance, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LessonAttendanceReport {
    pub lesson: LessonBrief,
    pub items: Vec<LessonAttendee>,
    /// Users who took part, across all pages.
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

/// One page of a course's students, by name, each summed up across the held lessons.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CourseAttendanceReport {
    pub course_id: CourseId,
    /// The course's lessons that took place (live or ended).
    pub lessons_held: i64,
    pub items: Vec<StudentSummary>,
    /// Enrolled students, across all pages.
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

/// A student's attendance of one held lesson.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OwnLessonAttendance {
    pub lesson: LessonBrief,
    /// `null` when they were not in the room.
    pub attendance: Option<LessonAttendee>,
}

/// A student's own attendance of a course: each held lesson, and the sum.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OwnAttendance {
    pub course_id: CourseId,
    pub summary: StudentSummary,
    pub lessons: Vec<OwnLessonAttendance>,
}

/// A lesson's attendance, one row per user who was in its room (the course's teachers and
/// admins; during the lesson too, where open stays count up to their last stamp).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/attendance", tag = "attendance", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id"), PageQuery),
    responses(
        (status = 200, body = LessonAttendanceReport),
        (status = 400, description = "A bad page parameter", body = classroom_protocol::ErrorBody),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_attendance(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<LessonAttendanceReport>> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    let page = query.page();
    let (items, total) = lesson_rows(&state, &lesson, Some(page)).await?;
    Ok(Json(LessonAttendanceReport {
        lesson: LessonBrief::from(&lesson),
        items,
        total,
        page: page.page,
        per_page: page.per_page,
    }))
}

/// The lesson's attendance as CSV: every row of the JSON report, with the same numbers.
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/attendance.csv", tag = "attendance", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_attendance_csv(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Response> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    let (rows, _) = lesson_rows(&state, &lesson, None).await?;
    Ok(csv_download(
        lesson_csv(&rows),
        &format!("lesson-{}-attendance.csv", id.0),
    ))
}

/// A course's students, each summed up across the course's held lessons (the course's
/// teachers and admins).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/attendance", tag = "attendance", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), PageQuery),
    responses(
        (status = 200, body = CourseAttendanceReport),
        (status = 400, description = "A bad page parameter", body = classroom_protocol::ErrorBody),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn course_attendance(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<CourseAttendanceReport>> {
    course_manager(&state, &user, course).await?;
    let page = query.page();
    let records = state
        .store
        .course_attendance(course, Some(page), None)
        .await?;
    let total = records.students.total;
    let lessons_held = i64::try_from(records.lessons.len()).unwrap_or(i64::MAX);
    Ok(Json(CourseAttendanceReport {
        course_id: course,
        lessons_held,
        items: summaries(&records).into_iter().map(|(s, _)| s).collect(),
        total,
        page: page.page,
        per_page: page.per_page,
    }))
}

/// The course's summary as CSV: every student of the JSON report, with the same numbers.
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/attendance.csv", tag = "attendance", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn course_attendance_csv(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
) -> ApiResult<Response> {
    course_manager(&state, &user, course).await?;
    let records = state.store.course_attendance(course, None, None).await?;
    let rows: Vec<StudentSummary> = summaries(&records).into_iter().map(|(s, _)| s).collect();
    Ok(csv_download(
        course_csv(&rows),
        &format!("course-{}-attendance.csv", course.0),
    ))
}

/// The signed-in student's own attendance of the course: each held lesson and the sum.
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/attendance/me", tag = "attendance", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = OwnAttendance),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a student of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn own_attendance(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
) -> ApiResult<Json<OwnAttendance>> {
    if course_member(&state, &user, course).await? != CourseMembership::Student {
        return Err(ApiError::forbidden(
            "not_a_student",
            "only the course's students have an attendance of their own; \
             its teachers see the course's attendance",
        ));
    }
    let records = state
        .store
        .course_attendance(course, None, Some(user.id))
        .await?;
    let (summary, reports) = summaries(&records).into_iter().next().ok_or_else(|| {
        ApiError::forbidden("not_a_student", "you are not enrolled in this course")
    })?;
    let mut by_lesson: HashMap<LessonId, LessonAttendee> = reports.into_iter().collect();
    let lessons = records
        .lessons
        .iter()
        .map(|lesson| OwnLessonAttendance {
            lesson: LessonBrief::from(lesson),
            attendance: by_lesson.remove(&lesson.id),
        })
        .collect();
    Ok(Json(OwnAttendance {
        course_id: course,
        summary,
        lessons,
    }))
}

/// The lesson's rows: one page, or all of them (`None`); and the total.
async fn lesson_rows(
    state: &ApiState,
    lesson: &Lesson,
    page: Option<Page>,
) -> ApiResult<(Vec<LessonAttendee>, i64)> {
    let attendees = state.store.lesson_attendees(lesson.id, page).await?;
    let users: Vec<UserId> = attendees.items.iter().map(|a| a.user).collect();
    let intervals = state
        .store
        .lesson_intervals(lesson.id, Some(&users))
        .await?;
    let mut by_user: HashMap<UserId, Vec<&IntervalRecord>> = HashMap::new();
    for interval in &intervals {
        by_user.entry(interval.user).or_default().push(interval);
    }
    let stays = state.store.lesson_breakout_stays(lesson.id).await?;
    let rows = attendees
        .items
        .iter()
        .filter_map(|a| {
            let theirs = by_user.get(&a.user).map(Vec::as_slice).unwrap_or_default();
            let mut row = lesson_attendee(lesson, a, theirs)?;
            row.breakout_rooms = stay_reports(stays.iter().filter(|s| s.user == a.user));
            Some(row)
        })
        .collect();
    Ok((rows, attendees.total))
}

/// Each student of `records`, in order, summed up, with their report of each lesson they
/// attended.
fn summaries(
    records: &CourseAttendanceRecords,
) -> Vec<(StudentSummary, Vec<(LessonId, LessonAttendee)>)> {
    let mut attendees: HashMap<(LessonId, UserId), &AttendeeRecord> = HashMap::new();
    for a in &records.attendees {
        attendees.insert((a.lesson, a.user), a);
    }
    let mut intervals: HashMap<(LessonId, UserId), Vec<&IntervalRecord>> = HashMap::new();
    for i in &records.intervals {
        intervals.entry((i.lesson, i.user)).or_default().push(i);
    }
    let mut stays: HashMap<(LessonId, UserId), Vec<&BreakoutStay>> = HashMap::new();
    for s in &records.breakouts {
        stays.entry((s.lesson, s.user)).or_default().push(s);
    }
    records
        .students
        .items
        .iter()
        .map(|student| {
            let reports: Vec<(LessonId, LessonAttendee)> = records
                .lessons
                .iter()
                .filter_map(|lesson| {
                    let key = (lesson.id, student.user);
                    let attendee = attendees.get(&key)?;
                    let theirs = intervals.get(&key).map(Vec::as_slice).unwrap_or_default();
                    let mut report = lesson_attendee(lesson, attendee, theirs)?;
                    let rooms = stays.get(&key).map(Vec::as_slice).unwrap_or_default();
                    report.breakout_rooms = stay_reports(rooms.iter().copied());
                    Some((lesson.id, report))
                })
                .collect();
            let only: Vec<LessonAttendee> = reports.iter().map(|(_, r)| r.clone()).collect();
            let summary = student_summary(
                student.user,
                &student.name,
                &student.email,
                records.lessons.len(),
                &only,
            );
            (summary, reports)
        })
        .collect()
}

/// Stays in breakout rooms as reports show them ("Room 1" is room 0).
fn stay_reports<'a>(stays: impl Iterator<Item = &'a BreakoutStay>) -> Vec<BreakoutStayReport> {
    stays
        .map(|s| BreakoutStayReport {
            room: s.room.saturating_add(1),
            joined_at: s.started_at,
            left_at: s.ended_at,
        })
        .collect()
}
