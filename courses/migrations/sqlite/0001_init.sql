-- classroom schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql:
-- the same tables, columns and constraints; only key generation differs.
-- Timestamps are BIGINT milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'teacher', 'student')),
    password_hash   TEXT    NOT NULL,
    -- Bumped when the password changes, so older session tokens stop working.
    session_version BIGINT  NOT NULL DEFAULT 0,
    disabled_at     BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE courses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE course_teachers (
    course_id BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id),
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX course_teachers_by_user ON course_teachers (user_id);

CREATE TABLE enrollments (
    course_id   BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    enrolled_at BIGINT NOT NULL,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrollments_by_user ON enrollments (user_id);

CREATE TABLE lessons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id   BIGINT  NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    starts_at   BIGINT  NOT NULL,
    ends_at     BIGINT  NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('scheduled', 'live', 'ended', 'cancelled')),
    live_at     BIGINT,
    ended_at    BIGINT,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX lessons_by_course ON lessons (course_id, starts_at);

CREATE TABLE replays (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id   BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    course_id   BIGINT  NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('processing', 'ready', 'failed')),
    duration_ms BIGINT,
    size_bytes  BIGINT,
    created_at  BIGINT  NOT NULL,
    ready_at    BIGINT
);
CREATE INDEX replays_by_course ON replays (course_id, created_at);
