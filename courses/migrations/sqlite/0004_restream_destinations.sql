-- Restream destinations: third-party live services (RTMP) a live lesson is pushed to.
-- The stream key is a secret: the API shows it masked, logs never show it.
CREATE TABLE restream_destinations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id   BIGINT  NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    stream_key  TEXT    NOT NULL,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX restream_destinations_by_lesson ON restream_destinations (lesson_id);
