//! Nodes of one school through a real Redis (127.0.0.1:6379, a fresh key prefix per test) and
//! one PostgreSQL: the registry, a silent node's alarm, a clean leave, and Redis going away
//! and coming back (a Redis server the test starts on a free port).

#![allow(clippy::unwrap_used)] // Test set-up fails loudly.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use classroom_protocol::UserRole;
use classroom_tests::TestServer;
use redis::AsyncCommands;
use serde_json::{Value, json};

pub(crate) use classroom_tests::cluster::{SHARED_REDIS, node, prefix};

/// Polls `GET /api/v1/cluster` until `done` holds (10 s at most).
pub(crate) async fn cluster_until(
    client: &classroom_tests::Client,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.get("/api/v1/cluster").await;
        let body = reply.expect(200).clone();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn node_ids(body: &Value, online: bool) -> Vec<String> {
    let mut ids: Vec<String> = body["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["online"] == online)
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn nodes_see_each_other_and_a_silent_node_raises_an_alarm() {
    let prefix = prefix();
    let Some(a) = node(SHARED_REDIS, &prefix, "a", None).await else {
        return;
    };
    let b = node(SHARED_REDIS, &prefix, "b", Some(&a))
        .await
        .expect("b starts");
    let (admin, _) = a.user(UserRole::Admin, "head@school.edu", "Head").await;
    let body = cluster_until(&admin, "both nodes online", |b| {
        node_ids(b, true) == ["a", "b"]
    })
    .await;
    assert_eq!(body["this_node"], "a");
    assert_eq!(body["redis"], "up");
    let b_view = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "b")
        .unwrap();
    assert_eq!(b_view["http_url"], format!("{}/", b.base));
    assert_eq!(b_view["state"], "up");
    // The same admin token works on node b (one database, one secret).
    let on_b = admin.at(&b.base);
    assert_eq!(
        on_b.get("/api/v1/cluster").await.expect(200)["this_node"],
        "b"
    );
    // Not for students.
    let (student, _) = a.user(UserRole::Student, "sam@school.edu", "Sam").await;
    student
        .get("/api/v1/cluster")
        .await
        .expect_error(403, "forbidden");

    // b stops cleanly: its record goes, no alarm.
    b.stop().await;
    let body = cluster_until(&admin, "b gone", |b| node_ids(b, true) == ["a"]).await;
    assert_eq!(body["offline_alarms"], 0);
    assert!(node_ids(&body, false).is_empty(), "{body}");

    // A node that dies without a word (its last heartbeat written, then silence).
    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let record = json!({
        "id": "c", "http_url": "http://127.0.0.1:9/", "media": [], "state": "up",
        "load": {"rooms": 0, "participants": 0, "media_workers": 1},
        "heartbeat_ms": seconds * 1000 + micros / 1000,
    });
    let () = redis
        .hset(format!("{prefix}:nodes"), "c", record.to_string())
        .await
        .unwrap();
    cluster_until(&admin, "c seen online", |b| node_ids(b, true) == ["a", "c"]).await;
    let body = cluster_until(&admin, "c offline after 3 s", |b| {
        node_ids(b, false) == ["c"]
    })
    .await;
    assert_eq!(body["offline_alarms"], 1);
    let metrics = a.client().get("/metrics").await.text;
    assert!(
        metrics.contains("classroom_cluster_node_offline_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("classroom_cluster_nodes{state=\"offline\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("classroom_cluster_redis_up 1"),
        "{metrics}"
    );
    a.stop().await;
    let () = redis.del(format!("{prefix}:nodes")).await.unwrap();
}

/// A Redis server of the test's own on a free loopback port (no persistence).
fn redis_server(port: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (Debian's redis-server)")
}

async fn readyz_until(server: &TestServer, status: u16, code: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.client().get("/readyz").await;
        let matches = reply.status.as_u16() == status
            && code.is_none_or(|c| reply.body["error"]["code"] == c);
        if matches {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "readyz: {} {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn without_redis_a_node_serves_on_and_readyz_says_so_until_it_is_back() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = redis_server(port);
    let url = format!("redis://127.0.0.1:{port}");
    let Some(a) = node(&url, &prefix(), "a", None).await else {
        let _ = redis.kill();
        let _ = redis.wait();
        return;
    };
    readyz_until(&a, 200, None).await;
    let school = classroom_tests::school::School::new(&a).await;
    let admin = &school.admin;
    let lesson = school.lesson("During the outage").await;
    let join = format!("/api/v1/lessons/{lesson}/join");
    // A lesson placed before Redis goes away, and in progress.
    let token = school.teacher.post_empty(&join).await.expect(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut teacher, _) = classroom_tests::ws::Ws::join(&a.base, &token).await;
    let other = school.lesson("Not placed yet").await;

    let _ = redis.kill();
    let _ = redis.wait();
    readyz_until(&a, 503, Some("redis_unreachable")).await;
    // The node still serves: the API answers, the cluster page says Redis is down.
    let body = admin.get("/api/v1/cluster").await.expect(200).clone();
    assert_eq!(body["redis"], "down");
    admin
        .post(
            "/api/v1/courses",
            json!({"title": "Served while Redis is down"}),
        )
        .await
        .expect(201);
    // The lesson in progress goes on (a reconnect included); a new one waits for Redis.
    teacher
        .ok(classroom_protocol::signal::ClientMessage::Ping)
        .await;
    let (_again, joined) = classroom_tests::ws::Ws::join(&a.base, &token).await;
    assert!(
        matches!(
            joined,
            classroom_protocol::signal::ServerMessage::Joined { .. }
        ),
        "{joined:?}"
    );
    school
        .student
        .post_empty(&format!("/api/v1/lessons/{other}/join"))
        .await
        .expect_error(503, "cluster_unavailable");

    let mut redis = redis_server(port);
    readyz_until(&a, 200, None).await;
    cluster_until(admin, "registered again", |b| node_ids(b, true) == ["a"]).await;
    school
        .student
        .post_empty(&format!("/api/v1/lessons/{other}/join"))
        .await
        .expect(200);
    a.stop().await;
    let _ = redis.kill();
    let _ = redis.wait();
}
