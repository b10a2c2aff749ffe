//! The replay library, visible to a course's teachers and enrolled students (and admins).

use axum::Json;
use axum::extract::State;
use classroom_protocol::{CourseId, LessonId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{ApiPath, CurrentUser};
use super::{ApiState, course_member};
use crate::model::Replay;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayList {
    pub items: Vec<Replay>,
}

/// A course's replays, newest first.
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/replays", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = ReplayList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn course_replays(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
) -> ApiResult<Json<ReplayList>> {
    course_member(&state, &user, course).await?;
    Ok(Json(ReplayList {
        items: state.store.replays_of_course(course).await?,
    }))
}

/// A lesson's replays.
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/replays", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = ReplayList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_replays(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(lesson): ApiPath<LessonId>,
) -> ApiResult<Json<ReplayList>> {
    let lesson = state.store.lesson(lesson).await?;
    course_member(&state, &user, lesson.course_id).await?;
    Ok(Json(ReplayList {
        items: state.store.replays_of_lesson(lesson.id).await?,
    }))
}
