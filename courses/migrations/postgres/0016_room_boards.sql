-- A lesson's whiteboard, page by page, kept across a restart of its node or a move to another
-- node beside its room's state (room_states): the page's strokes, erased and undone ones
-- included (signaling/src/room/board_persist.rs, as JSON). Written at most once a second per
-- page while someone draws, removed with the page (cleared) or the room (the lesson ended).
-- Keep in step with ../sqlite/0016_room_boards.sql.
CREATE TABLE room_boards (
    room       TEXT   NOT NULL,
    page       TEXT   NOT NULL,
    lesson_id  BIGINT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    board      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (room, page)
);
CREATE INDEX room_boards_by_lesson ON room_boards (lesson_id);
