-- Webhooks: a school's (course_id NULL) or a course's URL that the server POSTs signed JSON
-- events to (lesson.started, lesson.ended, replay.ready). Keep in step with
-- ../postgres/0012_webhooks.sql.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id   BIGINT  REFERENCES courses (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    -- The HMAC secret, sealed like the restream keys: the database alone does not give it away.
    secret      TEXT    NOT NULL,
    created_by  BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX webhooks_by_course ON webhooks (course_id);

-- One event for one webhook. The body is fixed when the event happens (retries send the same
-- bytes); (webhook, event) is unique so one event is never queued, nor sent, twice.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   BIGINT  NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id     TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    delivered_at BIGINT,
    UNIQUE (webhook_id, event_id)
);

-- The job queue takes webhook deliveries too. SQLite cannot change a CHECK, so the table is
-- rebuilt as in 0009 (nothing references it).
CREATE TABLE jobs_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL DEFAULT 'replay'
                CHECK (kind IN ('replay', 'document', 'webhook')),
    recording   TEXT    UNIQUE,
    lesson_id   BIGINT  REFERENCES lessons (id) ON DELETE CASCADE,
    replay_id   BIGINT  REFERENCES replays (id) ON DELETE CASCADE,
    document_id BIGINT  UNIQUE REFERENCES documents (id) ON DELETE CASCADE,
    delivery_id BIGINT  UNIQUE REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    BIGINT  NOT NULL DEFAULT 0,
    run_after   BIGINT  NOT NULL,
    worker      TEXT,
    error       TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    CHECK ((kind = 'replay' AND recording IS NOT NULL AND lesson_id IS NOT NULL
            AND replay_id IS NOT NULL AND document_id IS NULL AND delivery_id IS NULL)
        OR (kind = 'document' AND document_id IS NOT NULL AND recording IS NULL
            AND lesson_id IS NULL AND replay_id IS NULL AND delivery_id IS NULL)
        OR (kind = 'webhook' AND delivery_id IS NOT NULL AND recording IS NULL
            AND lesson_id IS NULL AND replay_id IS NULL AND document_id IS NULL))
);
INSERT INTO jobs_rebuilt (id, kind, recording, lesson_id, replay_id, document_id, state,
                          attempts, run_after, worker, error, created_at, updated_at,
                          finished_at)
    SELECT id, kind, recording, lesson_id, replay_id, document_id, state, attempts, run_after,
           worker, error, created_at, updated_at, finished_at FROM recording_jobs;
DROP TABLE recording_jobs;
ALTER TABLE jobs_rebuilt RENAME TO recording_jobs;
CREATE INDEX recording_jobs_due ON recording_jobs (state, run_after);
