-- Breakout rooms recorded (issue 20): a breakout room's recording becomes a replay of its own,
-- listed with its lesson's, and named by its round and room. Keep in step with
-- ../postgres/0015_breakout_replays.sql.
--
-- Both NULL for a replay of the lesson's main room (every replay before this one); both set for
-- a breakout room's (the room's index in its round from 0, shown as "Room 1").
ALTER TABLE replays ADD COLUMN breakout_round BIGINT;
ALTER TABLE replays ADD COLUMN breakout_room BIGINT;
