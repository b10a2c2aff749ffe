//! Data access for users, courses, lessons, replays and documents. Every query binds its values; the
//! SQL text is built only from fixed fragments. Times are passed in (`now`), never read here.

mod at_rest;
mod attendance;
mod breakouts;
mod courses;
mod documents;
mod lessons;
mod polls;
mod recording_jobs;
mod removals;
mod replays;
mod restreams;
mod room_states;
mod stream_keys;
mod users;
mod webhooks;

use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::auth::KeySealer;
use crate::db::Db;

pub use at_rest::ProtectedSecrets;
pub use attendance::{AttendanceCount, CourseAttendanceRecords, StudentRecord};
pub use breakouts::BreakoutStay;
pub use courses::CourseChanges;
pub use documents::NewDocument;
pub use lessons::{LessonChanges, NewLesson};
pub use polls::{LessonPoll, OwnQuizAnswer, StoredPollAnswer};
pub use recording_jobs::RetryPolicy;
pub use replays::{NewReplay, ReplayAccess};
pub use stream_keys::StreamKey;
pub use users::{NewUser, UserChanges, UserFilter};

/// The store: typed operations over the database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Seals the restream keys it stores (see [`crate::auth::at_rest`]).
    sealer: Arc<KeySealer>,
}

impl Store {
    /// `server_secret`: the token signing secret; the key that seals restream keys is
    /// derived from it.
    pub fn new(db: Db, server_secret: &[u8]) -> Self {
        Store {
            db,
            sealer: Arc::new(KeySealer::from_server_secret(server_secret)),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// One page of a listing, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub const MAX_PER_PAGE: u32 = 200;

    pub fn new(page: u32, per_page: u32) -> Self {
        Page {
            page: page.max(1),
            per_page: per_page.clamp(1, Self::MAX_PER_PAGE),
        }
    }

    fn limit(self) -> i64 {
        i64::from(self.per_page)
    }

    fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new(1, 50)
    }
}

/// A page of results and the total count across all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A LIKE pattern matching `needle` anywhere, with LIKE's wildcards escaped by `\`.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Marks SQL text as safe for sqlx. Only for text assembled from this module's constant
/// fragments (column lists, table names chosen by an enum); values are always bound.
fn fixed(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}

fn decode_err(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} `{value}` in the database").into())
}

fn count(row: &AnyRow) -> Result<i64, sqlx::Error> {
    row.try_get::<i64, _>(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn pages_are_clamped() {
        assert_eq!(
            Page::new(0, 0),
            Page {
                page: 1,
                per_page: 1
            }
        );
        assert_eq!(Page::new(3, 1000).per_page, Page::MAX_PER_PAGE);
        assert_eq!(Page::new(3, 20).offset(), 40);
    }
}
