//! Webhooks: the school's (admins) and a course's (its teachers, or an admin). The secret is
//! made by the server and shown once, in the answer to the creation; the URL must pass the
//! same outbound policy as restream destinations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::{CourseId, UserRole};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, CurrentUser};
use super::{ApiState, course_manager, created, require_role};
use crate::auth::random_token;
use crate::model::User;
use crate::webhook::{Webhook, WebhookUrl};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where events are POSTed: `http://` or `https://`, at most 512 characters.
    #[schema(
        max_length = 512,
        pattern = r"^https?://([A-Za-z0-9._-]+|\[[0-9A-Za-z._:-]+\])(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?([/?#][!-~]*)?$"
    )]
    pub url: String,
}

/// A webhook just created, with its secret: shown this once, never again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC-SHA256 key of the `X-Classroom-Signature` header (docs/webhooks.md).
    pub secret: String,
}

/// The school's webhooks (admins).
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Webhook>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not an admin", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_school_webhooks(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<Webhook>>> {
    require_role(&user, &[UserRole::Admin], "see the school's webhooks")?;
    Ok(Json(state.store.webhooks(None).await?))
}

/// Add a school-wide webhook: it hears the events of every course (admins).
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not an admin", body = classroom_protocol::ErrorBody),
        (status = 409, description = "The most webhooks allowed", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad URL (`invalid_url`), or a host that resolves only to addresses the server does not connect to (`destination_not_allowed`), or to none (`destination_unresolvable`)", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn create_school_webhook(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    require_role(&user, &[UserRole::Admin], "add the school's webhooks")?;
    create(&state, &user, None, &body.url).await
}

/// Remove a school-wide webhook; its pending deliveries are dropped (admins).
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{webhook}", tag = "webhooks", security(("bearer" = [])),
    params(("webhook" = i64, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn delete_school_webhook(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(webhook): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    require_role(&user, &[UserRole::Admin], "remove the school's webhooks")?;
    state.store.delete_webhook(None, webhook).await?;
    tracing::info!(by = %user.id, webhook, "school webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

/// A course's webhooks (its teachers, admins).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = Vec<Webhook>),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_course_webhooks(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
) -> ApiResult<Json<Vec<Webhook>>> {
    course_manager(&state, &user, id).await?;
    Ok(Json(state.store.webhooks(Some(id)).await?))
}

/// Add a webhook that hears this course's events (its teachers, admins).
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The most webhooks allowed", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Bad URL, or a host the server does not connect to", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn create_course_webhook(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<CourseId>,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    course_manager(&state, &user, id).await?;
    create(&state, &user, Some(id), &body.url).await
}

/// Remove a course's webhook (its teachers, admins).
#[utoipa::path(
    delete, path = "/api/v1/courses/{id}/webhooks/{webhook}", tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Course id"),
        ("webhook" = i64, Path, description = "Webhook id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn delete_course_webhook(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, webhook)): ApiPath<(CourseId, i64)>,
) -> ApiResult<StatusCode> {
    course_manager(&state, &user, id).await?;
    state.store.delete_webhook(Some(id), webhook).await?;
    tracing::info!(by = %user.id, course = %id, webhook, "course webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn create(
    state: &ApiState,
    user: &User,
    course: Option<CourseId>,
    url: &str,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let url = WebhookUrl::parse(url).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_url",
            e.to_string(),
        )
        .with_field("url")
    })?;
    url.check_literal(&state.restream_outbound)?;
    let secret = random_token(32);
    let webhook = state
        .store
        .create_webhook(course, &url, &secret, user.id, OffsetDateTime::now_utc())
        .await?;
    // The host only: a URL's query may carry the receiver's own token.
    tracing::info!(by = %user.id, webhook = webhook.id, course = ?course.map(|c| c.0),
        host = url.host(), "webhook added");
    Ok(created(CreatedWebhook { webhook, secret }))
}
