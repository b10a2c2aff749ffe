//! Two nodes share one PostgreSQL job queue (and, as the docs require, the data directory):
//! node A runs no worker (`recorder.workers = 0`), node B runs two. Every job queued on A is
//! processed once, by B: its ffmpeg, a path only B is configured with, names B in each
//! failure. Claims are `FOR UPDATE SKIP LOCKED` (see `queue_claims_each_job_once`).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_postgres_share_the_queue_and_workers_follow_their_count() {
    let Some(node_a) = TestServer::start(Backend::Postgres, |c| c.recorder.workers = 0).await
    else {
        return;
    };
    let school = School::new(&node_a).await;
    let mut config_b = node_a.config.clone();
    config_b.recorder.workers = 2;
    config_b.recorder.max_attempts = 1;
    config_b.recorder.ffmpeg = PathBuf::from("/nonexistent/node-b/ffmpeg");
    let node_b = classroomd::start(&config_b).await.expect("node B starts");

    let store = node_a.store();
    let mut lessons = Vec::new();
    for i in 0..3 {
        let lesson = school.lesson(&format!("Lesson {i}")).await;
        let folder = format!("lesson-{lesson}-1");
        let dir = node_a.data_dir().join("recordings").join(&folder);
        std::fs::create_dir_all(&dir).expect("a folder");
        std::fs::write(
            dir.join("events.jsonl"),
            format!(
                "{{\"t_ms\":0,\"type\":\"started\",\"lesson\":{lesson},\"room\":\"lesson-{lesson}\",\"started_at_ms\":0}}\n\
                 {{\"t_ms\":1000,\"type\":\"stopped\"}}\n"
            ),
        )
        .expect("events");
        store
            .enqueue_recording(LessonId(lesson), &folder, time::OffsetDateTime::now_utc())
            .await
            .expect("queued on node A");
        lessons.push(lesson);
    }
    for lesson in lessons {
        let replay = settled_replay(&school.teacher, lesson, Duration::from_secs(60)).await;
        assert_eq!(replay["state"], "failed", "{replay}");
        assert!(
            replay["error"]
                .as_str()
                .is_some_and(|e| e.contains("/nonexistent/node-b/ffmpeg")),
            "node B ran it: {replay}"
        );
    }
    let jobs = school
        .admin
        .get("/api/v1/recording-jobs?state=failed")
        .await;
    let items = jobs.expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(
        items.iter().all(|j| j["attempts"] == 1),
        "each job claimed once: {items:?}"
    );
    node_b.stop().await.expect("node B stops");
    node_a.stop().await;
}
