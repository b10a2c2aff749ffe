//! The restream inside classroomd: a live lesson with a teacher sending VP8 and Opus, a
//! destination added through the API, followed to `live` in the API and the metrics, and
//! stopped when the lesson ends.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use classroom_loadtest::api::Api;
use classroom_loadtest::link::Transport;
use classroom_loadtest::participant::{self, Plan, Record, Role, Server};
use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::ClientMessage;
use classroom_tests::nginx::{Nginx, probe};
use classroom_tests::school::{School, join_token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::PROBE_TIMEOUT;

/// Polls the lesson's destinations until `wanted` holds for the first one.
async fn wait_for(school: &School, path: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let listed = school.teacher.get(path).await;
        let first = listed.expect(200)[0].clone();
        if wanted(&first) {
            return first;
        }
        assert!(Instant::now() < deadline, "destination stuck at {first}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lesson_is_restreamed_until_it_ends() {
    let Some(nginx) = Nginx::start().await else {
        return;
    };
    let server = TestServer::start(Backend::Sqlite, |config| {
        config.restream.width = 480;
        config.restream.height = 270;
        config.restream.video_kbps = 600;
        config.restream.retry_first_delay_ms = 200;
        config.restream.retry_max_delay_secs = 1;
        // nginx, the stand-in live service, listens on loopback.
        config.restream.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await
    .expect("a SQLite server");
    let school = School::new(&server).await;
    let lesson = school.lesson("Restreamed").await;
    let path = format!("/api/v1/lessons/{lesson}/restreams");
    school
        .teacher
        .post(
            &path,
            json!({"url": nginx.url("live"), "stream_key": "lesson-stream-key"}),
        )
        .await
        .expect(201);
    assert_eq!(
        school.teacher.get(&path).await.expect(200)[0]["state"],
        "idle"
    );

    // The teacher goes live, sending the load tester's VP8 and Opus.
    let api = Api::new(&server.base)
        .login("tess@school.edu", "correct horse battery")
        .await
        .expect("the teacher signs in");
    let plan = Plan {
        name: "teacher".into(),
        role: Role::Teacher,
        server: Server::Classroom { api, lesson },
        transport: Transport::Udp,
        sending: Sending::AUDIO_VIDEO,
        receive: 0,
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        clips: classroom_tests::media::clips(),
        stage_requests: None,
        ask_stage: None,
        h264: None,
    };
    let record = Arc::new(Mutex::new(Record::new(&plan)));
    let (stop, stopped) = watch::channel(false);
    let teacher = tokio::spawn(participant::run(plan, record.clone(), stopped));

    let live = wait_for(&school, &path, |d| d["state"] == "live").await;
    assert_eq!(live["stream_key"], "****-key");
    let streams = probe(
        &format!("{}/lesson-stream-key", nginx.url("live")),
        PROBE_TIMEOUT,
    )
    .await;
    assert!(
        streams.streams().contains(&("h264".into(), 480, 270)),
        "the teacher's camera as H.264: {streams:?}\n{}",
        nginx.log()
    );
    assert!(
        streams.streams().iter().any(|(c, _, _)| c == "aac"),
        "{streams:?}"
    );
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value("classroom_restream_destinations{state=\"live\"}"),
        Some(1.0),
        "{}",
        metrics.text
    );
    assert!(
        !metrics.text.contains("lesson-stream-key"),
        "the key is never shown"
    );

    // The lesson ends: the restream stops.
    let _ = stop.send(true);
    let _ = teacher.await;
    assert!(participant::lock(&record).error.is_none());
    let token = join_token(&school.teacher, lesson).await;
    let (mut ws, _) = Ws::join(&server.base, &token).await;
    ws.ok(ClientMessage::EndLesson).await;
    wait_for(&school, &path, |d| d["state"] == "idle").await;
    let after = probe(
        &format!("{}/lesson-stream-key", nginx.url("live")),
        Duration::from_secs(8),
    )
    .await;
    assert!(
        after.nothing_published(),
        "nothing is published any more: {after:?}"
    );
    server.stop().await;
}
