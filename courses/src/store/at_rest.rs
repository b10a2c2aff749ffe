//! Converting secrets stored in plain text by earlier versions: the migration that introduced
//! [`crate::auth::at_rest`] marked them `plain:`; [`Store::protect_legacy_secrets`] hashes or
//! seals them at start.

use sqlx::Row;

use super::{Store, fixed};
use crate::Backend;
use crate::auth::at_rest::{LEGACY_PREFIX, hash_stream_secret};
use crate::error::StoreResult;

/// How many stored secrets [`Store::protect_legacy_secrets`] converted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedSecrets {
    pub stream_keys: u64,
    pub restream_keys: u64,
}

impl Store {
    /// Hashes the stream keys and seals the restream keys still stored in plain text; run at
    /// start, before serving. Each row is rewritten only if it still holds what was read, so
    /// two nodes starting at once convert each row once.
    pub async fn protect_legacy_secrets(&self) -> StoreResult<ProtectedSecrets> {
        let mut done = ProtectedSecrets::default();
        let pattern = format!("{LEGACY_PREFIX}%");
        let mut tx = self.db.pool().begin().await?;
        let rows = sqlx::query(fixed(
            "SELECT lesson_id, secret_hash FROM lesson_stream_keys WHERE secret_hash LIKE $1",
        ))
        .bind(&pattern)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let lesson: i64 = row.try_get("lesson_id")?;
            let stored: String = row.try_get("secret_hash")?;
            let Some(secret) = stored.strip_prefix(LEGACY_PREFIX) else {
                continue;
            };
            done.stream_keys += sqlx::query(fixed(
                "UPDATE lesson_stream_keys SET secret_hash = $1 \
                 WHERE lesson_id = $2 AND secret_hash = $3",
            ))
            .bind(hash_stream_secret(secret))
            .bind(lesson)
            .bind(&stored)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let rows = sqlx::query(fixed(
            "SELECT id, stream_key FROM restream_destinations WHERE stream_key LIKE $1",
        ))
        .bind(&pattern)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let stored: String = row.try_get("stream_key")?;
            let Some(key) = stored.strip_prefix(LEGACY_PREFIX) else {
                continue;
            };
            done.restream_keys += sqlx::query(fixed(
                "UPDATE restream_destinations SET stream_key = $1 WHERE id = $2 AND stream_key = $3",
            ))
            .bind(self.sealer.seal(key))
            .bind(id)
            .bind(&stored)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        if done != ProtectedSecrets::default() && self.db.backend() == Backend::Sqlite {
            // The old values would linger in free space of the file and in the WAL: rewrite
            // the file, then empty the WAL into it. Once, at the first start after upgrading.
            sqlx::query("VACUUM").execute(self.db.pool()).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.db.pool())
                .await?;
        }
        Ok(done)
    }
}
