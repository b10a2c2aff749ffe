use classroom_tests::both_backends;
use serde_json::json;

use super::*;

both_backends!(
    restream_destinations_are_kept_secret_and_for_teachers,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Shown on the school channel").await;
        let path = format!("/api/v1/lessons/{lesson}/restreams");

        assert_eq!(school.teacher.get(&path).await.expect(200), &json!([]));
        let secret = "abcd-efgh-ijkl-mnop-1234";
        let added = school
            .teacher
            .post(
                &path,
                json!({"url": "rtmp://a.rtmp.example.com/live2", "stream_key": secret}),
            )
            .await;
        let added = added.expect(201).clone();
        assert_eq!(added["url"], "rtmp://a.rtmp.example.com/live2");
        assert_eq!(added["stream_key"], "****1234");
        assert_eq!(added["state"], "idle");
        assert_eq!(added["lesson_id"], lesson);
        let first = id(&added);
        let listed = school.teacher.get(&path).await;
        assert_eq!(listed.expect(200)[0]["stream_key"], "****1234");
        assert!(!listed.text.contains(secret), "the key never comes back");
        assert!(!added.to_string().contains(secret));
        // The server keeps it in full for the push.
        let stored = server
            .store()
            .destinations(classroom_protocol::LessonId(lesson))
            .await
            .expect("db");
        assert_eq!(stored[0].stream_key.expose(), secret);

        // Validation.
        for (url, key, field) in [
            ("http://example.com/live", "k", "url"),
            ("rtmp://example.com", "k", "url"),
            ("rtmp://example.com:70000/live", "k", "url"),
            ("rtmp://example.com/live", "", "stream_key"),
            ("rtmp://example.com/live", "has space", "stream_key"),
        ] {
            let reply = school
                .teacher
                .post(&path, json!({"url": url, "stream_key": key}))
                .await;
            reply.expect_error(422, "invalid_field");
            assert_eq!(reply.body["error"]["field"], field, "{url} {key}");
        }
        let long = format!("rtmp://example.com/{}", "a".repeat(600));
        school
            .teacher
            .post(&path, json!({"url": long, "stream_key": "k"}))
            .await
            .expect_error(422, "invalid_field");

        // At most five per lesson.
        for n in 0..4 {
            school
                .teacher
                .post(
                    &path,
                    json!({"url": format!("rtmps://live{n}.example.com:443/app"), "stream_key": "k"}),
                )
                .await
                .expect(201);
        }
        school
            .teacher
            .post(
                &path,
                json!({"url": "rtmp://six.example.com/live", "stream_key": "k"}),
            )
            .await
            .expect_error(409, "too_many_destinations");

        // Only the course's teachers see or change them.
        for (who, client, code) in [
            ("student", &school.student, "forbidden"),
            ("admin", &school.admin, "forbidden"),
            ("other teacher", &school.other_teacher, "not_a_member"),
            ("outsider", &school.outsider, "not_a_member"),
        ] {
            let reply = client.get(&path).await;
            assert_eq!(reply.status.as_u16(), 403, "{who}");
            reply.expect_error(403, code);
            client
                .post(
                    &path,
                    json!({"url": "rtmp://evil.example.com/live", "stream_key": "k"}),
                )
                .await
                .expect_error(403, code);
            client
                .delete(&format!("{path}/{first}"))
                .await
                .expect_error(403, code);
        }
        server
            .client()
            .get(&path)
            .await
            .expect_error(401, "unauthenticated");
        school
            .teacher
            .get("/api/v1/lessons/424242/restreams")
            .await
            .expect_error(404, "not_found");

        // Removing: gone from the list; a destination of another lesson is not found.
        let other_lesson = school.lesson("Another lesson").await;
        school
            .teacher
            .delete(&format!("/api/v1/lessons/{other_lesson}/restreams/{first}"))
            .await
            .expect_error(404, "not_found");
        let removed = school.teacher.delete(&format!("{path}/{first}")).await;
        assert_eq!(removed.status.as_u16(), 204);
        let listed = school.teacher.get(&path).await;
        assert_eq!(listed.expect(200).as_array().map(Vec::len), Some(4));
        school
            .teacher
            .delete(&format!("{path}/{first}"))
            .await
            .expect_error(404, "not_found");

        // A cancelled lesson gets no new destinations.
        school
            .teacher
            .post_empty(&format!("/api/v1/lessons/{lesson}/cancel"))
            .await
            .expect(200);
        school
            .teacher
            .delete(&format!("{path}/{}", first + 1))
            .await;
        school
            .teacher
            .post(
                &path,
                json!({"url": "rtmp://late.example.com/live", "stream_key": "k"}),
            )
            .await
            .expect_error(409, "lesson_over");
        server
    }
);
