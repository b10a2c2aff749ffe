use classroom_courses::model::LessonEvent;
use classroom_protocol::{JoinClaims, LessonId};
use classroom_tests::both_backends;
use serde_json::json;

use super::*;

both_backends!(scheduling_lessons, |server| async move {
    let school = School::new(&server).await;
    let lessons = format!("/api/v1/courses/{}/lessons", school.course_id);
    let body = |title: &str, start: &str, end: &str| json!({"title": title, "starts_at": start, "ends_at": end});
    let second = school
        .teacher
        .post(
            &lessons,
            body("Second", "2030-01-08T09:00:00Z", "2030-01-08T09:45:00Z"),
        )
        .await;
    let second = second.expect(201).clone();
    assert_eq!(second["state"], "scheduled");
    assert_eq!(second["room"], format!("lesson-{}", id(&second)));
    assert_eq!(second["starts_at"], "2030-01-08T09:00:00Z");
    // Offsets are accepted and normalized to UTC.
    let first = school
        .teacher
        .post(
            &lessons,
            body(
                "First",
                "2030-01-07T10:00:00+01:00",
                "2030-01-07T10:45:00+01:00",
            ),
        )
        .await;
    assert_eq!(first.expect(201)["starts_at"], "2030-01-07T09:00:00Z");

    let listed = school.student.get(&lessons).await;
    let titles: Vec<_> = listed.expect(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["title"].clone())
        .collect();
    assert_eq!(
        titles,
        vec![json!("First"), json!("Second")],
        "in start order"
    );

    let backwards = school
        .teacher
        .post(
            &lessons,
            body("Back", "2030-01-08T10:00:00Z", "2030-01-08T09:00:00Z"),
        )
        .await;
    backwards.expect_error(422, "invalid_field");
    assert_eq!(backwards.body["error"]["field"], "ends_at");
    let not_a_date = school
        .teacher
        .post(&lessons, body("Bad", "next monday", "2030-01-08T09:00:00Z"))
        .await;
    not_a_date.expect_error(422, "invalid_body");
    assert_eq!(not_a_date.body["error"]["field"], "starts_at");
    school
        .teacher
        .post(&lessons, json!({"title": "No times"}))
        .await
        .expect_error(422, "invalid_body");
    school
        .student
        .post(
            &lessons,
            body("Mine", "2030-01-08T09:00:00Z", "2030-01-08T10:00:00Z"),
        )
        .await
        .expect_error(403, "forbidden");
    school
        .outsider
        .get(&lessons)
        .await
        .expect_error(403, "not_a_member");
    school
        .teacher
        .get("/api/v1/courses/5555/lessons")
        .await
        .expect_error(404, "not_found");
    school
        .teacher
        .get(&format!("{lessons}?state=sleeping"))
        .await
        .expect_error(400, "invalid_query");
    let scheduled = school
        .teacher
        .get(&format!("{lessons}?state=scheduled"))
        .await;
    assert_eq!(scheduled.expect(200)["total"], 2);
    server
});

both_backends!(
    editing_and_cancelling_follow_the_lesson_state,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Fractions").await;
        let path = format!("/api/v1/lessons/{lesson}");
        school.student.get(&path).await.expect(200);
        school
            .outsider
            .get(&path)
            .await
            .expect_error(403, "not_a_member");
        school
            .teacher
            .get("/api/v1/lessons/31337")
            .await
            .expect_error(404, "not_found");

        let moved = school
            .teacher
            .patch(
                &path,
                json!({"title": "Fractions II", "ends_at": "2030-01-07T10:00:00Z"}),
            )
            .await;
        let moved = moved.expect(200);
        assert_eq!(
            (moved["title"].as_str(), moved["ends_at"].as_str()),
            (Some("Fractions II"), Some("2030-01-07T10:00:00Z"))
        );
        school
            .teacher
            .patch(&path, json!({"ends_at": "2030-01-07T08:00:00Z"}))
            .await
            .expect_error(422, "invalid_field");
        school
            .student
            .patch(&path, json!({"title": "Mine"}))
            .await
            .expect_error(403, "forbidden");

        // Live lessons cannot be edited or cancelled; the live issue drives this transition.
        server
            .store()
            .transition_lesson(
                LessonId(lesson),
                LessonEvent::GoLive,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("goes live");
        school
            .teacher
            .patch(&path, json!({"title": "Too late"}))
            .await
            .expect_error(409, "lesson_state");
        school
            .teacher
            .post_empty(&format!("{path}/cancel"))
            .await
            .expect_error(409, "lesson_state");

        let other = school.lesson("Decimals").await;
        let cancel = format!("/api/v1/lessons/{other}/cancel");
        school
            .student
            .post_empty(&cancel)
            .await
            .expect_error(403, "forbidden");
        assert_eq!(
            school.teacher.post_empty(&cancel).await.expect(200)["state"],
            "cancelled"
        );
        school
            .teacher
            .post_empty(&cancel)
            .await
            .expect_error(409, "lesson_state");
        server
    }
);

both_backends!(join_tokens_for_members_only, |server| async move {
    let school = School::new(&server).await;
    let lesson = school.lesson("Equations").await;
    let join = format!("/api/v1/lessons/{lesson}/join");

    let teacher = school.teacher.post_empty(&join).await;
    let teacher = teacher.expect(200).clone();
    assert_eq!(teacher["role"], "teacher");
    assert_eq!(teacher["room"], format!("lesson-{lesson}"));
    assert_eq!(teacher["grants"]["moderate"], true);
    assert!(
        teacher["grants"]["publish"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("camera")))
    );

    let student = school.student.post_empty(&join).await;
    let student = student.expect(200).clone();
    assert_eq!(student["role"], "student");
    assert_eq!(
        student["grants"]["publish"],
        json!([]),
        "students publish only when on stage"
    );
    assert_eq!(
        (
            student["grants"]["subscribe"].as_bool(),
            student["grants"]["chat"].as_bool()
        ),
        (Some(true), Some(true))
    );

    // The token is a JWT naming the user, the room and the grants.
    let payload = student["token"]
        .as_str()
        .expect("token")
        .split('.')
        .nth(1)
        .expect("a JWT payload")
        .to_string();
    let claims: JoinClaims = serde_json::from_slice(&base64url(&payload)).expect("join claims");
    assert_eq!(claims.sub, school.student_id.to_string());
    assert_eq!(claims.room.as_str(), format!("lesson-{lesson}"));
    assert!(
        claims.exp > claims.iat && claims.exp - claims.iat <= 600,
        "short-lived"
    );

    school
        .outsider
        .post_empty(&join)
        .await
        .expect_error(403, "not_a_member");
    school
        .other_teacher
        .post_empty(&join)
        .await
        .expect_error(403, "not_a_member");
    school
        .admin
        .post_empty(&join)
        .await
        .expect_error(403, "not_a_member");
    server
        .client()
        .post_empty(&join)
        .await
        .expect_error(401, "unauthenticated");
    school
        .student
        .post_empty("/api/v1/lessons/8080/join")
        .await
        .expect_error(404, "not_found");

    // Ended and cancelled lessons cannot be joined.
    let store = server.store();
    let now = time::OffsetDateTime::now_utc();
    store
        .transition_lesson(LessonId(lesson), LessonEvent::GoLive, now)
        .await
        .expect("live");
    school.student.post_empty(&join).await.expect(200);
    store
        .transition_lesson(LessonId(lesson), LessonEvent::End, now)
        .await
        .expect("ended");
    school
        .student
        .post_empty(&join)
        .await
        .expect_error(409, "lesson_over");
    let ended = school
        .student
        .get(&format!("/api/v1/lessons/{lesson}"))
        .await;
    let ended = ended.expect(200);
    assert_eq!(ended["state"], "ended");
    assert!(ended["live_at"].is_string() && ended["ended_at"].is_string());
    server
});

both_backends!(replay_library_is_for_members, |server| async move {
    let school = School::new(&server).await;
    let lesson = school.lesson("Graphs").await;
    let replays = format!("/api/v1/courses/{}/replays", school.course_id);
    assert_eq!(
        school.student.get(&replays).await.expect(200)["items"],
        json!([]),
        "empty until recorded"
    );

    // The recorder's side registers a replay; members then see it.
    let store = server.store();
    let replay = store
        .create_replay(
            classroom_courses::store::NewReplay {
                lesson: LessonId(lesson),
                title: classroom_courses::model::Title::parse("Graphs (replay)").expect("title"),
            },
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("registered");
    store
        .mark_replay_ready(
            replay.id,
            2_700_000,
            123_456,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("ready");
    let listed = school.student.get(&replays).await;
    let item = listed.expect(200)["items"][0].clone();
    assert_eq!(
        (
            item["lesson_id"].as_i64(),
            item["state"].as_str(),
            item["duration_ms"].as_i64()
        ),
        (Some(lesson), Some("ready"), Some(2_700_000))
    );
    // The course page lists each replay with its date, length and size.
    assert_eq!(item["size_bytes"].as_i64(), Some(123_456));
    assert!(
        item["created_at"]
            .as_str()
            .is_some_and(|at| time::OffsetDateTime::parse(
                at,
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()),
        "{item}"
    );
    let moments = item["moments_url"].as_str().unwrap_or_default();
    assert!(
        moments.starts_with(&format!("/api/v1/replays/{}/files/", replay.id))
            && moments.ends_with("/moments.json"),
        "{item}"
    );
    let by_lesson = school
        .teacher
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await;
    assert_eq!(
        by_lesson.expect(200)["items"].as_array().map(Vec::len),
        Some(1)
    );

    school
        .outsider
        .get(&replays)
        .await
        .expect_error(403, "not_a_member");
    school
        .outsider
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await
        .expect_error(403, "not_a_member");
    server
        .client()
        .get(&replays)
        .await
        .expect_error(401, "unauthenticated");
    school
        .student
        .get("/api/v1/courses/999/replays")
        .await
        .expect_error(404, "not_found");
    server
});

/// Decodes unpadded base64url (JWT segments).
fn base64url(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = alphabet
            .iter()
            .position(|&a| a == c)
            .expect("base64url character") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// What coturn computes for a username: base64(HMAC-SHA1(secret, username)), by openssl.
fn coturn_password(secret: &str, username: &str) -> String {
    use std::io::Write;
    let mut hmac = std::process::Command::new("sh")
        .args([
            "-c",
            "openssl dgst -sha1 -hmac \"$SECRET\" -binary | base64",
        ])
        .env("SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    hmac.stdin
        .take()
        .expect("stdin")
        .write_all(username.as_bytes())
        .expect("written");
    let out = hmac.wait_with_output().expect("openssl ends");
    String::from_utf8(out.stdout)
        .expect("base64")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn join_responses_carry_turn_credentials_when_a_relay_is_configured() {
    const SECRET: &str = "a-relay-secret-for-the-test";
    let urls = vec![
        "turn:turn.school.test:3478?transport=udp".to_owned(),
        "turns:turn.school.test:443?transport=tcp".to_owned(),
    ];
    let relayed = TestServer::start(Backend::Sqlite, |config| {
        config.turn.urls = urls.clone();
        config.turn.secret = SECRET.to_owned();
        config.turn.credential_ttl_secs = 7200;
    })
    .await
    .expect("a SQLite server");
    let school = School::new(&relayed).await;
    let lesson = school.lesson("Behind a strict firewall").await;
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let reply = school
        .student
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await;
    let servers = reply.expect(200)["ice_servers"].clone();
    let servers = servers.as_array().expect("a list");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["urls"], json!(urls));
    let username = servers[0]["username"].as_str().expect("a username");
    let (expiry, user) = username.split_once(':').expect("<expiry>:<user>");
    assert_eq!(user, school.student_id.to_string());
    let expiry: i64 = expiry.parse().expect("Unix seconds");
    assert!(
        (before + 7200..=before + 7200 + 60).contains(&expiry),
        "{expiry}"
    );
    assert_eq!(
        servers[0]["credential"].as_str(),
        Some(coturn_password(SECRET, username).as_str()),
        "the password coturn expects"
    );

    // Without a relay configured: none offered.
    let plain = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let school = School::new(&plain).await;
    let lesson = school.lesson("On the school network").await;
    let reply = school
        .student
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await;
    assert_eq!(reply.expect(200)["ice_servers"], json!([]));
}

both_backends!(
    breakout_replays_are_listed_under_their_lesson_with_their_room,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Group work").await;
        let store = server.store();
        let now = time::OffsetDateTime::now_utc();
        // Queued as the recorder queues finished recordings: a breakout room's first (its
        // round closed before the lesson ended), then the main room's.
        let breakout = |round, room| Some(classroom_courses::model::ReplayBreakout { round, room });
        for (room, folder) in [
            (breakout(1, 1), format!("lesson-{lesson}-breakout-1-1-1000")),
            (breakout(1, 0), format!("lesson-{lesson}-breakout-1-0-1000")),
            (None, format!("lesson-{lesson}-2000")),
        ] {
            store
                .enqueue_room_recording(LessonId(lesson), room, &folder, now)
                .await
                .expect("queued");
        }
        let again = store
            .enqueue_room_recording(
                LessonId(lesson),
                breakout(1, 1),
                &format!("lesson-{lesson}-breakout-1-1-1000"),
                now,
            )
            .await
            .expect("queued once");
        assert_eq!(again.lesson_id, Some(LessonId(lesson)));

        let listed = school
            .student
            .get(&format!("/api/v1/lessons/{lesson}/replays"))
            .await;
        let items = listed.expect(200)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let rooms: Vec<&serde_json::Value> = items.iter().map(|r| &r["breakout"]).collect();
        assert_eq!(
            rooms,
            [
                &serde_json::Value::Null,
                &json!({"round": 1, "room": 0}),
                &json!({"round": 1, "room": 1})
            ],
            "the main room's first, then the rooms in order: {items:?}"
        );
        assert!(
            items.iter().all(|r| r["title"] == "Group work"
                && r["lesson_id"] == lesson
                && r["state"] == "processing"),
            "{items:?}"
        );
        let library = school
            .teacher
            .get(&format!("/api/v1/courses/{}/replays", school.course_id))
            .await;
        assert_eq!(
            library.expect(200)["items"].as_array().map(Vec::len),
            Some(3),
            "all three in the course's library"
        );
        // The served OpenAPI document describes the link.
        let doc = server.client().get("/api/v1/openapi.json").await;
        let doc = doc.expect(200);
        let breakout = doc["components"]["schemas"]["Replay"]["properties"]["breakout"].to_string();
        assert!(
            breakout.contains("#/components/schemas/ReplayBreakout"),
            "{breakout}"
        );
        assert!(doc["components"]["schemas"]["ReplayBreakout"]["properties"]["round"].is_object());
        server
    }
);
