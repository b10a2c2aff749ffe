//! The replay job queue, for admins: what is queued, running, done or failed (with the
//! reason), and retrying a failed job.

use axum::Json;
use axum::extract::State;
use classroom_protocol::UserRole;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, CurrentUser};
use super::{ApiState, require_role};
use crate::model::{JobState, RecordingJob};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this state: queued, running, done or failed (empty: all).
    #[param(pattern = r"^(queued|running|done|failed)?$")]
    pub state: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub items: Vec<RecordingJob>,
}

/// Replay jobs, newest first (admins).
#[utoipa::path(
    get, path = "/api/v1/recording-jobs", tag = "replays", security(("bearer" = [])),
    params(JobQuery),
    responses(
        (status = 200, body = JobList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_jobs(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> ApiResult<Json<JobList>> {
    require_role(&user, &[UserRole::Admin], "see replay jobs")?;
    let filter = match query.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("unknown job state `{s}`"))
        })?),
    };
    Ok(Json(JobList {
        items: state.store.recording_jobs(filter).await?,
    }))
}

/// Retry a failed replay job now (admins).
#[utoipa::path(
    post, path = "/api/v1/recording-jobs/{id}/retry", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "Queued again", body = RecordingJob),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The job has not failed", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn retry_job(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RecordingJob>> {
    require_role(&user, &[UserRole::Admin], "retry replay jobs")?;
    let job = state
        .store
        .retry_recording_job(id, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(by = %user.id, job = id, "replay job retried");
    Ok(Json(job))
}
