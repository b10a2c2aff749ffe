use classroom_protocol::LessonId;
use classroom_tests::both_backends;

use super::*;

both_backends!(
    stream_keys_are_shown_once_when_made_and_rotate,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Streamed from OBS").await;
        let path = format!("/api/v1/lessons/{lesson}/stream-key");

        // Before a key is made: the server URL, no key.
        let before = school.teacher.get(&path).await.expect(200).clone();
        assert_eq!(before["stream_key"], serde_json::Value::Null);
        assert_eq!(before["created_at"], serde_json::Value::Null);
        assert_eq!(before["lesson_id"], lesson);

        let made = school.teacher.post_empty(&path).await;
        let shown = made.expect(200).clone();
        let key = shown["stream_key"].as_str().expect("a key").to_owned();
        assert!(key.starts_with(&format!("{lesson}-")), "{key}");
        assert!(key.len() > 40, "a long random secret: {key}");
        assert_eq!(shown["lesson_id"], lesson);
        let url = shown["server_url"].as_str().expect("a URL");
        // The ingest's bound address (a free port in tests).
        let rtmp = server
            .server
            .as_ref()
            .and_then(|s| s.rtmp_addr)
            .expect("ingest");
        assert_eq!(url, format!("rtmp://{rtmp}/live"));
        // Never shown again: the server keeps only its hash.
        let again = school.teacher.get(&path).await.expect(200).clone();
        assert_eq!(again["stream_key"], serde_json::Value::Null);
        assert_eq!(again["created_at"], shown["created_at"]);
        assert_eq!(again["server_url"], shown["server_url"]);

        // The ingest's check: the key opens this lesson, a wrong secret or lesson does not.
        let store = server.store();
        assert_eq!(
            store.lesson_for_stream_key(&key).await.expect("db"),
            Some(LessonId(lesson))
        );
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push('x');
        for bad in [
            wrong.as_str(),
            "",
            "nonsense",
            &format!(
                "{}-{}",
                lesson + 1,
                &key[key.find('-').expect("dash") + 1..]
            ),
        ] {
            assert_eq!(
                store.lesson_for_stream_key(bad).await.expect("db"),
                None,
                "{bad}"
            );
        }

        // Rotating replaces it; the old key stops working.
        let rotated = school.teacher.post_empty(&path).await;
        let new_key = rotated.expect(200)["stream_key"]
            .as_str()
            .expect("a key")
            .to_owned();
        assert_ne!(new_key, key);
        assert_eq!(store.lesson_for_stream_key(&key).await.expect("db"), None);
        assert_eq!(
            store.lesson_for_stream_key(&new_key).await.expect("db"),
            Some(LessonId(lesson))
        );
        assert_eq!(
            school.teacher.get(&path).await.expect(200)["stream_key"],
            serde_json::Value::Null
        );

        // Only the course's teachers see or rotate it.
        for (who, client, code) in [
            ("student", &school.student, "forbidden"),
            ("admin", &school.admin, "forbidden"),
            ("other teacher", &school.other_teacher, "not_a_member"),
            ("outsider", &school.outsider, "not_a_member"),
        ] {
            let reply = client.get(&path).await;
            assert_eq!(reply.status.as_u16(), 403, "{who}");
            reply.expect_error(403, code);
            client.post_empty(&path).await.expect_error(403, code);
        }
        server
            .client()
            .get(&path)
            .await
            .expect_error(401, "unauthenticated");
        school
            .teacher
            .get("/api/v1/lessons/424242/stream-key")
            .await
            .expect_error(404, "not_found");

        // A cancelled lesson cannot be streamed to.
        school
            .teacher
            .post_empty(&format!("/api/v1/lessons/{lesson}/cancel"))
            .await
            .expect(200);
        assert_eq!(
            store.lesson_for_stream_key(&new_key).await.expect("db"),
            None
        );
        school
            .teacher
            .post_empty(&path)
            .await
            .expect_error(409, "lesson_over");
        server
    }
);

both_backends!(
    a_stream_key_stops_working_when_its_teacher_may_no_longer_stream,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Streamed by a teacher who leaves").await;
        let key = school
            .teacher
            .post_empty(&format!("/api/v1/lessons/{lesson}/stream-key"))
            .await
            .expect(200)["stream_key"]
            .as_str()
            .expect("a key")
            .to_owned();
        let store = server.store();
        let opens = async || {
            let by_key = store.lesson_for_stream_key(&key).await.expect("db");
            let running = store
                .encoder_may_stream(LessonId(lesson))
                .await
                .expect("db");
            assert_eq!(by_key.is_some(), running, "the two checks agree");
            running
        };
        assert!(opens().await, "the key works for its teacher");

        // Taken off the course (another teacher stays): the key is theirs, so it stops.
        let teachers = format!("/api/v1/courses/{}/teachers", school.course_id);
        school
            .admin
            .post(
                &teachers,
                serde_json::json!({"user_id": school.other_teacher_id}),
            )
            .await
            .expect(201);
        school
            .admin
            .delete(&format!("{teachers}/{}", school.teacher_id))
            .await
            .expect(204);
        assert!(!opens().await, "a teacher no longer on the course");
        school
            .admin
            .post(&teachers, serde_json::json!({"user_id": school.teacher_id}))
            .await
            .expect(201);
        assert!(opens().await, "back on the course");

        // A disabled account streams nothing; enabled again, the key works again.
        let user = format!("/api/v1/users/{}", school.teacher_id);
        school
            .admin
            .patch(&user, serde_json::json!({"disabled": true}))
            .await
            .expect(200);
        assert!(!opens().await, "a disabled account");
        school
            .admin
            .patch(&user, serde_json::json!({"disabled": false}))
            .await
            .expect(200);
        assert!(opens().await, "enabled again");
        server
    }
);
