//! Removals from a lesson: who a moderator removed (refused entry to the lesson's room with
//! any join token), and letting them back in.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::{AccessChange, LessonId, UserId};

use super::error::ApiResult;
use super::extract::{ApiPath, CurrentUser};
use super::{ApiState, course_manager};
use crate::model::Removal;

/// The users removed from a lesson, most recent first (the course's teachers and admins).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/removals", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = Vec<Removal>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_removals(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<Vec<Removal>>> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    Ok(Json(state.store.removals_of(id).await?))
}

/// Let a removed user back into the lesson (the course's teachers and admins): they can get
/// a join token and join its room again.
#[utoipa::path(
    delete, path = "/api/v1/lessons/{id}/removals/{user_id}", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id"), ("user_id" = i64, Path, description = "The removed user's id")),
    responses(
        (status = 204, description = "Let back in"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such lesson, or the user was not removed from it", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn readmit(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, removed)): ApiPath<(LessonId, UserId)>,
) -> ApiResult<StatusCode> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    state.store.readmit(id, removed).await?;
    state.announce(AccessChange::Readmitted {
        lesson: id,
        user: removed,
    });
    tracing::info!(by = %user.id, lesson = %id, user = %removed, "let back into the lesson");
    Ok(StatusCode::NO_CONTENT)
}
