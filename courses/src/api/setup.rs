//! First run: a school with no admin yet is set up in the browser.
//!
//! At start, a server whose database has no admin who can sign in makes a one-time setup
//! token and prints a link with it (`/setup#<token>`: in the fragment, so it never reaches a
//! request line or a proxy's log). Whoever holds the console holds the token; with it the
//! setup page creates the first admin and signs them in. The token is then spent, and a token
//! of any node is refused once an admin exists. `classroomd user add` stays for scripts.

use std::sync::{Arc, Mutex};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use classroom_protocol::UserRole;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::LoginResponse;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ClientAddr};
use crate::auth::{AccountKey, hash_password, random_token};
use crate::model::{Email, Password, PersonName};
use crate::store::NewUser;

/// The one-time setup token of this server, while it has one.
#[derive(Debug, Clone, Default)]
pub struct SetupGate(Arc<Mutex<Option<String>>>);

impl SetupGate {
    /// A gate with a fresh token (for a server that has no admin yet); returns the token to
    /// print.
    pub fn open() -> (Self, String) {
        let token = random_token(16);
        (SetupGate(Arc::new(Mutex::new(Some(token.clone())))), token)
    }

    /// A gate without a token: setup is done (or was never needed here).
    pub fn closed() -> Self {
        SetupGate::default()
    }

    fn is_open(&self) -> bool {
        self.0.lock().is_ok_and(|t| t.is_some())
    }

    /// Whether `token` is this server's setup token (in constant time).
    fn admits(&self, token: &str) -> bool {
        let Ok(held) = self.0.lock() else {
            return false;
        };
        held.as_deref()
            .is_some_and(|held| verify_slices_are_equal(held.as_bytes(), token.as_bytes()).is_ok())
    }

    fn close(&self) {
        if let Ok(mut held) = self.0.lock() {
            *held = None;
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SetupStatus {
    /// The school has no admin yet and this server printed a setup link at start.
    pub needed: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The token of the setup link the server printed at start.
    pub token: String,
    pub email: String,
    pub name: String,
    pub password: String,
}

/// Whether the school still needs its first admin.
#[utoipa::path(
    get, path = "/api/v1/setup", tag = "auth",
    responses((status = 200, body = SetupStatus))
)]
pub(super) async fn setup_status(State(state): State<ApiState>) -> ApiResult<Json<SetupStatus>> {
    let needed = state.setup.is_open() && !state.store.has_active_admin().await?;
    Ok(Json(SetupStatus { needed }))
}

/// Create the first admin with the setup link's token, and sign them in.
#[utoipa::path(
    post, path = "/api/v1/setup", tag = "auth",
    request_body = SetupRequest,
    responses(
        (status = 201, description = "The first admin, signed in", body = LoginResponse),
        (status = 403, description = "Not this server's setup token", body = classroom_protocol::ErrorBody),
        (status = 409, description = "The school already has an admin", body = classroom_protocol::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB", body = classroom_protocol::ErrorBody),
        (status = 422, description = "A bad email, name or password", body = classroom_protocol::ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn setup(
    State(state): State<ApiState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<SetupRequest>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    // Counted like sign-in attempts: each one may cost a password hash.
    let account = AccountKey::parse(&body.email)?;
    state.limits.check_login(addr, &account)?;
    let done = || ApiError::conflict("already_set_up", "the school already has an admin");
    if state.store.has_active_admin().await? {
        state.setup.close();
        return Err(done());
    }
    if !state.setup.admits(&body.token) {
        state.limits.login_failed(addr, &account);
        tracing::info!(%addr, "setup refused: not this server's setup token");
        return Err(ApiError::forbidden(
            "wrong_setup_token",
            "this is not the setup link this server printed; use the one on its console",
        ));
    }
    let email = Email::parse(&body.email)?;
    let name = PersonName::parse(&body.name)?;
    let password = Password::parse(&body.password)?;
    let password_hash = hash_password(password).await.map_err(ApiError::internal)?;
    // Checked again after the slow hash: another tab (or node) may have finished meanwhile.
    if state.store.has_active_admin().await? {
        state.setup.close();
        return Err(done());
    }
    let now = OffsetDateTime::now_utc();
    let user = state
        .store
        .create_user(
            NewUser {
                email,
                name,
                role: UserRole::Admin,
                password_hash,
            },
            now,
        )
        .await?;
    state.setup.close();
    state.limits.login_succeeded(addr, &account);
    let credentials = state
        .store
        .credentials_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::internal("the new admin is gone"))?;
    let (token, expires_at) =
        state
            .tokens
            .issue_session(user.id, user.role, credentials.session_version, now);
    tracing::info!(user = %user.id, "first admin created with the setup link");
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            token,
            expires_at,
            user,
        }),
    ))
}
