//! Webhooks: the REST for admins (school-wide) and a course's teachers, and end to end a
//! receiver on loopback that gets lesson.started and lesson.ended signed, again after it
//! failed, and never twice once it took one.

use std::time::Duration;

use classroom_protocol::signal::ClientMessage;
use classroom_tests::both_backends;
use classroom_tests::school::join_token;
use classroom_tests::webhook::{Received, check_signature, receiver};
use classroom_tests::ws::Ws;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

/// Loopback stands in for the school's LMS: allowed by the operator, in tests only. Retries
/// come after a second.
fn allow_loopback(config: &mut classroomd::Config) {
    config.restream.allowed_networks = vec!["127.0.0.0/8".into()];
    config.webhooks.retry_backoff_secs = 1;
}

both_backends!(
    webhooks_are_for_admins_and_course_teachers_and_their_secret_is_shown_once,
    tune = allow_loopback,
    |server| async move {
        let school = School::new(&server).await;
        let course = school.course_id;
        assert_eq!(
            school.admin.get("/api/v1/webhooks").await.expect(200),
            &json!([])
        );

        let created = school
            .admin
            .post(
                "/api/v1/webhooks",
                json!({"url": "http://127.0.0.1:9/hook"}),
            )
            .await;
        let created = created.expect(201).clone();
        let secret = created["secret"].as_str().expect("a secret").to_owned();
        assert_eq!(secret.len(), 64, "{created}");
        assert_eq!(created["url"], "http://127.0.0.1:9/hook");
        assert!(created["course_id"].is_null());
        let listed = school.admin.get("/api/v1/webhooks").await;
        assert_eq!(listed.expect(200).as_array().map(Vec::len), Some(1));
        assert!(!listed.text.contains(&secret), "the secret is shown once");

        // Teachers and students do not see or add the school's.
        school
            .teacher
            .get("/api/v1/webhooks")
            .await
            .expect_error(403, "forbidden");
        school
            .student
            .post("/api/v1/webhooks", json!({"url": "http://127.0.0.1:9/"}))
            .await
            .expect_error(403, "forbidden");

        // A course's: its teachers (and admins), not its students nor other teachers.
        let path = format!("/api/v1/courses/{course}/webhooks");
        let mine = school
            .teacher
            .post(&path, json!({"url": "https://127.0.0.1:8443/in?course=1"}))
            .await;
        let mine = mine.expect(201).clone();
        assert_eq!(mine["course_id"], course);
        assert_ne!(mine["secret"], created["secret"]);
        school
            .student
            .get(&path)
            .await
            .expect_error(403, "forbidden");
        assert_eq!(
            school.other_teacher.get(&path).await.status.as_u16(),
            403,
            "not a teacher of this course"
        );
        let listed = school.admin.get(&path).await;
        assert_eq!(listed.expect(200)[0]["id"], mine["id"]);
        // The school's list and the course's are apart.
        assert_eq!(
            school.admin.get("/api/v1/webhooks").await.expect(200)[0]["id"],
            created["id"]
        );

        // Bad URLs, and hosts the outbound policy refuses.
        for url in [
            "ftp://127.0.0.1/",
            "http://",
            "http://u:p@127.0.0.1/",
            "127.0.0.1",
        ] {
            let reply = school.teacher.post(&path, json!({"url": url})).await;
            reply.expect_error(422, "invalid_url");
            assert_eq!(reply.body["error"]["field"], "url");
        }
        // Refused by the outbound policy on the literal address, before anything is stored or
        // any connection is made (no lookup, no packet): nothing is queued for them either.
        let before = school
            .admin
            .get("/api/v1/webhooks")
            .await
            .expect(200)
            .clone();
        for url in ["http://169.254.169.254/latest", "http://10.0.0.7/"] {
            school
                .admin
                .post("/api/v1/webhooks", json!({"url": url}))
                .await
                .expect_error(422, "destination_not_allowed");
        }
        let after = school
            .admin
            .get("/api/v1/webhooks")
            .await
            .expect(200)
            .clone();
        assert_eq!(after, before, "a refused webhook is not stored");

        // Removing: once, and only from its own scope.
        let other = id(&mine);
        assert_eq!(
            school
                .admin
                .delete(&format!("/api/v1/webhooks/{other}"))
                .await
                .status
                .as_u16(),
            404,
            "a course's webhook is not the school's"
        );
        assert_eq!(
            school
                .teacher
                .delete(&format!("{path}/{other}"))
                .await
                .status
                .as_u16(),
            204
        );
        assert_eq!(
            school
                .teacher
                .delete(&format!("{path}/{other}"))
                .await
                .status
                .as_u16(),
            404
        );
        assert_eq!(school.teacher.get(&path).await.expect(200), &json!([]));
        server
    }
);

both_backends!(
    loopback_is_refused_without_the_operator_allowing_it,
    |server| async move {
        let school = School::new(&server).await;
        school
            .admin
            .post(
                "/api/v1/webhooks",
                json!({"url": "http://127.0.0.1:9/hook"}),
            )
            .await
            .expect_error(422, "destination_not_allowed");
        server
    }
);

/// The next request the receiver got; on a timeout, the queue's jobs say why.
async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, server: &TestServer) -> Received {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(received) => received.expect("the receiver runs"),
        Err(_) => panic!(
            "no delivery in time; jobs: {:?}; lessons: {:?}",
            server.store().recording_jobs(None).await,
            server
                .store()
                .held_lessons(classroom_protocol::CourseId(1))
                .await,
        ),
    }
}

both_backends!(
    lesson_events_are_signed_retried_and_sent_once,
    tune = allow_loopback,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Photosynthesis").await;
        // The receiver fails the first delivery.
        let (url, mut rx) = receiver(1).await;
        let created = school
            .admin
            .post("/api/v1/webhooks", json!({"url": url}))
            .await;
        let secret = created.expect(201)["secret"]
            .as_str()
            .expect("a secret")
            .to_owned();

        // The teacher's join makes the lesson live: lesson.started, refused once, sent again.
        let (mut tess, _) =
            Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        let first = next(&mut rx, &server).await;
        assert_eq!(first.answered, 500);
        check_signature(&secret, &first);
        let again = next(&mut rx, &server).await;
        assert_eq!(again.answered, 204);
        check_signature(&secret, &again);
        assert_eq!(first.body, again.body, "a retry sends the same event");
        let started: Value = serde_json::from_str(&again.body).expect("JSON");
        assert_eq!(started["type"], "lesson.started");
        assert_eq!(started["id"], format!("lesson-{lesson}-started"));
        assert_eq!(again.headers["x-classroom-event-id"], started["id"]);
        assert_eq!(started["data"]["lesson"]["id"], lesson);

        // A student comes and goes; the lesson ends: lesson.ended with the attendance.
        let (mut sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        sam.ok(ClientMessage::Leave).await;
        tess.ok(ClientMessage::EndLesson).await;
        let ended = next(&mut rx, &server).await;
        assert_eq!(ended.answered, 204);
        check_signature(&secret, &ended);
        let ended: Value = serde_json::from_str(&ended.body).expect("JSON");
        assert_eq!(ended["type"], "lesson.ended");
        assert_eq!(ended["data"]["lesson"]["id"], lesson);
        let rows = ended["data"]["attendance"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "the student only: {ended}");
        assert_eq!(rows[0]["user_id"], school.student_id);
        assert_eq!(rows[0]["came_late"], false);
        // Gone a moment before the end: not early.
        assert_eq!(rows[0]["left_early"], false);
        assert_eq!(rows[0]["minutes_present"], 0);

        // Nothing more: each event was taken once and is not sent again.
        let more = tokio::time::timeout(Duration::from_secs(4), rx.recv()).await;
        assert!(more.is_err(), "sent twice: {more:?}");
        let jobs = server.store().recording_jobs(None).await.expect("db");
        let webhook_jobs: Vec<_> = jobs
            .iter()
            .filter(|j| j.kind == classroom_courses::model::JobKind::Webhook)
            .collect();
        assert_eq!(webhook_jobs.len(), 2);
        assert!(
            webhook_jobs
                .iter()
                .all(|j| j.state == classroom_courses::model::JobState::Done)
        );
        // Queueing an event again (another node saw the lesson end too) adds nothing.
        let course = classroom_protocol::CourseId(school.course_id);
        let queued = server
            .store()
            .enqueue_webhook_event(
                course,
                &format!("lesson-{lesson}-ended"),
                "lesson.ended",
                "{}",
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("db");
        assert!(queued.is_empty());
        server
    }
);

fn two_attempts(config: &mut classroomd::Config) {
    allow_loopback(config);
    config.webhooks.max_attempts = 2;
}

both_backends!(
    a_receiver_that_keeps_failing_leaves_a_failed_job_with_the_reason,
    tune = two_attempts,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Unheard").await;
        let (url, mut rx) = receiver(usize::MAX).await;
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{}/webhooks", school.course_id),
                json!({"url": url}),
            )
            .await
            .expect(201);
        let (_tess, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        for _ in 0..2 {
            assert_eq!(next(&mut rx, &server).await.answered, 500);
        }
        // Out of attempts: failed with the reason, for admins to see and retry.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let job = loop {
            let jobs = school
                .admin
                .get("/api/v1/recording-jobs?state=failed")
                .await;
            let jobs = jobs.expect(200).clone();
            if let Some(job) = jobs["items"].as_array().and_then(|j| j.first()).cloned() {
                break job;
            }
            assert!(tokio::time::Instant::now() < deadline, "no failed job");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(job["kind"], "webhook");
        assert_eq!(job["attempts"], 2);
        assert_eq!(job["error"], "the receiver answered 500");
        let more = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
        assert!(more.is_err(), "no third attempt");
        school
            .admin
            .post_empty(&format!("/api/v1/recording-jobs/{}/retry", job["id"]))
            .await
            .expect(200);
        assert_eq!(
            next(&mut rx, &server).await.answered,
            500,
            "retried by hand"
        );
        server
    }
);
