//! A lesson's restream destinations (third-party live services over RTMP), for the course's
//! teachers. Stream keys are shown masked, always; each destination's live state comes from
//! the server's restream through the [`crate::restream::RestreamBoard`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::LessonId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{ApiJson, ApiPath, CurrentUser};
use super::{ApiState, created, lesson_teacher, require_joinable};
use crate::restream::{Destination, DestinationId, DestinationState, NewDestination};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDestinationRequest {
    /// The service's RTMP URL without the key: `rtmp://HOST[:PORT]/APP` or `rtmps://…`.
    #[schema(
        max_length = 512,
        pattern = r"^rtmps?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/[!-~]*[!-.0-~][!-~]*$"
    )]
    pub url: String,
    /// The stream key the service gave you. Stored, never shown again in full.
    #[schema(min_length = 1, max_length = 512, pattern = r"^[!-~]+$")]
    pub stream_key: String,
}

/// A restream destination and how it is doing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DestinationResponse {
    pub id: i64,
    pub lesson_id: LessonId,
    pub url: String,
    /// The key, masked: `****` and its last four characters.
    pub stream_key: String,
    pub state: DestinationState,
    /// Why the last attempt failed, while retrying or failed.
    pub reason: Option<String>,
    /// Connections restarted during this live lesson.
    pub restarts: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The lesson's restream destinations with their states (the course's teachers).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/restreams", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = Vec<DestinationResponse>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_destinations(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<Vec<DestinationResponse>>> {
    let lesson = lesson_teacher(&state, &user, id, "its restream destinations").await?;
    let destinations = state.store.destinations(lesson.id).await?;
    Ok(Json(
        destinations.iter().map(|d| response(&state, d)).collect(),
    ))
}

/// Add a restream destination; it is pushed to while the lesson is live (the course's
/// teachers).
#[utoipa::path(
    post, path = "/api/v1/lessons/{id}/restreams", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    request_body = AddDestinationRequest,
    responses(
        (status = 201, body = DestinationResponse),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson is over, or has the most destinations allowed", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad URL or stream key (`invalid_field`), or a host that resolves only to addresses the server does not connect to, such as private or loopback ones (`destination_not_allowed`), or to none (`destination_unresolvable`)", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn add_destination(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
    ApiJson(body): ApiJson<AddDestinationRequest>,
) -> ApiResult<(StatusCode, Json<DestinationResponse>)> {
    let lesson = lesson_teacher(&state, &user, id, "its restream destinations").await?;
    let new = NewDestination::parse(&body.url, &body.stream_key)?;
    require_joinable(&lesson, "restreamed")?;
    new.url.check_outbound(&state.restream_outbound).await?;
    let destination = state
        .store
        .add_destination(lesson.id, new, user.id, OffsetDateTime::now_utc())
        .await?;
    // The URL names the service; the key is never logged.
    tracing::info!(by = %user.id, lesson = %id, destination = %destination.id,
        url = destination.url.as_str(), "restream destination added");
    state.restreams.changed(lesson.id);
    Ok(created(response(&state, &destination)))
}

/// Remove a restream destination; pushing to it stops at once (the course's teachers).
#[utoipa::path(
    delete, path = "/api/v1/lessons/{id}/restreams/{destination}", tag = "lessons",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Lesson id"),
        ("destination" = i64, Path, description = "Destination id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn remove_destination(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, destination)): ApiPath<(LessonId, DestinationId)>,
) -> ApiResult<StatusCode> {
    let lesson = lesson_teacher(&state, &user, id, "its restream destinations").await?;
    state
        .store
        .remove_destination(lesson.id, destination)
        .await?;
    tracing::info!(by = %user.id, lesson = %id, %destination, "restream destination removed");
    state.restreams.changed(lesson.id);
    Ok(StatusCode::NO_CONTENT)
}

fn response(state: &ApiState, destination: &Destination) -> DestinationResponse {
    let status = state.restreams.status(destination.id);
    DestinationResponse {
        id: destination.id.0,
        lesson_id: destination.lesson,
        url: destination.url.as_str().to_owned(),
        stream_key: destination.stream_key.masked(),
        state: status.state,
        reason: status.reason,
        restarts: status.restarts,
        created_at: destination.created_at,
    }
}
