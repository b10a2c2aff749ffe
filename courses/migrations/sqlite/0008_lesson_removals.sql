-- Lesson removals: a moderator removed the user from the lesson's room, and no join token
-- lets them back in until a teacher of the course does (DELETE /lessons/{id}/removals/{user}).
-- Keep in step with ../postgres/0007_lesson_removals.sql.
CREATE TABLE lesson_removals (
    lesson_id  BIGINT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    -- The moderator who removed them.
    removed_by BIGINT NOT NULL REFERENCES users (id),
    removed_at BIGINT NOT NULL,
    PRIMARY KEY (lesson_id, user_id)
);
