-- What a lesson's room keeps across a restart of its node, or when another node takes the
-- lesson over: live or not, recording state, chat history and lock, stage, raised hands,
-- mute, the document shown (signaling/src/room/persist.rs, as JSON; fields only ever added).
-- Written as it changes, removed when the lesson ends. Keep in step with
-- ../postgres/0013_room_states.sql.
CREATE TABLE room_states (
    room       TEXT   PRIMARY KEY,
    lesson_id  BIGINT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    state      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX room_states_by_lesson ON room_states (lesson_id);
