//! Room placement across nodes, through a real Redis and one PostgreSQL: a lesson's room has
//! one home node, every node's REST join sends people there, a node that is not the home
//! refuses to open the room, and a home that stops gives the lesson up at once.

#![allow(clippy::unwrap_used)] // Test set-up fails loudly.

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{ClientMessage, ServerMessage};
use classroom_tests::TestServer;
use classroom_tests::school::School;
use classroom_tests::ws::Ws;
use redis::AsyncCommands;

use super::cluster::{SHARED_REDIS, cluster_until, node, node_ids, prefix};

/// Nodes `a` and `b` under `prefix` with a school, once each sees both online; `None` without
/// PostgreSQL (outside CI).
async fn two_nodes(prefix: &str) -> Option<(TestServer, TestServer, School)> {
    let a = node(SHARED_REDIS, prefix, "a", None).await?;
    let b = node(SHARED_REDIS, prefix, "b", Some(&a))
        .await
        .expect("b starts");
    let school = School::new(&a).await;
    for on in [&a, &b] {
        cluster_until(&school.admin.at(&on.base), "both online", |v| {
            node_ids(v, true) == ["a", "b"]
        })
        .await;
    }
    Some((a, b, school))
}

#[tokio::test]
async fn a_lesson_has_one_home_node_and_every_node_sends_its_people_there() {
    let prefix = prefix();
    let Some((a, b, school)) = two_nodes(&prefix).await else {
        return;
    };
    let lesson = school.lesson("Placed").await;
    let join = format!("/api/v1/lessons/{lesson}/join");

    // The teacher asks node b: the room is placed there (equal load: the node asked keeps it).
    let reply = school.teacher.at(&b.base).post_empty(&join).await;
    let teacher_join = reply.expect(200).clone();
    assert!(
        teacher_join.get("signaling_url").is_none(),
        "{teacher_join}"
    );
    let (teacher, joined) = Ws::join(&b.base, teacher_join["token"].as_str().unwrap()).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:lesson:{lesson}:home");
    let home: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(home.as_deref(), Some("b"));

    // The student asks node a, which sends them to b.
    let reply = school.student.post_empty(&join).await;
    let student_join = reply.expect(200).clone();
    let b_ws = format!("{}/ws", b.base.replace("http://", "ws://"));
    assert_eq!(student_join["signaling_url"], b_ws.as_str());
    let token = student_join["token"].as_str().unwrap().to_owned();
    // Node a does not open a second room of the lesson.
    let mut wrong = Ws::connect(&a.base).await;
    wrong.send(ClientMessage::join(token.clone())).await;
    let refused = wrong.recv().await;
    assert!(
        matches!(
            refused,
            Some(ServerMessage::Error {
                code: ErrorCode::WrongNode,
                ..
            })
        ),
        "{refused:?}"
    );
    // A browser's page from node a may open node b's signaling: b's WebSocket accepts a's
    // origin (as well as the school's), and a's pages allow connecting to b.
    let upgrade = |origin: &str| {
        reqwest::Client::new()
            .get(format!("{}/ws", b.base))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("origin", origin.to_owned())
            .send()
    };
    assert_eq!(upgrade(&a.base).await.unwrap().status(), 101);
    assert_eq!(
        upgrade("https://school.example").await.unwrap().status(),
        101
    );
    assert_eq!(
        upgrade("https://elsewhere.example").await.unwrap().status(),
        403
    );
    let page = a.client().get("/live.html").await;
    let policy = page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains(&format!(
            "connect-src 'self' {};",
            b.base.replace("http://", "ws://")
        )),
        "{policy}"
    );
    // Node b lets them in, with the teacher.
    let (student, joined) = Ws::join(&b.base, &token).await;
    let ServerMessage::Joined { participants, .. } = joined else {
        panic!("{joined:?}")
    };
    assert_eq!(participants.len(), 2);

    // Node b stops: it gives the lesson up at once, and a takes it at the next join.
    drop((teacher, student));
    b.stop().await;
    // Released as it stops, well before the lease would lapse (10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let home: Option<String> = redis.get(&key).await.unwrap();
        if home.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not released: {home:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    cluster_until(&school.admin, "b gone", |v| node_ids(v, true) == ["a"]).await;
    let reply = school.student.post_empty(&join).await;
    let again = reply.expect(200).clone();
    assert!(again.get("signaling_url").is_none(), "{again}");
    let (_student, joined) = Ws::join(&a.base, again["token"].as_str().unwrap()).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let home: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(home.as_deref(), Some("a"));
    a.stop().await;
    let () = redis.del(format!("{prefix}:nodes")).await.unwrap();
}

#[tokio::test]
async fn a_draining_home_sends_its_people_to_another_node_where_the_room_goes_on() {
    let prefix = prefix();
    let Some((a, mut b, school)) = two_nodes(&prefix).await else {
        return;
    };
    let lesson = school.lesson("Drained").await;
    let join = format!("/api/v1/lessons/{lesson}/join");
    // The room is placed on b (asked first, equal load), and the class talks there.
    let reply = school.teacher.at(&b.base).post_empty(&join).await;
    let (mut teacher, _) = Ws::join(&b.base, reply.expect(200)["token"].as_str().unwrap()).await;
    teacher
        .ok(ClientMessage::Chat {
            text: "said on b".into(),
        })
        .await;
    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:lesson:{lesson}:home");
    let home: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(home.as_deref(), Some("b"));
    // Wait (bounded) for the chat to be stored in the shared database.
    let room = classroom_protocol::RoomName::for_lesson(classroom_protocol::LessonId(lesson));
    for _ in 0..200 {
        let stored = a.store().room_state(room.as_str()).await.unwrap();
        if stored.is_some_and(|s| s.contains("said on b")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // b drains (an upgrade): the teacher is sent to join again, and b's join now sends
    // everyone to a, which opens the room as it was.
    let running = b.server.take().unwrap();
    let (_, code) = tokio::join!(
        running.drain(),
        teacher.close_code_within(std::time::Duration::from_secs(5))
    );
    assert_eq!(code, Some(1012));
    let reply = school.teacher.at(&b.base).post_empty(&join).await;
    let again = reply.expect(200).clone();
    let a_ws = format!("{}/ws", a.base.replace("http://", "ws://"));
    assert_eq!(again["signaling_url"], a_ws.as_str(), "{again}");
    let (_teacher, joined) = Ws::join(&a.base, again["token"].as_str().unwrap()).await;
    let ServerMessage::Joined {
        chat_history, live, ..
    } = joined
    else {
        panic!("{joined:?}")
    };
    assert!(live);
    let texts: Vec<&str> = chat_history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["said on b"]);
    let home: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(home.as_deref(), Some("a"));
    b.server = Some(running);
    b.stop().await;
    a.stop().await;
    let () = redis.del(format!("{prefix}:nodes")).await.unwrap();
}
