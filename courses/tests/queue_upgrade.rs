//! The migration that lets the job queue take document jobs rebuilds `recording_jobs` on
//! SQLite (a NOT NULL cannot be dropped there) and alters it on PostgreSQL: a database with
//! replay jobs from before keeps them, and the server reads and runs them as before.

use classroom_courses::Db;
use classroom_courses::Store;
use classroom_courses::model::{JobKind, JobState};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;

/// The migrations before the documents one, in a folder of their own.
fn migrations_before_documents(backend: &str) -> tempfile::TempDir {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let dir = tempfile::tempdir().expect("a temporary folder");
    for entry in std::fs::read_dir(&from).expect("the migrations") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name < "0009" {
            std::fs::copy(&path, dir.path().join(name)).expect("copied");
        }
    }
    dir
}

const OLD_ROWS: &[&str] = &[
    "INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) \
     VALUES (1, 'tess@school.edu', 'Tess', 'teacher', 'x', 0, 0)",
    "INSERT INTO courses (id, title, description, created_by, created_at, updated_at) \
     VALUES (1, 'Algebra', '', 1, 0, 0)",
    "INSERT INTO lessons (id, course_id, title, starts_at, ends_at, state, created_by, \
     created_at, updated_at) VALUES (1, 1, 'One', 0, 1, 'ended', 1, 0, 0)",
    "INSERT INTO replays (id, lesson_id, course_id, title, state, created_at) \
     VALUES (1, 1, 1, 'One', 'processing', 0)",
    "INSERT INTO recording_jobs (id, recording, lesson_id, replay_id, state, attempts, \
     run_after, created_at, updated_at) VALUES (7, 'lesson-1-1000', 1, 1, 'queued', 0, 0, 0, 0)",
];

#[tokio::test]
async fn replay_jobs_from_before_documents_survive_the_upgrade() {
    sqlx::any::install_default_drivers();
    let data = tempfile::tempdir().expect("a data folder");
    let url = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("db.sqlite").display()
    );
    {
        let old = migrations_before_documents("sqlite");
        let pool = sqlx::AnyPool::connect(&url).await.expect("connects");
        Migrator::new(old.path())
            .await
            .expect("the old migrations")
            .run(&pool)
            .await
            .expect("applied");
        for row in OLD_ROWS {
            sqlx::query(*row).execute(&pool).await.expect("an old row");
        }
        pool.close().await;
    }
    let db = Db::connect(&url, 2).await.expect("upgraded");
    let store = Store::new(db, b"secret");
    let job = store.recording_job(7).await.expect("the old job");
    assert_eq!(job.kind, JobKind::Replay);
    assert_eq!(job.recording.as_deref(), Some("lesson-1-1000"));
    assert_eq!(job.replay_id.map(|r| r.0), Some(1));
    assert_eq!(job.state, JobState::Queued);
    let claimed = store
        .claim_recording_job("w", OffsetDateTime::now_utc(), time::Duration::MINUTE)
        .await
        .expect("claims")
        .expect("the old job is due");
    assert_eq!(claimed.id, 7);
    // A row that is neither kind is refused by the table itself.
    let both = sqlx::query(
        "INSERT INTO recording_jobs (kind, recording, lesson_id, replay_id, state, run_after, \
         created_at, updated_at) VALUES ('document', 'x', 1, 1, 'queued', 0, 0, 0)",
    )
    .execute(store.db().pool())
    .await;
    assert!(both.is_err(), "a document job with a recording was stored");
}
