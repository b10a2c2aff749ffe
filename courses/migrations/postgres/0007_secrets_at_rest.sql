-- Secrets at rest (courses/src/auth/at_rest.rs): a lesson's stream key is kept only as a hash
-- of its secret (`sha256:...`), a restream destination's key sealed under a key derived from
-- the server secret (`v1:...`). SQL cannot compute either on both databases, so the rows
-- written before are marked `plain:` here, and classroomd converts them at start, before it
-- serves anything (Store::protect_legacy_secrets).
ALTER TABLE lesson_stream_keys RENAME COLUMN secret TO secret_hash;
UPDATE lesson_stream_keys SET secret_hash = 'plain:' || secret_hash;
UPDATE restream_destinations SET stream_key = 'plain:' || stream_key;
