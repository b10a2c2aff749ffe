//! The replay library, visible to a course's teachers and enrolled students (and admins), and
//! the replays' files.
//!
//! A `<video>` playing HLS fetches the playlist and its segments by itself and cannot send a
//! bearer header, so the listings hand out file links that carry a narrow token in the path:
//! `/api/v1/replays/{id}/files/{token}/{file}`. Segment names in the playlist are relative,
//! so every segment request carries the token too. A file name is one plain name from the
//! replay's folder: anything else (`..`, slashes, encoded slashes, absolute paths, unknown
//! kinds) is 404, and so is a name that resolves outside the folder.
//!
//! The token only says who asked for the link: every file request checks again, in one
//! query, that the account is enabled and still a member of the replay's course, so a student
//! removed from the course or a disabled account loses the files at once, not when the link
//! expires.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use classroom_protocol::{CourseId, LessonId, ReplayId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, CurrentUser};
use super::{ApiState, course_member};
use crate::model::{Replay, ReplayState, User};
use crate::store::ReplayAccess;

/// A replay with the links to play it (ready replays only; the links expire after a few
/// hours: list the replays again for fresh ones).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    #[serde(flatten)]
    pub replay: Replay,
    /// The HLS playlist (H.264 + AAC).
    pub url: Option<String>,
    /// The MP4 of the whole replay.
    pub download_url: Option<String>,
    /// The chat as JSON: `[{at_ms, name, text}]`.
    pub chat_url: Option<String>,
    /// The chat as a WebVTT text track.
    pub captions_url: Option<String>,
    /// What the side panel shows at its time besides the chat, as JSON, in order:
    /// `[{at_ms, type, ...}]` with `type` one of `poll` (`poll`: asked, or closed),
    /// `poll_results` (`results`, as shown to the class), `slide` (`document`, `page`,
    /// `pages`) and `slide_closed`. Replays made before it existed have none (404).
    pub moments_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayList {
    pub items: Vec<ReplayView>,
}

fn view(state: &ApiState, user: &User, replay: Replay) -> ReplayView {
    if replay.state != ReplayState::Ready {
        return ReplayView {
            replay,
            url: None,
            download_url: None,
            chat_url: None,
            captions_url: None,
            moments_url: None,
        };
    }
    let token = state
        .tokens
        .issue_replay_files(user.id, replay.id.0, OffsetDateTime::now_utc());
    let base = format!("/api/v1/replays/{}/files/{token}", replay.id);
    ReplayView {
        url: Some(format!("{base}/index.m3u8")),
        download_url: Some(format!("{base}/replay.mp4")),
        chat_url: Some(format!("{base}/chat.json")),
        captions_url: Some(format!("{base}/chat.vtt")),
        moments_url: Some(format!("{base}/moments.json")),
        replay,
    }
}

/// A course's replays, newest first.
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/replays", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = ReplayList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn course_replays(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
) -> ApiResult<Json<ReplayList>> {
    course_member(&state, &user, course).await?;
    let replays = state.store.replays_of_course(course).await?;
    Ok(Json(ReplayList {
        items: replays
            .into_iter()
            .map(|r| view(&state, &user, r))
            .collect(),
    }))
}

/// A lesson's replays.
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/replays", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = ReplayList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_replays(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(lesson): ApiPath<LessonId>,
) -> ApiResult<Json<ReplayList>> {
    let lesson = state.store.lesson(lesson).await?;
    course_member(&state, &user, lesson.course_id).await?;
    let replays = state.store.replays_of_lesson(lesson.id).await?;
    Ok(Json(ReplayList {
        items: replays
            .into_iter()
            .map(|r| view(&state, &user, r))
            .collect(),
    }))
}

/// One replay, with fresh links to its files.
#[utoipa::path(
    get, path = "/api/v1/replays/{id}", tag = "replays", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Replay id")),
    responses(
        (status = 200, body = ReplayView),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_replay(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<ReplayId>,
) -> ApiResult<Json<ReplayView>> {
    let replay = state.store.replay(id).await?;
    course_member(&state, &user, replay.course_id).await?;
    Ok(Json(view(&state, &user, replay)))
}

/// A file of a replay (playlist, segment, MP4, chat), with the token of a replay link.
/// Supports single byte ranges (seeking in the MP4).
#[utoipa::path(
    get, path = "/api/v1/replays/{id}/files/{token}/{file}", tag = "replays",
    params(
        ("id" = i64, Path, description = "Replay id"),
        ("token" = String, Path, description = "The file token of a replay link"),
        ("file" = String, Path, description = "index.m3u8, seg-NNNNN.ts, replay.mp4, chat.json, chat.vtt or moments.json"),
    ),
    responses(
        (status = 200, description = "The file"),
        (status = 206, description = "Part of the file (Range)"),
        (status = 401, description = "The token is invalid or expired, or the account is disabled", body = classroom_protocol::ErrorBody),
        (status = 403, description = "No longer a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such replay or file", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn replay_file(
    State(state): State<ApiState>,
    ApiPath((id, token, file)): ApiPath<(i64, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let claims = state
        .tokens
        .verify_replay_files(&token, OffsetDateTime::now_utc())?;
    let not_found = || ApiError::not_found("replay file");
    if claims.rid != id {
        return Err(not_found());
    }
    let user = claims.user().ok_or_else(not_found)?;
    let access = state.store.replay_file_access(ReplayId(id), user).await?;
    file_access(access, not_found)?;
    let content_type = content_type(&file).ok_or_else(not_found)?;
    let root = state.replays_dir.as_ref().ok_or_else(not_found)?;
    let path = resolve(root, id, &file).ok_or_else(not_found)?;
    serve(&path, content_type, headers.get(header::RANGE))
        .await
        .map_err(|_| not_found())
}

/// The kind of a file we serve, by its name; `None` for anything else.
fn content_type(file: &str) -> Option<&'static str> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain || file.contains("..") {
        return None;
    }
    Some(match file.rsplit_once('.')?.1 {
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "mp4" => "video/mp4",
        "json" => "application/json",
        "vtt" => "text/vtt; charset=utf-8",
        _ => return None,
    })
}

/// The file's path inside the replay's folder, if it exists there (after resolving links).
fn resolve(root: &Path, replay: i64, file: &str) -> Option<PathBuf> {
    resolve_in(&root.join(replay.to_string()), file)
}

/// `file`'s path inside `folder`, if it is a file there once links are resolved (a link out
/// of the folder is not followed).
pub(super) fn resolve_in(folder: &Path, file: &str) -> Option<PathBuf> {
    let folder = folder.canonicalize().ok()?;
    let path = folder.join(file).canonicalize().ok()?;
    (path.starts_with(&folder) && path.is_file()).then_some(path)
}

/// Whether the holder of a file link (a replay's or a document's) may still fetch its
/// files, checked at every request: as an error a person can act on when not.
pub(super) fn file_access(
    access: ReplayAccess,
    not_found: impl FnOnce() -> ApiError,
) -> ApiResult<()> {
    match access {
        ReplayAccess::Allowed => Ok(()),
        ReplayAccess::NoReplay => Err(not_found()),
        ReplayAccess::AccountDisabled => Err(ApiError::unauthenticated(
            "account_disabled",
            "this account is disabled; ask the school's administrator",
        )),
        ReplayAccess::NotMember => Err(ApiError::forbidden(
            "not_a_member",
            "you are not a teacher or student of this course",
        )),
    }
}

const CHUNK: usize = 64 * 1024;

pub(super) async fn serve(
    path: &Path,
    content_type: &'static str,
    range: Option<&HeaderValue>,
) -> std::io::Result<Response> {
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let (status, start, len) = match range.and_then(|r| parse_range(r.to_str().ok()?, size)) {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    file.seek(SeekFrom::Start(start)).await?;
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0; CHUNK.min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut response = (status, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `size`; anything else is
/// served whole.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (from, to) = spec.split_once('-')?;
    let (start, end) = match (from.trim(), to.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && end < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_kinds_are_served() {
        assert_eq!(
            content_type("index.m3u8"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(content_type("seg-00001.ts"), Some("video/mp2t"));
        for bad in [
            "",
            "..",
            "../x.ts",
            "a/b.ts",
            "/etc/passwd",
            ".hidden.ts",
            "x..ts",
            "a%2fb.ts",
            "a\\b.ts",
            "events.jsonl",
            "work",
        ] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
