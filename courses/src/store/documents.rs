//! Course materials: documents a teacher uploads. Uploading registers the document
//! (processing) and queues its job in the same transaction; a worker of the job queue turns
//! it into pages and reports here.

use classroom_protocol::{CourseId, DocumentId, UserId, UserRole};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::recording_jobs::{JOB_COLUMNS, finish_claimed_job, job_from_row};
use super::{ReplayAccess, Store, decode_err, fixed};
use crate::error::{StoreError, StoreResult};
use crate::model::{
    Document, DocumentSource, DocumentState, JobKind, JobState, RecordingJob, Title, from_millis,
    to_millis,
};

const DOCUMENT_COLUMNS: &str = "id, course_id, title, source, state, size_bytes, pages, error, \
     uploaded_by, created_at, ready_at";

/// A document to register.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub course: CourseId,
    pub title: Title,
    pub source: DocumentSource,
    pub size_bytes: i64,
    pub uploaded_by: UserId,
}

fn document_from_row(row: &AnyRow) -> Result<Document, sqlx::Error> {
    let source: String = row.try_get("source")?;
    let state: String = row.try_get("state")?;
    Ok(Document {
        id: DocumentId(row.try_get("id")?),
        course_id: CourseId(row.try_get("course_id")?),
        title: row.try_get("title")?,
        source: DocumentSource::parse(&source)
            .ok_or_else(|| decode_err("document source", &source))?,
        state: DocumentState::parse(&state).ok_or_else(|| decode_err("document state", &state))?,
        size_bytes: row.try_get("size_bytes")?,
        pages: row.try_get("pages")?,
        error: row.try_get("error")?,
        uploaded_by: row.try_get::<Option<i64>, _>("uploaded_by")?.map(UserId),
        created_at: from_millis(row.try_get("created_at")?),
        ready_at: row.try_get::<Option<i64>, _>("ready_at")?.map(from_millis),
    })
}

impl Store {
    /// Registers an uploaded document (processing) and queues its job. `place` puts the
    /// uploaded file where the worker will look for it, before the job becomes visible; if
    /// it fails, nothing is registered.
    pub async fn create_document<F, Fut>(
        &self,
        new: NewDocument,
        now: OffsetDateTime,
        place: F,
    ) -> StoreResult<(Document, RecordingJob)>
    where
        F: FnOnce(DocumentId) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        self.course(new.course).await?;
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        let sql = format!(
            "INSERT INTO documents (course_id, title, source, state, size_bytes, uploaded_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {DOCUMENT_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(new.course.0)
            .bind(new.title.as_str())
            .bind(new.source.as_str())
            .bind(DocumentState::Processing.as_str())
            .bind(new.size_bytes)
            .bind(new.uploaded_by.0)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let document = document_from_row(&row)?;
        let sql = format!(
            "INSERT INTO recording_jobs (kind, document_id, state, attempts, run_after, \
             created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $4, $4) RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(JobKind::Document.as_str())
            .bind(document.id.0)
            .bind(JobState::Queued.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        place(document.id).await.map_err(StoreError::Storage)?;
        tx.commit().await?;
        Ok((document, job))
    }

    pub async fn document(&self, id: DocumentId) -> StoreResult<Document> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(document_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("document"))
    }

    /// A course's documents, newest first.
    pub async fn documents_of_course(&self, course: CourseId) -> StoreResult<Vec<Document>> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE course_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(fixed(&sql))
            .bind(course.0)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows
            .iter()
            .map(document_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Deletes a document and its job (a worker still converting it finds its claim gone).
    pub async fn delete_document(&self, id: DocumentId) -> StoreResult<Document> {
        let sql = format!("DELETE FROM documents WHERE id = $1 RETURNING {DOCUMENT_COLUMNS}");
        let row = sqlx::query(fixed(&sql))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref()
            .map(document_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("document"))
    }

    /// The job made the document's pages: the document is ready with `pages` pages.
    pub async fn complete_document_job(
        &self,
        id: i64,
        worker: &str,
        pages: i64,
        now: OffsetDateTime,
    ) -> StoreResult<Document> {
        let job = self.recording_job(id).await?;
        let document = job.document_id.ok_or(StoreError::NotFound("document"))?;
        let now = to_millis(now);
        let mut tx = self.db.pool().begin().await?;
        finish_claimed_job(&mut tx, id, worker, now).await?;
        let sql = format!(
            "UPDATE documents SET state = 'ready', pages = $1, ready_at = $2, error = NULL \
             WHERE id = $3 RETURNING {DOCUMENT_COLUMNS}"
        );
        let row = sqlx::query(fixed(&sql))
            .bind(pages)
            .bind(now)
            .bind(document.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("document"))?;
        let document = document_from_row(&row)?;
        tx.commit().await?;
        Ok(document)
    }

    /// Whether `user` may fetch the pages of `document` now, in one query (as
    /// [`Store::replay_file_access`]): `NoReplay` stands for no such ready document.
    pub async fn document_file_access(
        &self,
        document: DocumentId,
        user: UserId,
    ) -> StoreResult<ReplayAccess> {
        let row = sqlx::query(
            "SELECT d.state, u.disabled_at, u.role, \
               (SELECT COUNT(*) FROM course_teachers t \
                 WHERE t.course_id = d.course_id AND t.user_id = u.id), \
               (SELECT COUNT(*) FROM enrollments e \
                 WHERE e.course_id = d.course_id AND e.user_id = u.id) \
             FROM documents d LEFT JOIN users u ON u.id = $1 WHERE d.id = $2",
        )
        .bind(user.0)
        .bind(document.0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(ReplayAccess::NoReplay);
        };
        let state: String = row.try_get(0)?;
        if state != DocumentState::Ready.as_str() {
            return Ok(ReplayAccess::NoReplay);
        }
        let disabled: Option<i64> = row.try_get(1)?;
        let role: Option<String> = row.try_get(2)?;
        let Some(role) = role else {
            return Ok(ReplayAccess::AccountDisabled);
        };
        if disabled.is_some() {
            return Ok(ReplayAccess::AccountDisabled);
        }
        let teaches: i64 = row.try_get(3)?;
        let enrolled: i64 = row.try_get(4)?;
        let admin = UserRole::parse(&role) == Some(UserRole::Admin);
        Ok(if teaches > 0 || enrolled > 0 || admin {
            ReplayAccess::Allowed
        } else {
            ReplayAccess::NotMember
        })
    }
}
