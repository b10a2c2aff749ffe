//! School accounts: admins create, list, disable users and reset passwords, and import class
//! lists. Teachers may search users, to find the students they enroll.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use classroom_protocol::{AccessChange, UserId, UserRole};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use super::{ApiState, Paginated, created, require_role};
use crate::auth::{TemporaryPassword, hash_password, hash_temporary_password};
use crate::csv_import::{ClassListError, parse_class_list};
use crate::model::{Email, Password, PersonName, User};
use crate::store::{NewUser, Page, UserChanges, UserFilter};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+$"
    )]
    pub email: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    pub role: UserRole,
}

/// Create a user (admins).
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = User),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not an admin", body = classroom_protocol::ErrorBody),
        (status = 409, description = "The email is taken", body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn create_user(
    State(state): State<ApiState>,
    CurrentUser(admin): CurrentUser,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    require_role(&admin, &[UserRole::Admin], "create users")?;
    let email = Email::parse(&body.email)?;
    let name = PersonName::parse(&body.name)?;
    let password = Password::parse(&body.password)?;
    let password_hash = hash_password(password).await.map_err(ApiError::internal)?;
    let user = state
        .store
        .create_user(
            NewUser {
                email,
                name,
                role: body.role,
                password_hash,
            },
            OffsetDateTime::now_utc(),
        )
        .await?;
    tracing::info!(by = %admin.id, user = %user.id, role = user.role.as_str(), "user created");
    Ok(created(user))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Matches anywhere in the email or name, case-insensitively.
    pub q: Option<String>,
    pub role: Option<UserRole>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Search users (admins and teachers).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(UserListQuery),
    responses(
        (status = 200, body = Paginated<User>),
        (status = 400, description = "A bad query parameter", body = classroom_protocol::ErrorBody),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn list_users(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> ApiResult<Json<Paginated<User>>> {
    require_role(&user, &[UserRole::Admin, UserRole::Teacher], "list users")?;
    let page = Page::new(query.page.unwrap_or(1), query.per_page.unwrap_or(50));
    let filter = UserFilter {
        query: query.q,
        role: query.role,
    };
    let users = state.store.list_users(&filter, page).await?;
    Ok(Json(Paginated::new(users, page)))
}

/// One user (admins, or the user themself).
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_user(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<User>> {
    if user.id != id {
        require_role(&user, &[UserRole::Admin], "see other users' accounts")?;
    }
    Ok(Json(state.store.user(id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// A disabled user cannot sign in, and their sessions end at once.
    pub disabled: Option<bool>,
}

/// Rename, disable or enable a user (admins).
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = User),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "An admin cannot disable their own account", body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn update_user(
    State(state): State<ApiState>,
    CurrentUser(admin): CurrentUser,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    require_role(&admin, &[UserRole::Admin], "change users")?;
    if admin.id == id && body.disabled == Some(true) {
        return Err(ApiError::conflict(
            "cannot_disable_self",
            "you cannot disable your own account; ask another admin",
        ));
    }
    let changes = UserChanges {
        name: body.name.as_deref().map(PersonName::parse).transpose()?,
        disabled: body.disabled,
    };
    let user = state
        .store
        .update_user(id, changes, OffsetDateTime::now_utc())
        .await?;
    if body.disabled == Some(true) {
        // Their live sessions end now, not when their join tokens expire.
        state.announce(AccessChange::AccountDisabled(user.id));
    }
    tracing::info!(by = %admin.id, user = %user.id, disabled = user.disabled, "user changed");
    Ok(Json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

/// Set a new password for a user (admins). The user's sessions end.
#[utoipa::path(
    put, path = "/api/v1/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password replaced"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn reset_password(
    State(state): State<ApiState>,
    CurrentUser(admin): CurrentUser,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    require_role(&admin, &[UserRole::Admin], "reset passwords")?;
    let password = Password::parse(&body.password)?;
    state.store.user(id).await?;
    let hash = hash_password(password).await.map_err(ApiError::internal)?;
    state
        .store
        .set_password_hash(id, hash, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(by = %admin.id, user = %id, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

/// Why a row was not imported when hashing ran out of time.
const NOT_IN_TIME: &str = "not imported: hashing this file's passwords took longer than one \
    request may; send the file again (the rows created now are then reported as existing)";

/// What happened to each row of an imported class list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub created: usize,
    pub refused: usize,
    /// One entry per non-blank data row, in file order.
    pub rows: Vec<ImportRow>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportRow {
    /// Line number in the file; the header is line 1.
    pub line: u64,
    pub email: Option<String>,
    pub status: ImportStatus,
    pub user_id: Option<UserId>,
    /// Generated when the file gave no password (16 characters in groups of four, about 79
    /// random bits); shown only in this report. The user changes it with `PUT /me/password`.
    pub temporary_password: Option<String>,
    /// Why the row was refused.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Created,
    Refused,
}

/// Import students from a CSV class list (admins).
///
/// The body is CSV (`Content-Type: text/csv`) with a header row naming `email` and `name`,
/// and optionally `password`; other columns are ignored. Good rows are created even when
/// others are refused; the report says which and why. The rows are created in one
/// transaction: when the import fails nobody is created. Passwords given in the file are
/// hashed at full cost; rows not hashed within half the request timeout are reported as not
/// imported (send the file again).
#[utoipa::path(
    post, path = "/api/v1/users/import", tag = "users", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv",
        example = "email,name,password\nada@school.edu,Ada Lovelace,\n"),
    responses(
        (status = 200, description = "Per-row report", body = ImportReport),
        (status = 400, description = "Not a class list (no header, missing column, too many rows)", body = classroom_protocol::ErrorBody),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, body = classroom_protocol::ErrorBody),
        (status = 413, description = "Larger than 4 MiB", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not text/csv", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn import_users(
    State(state): State<ApiState>,
    CurrentUser(admin): CurrentUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ImportReport>> {
    require_role(&admin, &[UserRole::Admin], "import users")?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the class list is larger than 4 MiB; split it into smaller files",
        ),
        _ => ApiError::bad_request("bad_body", rejection.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/csv") && !content_type.starts_with("text/plain") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the class list as CSV with the header Content-Type: text/csv",
        ));
    }
    let (good, refused) = parse_class_list(&body)
        .map_err(|e: ClassListError| ApiError::bad_request("invalid_class_list", e.to_string()))?;

    let mut rows: Vec<ImportRow> = refused
        .into_iter()
        .map(|r| ImportRow {
            line: r.line,
            email: r.email,
            status: ImportStatus::Refused,
            user_id: None,
            temporary_password: None,
            reason: Some(r.reason),
        })
        .collect();
    // An email twice in the file: the first row is created, the later ones say where it is.
    let mut first_lines: HashMap<String, u64> = HashMap::new();
    let mut unique = Vec::with_capacity(good.len());
    for row in good {
        match first_lines.entry(row.email.as_str().to_owned()) {
            Entry::Occupied(first) => rows.push(ImportRow {
                line: row.line,
                email: Some(row.email.as_str().to_owned()),
                status: ImportStatus::Refused,
                user_id: None,
                temporary_password: None,
                reason: Some(format!("the email is already on line {}", first.get())),
            }),
            Entry::Vacant(slot) => {
                slot.insert(row.line);
                unique.push(row);
            }
        }
    }
    // Hashing is the slow part: passwords from the file at the full cost (people choose
    // them), generated ones at a light cost (their randomness protects them); on all cores.
    // Half the request's time at most: what is hashed by then is created, the rest is
    // reported as not imported, so the answer always comes back and says exactly what was
    // created (2,000 passwords from a file take 30 s on a busy two-core machine).
    let deadline = tokio::time::Instant::now() + state.request_timeout / 2;
    let waiting: Vec<(u64, String)> = unique
        .iter()
        .map(|row| (row.line, row.email.as_str().to_owned()))
        .collect();
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut hashing = futures_util::stream::iter(unique)
        .map(|row| async move {
            let (hash, temporary) = match row.password.clone() {
                Some(password) => (hash_password(password).await, None),
                None => {
                    let temporary = TemporaryPassword::generate();
                    (hash_temporary_password(&temporary).await, Some(temporary))
                }
            };
            Ok::<_, ApiError>((row, hash.map_err(ApiError::internal)?, temporary))
        })
        .buffered(parallel);
    let mut hashed = Vec::with_capacity(waiting.len());
    while let Ok(Some(row)) = tokio::time::timeout_at(deadline, hashing.next()).await {
        hashed.push(row?);
    }
    drop(hashing);
    // `buffered` keeps the order: the rows not hashed in time are the last ones.
    for (line, email) in waiting.into_iter().skip(hashed.len()) {
        rows.push(ImportRow {
            line,
            email: Some(email),
            status: ImportStatus::Refused,
            user_id: None,
            temporary_password: None,
            reason: Some(NOT_IN_TIME.to_owned()),
        });
    }
    let new_users = hashed
        .iter()
        .map(|(row, hash, _)| NewUser {
            email: row.email.clone(),
            name: row.name.clone(),
            role: UserRole::Student,
            password_hash: hash.clone(),
        })
        .collect();
    // One transaction: a failure (or the request timing out) before it commits creates
    // nobody, so the admin is never left guessing which rows made it.
    let created = state
        .store
        .create_users(new_users, OffsetDateTime::now_utc())
        .await?;
    for ((row, _, temporary), user) in hashed.into_iter().zip(created) {
        let email = row.email.as_str().to_owned();
        rows.push(match user {
            Some(user) => ImportRow {
                line: row.line,
                email: Some(email),
                status: ImportStatus::Created,
                user_id: Some(user.id),
                temporary_password: temporary.map(|t| t.expose().to_owned()),
                reason: None,
            },
            None => ImportRow {
                line: row.line,
                reason: Some(format!("a user with the email {email} already exists")),
                email: Some(email),
                status: ImportStatus::Refused,
                user_id: None,
                temporary_password: None,
            },
        });
    }
    rows.sort_by_key(|r| r.line);
    let created = rows
        .iter()
        .filter(|r| r.status == ImportStatus::Created)
        .count();
    let report = ImportReport {
        created,
        refused: rows.len() - created,
        rows,
    };
    tracing::info!(by = %admin.id, created = report.created, refused = report.refused, "class list imported");
    Ok(Json(report))
}
