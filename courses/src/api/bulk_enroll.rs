//! Enrolling a whole class at once: students picked by id, or a pasted list of emails. Each
//! one is enrolled or refused on its own, and the report says which and why, so a list with a
//! typo or a student enrolled already enrols everybody else.

use axum::Json;
use axum::extract::State;
use classroom_protocol::{CourseId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{ApiJson, ApiPath, CurrentUser};
use super::{ApiState, course_manager};
use crate::error::StoreError;
use crate::model::{Email, FieldError};

/// Most students one request names by id, and by email (a school's largest class, many times
/// over).
pub const MAX_BULK_ENROLL: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEnrollRequest {
    /// Students by id (a multi-select).
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub user_ids: Vec<UserId>,
    /// Students by email (a pasted list).
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub emails: Vec<String>,
}

/// What became of one student of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkEnrollStatus {
    Enrolled,
    /// Enrolled before this request: nothing changed.
    AlreadyEnrolled,
    Refused,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkEnrollRow {
    /// The id or email as the request gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub status: BulkEnrollStatus,
    /// Why it was refused: no such user, not a student, a malformed email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkEnrollReport {
    pub enrolled: usize,
    pub already_enrolled: usize,
    pub refused: usize,
    /// One row per id, then one per email, in the request's order.
    pub rows: Vec<BulkEnrollRow>,
}

/// Enroll many students at once (the course's teachers and admins).
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/enrollments/bulk", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    request_body = BulkEnrollRequest,
    responses(
        (status = 200, description = "Each student enrolled or refused, with the reason", body = BulkEnrollReport),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such course", body = classroom_protocol::ErrorBody),
        (status = 422, description = "More than 1000 ids or 1000 emails", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn bulk_enroll(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
    ApiJson(body): ApiJson<BulkEnrollRequest>,
) -> ApiResult<Json<BulkEnrollReport>> {
    course_manager(&state, &user, course).await?;
    for (field, count) in [
        ("user_ids", body.user_ids.len()),
        ("emails", body.emails.len()),
    ] {
        if count > MAX_BULK_ENROLL {
            return Err(FieldError::new(
                field,
                format!("name at most {MAX_BULK_ENROLL} students in `{field}`"),
            )
            .into());
        }
    }
    let count = body.user_ids.len() + body.emails.len();
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::with_capacity(count);
    for id in body.user_ids {
        let (status, reason) = outcome(state.store.enroll(course, id, now).await)?;
        rows.push(BulkEnrollRow {
            user_id: Some(id),
            email: None,
            status,
            reason,
        });
    }
    for given in body.emails {
        let result = match Email::parse(&given) {
            Err(e) => Err(StoreError::Invalid(e)),
            Ok(email) => match state.store.credentials_by_email(&email).await? {
                None => Err(StoreError::NotFound("user")),
                Some(found) => state.store.enroll(course, found.user.id, now).await,
            },
        };
        let (status, reason) = outcome(result)?;
        rows.push(BulkEnrollRow {
            user_id: None,
            email: Some(given),
            status,
            reason,
        });
    }
    let counted = |wanted| rows.iter().filter(|r| r.status == wanted).count();
    let report = BulkEnrollReport {
        enrolled: counted(BulkEnrollStatus::Enrolled),
        already_enrolled: counted(BulkEnrollStatus::AlreadyEnrolled),
        refused: counted(BulkEnrollStatus::Refused),
        rows,
    };
    tracing::info!(
        by = %user.id, %course, enrolled = report.enrolled,
        already = report.already_enrolled, refused = report.refused, "students enrolled in bulk"
    );
    Ok(Json(report))
}

/// One enrolment's row; a failure of the database fails the whole request (what was enrolled
/// before it stays enrolled, and sending the list again reports those as enrolled already).
fn outcome<T>(result: Result<T, StoreError>) -> ApiResult<(BulkEnrollStatus, Option<String>)> {
    match result {
        Ok(_) => Ok((BulkEnrollStatus::Enrolled, None)),
        Err(StoreError::Duplicate { .. }) => Ok((BulkEnrollStatus::AlreadyEnrolled, None)),
        Err(StoreError::NotFound(_)) => {
            Ok((BulkEnrollStatus::Refused, Some("no such user".into())))
        }
        Err(StoreError::Conflict { message, .. }) => Ok((BulkEnrollStatus::Refused, Some(message))),
        Err(StoreError::Invalid(e)) => Ok((BulkEnrollStatus::Refused, Some(e.to_string()))),
        Err(other) => Err(other.into()),
    }
}
