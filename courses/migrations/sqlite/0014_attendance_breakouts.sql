-- Breakout rooms in attendance (issue 20): which breakout room each student of a lesson was in,
-- from when to when, written as the lesson's main room moves them (server/src/attendance.rs).
-- Keep in step with ../postgres/0014_attendance_breakouts.sql.
--
-- A stay is closed when the student moves again, comes back to the main room, leaves the
-- lesson, or the lesson ends; one still open after a crash ends with its presence interval.
CREATE TABLE attendance_breakouts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id   BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The breakout room's index in its round, from 0 (shown as "Room 1").
    room        BIGINT  NOT NULL,
    started_at  BIGINT  NOT NULL,
    ended_at    BIGINT,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX attendance_breakouts_by_lesson ON attendance_breakouts (lesson_id, user_id, started_at);
