//! Courses, their teachers and their students.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::{AccessChange, CourseId, UserId, UserRole};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use super::{ApiState, PageQuery, Paginated, course_manager, course_member, created, require_role};
use crate::model::{Course, CourseMembership, Description, Title, User};
use crate::store::{CourseChanges, Page};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCourseRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    /// Record its lessons from the moment they go live (default false).
    #[serde(default)]
    pub record_by_default: bool,
}

/// Create a course (admins and teachers; a teacher becomes its first teacher).
#[utoipa::path(
    post, path = "/api/v1/courses", tag = "courses", security(("bearer" = [])),
    request_body = CreateCourseRequest,
    responses(
        (status = 201, body = Course),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Students cannot create courses", body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn create_course(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateCourseRequest>,
) -> ApiResult<(StatusCode, Json<Course>)> {
    require_role(
        &user,
        &[UserRole::Admin, UserRole::Teacher],
        "create courses",
    )?;
    let title = Title::parse(&body.title)?;
    let description = Description::parse(&body.description)?;
    let mut course = state
        .store
        .create_course(title, description, &user, OffsetDateTime::now_utc())
        .await?;
    if body.record_by_default {
        let changes = CourseChanges {
            record_by_default: Some(true),
            ..CourseChanges::default()
        };
        course = state
            .store
            .update_course(course.id, changes, OffsetDateTime::now_utc())
            .await?;
    }
    tracing::info!(by = %user.id, course = %course.id, "course created");
    Ok(created(course))
}

/// The caller's courses: taught or enrolled; all of them for an admin.
#[utoipa::path(
    get, path = "/api/v1/courses", tag = "courses", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Paginated<Course>),
        (status = 401, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_courses(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paginated<Course>>> {
    let page = query.page();
    let courses = state.store.courses_of(&user, page).await?;
    Ok(Json(Paginated::new(courses, page)))
}

/// A course with its teachers and the caller's place in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CourseDetail {
    #[serde(flatten)]
    pub course: Course,
    /// How the caller relates to this course.
    pub membership: CourseMembership,
    pub teachers: Vec<User>,
    pub student_count: i64,
}

/// One course (its teachers, enrolled students and admins).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = CourseDetail),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_course(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
) -> ApiResult<Json<CourseDetail>> {
    let membership = course_member(&state, &user, id).await?;
    let course = state.store.course(id).await?;
    let teachers = state
        .store
        .teachers_of(id, Page::new(1, Page::MAX_PER_PAGE))
        .await?
        .items;
    let student_count = state.store.students_of(id, Page::new(1, 1)).await?.total;
    Ok(Json(CourseDetail {
        course,
        membership,
        teachers,
        student_count,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCourseRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub record_by_default: Option<bool>,
}

/// Change a course's title, description or recording default (its teachers and admins).
#[utoipa::path(
    patch, path = "/api/v1/courses/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = UpdateCourseRequest,
    responses(
        (status = 200, body = Course),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn update_course(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiJson(body): ApiJson<UpdateCourseRequest>,
) -> ApiResult<Json<Course>> {
    course_manager(&state, &user, id).await?;
    let changes = CourseChanges {
        title: body.title.as_deref().map(Title::parse).transpose()?,
        description: body
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?,
        record_by_default: body.record_by_default,
    };
    Ok(Json(
        state
            .store
            .update_course(id, changes, OffsetDateTime::now_utc())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    pub user_id: UserId,
}

/// Assign a teacher to the course (its teachers and admins).
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/teachers", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = MemberRequest,
    responses(
        (status = 201, description = "The teacher now teaches the course", body = User),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such course or user", body = classroom_protocol::ErrorBody),
        (status = 409, description = "Already a teacher of the course (`already_member`), or the user is not a teacher (`wrong_role`)", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad body", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn add_teacher(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiJson(body): ApiJson<MemberRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    course_manager(&state, &user, id).await?;
    let teacher = state
        .store
        .add_teacher(id, body.user_id, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(by = %user.id, course = %id, teacher = %teacher.id, "teacher assigned");
    Ok(created(teacher))
}

/// The course's teachers (its members and admins).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/teachers", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), PageQuery),
    responses(
        (status = 200, body = Paginated<User>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_teachers(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paginated<User>>> {
    course_member(&state, &user, id).await?;
    let page = query.page();
    Ok(Json(Paginated::new(
        state.store.teachers_of(id, page).await?,
        page,
    )))
}

/// Remove a teacher from the course (its teachers and admins).
#[utoipa::path(
    delete, path = "/api/v1/courses/{id}/teachers/{user_id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), ("user_id" = i64, Path, description = "Teacher's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such course, or not a teacher of it", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn remove_teacher(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, teacher)): ApiPath<(CourseId, UserId)>,
) -> ApiResult<StatusCode> {
    course_manager(&state, &user, id).await?;
    state.store.remove_teacher(id, teacher).await?;
    state.announce(AccessChange::LeftCourse {
        course: id,
        user: teacher,
    });
    tracing::info!(by = %user.id, course = %id, %teacher, "teacher removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Enroll a student in the course (its teachers and admins).
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/enrollments", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = MemberRequest,
    responses(
        (status = 201, description = "The student is enrolled", body = User),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such course or user", body = classroom_protocol::ErrorBody),
        (status = 409, description = "Already enrolled (`already_member`), or the user is not a student (`wrong_role`)", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad body", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn enroll(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiJson(body): ApiJson<MemberRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    course_manager(&state, &user, id).await?;
    let student = state
        .store
        .enroll(id, body.user_id, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(by = %user.id, course = %id, student = %student.id, "student enrolled");
    Ok(created(student))
}

/// The course's enrolled students (its teachers and admins).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/enrollments", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), PageQuery),
    responses(
        (status = 200, body = Paginated<User>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_enrollments(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paginated<User>>> {
    course_manager(&state, &user, id).await?;
    let page = query.page();
    Ok(Json(Paginated::new(
        state.store.students_of(id, page).await?,
        page,
    )))
}

/// Unenroll a student (the course's teachers and admins).
#[utoipa::path(
    delete, path = "/api/v1/courses/{id}/enrollments/{user_id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), ("user_id" = i64, Path, description = "Student's user id")),
    responses(
        (status = 204, description = "Unenrolled"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such course, or the student is not enrolled", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn unenroll(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, student)): ApiPath<(CourseId, UserId)>,
) -> ApiResult<StatusCode> {
    course_manager(&state, &user, id).await?;
    state.store.unenroll(id, student).await?;
    state.announce(AccessChange::LeftCourse {
        course: id,
        user: student,
    });
    tracing::info!(by = %user.id, course = %id, %student, "student unenrolled");
    Ok(StatusCode::NO_CONTENT)
}
