-- Course materials: documents a teacher uploads (PDF, or PPTX/ODP/DOCX converted to PDF),
-- made into page images and text by the workers of the job queue. Keep in step with
-- ../postgres/0009_documents.sql.
CREATE TABLE documents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id   BIGINT  NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    -- What was uploaded: pdf, pptx, odp or docx.
    source      TEXT    NOT NULL CHECK (source IN ('pdf', 'pptx', 'odp', 'docx')),
    state       TEXT    NOT NULL CHECK (state IN ('processing', 'ready', 'failed')),
    size_bytes  BIGINT  NOT NULL,
    pages       BIGINT,
    -- Why it could not be prepared, in words the teacher can act on.
    error       TEXT,
    uploaded_by BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT  NOT NULL,
    ready_at    BIGINT
);
CREATE INDEX documents_by_course ON documents (course_id, created_at);

-- The job queue takes document jobs too: `kind` says which, and a document job has no
-- recording, lesson or replay. SQLite cannot drop a NOT NULL, so the table is rebuilt
-- (nothing references it).
CREATE TABLE jobs_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL DEFAULT 'replay' CHECK (kind IN ('replay', 'document')),
    recording   TEXT    UNIQUE,
    lesson_id   BIGINT  REFERENCES lessons (id) ON DELETE CASCADE,
    replay_id   BIGINT  REFERENCES replays (id) ON DELETE CASCADE,
    document_id BIGINT  UNIQUE REFERENCES documents (id) ON DELETE CASCADE,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    BIGINT  NOT NULL DEFAULT 0,
    run_after   BIGINT  NOT NULL,
    worker      TEXT,
    error       TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    CHECK ((kind = 'replay' AND recording IS NOT NULL AND lesson_id IS NOT NULL
            AND replay_id IS NOT NULL AND document_id IS NULL)
        OR (kind = 'document' AND document_id IS NOT NULL AND recording IS NULL
            AND lesson_id IS NULL AND replay_id IS NULL))
);
INSERT INTO jobs_rebuilt (id, kind, recording, lesson_id, replay_id, state, attempts, run_after,
                          worker, error, created_at, updated_at, finished_at)
    SELECT id, 'replay', recording, lesson_id, replay_id, state, attempts, run_after, worker,
           error, created_at, updated_at, finished_at FROM recording_jobs;
DROP TABLE recording_jobs;
ALTER TABLE jobs_rebuilt RENAME TO recording_jobs;
CREATE INDEX recording_jobs_due ON recording_jobs (state, run_after);
