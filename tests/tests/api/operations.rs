use std::collections::BTreeSet;

use classroom_tests::both_backends;
use reqwest::Method;
use serde_json::json;

use super::*;

both_backends!(health_readiness_and_unknown_routes, |server| async move {
    let anon = server.client();
    assert_eq!(anon.get("/healthz").await.expect(200)["status"], "ok");
    assert_eq!(anon.get("/readyz").await.expect(200)["status"], "ready");
    anon.get("/api/v1/nothing-here")
        .await
        .expect_error(404, "not_found");
    anon.delete("/healthz")
        .await
        .expect_error(405, "method_not_allowed");
    server
});

both_backends!(
    metrics_count_requests_by_route_template,
    |server| async move {
        let school = School::new(&server).await;
        let path = format!("/api/v1/courses/{}", school.course_id);
        school.student.get(&path).await.expect(200);
        school.outsider.get(&path).await.expect(403);
        let metrics = server.metrics().await;
        let text = &metrics.text;
        for status in ["200", "403"] {
            let series = format!(
                "classroom_http_requests_total{{method=\"GET\",route=\"/api/v1/courses/{{id}}\",status=\"{status}\"}}"
            );
            assert_eq!(metrics.value(&series), Some(1.0), "{series} in:\n{text}");
        }
        for expected in [
            "classroom_http_request_duration_seconds_bucket",
            "classroom_db_connections_in_use",
            "classroom_db_connections_open",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
        ] {
            assert!(
                metrics.has_samples_of(expected),
                "missing `{expected}` in:\n{text}"
            );
        }
        assert!(text.contains(
            "classroom_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/auth/login\""
        ));
        assert!(
            !text.contains(&format!("/api/v1/courses/{}\"", school.course_id)),
            "raw paths would explode the series"
        );
        // Every counter of the SFU is exported, each as its own series, from the start.
        for metric in classroom_media::SfuStats::default().metrics() {
            let series = match (metric.family.label, metric.label) {
                (Some(name), Some(value)) => {
                    format!("{}{{{name}=\"{value}\"}}", metric.family.name)
                }
                _ => metric.family.name.to_string(),
            };
            assert!(
                metrics.value(&series).is_some(),
                "{} as {series} in:\n{text}",
                metric.field
            );
        }
        server
    }
);

/// The public contract of the issue: every one of these must be served and documented.
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/courses"),
    ("get", "/api/v1/courses"),
    ("get", "/api/v1/courses/{id}"),
    ("post", "/api/v1/courses/{id}/teachers"),
    ("delete", "/api/v1/courses/{id}/teachers/{user_id}"),
    ("post", "/api/v1/courses/{id}/enrollments"),
    ("delete", "/api/v1/courses/{id}/enrollments/{user_id}"),
    ("post", "/api/v1/courses/{id}/lessons"),
    ("get", "/api/v1/courses/{id}/lessons"),
    ("post", "/api/v1/lessons/{id}/join"),
    ("get", "/api/v1/courses/{id}/replays"),
];

both_backends!(
    openapi_documents_every_route_the_router_serves,
    |server| async move {
        let anon = server.client();
        let doc = anon.get("/api/v1/openapi.json").await;
        let doc = doc.expect(200).clone();
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "OpenAPI 3: {}",
            doc["openapi"]
        );
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(operation) = item.get(method) {
                    assert!(
                        operation["responses"]
                            .as_object()
                            .is_some_and(|r| !r.is_empty()),
                        "{method} {path} lists responses"
                    );
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        for (method, path) in CONTRACT {
            assert!(
                documented.contains(&(method.to_string(), path.to_string())),
                "{method} {path} is not documented"
            );
        }
        // Every documented operation is routed: the router answers it with anything but its
        // unknown-route or wrong-method refusal.
        for (method, path) in &documented {
            let concrete = path.replace("{id}", "1").replace("{user_id}", "1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let reply = anon
                .send_raw(
                    method.clone(),
                    &concrete,
                    "application/json",
                    b"{}".to_vec(),
                )
                .await;
            let routed = !(reply.status.as_u16() == 405
                || (reply.status.as_u16() == 404
                    && reply.body["error"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("route ")));
            assert!(
                routed,
                "{method} {concrete} is documented but not routed: {}",
                reply.text
            );
        }
        // And the referenced schemas exist.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or("");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "schema {name} is referenced but missing"
            );
        }
        server
    }
);

both_backends!(data_survives_a_restart, |server| async move {
    let mut server = server;
    let school = School::new(&server).await;
    let lesson = school.lesson("Before the restart").await;
    server.restart().await;

    // Sessions survive too: the token secret is kept in the data directory.
    let student = school.student.at(&server.base);
    let courses = student.get("/api/v1/courses").await;
    assert_eq!(courses.expect(200)["items"][0]["id"], school.course_id);
    let lessons = student
        .get(&format!("/api/v1/courses/{}/lessons", school.course_id))
        .await;
    assert_eq!(lessons.expect(200)["items"][0]["id"], lesson);
    server
        .client()
        .login("tess@school.edu", "correct horse battery")
        .await;
    let users = school.admin.at(&server.base).get("/api/v1/users").await;
    assert_eq!(users.expect(200)["total"], 5);
    assert!(server.data_dir().join("jwt_secret").exists());
    server
});

#[tokio::test]
async fn a_stopped_server_finishes_and_closes_its_port() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let client = server.client();
    // A login (argon2: tens of milliseconds) in flight while the stop is requested.
    server
        .user(
            classroom_protocol::UserRole::Student,
            "sam@school.edu",
            "Sam",
        )
        .await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(
                    "/api/v1/auth/login",
                    json!({"email": "sam@school.edu", "password": "correct horse battery"}),
                )
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let base = server.base.clone();
    server.stop().await;
    assert_eq!(
        in_flight.await.expect("joined").status.as_u16(),
        200,
        "the request in flight was answered"
    );
    let after = reqwest::get(format!("{base}/healthz")).await;
    assert!(after.is_err(), "the port is closed after the stop");
}
