use classroom_tests::both_backends;
use serde_json::json;

use super::*;

/// Loopback stands in for the school's own media server: allowed by the operator. Nothing here
/// goes live, so nothing is ever connected to.
fn allow_loopback(config: &mut classroomd::Config) {
    config.restream.allowed_networks = vec!["127.0.0.0/8".into()];
}

both_backends!(
    restream_destinations_are_kept_secret_and_for_teachers,
    tune = allow_loopback,
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
                json!({"url": "rtmp://127.0.0.1:19350/live2", "stream_key": secret}),
            )
            .await;
        let added = added.expect(201).clone();
        assert_eq!(added["url"], "rtmp://127.0.0.1:19350/live2");
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
                    json!({"url": format!("rtmps://127.0.0.{}:443/app", n + 2), "stream_key": "k"}),
                )
                .await
                .expect(201);
        }
        school
            .teacher
            .post(
                &path,
                json!({"url": "rtmp://127.0.0.6/live", "stream_key": "k"}),
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
                    json!({"url": "rtmp://127.0.0.7/live", "stream_key": "k"}),
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
                json!({"url": "rtmp://127.0.0.8/live", "stream_key": "k"}),
            )
            .await
            .expect_error(409, "lesson_over");
        server
    }
);

both_backends!(
    destinations_on_the_servers_own_networks_are_refused_when_added,
    |server| async move {
        // Defaults: public addresses only. Every refusal happens before any connection (the
        // lesson is not even live), so these addresses are never sent a packet.
        let school = School::new(&server).await;
        let lesson = school.lesson("Pointed at the school's network").await;
        let path = format!("/api/v1/lessons/{lesson}/restreams");
        for (url, kind) in [
            ("rtmp://127.0.0.1:5432/live", "a loopback address"),
            ("rtmp://localhost/live", "a loopback address"),
            ("rtmp://[::1]:6379/live", "a loopback address"),
            ("rtmp://[::ffff:127.0.0.1]/live", "a loopback address"),
            ("rtmp://10.0.0.1/live", "a private network address"),
            ("rtmps://192.168.1.20/live", "a private network address"),
            ("rtmp://100.64.0.1/live", "a private network address"),
            ("rtmp://[fd00::1]/live", "a private network address"),
            ("rtmp://169.254.169.254:80/latest", "a link-local address"),
            ("rtmp://[fe80::1]/live", "a link-local address"),
            ("rtmp://0.0.0.0/live", "an unspecified (this-host) address"),
            ("rtmp://224.0.0.1/live", "a multicast address"),
            ("rtmp://255.255.255.255/live", "the broadcast address"),
            (
                "rtmp://192.0.2.10/live",
                "a documentation or benchmarking address",
            ),
        ] {
            let reply = school
                .teacher
                .post(&path, json!({"url": url, "stream_key": "k"}))
                .await;
            reply.expect_error(422, "destination_not_allowed");
            assert_eq!(reply.body["error"]["field"], "url", "{url}");
            let message = reply.body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(kind), "{url}: {message}");
            assert!(message.contains("restream.allowed_networks"), "{message}");
        }
        assert_eq!(school.teacher.get(&path).await.expect(200), &json!([]));
        server
    }
);

both_backends!(
    an_allowed_network_opens_only_itself,
    tune = allow_loopback,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("The school's own media server").await;
        let path = format!("/api/v1/lessons/{lesson}/restreams");
        for url in ["rtmp://127.0.0.1:1935/live", "rtmp://127.1.2.3/live"] {
            school
                .teacher
                .post(&path, json!({"url": url, "stream_key": "k"}))
                .await
                .expect(201);
        }
        for url in ["rtmp://[::1]/live", "rtmp://10.0.0.1/live"] {
            school
                .teacher
                .post(&path, json!({"url": url, "stream_key": "k"}))
                .await
                .expect_error(422, "destination_not_allowed");
        }
        server
    }
);
