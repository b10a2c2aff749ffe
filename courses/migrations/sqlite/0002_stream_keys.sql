-- One RTMP stream key per lesson: an encoder publishing `rtmp://HOST/live/<lesson id>-<secret>`
-- streams into that lesson. Kept readable (teachers are shown it again); rotating replaces it.
CREATE TABLE lesson_stream_keys (
    lesson_id   BIGINT  PRIMARY KEY REFERENCES lessons (id) ON DELETE CASCADE,
    secret      TEXT    NOT NULL,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL
);
