-- Recording and replays (the recorder). Keep in step with ../postgres/0005_recordings.sql.

-- Whether the course's lessons are recorded from the moment they go live (0 or 1; an integer
-- so that both databases read it the same way through sqlx's Any driver).
ALTER TABLE courses ADD COLUMN record_by_default BIGINT NOT NULL DEFAULT 0;

-- What the replay page shows besides the video: chapter marks (JSON) and why it failed.
ALTER TABLE replays ADD COLUMN chapters TEXT;
ALTER TABLE replays ADD COLUMN error TEXT;

-- The durable queue of replay jobs: one per finished recording (a folder under
-- <data_dir>/recordings). Workers claim due jobs; a claim not renewed within the lease is
-- taken over; failures are retried at run_after, then stay failed with their reason.
CREATE TABLE recording_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recording   TEXT    NOT NULL UNIQUE,
    lesson_id   BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    replay_id   BIGINT  NOT NULL REFERENCES replays (id) ON DELETE CASCADE,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    BIGINT  NOT NULL DEFAULT 0,
    run_after   BIGINT  NOT NULL,
    worker      TEXT,
    error       TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    finished_at BIGINT
);
CREATE INDEX recording_jobs_due ON recording_jobs (state, run_after);
