-- Attendance (issue 20): who was in each lesson's room, when, and what they did there,
-- written by the server as the room reports it (server/src/attendance.rs). Keep in step with
-- ../postgres/0011_attendance.sql.
--
-- Crash safety: an interval is written when it opens (ended_at NULL) and its last_seen_at is
-- refreshed every few seconds while it is open, so a server killed mid-lesson leaves every
-- interval it had opened, known up to its last stamp. Readers count an open interval up to
-- last_seen_at; one whose stamp has gone stale (its server is gone) is closed at that stamp
-- with end_reason 'lost', by any server's periodic sweep or by the user joining again.
CREATE TABLE attendance_intervals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id    BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'present': in the room (a reconnect within the grace time is one interval);
    -- 'stage': a student on stage (teachers' and assistants' place there is their role's).
    kind         TEXT    NOT NULL CHECK (kind IN ('present', 'stage')),
    started_at   BIGINT  NOT NULL,
    ended_at     BIGINT,
    last_seen_at BIGINT  NOT NULL,
    -- left, timed_out, removed, lesson_ended, replaced, revoked (the room's leave reasons),
    -- or lost (closed at its last stamp after its server stopped).
    end_reason   TEXT,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX attendance_intervals_by_lesson ON attendance_intervals (lesson_id, user_id, started_at);
CREATE INDEX attendance_intervals_by_user ON attendance_intervals (user_id, lesson_id);
CREATE INDEX attendance_intervals_open ON attendance_intervals (last_seen_at) WHERE ended_at IS NULL;

-- One row per lesson and user who took part: their role in the room and what they did.
-- Poll answers and breakout rooms will add their own columns (or tables) with their features.
CREATE TABLE lesson_attendance (
    lesson_id     BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    user_id       BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The participant role of their first join: teacher, assistant, student, observer.
    role          TEXT    NOT NULL,
    hands_raised  BIGINT  NOT NULL DEFAULT 0,
    chat_messages BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (lesson_id, user_id)
);
CREATE INDEX lesson_attendance_by_user ON lesson_attendance (user_id);
