//! Course materials: teachers upload documents (PDF, PPTX, ODP, DOCX); the job queue's workers
//! turn them into pages; the course's members see the list, each document's state (with the
//! reason when it failed) and its pages.
//!
//! An upload is the file itself as the body (not a form): `Content-Type` or the `name` query
//! parameter's extension says what it is. The body is streamed to disk and refused past the
//! configured size, so a large upload never sits in memory. The document and its job are
//! registered in one transaction that also moves the file into place, so a worker never
//! claims a job whose file is not there yet.
//!
//! Pages are served like replay files: the listing hands out a base link carrying a narrow
//! token (`/api/v1/documents/{id}/files/{token}/`), to which `page-<n>.png`,
//! `thumb-<n>.png`, `text.json` or `document.pdf` is appended; every file request checks the
//! membership again.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use classroom_protocol::{CourseId, DocumentId};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, CurrentUser};
use super::{ApiState, course_manager, course_member, created};
use crate::model::{Document, DocumentSource, DocumentState, Title, User};
use crate::store::NewDocument;

/// Where documents live and how large an upload may be (from the server's configuration).
#[derive(Debug, Clone)]
pub struct DocumentsSetup {
    /// `<data_dir>/documents`.
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
    /// Wakes the job queue's workers when a document is queued.
    pub wake_workers: std::sync::Arc<tokio::sync::Notify>,
}

/// A document with the link to its pages (ready documents; the link expires after a few
/// hours: list again for a fresh one).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    pub document: Document,
    /// Append `page-<n>.png` (slide size), `thumb-<n>.png`, `text.json` (the text of each
    /// page) or `document.pdf`; pages count from 1.
    pub files_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    pub items: Vec<DocumentView>,
}

/// An uploaded file's bytes, for the OpenAPI document (the handler streams the body).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct DocumentFile(#[allow(dead_code)] Vec<u8>);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name (`Lecture 3.pptx`): its extension says what it is when the
    /// `Content-Type` does not.
    pub name: Option<String>,
    /// The title shown in the course (default: the file's name without its extension).
    #[param(min_length = 1, max_length = 200)]
    pub title: Option<String>,
}

fn view(state: &ApiState, user: &User, document: Document) -> DocumentView {
    let files_url = (document.state == DocumentState::Ready).then(|| {
        let token =
            state
                .tokens
                .issue_document_files(user.id, document.id.0, OffsetDateTime::now_utc());
        format!("/api/v1/documents/{}/files/{token}/", document.id)
    });
    DocumentView {
        document,
        files_url,
    }
}

fn setup(state: &ApiState) -> ApiResult<&DocumentsSetup> {
    state.documents.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "documents_unavailable",
            "this server keeps no course documents",
        )
    })
}

/// Upload a document to the course (teachers of the course, admins). The body is the file.
#[utoipa::path(
    post, path = "/api/v1/courses/{id}/documents", tag = "documents", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id"), UploadQuery),
    request_body(
        description = "The file: a PDF, PPTX, ODP or DOCX",
        content(
            (DocumentFile = "application/pdf"),
            (DocumentFile = "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
            (DocumentFile = "application/vnd.oasis.opendocument.presentation"),
            (DocumentFile = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            (DocumentFile = "application/octet-stream"),
        )
    ),
    responses(
        (status = 201, description = "Registered and queued: its state is processing", body = DocumentView),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 413, description = "Larger than `documents.max_upload_bytes` (`document_too_large`)", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not a PDF, PPTX, ODP or DOCX (`unsupported_document`)", body = classroom_protocol::ErrorBody),
        (status = 422, description = "Empty, or a bad title", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn upload_document(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    course_manager(&state, &user, course).await?;
    let setup = setup(&state)?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let source = DocumentSource::from_media_type(media_type)
        .or_else(|| {
            query
                .name
                .as_deref()
                .and_then(DocumentSource::from_file_name)
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_document",
                "upload a PDF, PPTX, ODP or DOCX (say which by its Content-Type or its name)",
            )
        })?;
    let title = match (&query.title, &query.name) {
        (Some(title), _) => Title::parse(title)?,
        (None, Some(name)) => {
            let stem = name
                .rsplit_once('.')
                .map_or(name.as_str(), |(stem, _)| stem);
            Title::parse(stem).or_else(|_| Title::parse("Document"))?
        }
        (None, None) => Title::parse("Document")?,
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "document_too_large",
            format!(
                "the file is larger than {} MB",
                setup.max_upload_bytes >> 20
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > setup.max_upload_bytes) {
        return Err(too_large());
    }
    tokio::fs::create_dir_all(&setup.dir)
        .await
        .map_err(ApiError::internal)?;
    let part = setup
        .dir
        .join(format!("upload-{}.part", crate::auth::random_token(12)));
    let size = match receive(body, &part, setup.max_upload_bytes).await {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(match e {
                Received::TooLarge => too_large(),
                Received::Empty => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "empty_document",
                    "the file is empty",
                ),
                Received::Body(e) => ApiError::bad_request("upload_interrupted", e),
                Received::Disk(e) => ApiError::internal(e),
            });
        }
    };
    let new = NewDocument {
        course,
        title,
        source,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        uploaded_by: user.id,
    };
    let place = |id: DocumentId| {
        let folder = setup.dir.join(id.to_string());
        let part = part.clone();
        async move {
            tokio::fs::create_dir_all(&folder).await?;
            tokio::fs::rename(&part, folder.join(format!("source.{}", source.as_str()))).await
        }
    };
    let created_document = state
        .store
        .create_document(new, OffsetDateTime::now_utc(), place)
        .await;
    let document = match created_document {
        Ok((document, _job)) => document,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e.into());
        }
    };
    setup.wake_workers.notify_waiters();
    tracing::info!(by = %user.id, document = %document.id, %course, size, "document uploaded");
    Ok(created(view(&state, &user, document)))
}

enum Received {
    TooLarge,
    Empty,
    Body(String),
    Disk(std::io::Error),
}

/// Streams the body into `path`, refusing it past `limit` bytes.
async fn receive(body: Body, path: &Path, limit: u64) -> Result<u64, Received> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(Received::Disk)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Received::Body(e.to_string()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Received::TooLarge);
        }
        file.write_all(&chunk).await.map_err(Received::Disk)?;
    }
    file.flush().await.map_err(Received::Disk)?;
    if size == 0 {
        return Err(Received::Empty);
    }
    Ok(size)
}

/// A course's documents, newest first (its members).
#[utoipa::path(
    get, path = "/api/v1/courses/{id}/documents", tag = "documents", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Course id")),
    responses(
        (status = 200, body = DocumentList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn course_documents(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(course): ApiPath<CourseId>,
) -> ApiResult<Json<DocumentList>> {
    course_member(&state, &user, course).await?;
    let documents = state.store.documents_of_course(course).await?;
    Ok(Json(DocumentList {
        items: documents
            .into_iter()
            .map(|d| view(&state, &user, d))
            .collect(),
    }))
}

/// One document, with a fresh link to its pages (its course's members).
#[utoipa::path(
    get, path = "/api/v1/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, body = DocumentView),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn get_document(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<DocumentId>,
) -> ApiResult<Json<DocumentView>> {
    let document = state.store.document(id).await?;
    course_member(&state, &user, document.course_id).await?;
    Ok(Json(view(&state, &user, document)))
}

/// Delete a document and its pages (teachers of the course, admins).
#[utoipa::path(
    delete, path = "/api/v1/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn delete_document(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<DocumentId>,
) -> ApiResult<StatusCode> {
    let document = state.store.document(id).await?;
    course_manager(&state, &user, document.course_id).await?;
    state.store.delete_document(id).await?;
    if let Some(setup) = &state.documents {
        let folder = setup.dir.join(id.to_string());
        if let Err(e) = tokio::fs::remove_dir_all(&folder).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(document = %id, error = %e, "cannot remove a deleted document's files");
        }
    }
    tracing::info!(by = %user.id, document = %id, "document deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A file of a ready document (a page image, the text, the PDF), with the token of its link.
#[utoipa::path(
    get, path = "/api/v1/documents/{id}/files/{token}/{file}", tag = "documents",
    params(
        ("id" = i64, Path, description = "Document id"),
        ("token" = String, Path, description = "The file token of a document link"),
        ("file" = String, Path, description = "page-N.png, thumb-N.png, text.json or document.pdf"),
    ),
    responses(
        (status = 200, description = "The file"),
        (status = 401, description = "The token is invalid or expired, or the account is disabled", body = classroom_protocol::ErrorBody),
        (status = 403, description = "No longer a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such ready document or file", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn document_file(
    State(state): State<ApiState>,
    ApiPath((id, token, file)): ApiPath<(i64, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let claims = state
        .tokens
        .verify_document_files(&token, OffsetDateTime::now_utc())?;
    let not_found = || ApiError::not_found("document file");
    if claims.rid != id {
        return Err(not_found());
    }
    let user = claims.user().ok_or_else(not_found)?;
    let access = state
        .store
        .document_file_access(DocumentId(id), user)
        .await?;
    super::replays::file_access(access, not_found)?;
    let content_type = content_type(&file).ok_or_else(not_found)?;
    let root = &state.documents.as_ref().ok_or_else(not_found)?.dir;
    let folder = root.join(id.to_string()).join("pages");
    let path = super::replays::resolve_in(&folder, &file).ok_or_else(not_found)?;
    super::replays::serve(&path, content_type, headers.get(header::RANGE))
        .await
        .map_err(|_| not_found())
}

/// The kind of a file of a document's pages, by its name; `None` for anything else.
fn content_type(file: &str) -> Option<&'static str> {
    if file == "text.json" {
        return Some("application/json");
    }
    if file == "document.pdf" {
        return Some("application/pdf");
    }
    let number = file
        .strip_prefix("page-")
        .or_else(|| file.strip_prefix("thumb-"))?
        .strip_suffix(".png")?;
    let plain =
        !number.is_empty() && number.len() <= 6 && number.bytes().all(|b| b.is_ascii_digit());
    plain.then_some("image/png")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_page_files_are_served() {
        assert_eq!(content_type("page-1.png"), Some("image/png"));
        assert_eq!(content_type("thumb-120.png"), Some("image/png"));
        assert_eq!(content_type("text.json"), Some("application/json"));
        assert_eq!(content_type("document.pdf"), Some("application/pdf"));
        for bad in [
            "",
            "page-.png",
            "page-1.jpg",
            "page-../x.png",
            "page-1/2.png",
            "source.pdf",
            "page-+1.png",
            "../pages/page-1.png",
            "convert.err",
        ] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
    }
}
