-- Polls and quizzes asked in a lesson's room, stored when each closes, with every answer.
-- Keep in step with ../postgres/0010_polls.sql.
CREATE TABLE lesson_polls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id   BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    -- The poll's number in its room (1, 2, ... per opening of the room).
    room_poll   BIGINT  NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('single_choice', 'multiple_choice',
                                                 'true_false', 'number', 'text')),
    question    TEXT    NOT NULL,
    -- The options' texts, a JSON array (empty for number and text polls).
    options     TEXT    NOT NULL,
    -- The correct answer as JSON ({"choices": [1]}, {"number": 4}, {"text": "..."}); NULL
    -- unless the poll is a quiz.
    correct     TEXT,
    -- 0 or 1: an anonymous poll's answers are stored without their users.
    anonymous   BIGINT  NOT NULL,
    asked_at    BIGINT  NOT NULL,
    closed_at   BIGINT  NOT NULL
);
CREATE INDEX lesson_polls_by_lesson ON lesson_polls (lesson_id, asked_at);

CREATE TABLE lesson_poll_answers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    poll_id     BIGINT  NOT NULL REFERENCES lesson_polls (id) ON DELETE CASCADE,
    -- NULL for anonymous polls (and once the account is deleted).
    user_id     BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    -- The participant's name as the room knew it; NULL for anonymous polls.
    name        TEXT,
    -- The answer as JSON, as `correct` above.
    answer      TEXT    NOT NULL,
    -- Of a quiz: 0 or 1, whether the answer was correct; NULL otherwise.
    correct     BIGINT
);
CREATE INDEX lesson_poll_answers_by_poll ON lesson_poll_answers (poll_id);
CREATE INDEX lesson_poll_answers_by_user ON lesson_poll_answers (user_id);
