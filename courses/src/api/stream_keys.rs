//! A lesson's RTMP stream key, for the teacher's encoder (OBS: Settings > Stream > Custom,
//! Server = `server_url`, Stream Key = `stream_key`). Only the course's teachers make one. The
//! key is shown once, in the answer that makes it: the server keeps only its hash, so a
//! teacher who lost it makes a new one (which cuts off the old one).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use classroom_protocol::LessonId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{ApiPath, CurrentUser};
use super::{ApiState, lesson_teacher, require_joinable};
use crate::store::StreamKey;

/// Where an encoder publishes a lesson.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamKeyResponse {
    pub lesson_id: LessonId,
    /// The RTMP server URL for the encoder, e.g. `rtmp://school.example:1935/live`.
    pub server_url: String,
    /// A secret: anyone with it can stream into the lesson. Only in the answer of `POST`, the
    /// one time it is shown (the server keeps only its hash); `null` otherwise.
    pub stream_key: Option<String>,
    /// When the lesson's current key was made; `null` when it has none yet.
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
}

/// The lesson's RTMP server URL, and whether it has a stream key (the key itself is shown
/// only when it is made) (the course's teachers).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/stream-key", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = StreamKeyResponse),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_stream_key(
    State(state): State<ApiState>,
    headers: HeaderMap,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<StreamKeyResponse>> {
    let lesson = lesson_teacher(&state, &user, id, "its stream key").await?;
    let created_at = state.store.stream_key_created(lesson.id).await?;
    Ok(Json(StreamKeyResponse {
        lesson_id: lesson.id,
        server_url: server_url(state.rtmp_public_url.as_deref(), &headers),
        stream_key: None,
        created_at,
    }))
}

/// Make the lesson a new stream key, shown in this answer only; a previous key stops working
/// (the course's teachers).
#[utoipa::path(
    post, path = "/api/v1/lessons/{id}/stream-key", tag = "lessons", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = StreamKeyResponse),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson has ended or was cancelled", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn rotate_stream_key(
    State(state): State<ApiState>,
    headers: HeaderMap,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<StreamKeyResponse>> {
    let lesson = lesson_teacher(&state, &user, id, "its stream key").await?;
    require_joinable(&lesson, "streamed to")?;
    let key = state
        .store
        .rotate_stream_key(lesson.id, user.id, OffsetDateTime::now_utc())
        .await?;
    // The key itself is never logged.
    tracing::info!(by = %user.id, lesson = %id, "stream key rotated");
    if let Some(rotated) = &state.stream_key_rotated {
        // An encoder streaming with the old key is cut off (a leaked key must stop working).
        (rotated.0)(lesson.id);
    }
    Ok(Json(response(&state, &headers, key)))
}

fn response(state: &ApiState, headers: &HeaderMap, key: StreamKey) -> StreamKeyResponse {
    StreamKeyResponse {
        lesson_id: key.lesson,
        server_url: server_url(state.rtmp_public_url.as_deref(), headers),
        stream_key: Some(key.expose()),
        created_at: Some(key.created_at),
    }
}

/// The configured public RTMP URL (`{host}` in it replaced by the request's host name), else
/// this server's host name on the default port.
fn server_url(configured: Option<&str>, headers: &HeaderMap) -> String {
    let url = configured.unwrap_or("rtmp://{host}:1935/live");
    let url = url.trim_end_matches('/');
    if !url.contains("{host}") {
        return url.to_owned();
    }
    url.replace("{host}", request_host(headers))
}

/// The host name the client used, if it is a plain one; else `localhost`.
fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost")
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_from_config_or_host() {
        let mut headers = HeaderMap::new();
        assert_eq!(server_url(None, &headers), "rtmp://localhost:1935/live");
        headers.insert(HOST, "school.example:8080".parse().expect("header"));
        assert_eq!(
            server_url(None, &headers),
            "rtmp://school.example:1935/live"
        );
        headers.insert(HOST, "[::1]:8080".parse().expect("header"));
        assert_eq!(server_url(None, &headers), "rtmp://[::1]:1935/live");
        headers.insert(HOST, "evil\"host".parse().expect("header"));
        assert_eq!(server_url(None, &headers), "rtmp://localhost:1935/live");
        assert_eq!(
            server_url(Some("rtmp://cam.example/live/"), &headers),
            "rtmp://cam.example/live"
        );
        headers.insert(HOST, "school.example".parse().expect("header"));
        assert_eq!(
            server_url(Some("rtmp://{host}:1936/live"), &headers),
            "rtmp://school.example:1936/live"
        );
    }
}
