//! Signing in, and the signed-in user's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ClientAddr, CurrentUser};
use crate::auth::{AccountKey, hash_password, verify_password, verify_password_or_dummy};
use crate::model::{Email, Password, User};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub user: User,
}

/// Sign in with email and password.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = LoginResponse),
        (status = 401, description = "Wrong email or password, or account disabled", body = classroom_protocol::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Missing field, or an email longer than 254 characters", body = classroom_protocol::ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn login(
    State(state): State<ApiState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let wrong = || ApiError::unauthenticated("wrong_credentials", "the email or password is wrong");
    // Count the attempt before anything else, under the normalized email so that case
    // variations do not get fresh buckets; an email too long to be one is refused before it
    // can become a key.
    let account = AccountKey::parse(&body.email)?;
    state.limits.check_login(addr, &account)?;
    let Ok(email) = Email::parse(&body.email) else {
        return Err(wrong());
    };
    let credentials = state.store.credentials_by_email(&email).await?;
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    if !verify_password_or_dummy(body.password, hash).await {
        tracing::info!(%addr, "login refused: wrong email or password");
        return Err(wrong());
    }
    let Some(credentials) = credentials else {
        return Err(wrong());
    };
    if credentials.user.disabled {
        return Err(ApiError::unauthenticated(
            "account_disabled",
            "this account is disabled; ask the school's administrator",
        ));
    }
    let user = credentials.user;
    let (token, expires_at) = state.tokens.issue_session(
        user.id,
        user.role,
        credentials.session_version,
        OffsetDateTime::now_utc(),
    );
    tracing::info!(user = %user.id, "signed in");
    Ok(Json(LoginResponse {
        token,
        expires_at,
        user,
    }))
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 401, description = "Missing, bad or expired token", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// Change one's own password. Every other session of the account ends.
#[utoipa::path(
    put, path = "/api/v1/me/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; sign in again with the new password"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "The current password is wrong", body = classroom_protocol::ErrorBody),
        (status = 422, body = classroom_protocol::ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn change_own_password(
    State(state): State<ApiState>,
    ClientAddr(addr): ClientAddr,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    state
        .limits
        .check_login(addr, &AccountKey::parse(&user.email)?)?;
    let new_password = Password::parse_field("new_password", &body.new_password)?;
    let credentials = state
        .store
        .credentials_by_id(user.id)
        .await?
        .ok_or(ApiError::not_found("user"))?;
    if !verify_password(body.current_password, credentials.password_hash).await {
        return Err(ApiError::forbidden(
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let hash = hash_password(new_password)
        .await
        .map_err(ApiError::internal)?;
    state
        .store
        .set_password_hash(user.id, hash, OffsetDateTime::now_utc())
        .await?;
    tracing::info!(user = %user.id, "password changed");
    Ok(StatusCode::NO_CONTENT)
}
