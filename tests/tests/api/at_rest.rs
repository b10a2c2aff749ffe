//! Data at rest: the data directory and its files are private to the server's user, and the
//! database holds neither a stream key nor a restream key in a readable form, also after an
//! upgrade from a version that kept them in plain text.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use classroom_loadtest::ingest::publisher::Publisher;
use classroom_protocol::LessonId;
use classroom_tests::both_backends;
use serde_json::json;
use sqlx::Row;

use super::*;

const RESTREAM_KEY: &str = "live-restream-key-4f7a9c21e8";

/// A lesson with a stream key and a restream destination: (lesson, stream key, server URL).
async fn lesson_with_secrets(school: &School) -> (i64, String, String) {
    let lesson = school.lesson("Kept secret").await;
    let made = school
        .teacher
        .post_empty(&format!("/api/v1/lessons/{lesson}/stream-key"))
        .await;
    let made = made.expect(200);
    let key = made["stream_key"].as_str().expect("a key").to_owned();
    let url = made["server_url"].as_str().expect("a URL").to_owned();
    school
        .teacher
        .post(
            &format!("/api/v1/lessons/{lesson}/restreams"),
            json!({"url": "rtmp://127.0.0.1:1/live", "stream_key": RESTREAM_KEY}),
        )
        .await
        .expect(201);
    (lesson, key, url)
}

/// Every stored stream key secret and restream key, as the database holds them.
async fn stored_rows(server: &TestServer) -> (Vec<String>, Vec<String>) {
    let pool = server.server.as_ref().expect("running").db.pool().clone();
    let column = |rows: Vec<sqlx::any::AnyRow>| -> Vec<String> {
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).expect("a text column"))
            .collect()
    };
    let hashes = sqlx::query("SELECT secret_hash FROM lesson_stream_keys")
        .fetch_all(&pool)
        .await
        .expect("stream keys");
    let sealed = sqlx::query("SELECT stream_key FROM restream_destinations")
        .fetch_all(&pool)
        .await
        .expect("restream keys");
    (column(hashes), column(sealed))
}

/// The secret part of a stream key (`<lesson>-<secret>`).
fn secret_of(key: &str) -> &str {
    key.split_once('-').expect("lesson-secret").1
}

/// Neither secret in the rows, nor (SQLite) anywhere in the database's files.
async fn assert_nothing_readable(server: &TestServer, stream_key: &str) {
    let (hashes, sealed) = stored_rows(server).await;
    assert!(!hashes.is_empty() && !sealed.is_empty());
    for hash in &hashes {
        assert!(hash.starts_with("sha256:"), "{hash}");
        assert!(!hash.contains(secret_of(stream_key)), "{hash}");
    }
    for value in &sealed {
        assert!(value.starts_with("v1:"), "{value}");
        assert!(!value.contains(RESTREAM_KEY), "{value}");
    }
    if server.backend == Backend::Sqlite {
        for name in ["classroom.db", "classroom.db-wal", "classroom.db-shm"] {
            let bytes = std::fs::read(server.data_dir().join(name)).unwrap_or_default();
            for secret in [secret_of(stream_key), RESTREAM_KEY] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{name} holds a secret in plain text"
                );
            }
        }
    }
}

/// The keys still do their work: the ingest takes the stream key (a real RTMP publish) and
/// refuses another, and the restream key comes back whole for the push.
async fn assert_keys_work(server: &TestServer, lesson: i64, stream_key: &str, url: &str) {
    let publisher = Publisher::connect(url, stream_key).await;
    assert!(
        publisher.is_ok(),
        "the ingest takes the key: {:?}",
        publisher.err()
    );
    drop(publisher);
    let wrong = format!("{lesson}-{}", "0".repeat(48));
    assert!(Publisher::connect(url, &wrong).await.is_err());
    let destinations = server
        .store()
        .destinations(LessonId(lesson))
        .await
        .expect("readable");
    assert_eq!(destinations.len(), 1);
    assert_eq!(destinations[0].stream_key.expose(), RESTREAM_KEY);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

both_backends!(
    the_database_holds_no_stream_or_restream_key_readably,
    |server| async move {
        let school = School::new(&server).await;
        let (lesson, key, url) = lesson_with_secrets(&school).await;
        assert_nothing_readable(&server, &key).await;
        assert_keys_work(&server, lesson, &key, &url).await;
        // The API shows the restream key masked, as before.
        let listed = school
            .teacher
            .get(&format!("/api/v1/lessons/{lesson}/restreams"))
            .await;
        assert_eq!(listed.expect(200)[0]["stream_key"], "****21e8");
        server
    }
);

both_backends!(
    plain_text_keys_of_an_earlier_version_are_converted_at_start_and_still_work,
    |server| async move {
        let mut server = server;
        let school = School::new(&server).await;
        let (lesson, key, url) = lesson_with_secrets(&school).await;
        // Back to what the version before kept: the migration not applied, the stream key's
        // secret and the restream key in plain text.
        let pool = server.server.as_ref().expect("running").db.pool().clone();
        for sql in [
            "DELETE FROM _sqlx_migrations WHERE version = 7",
            "ALTER TABLE lesson_stream_keys RENAME COLUMN secret_hash TO secret",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        sqlx::query("UPDATE lesson_stream_keys SET secret = $1 WHERE lesson_id = $2")
            .bind(secret_of(&key))
            .bind(lesson)
            .execute(&pool)
            .await
            .expect("the old stream key row");
        sqlx::query("UPDATE restream_destinations SET stream_key = $1 WHERE lesson_id = $2")
            .bind(RESTREAM_KEY)
            .bind(lesson)
            .execute(&pool)
            .await
            .expect("the old restream row");

        server.restart().await;
        assert_nothing_readable(&server, &key).await;
        // The restart moved the ingest to another free port.
        let url = school
            .teacher
            .at(&server.base)
            .get(&format!("/api/v1/lessons/{lesson}/stream-key"))
            .await
            .expect(200)["server_url"]
            .as_str()
            .map_or(url, str::to_owned);
        assert_keys_work(&server, lesson, &key, &url).await;
        server
    }
);

#[tokio::test]
async fn the_data_directory_and_its_files_are_private_to_the_server() {
    // A data directory the server creates itself (the temporary one above it is 0700 already).
    let Some(mut server) = TestServer::start(Backend::Sqlite, |config| {
        config.data_dir = config.data_dir.join("data");
    })
    .await
    else {
        return;
    };
    // Something is written, so that SQLite has its -wal and -shm.
    let school = School::new(&server).await;
    lesson_with_secrets(&school).await;
    let dir = server.data_dir();
    assert_eq!(mode(&dir), 0o700);
    for name in [
        "classroom.db",
        "classroom.db-wal",
        "classroom.db-shm",
        "jwt_secret",
    ] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }

    // Modes widened since (a copy, a restore, an earlier version) are narrowed at start.
    let stopped = server.server.take().expect("running");
    stopped.stop().await.expect("graceful stop");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in ["classroom.db", "jwt_secret"] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    server.restart().await;
    assert_eq!(mode(&dir), 0o700);
    for name in ["classroom.db", "jwt_secret"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    server.stop().await;
}
