//! A course's webhook hears a recorded lesson from start to replay: lesson.started,
//! lesson.ended and, once the workers made it, replay.ready, each signed and each once.

use classroom_tests::webhook::{check_signature, receiver};

use super::*;

fn small_and_loopback(config: &mut classroomd::Config) {
    small(config);
    // Loopback stands in for the school's LMS: allowed by the operator, in tests only.
    config.restream.allowed_networks = vec!["127.0.0.0/8".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_webhook_hears_the_lesson_and_its_replay() {
    let server = TestServer::start(Backend::Sqlite, small_and_loopback)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Heard lesson").await;
    let (url, mut rx) = receiver(0).await;
    let created = school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/webhooks", school.course_id),
            json!({"url": url}),
        )
        .await;
    let secret = created.expect(201)["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();

    let (mut otto, _) = control(&server.base, &school, lesson).await;
    let (stop, publisher) = publish(&server.base, lesson).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    otto.send(ClientMessage::EndLesson).await;
    let _ = stop.send(true);
    let _ = publisher.await;
    let replay = settled_replay(&school.teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");

    let mut events = Vec::new();
    while events.len() < 3 {
        let received = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {events:?}"))
            .expect("the receiver runs");
        check_signature(&secret, &received);
        let body: Value = serde_json::from_str(&received.body).expect("JSON");
        events.push(body);
    }
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types[0], "lesson.started");
    assert!(types.contains(&"lesson.ended"), "{types:?}");
    let ready = events
        .iter()
        .find(|e| e["type"] == "replay.ready")
        .unwrap_or_else(|| panic!("no replay.ready in {types:?}"));
    assert_eq!(ready["data"]["replay"]["id"], replay["id"]);
    assert_eq!(ready["data"]["replay"]["lesson_id"], lesson);
    assert_eq!(ready["id"], format!("replay-{}-ready", replay["id"]));
    let more = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
    assert!(more.is_err(), "sent twice: {more:?}");
    server.stop().await;
}
