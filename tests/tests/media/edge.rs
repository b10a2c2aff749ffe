//! One lecture across two nodes (docs/scale-out.md, step 1): the home node is full
//! (`cluster.home_capacity`), so the REST join sends a student to the other node, an edge,
//! whose signaling reaches the home's room. The student is in the one room: sees the teacher
//! in the participant list, chats with them, and receives their video and audio. In this
//! step the media still comes from the home's SFU (the home answers the offer); the node
//! media link is the next step.

use std::time::{Duration, Instant};

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{ClientMessage, ServerMessage};
use classroom_tests::TestServer;
use classroom_tests::cluster::{SHARED_REDIS, node_tuned, prefix};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::school::School;
use classroom_tests::ws::Ws;
use serde_json::Value;

use super::{WAIT, me};

/// The participants node `id` reports, as `on` sees it.
async fn participants_on(admin: &classroom_tests::Client, id: &str) -> Option<u64> {
    let body = admin.get("/api/v1/cluster").await.expect(200).clone();
    body["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id && n["online"] == true)
        .and_then(|n| n["load"]["participants"].as_u64())
}

/// Polls until `done` holds of node `id`'s participants as `admin`'s node sees them.
async fn until_participants(
    admin: &classroom_tests::Client,
    id: &str,
    done: impl Fn(Option<u64>) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = participants_on(admin, id).await;
        if done(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "node {id}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The REST join's body for `client` asked of `node`.
async fn rest_join(client: &classroom_tests::Client, node: &TestServer, lesson: i64) -> Value {
    client
        .at(&node.base)
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await
        .expect(200)
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_placed_on_an_edge_node_is_in_the_home_nodes_room() {
    let prefix = prefix();
    let capacity = |config: &mut classroomd::config::Config| config.cluster.home_capacity = 1;
    let Some(a) = node_tuned(SHARED_REDIS, &prefix, "a", None, capacity).await else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let b = node_tuned(SHARED_REDIS, &prefix, "b", Some(&a), capacity)
        .await
        .expect("b starts");
    let school = School::new(&a).await;
    let admin = school.admin.at(&a.base);
    for id in ["a", "b"] {
        until_participants(&admin, id, |seen| seen.is_some()).await;
    }
    let lesson = school.lesson("Lecture over two nodes").await;

    // The teacher asks a: the room's home is a (equal load: the node asked keeps it).
    let body = rest_join(&school.teacher, &a, lesson).await;
    assert!(body.get("signaling_url").is_none(), "{body}");
    let (ws, joined) = Ws::join(&a.base, body["token"].as_str().unwrap_or_default()).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let mut teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
    assert!(wait_until(WAIT, || teacher.is_connected()).await);
    let teacher_id = me(&teacher.ws);

    // a is full (one participant) once its heartbeat says so: the student, asking a, is sent
    // to b.
    until_participants(&admin, "a", |seen| seen == Some(1)).await;
    let body = rest_join(&school.student, &a, lesson).await;
    let b_ws = format!("{}/ws", b.base.replace("http://", "ws://"));
    assert_eq!(body["signaling_url"], b_ws.as_str(), "{body}");
    let (ws, joined) = Ws::join(&b.base, body["token"].as_str().unwrap_or_default()).await;
    let ServerMessage::Joined { participants, .. } = &joined else {
        panic!("{joined:?}")
    };
    assert!(
        participants.iter().any(|p| p.id == teacher_id),
        "the teacher is in the student's participant list: {participants:?}"
    );
    let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);
    let student_id = me(&student.ws);
    // b counts the student it relays: its load grows.
    until_participants(&admin, "b", |seen| seen == Some(1)).await;

    // The teacher's video and audio reach the student, in order and whole.
    assert!(
        student.receives_from(teacher_id, 20, WAIT).await,
        "the student receives the teacher"
    );
    let (lost, duplicates) = student.stats(|s| {
        s.streams.values().fold((0, 0), |(l, d), st| {
            (l + st.loss.lost(), d + st.loss.duplicates())
        })
    });
    assert_eq!((lost, duplicates), (0, 0), "every packet, once, in order");

    // One room: each sees the other's chat (and the teacher the student's arrival).
    teacher
        .request(ClientMessage::Chat {
            text: "welcome to the edge".into(),
        })
        .await;
    let heard = |p: &Participant, from, text: &str| {
        p.messages.iter().any(|m| {
            matches!(m, ServerMessage::Chat { message } if message.from == from && message.text == text)
        })
    };
    assert!(
        student
            .pump_until(WAIT, |p| heard(p, teacher_id, "welcome to the edge"))
            .await,
        "the student hears the teacher's chat: {:?}",
        student.messages
    );
    student
        .request(ClientMessage::Chat {
            text: "hello from b".into(),
        })
        .await;
    assert!(
        teacher
            .pump_until(WAIT, |p| heard(p, student_id, "hello from b"))
            .await,
        "the teacher hears the student's chat: {:?}",
        teacher.messages
    );

    // The student leaves through b: the home's room hears it, and b's relay count falls.
    student.leave().await;
    until_participants(&admin, "b", |seen| seen == Some(0)).await;
    teacher.peer.stop();
    drop(teacher.ws);
    b.stop().await;
    a.stop().await;
    let mut redis = redis::Client::open(SHARED_REDIS)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let () = redis::AsyncCommands::del(&mut redis, format!("{prefix}:nodes"))
        .await
        .expect("deleted");
}
