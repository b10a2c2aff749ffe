//! Extractors that turn every kind of bad request into an [`ApiError`] with a clear message:
//! JSON bodies, path and query parameters, the bearer token, and the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::ApiState;
use super::error::ApiError;
use crate::model::User;

/// A JSON body. Malformed JSON is 400; a missing or wrong field is 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            let detail = source_text(&e);
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the request body does not fit: {detail}"),
            );
            if let Some(field) = field_of(&detail) {
                error = error.with_field(field);
            }
            error
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {}", source_text(&e)),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with the header Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large",
        ),
        other => ApiError::bad_request("bad_body", other.body_text()),
    }
}

/// The innermost error message, without axum's wrapper text.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// The field a serde error is about: "missing field `email`", or a path prefix "role: ...".
fn field_of(detail: &str) -> Option<String> {
    if let Some(start) = detail.find('`') {
        let rest = &detail[start + 1..];
        let quoted = rest.split('`').next()?;
        if detail.starts_with("missing field") || detail.starts_with("unknown field") {
            return Some(quoted.to_string());
        }
    }
    let (path, _) = detail.split_once(": ")?;
    (!path.contains(' ') && path != ".").then(|| path.to_string())
}

/// A path parameter. An id that does not parse names nothing that exists: 404.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "nothing exists at {}: ids in paths are whole numbers",
                    parts.uri.path()
                ),
            )),
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// Query parameters; a bad one is 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let detail = source_text(&e);
                let mut error = ApiError::bad_request(
                    "invalid_query",
                    format!("a query parameter is wrong: {detail}"),
                );
                if let Some(field) = field_of(&detail) {
                    error = error.with_field(field);
                }
                Err(error)
            }
            Err(other) => Err(ApiError::bad_request("invalid_query", other.body_text())),
        }
    }
}

/// The signed-in user, from `Authorization: Bearer <session token>`. The account is read
/// from the database on every request, so disabling it or changing its password takes
/// effect at once.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for CurrentUser
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = ApiState::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated(
                "unauthenticated",
                "sign in first: send Authorization: Bearer <token> from POST /api/v1/auth/login",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "invalid_token",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let claims = state
            .tokens
            .verify_session(token, OffsetDateTime::now_utc())?;
        let revoked =
            || ApiError::unauthenticated("token_revoked", "this session has ended; sign in again");
        let user_id = claims.user().ok_or_else(revoked)?;
        let credentials = state
            .store
            .credentials_by_id(user_id)
            .await?
            .ok_or_else(revoked)?;
        if credentials.user.disabled {
            return Err(ApiError::unauthenticated(
                "account_disabled",
                "this account is disabled; ask the school's administrator",
            ));
        }
        if credentials.session_version != claims.sv {
            return Err(revoked());
        }
        Ok(CurrentUser(credentials.user))
    }
}

/// The client's IP address: the peer of the TCP connection, or, behind a trusted reverse
/// proxy, the last address it appended to `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = ApiState::from_ref(state);
        if state.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .next_back();
            if let Some(addr) = forwarded {
                return Ok(ClientAddr(addr));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(peer.unwrap_or(IpAddr::from([0, 0, 0, 0]))))
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn fields_are_found_in_serde_messages() {
        assert_eq!(
            field_of("missing field `email` at line 1 column 2").as_deref(),
            Some("email")
        );
        assert_eq!(
            field_of("unknown field `emial`, expected one of `email`").as_deref(),
            Some("emial")
        );
        assert_eq!(
            field_of("role: unknown variant `king`, expected one of `admin`").as_deref(),
            Some("role")
        );
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }
}
