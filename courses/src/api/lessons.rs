//! Scheduling lessons, and the join tokens that admit people to a lesson's room.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::{
    AccessChange, AccessDenied, CourseId, Grants, LessonId, ParticipantRole, RoomName,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, ClientAddr, CurrentUser};
use super::placement::{Home, PlacementError};
use super::{ApiState, Paginated, course_manager, course_member, created};
use crate::auth::{IceServer, JoinGrant};
use crate::model::{CourseMembership, Lesson, LessonEvent, LessonState, Title};
use crate::store::{LessonChanges, NewLesson, Page};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLessonRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    /// RFC 3339, e.g. `2026-12-01T09:00:00Z`.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// RFC 3339; later than `starts_at`, at most 24 hours after it.
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
}

/// Schedule a lesson (the course's teachers and admins).
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/lessons", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = CreateLessonRequest,
    responses(
        (status = 201, body = Lesson),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad title or times", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn create_lesson(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
    ApiJson(body): ApiJson<CreateLessonRequest>,
) -> ApiResult<(StatusCode, Json<Lesson>)> {
    course_manager(&state, &user, course).await?;
    let new = NewLesson::parse(&body.title, body.starts_at, body.ends_at)?;
    let lesson = state
        .store
        .create_lesson(course, new, user.id, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(by = %user.id, %course, lesson = %lesson.id, "lesson scheduled");
    Ok(created(lesson))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LessonListQuery {
    /// Only lessons in this state.
    pub state: Option<LessonState>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// A course's lessons in start order (its members).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/lessons", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), LessonListQuery),
    responses(
        (status = 200, body = Paginated<Lesson>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_lessons(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
    ApiQuery(query): ApiQuery<LessonListQuery>,
) -> ApiResult<Json<Paginated<Lesson>>> {
    course_member(&state, &user, course).await?;
    let page = Page::new(query.page.unwrap_or(1), query.per_page.unwrap_or(50));
    let lessons = state.store.lessons_of(course, query.state, page).await?;
    Ok(Json(Paginated::new(lessons, page)))
}

/// One lesson (the course's members).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = Lesson),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_lesson(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<Lesson>> {
    let lesson = state.store.lesson(id).await?;
    course_member(&state, &user, lesson.course_id).await?;
    Ok(Json(lesson))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLessonRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
}

/// Change a scheduled lesson's title or times (the course's teachers and admins).
#[utoipa::path(
    patch, path = "/api/v1/lessons/{id}", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    request_body = UpdateLessonRequest,
    responses(
        (status = 200, body = Lesson),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson is live, ended or cancelled", body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn update_lesson(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
    ApiJson(body): ApiJson<UpdateLessonRequest>,
) -> ApiResult<Json<Lesson>> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    let changes = LessonChanges {
        title: body.title.as_deref().map(Title::parse).transpose()?,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
    };
    Ok(Json(
        state
            .store
            .update_lesson(id, changes, OffsetDateTime::now_utc())
            .await?,
    ))
}

/// Cancel a lesson that has not started (the course's teachers and admins).
#[utoipa::path(
    post, path = "/api/v1/lessons/{id}/cancel", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = Lesson),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson is live, ended or cancelled", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn cancel_lesson(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<Lesson>> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    let lesson = state
        .store
        .transition_lesson(id, LessonEvent::Cancel, OffsetDateTime::now_utc())
        .await?;
    // Students may already wait in the room of a scheduled lesson: it closes.
    state.announce(AccessChange::LessonCancelled(id));
    tracing::info!(by = %user.id, lesson = %id, "lesson cancelled");
    Ok(Json(lesson))
}

/// A join token and what it grants.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinResponse {
    /// Present it when opening the signaling WebSocket.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub lesson_id: LessonId,
    pub room: RoomName,
    pub role: ParticipantRole,
    pub grants: Grants,
    /// Path of the signaling WebSocket on this server.
    pub signaling_path: String,
    /// When the school runs several nodes and the lesson's room is on another one: the URL of
    /// that node's signaling WebSocket, to open instead of `signaling_path` here. The token
    /// works on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signaling_url: Option<String>,
    /// TURN relays for `RTCConfiguration.iceServers`, each with a credential that works for
    /// `turn.credential_ttl_secs`; empty when the server has none configured.
    pub ice_servers: Vec<IceServer>,
}

/// Get a join token for a lesson's room (the course's teachers and enrolled students).
///
/// Teachers are granted publish and moderate; students subscribe and chat, and are granted
/// publish live when brought on stage. A user a moderator removed from the lesson is refused
/// (`removed_from_lesson`) until a teacher lets them back in.
#[utoipa::path(
    post, path = "/api/v1/lessons/{id}/join", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = JoinResponse),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher or enrolled student of the course, or removed from the lesson", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson has ended or was cancelled", body = classroom_protocol::ErrorBody),
        (status = 429, description = "Too many requests; see Retry-After", body = classroom_protocol::ErrorBody),
        (status = 503, description = "Several nodes: the lesson cannot be placed now (`cluster_unavailable`); see Retry-After", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn join_lesson(
    State(state): State<ApiState>,
    ClientAddr(addr): ClientAddr,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<JoinResponse>> {
    state.limits.check_join(addr, user.id.0)?;
    let lesson = state.store.lesson(id).await?;
    let role = match course_member(&state, &user, lesson.course_id).await? {
        CourseMembership::Teacher => ParticipantRole::Teacher,
        CourseMembership::Student => ParticipantRole::Student,
        CourseMembership::Admin => {
            return Err(ApiError::forbidden(
                "not_a_member",
                "only the course's teachers and enrolled students can join its lessons",
            ));
        }
    };
    if !lesson.state.is_joinable() {
        return Err(ApiError::conflict(
            "lesson_over",
            format!(
                "the lesson is {}; it can no longer be joined",
                lesson.state.as_str()
            ),
        ));
    }
    if state.store.is_removed(lesson.id, user.id).await? {
        let removed = AccessDenied::RemovedFromLesson;
        return Err(ApiError::forbidden(removed.code(), removed.message()));
    }
    let signaling_url = match &state.placement {
        None => None,
        Some(placement) => match placement.0.home(lesson.id).await {
            Ok(Home::Here) => None,
            Ok(Home::Elsewhere { signaling_url }) => Some(signaling_url),
            Err(e @ PlacementError::Unavailable) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    e.to_string(),
                )
                .with_retry_after(1));
            }
        },
    };
    let now = OffsetDateTime::now_utc();
    let grant = JoinGrant {
        user: user.id,
        name: user.name.clone(),
        lesson: lesson.id,
        course: lesson.course_id,
        role,
    };
    let (claims, token) = state.tokens.issue_join(grant, now);
    tracing::info!(user = %user.id, lesson = %id, role = ?role, "join token issued");
    Ok(Json(JoinResponse {
        token,
        expires_at: now + state.tokens.join_ttl(),
        lesson_id: lesson.id,
        room: claims.room,
        role,
        grants: claims.grants,
        signaling_path: "/ws".into(),
        signaling_url,
        ice_servers: state
            .turn
            .iter()
            .map(|turn| turn.for_user(user.id, now))
            .collect(),
    }))
}
