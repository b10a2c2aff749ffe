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

/// A lecture over two nodes with `cluster.home_capacity = 1`: the teacher on `a` (the home),
/// the student sent to `b` (an edge) by the REST join, both with media. `None` without
/// PostgreSQL.
struct Lecture {
    a: TestServer,
    b: TestServer,
    school: School,
    admin: classroom_tests::Client,
    lesson: i64,
    teacher: Participant,
    student: Participant,
    prefix: String,
}

async fn lecture_over_two_nodes(title: &str) -> Option<Lecture> {
    let prefix = prefix();
    let capacity = |config: &mut classroomd::config::Config| config.cluster.home_capacity = 1;
    let a = node_tuned(SHARED_REDIS, &prefix, "a", None, capacity).await?;
    let b = node_tuned(SHARED_REDIS, &prefix, "b", Some(&a), capacity)
        .await
        .expect("b starts");
    let school = School::new(&a).await;
    let admin = school.admin.at(&a.base);
    for id in ["a", "b"] {
        until_participants(&admin, id, |seen| seen.is_some()).await;
    }
    let lesson = school.lesson(title).await;

    // The teacher asks a: the room's home is a (equal load: the node asked keeps it).
    let body = rest_join(&school.teacher, &a, lesson).await;
    assert!(body.get("signaling_url").is_none(), "{body}");
    let (ws, joined) = Ws::join(&a.base, body["token"].as_str().unwrap_or_default()).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
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
    let student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);
    Some(Lecture {
        a,
        b,
        school,
        admin,
        lesson,
        teacher,
        student,
        prefix,
    })
}

/// Forgets the test's node records in the shared Redis.
async fn forget_nodes(prefix: &str) {
    let mut redis = redis::Client::open(SHARED_REDIS)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let () = redis::AsyncCommands::del(&mut redis, format!("{prefix}:nodes"))
        .await
        .expect("deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_placed_on_an_edge_node_is_in_the_home_nodes_room() {
    let Some(Lecture {
        a,
        b,
        admin,
        mut teacher,
        mut student,
        prefix,
        ..
    }) = lecture_over_two_nodes("Lecture over two nodes").await
    else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let (teacher_id, student_id) = (me(&teacher.ws), me(&student.ws));
    // b counts the student it relays: its load grows, and it says so to its admins.
    until_participants(&admin, "b", |seen| seen == Some(1)).await;
    let on_b = admin.at(&b.base).get("/api/v1/cluster").await;
    assert_eq!(on_b.expect(200)["relayed_participants"], 1);

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
    forget_nodes(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_drains_sends_an_edges_students_to_join_again_where_the_room_goes_on() {
    let Some(Lecture {
        mut a,
        b,
        school,
        lesson,
        mut teacher,
        mut student,
        prefix,
        ..
    }) = lecture_over_two_nodes("Home drained under an edge").await
    else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let teacher_id = me(&teacher.ws);
    assert!(student.receives_from(teacher_id, 5, WAIT).await);
    teacher
        .request(ClientMessage::Chat {
            text: "before the drain".into(),
        })
        .await;

    // Stored in the shared database before the drain (a bounded wait).
    let room = classroom_protocol::RoomName::for_lesson(classroom_protocol::LessonId(lesson));
    for _ in 0..200 {
        let stored = b.store().room_state(room.as_str()).await.expect("a store");
        if stored.is_some_and(|s| s.contains("before the drain")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The home drains: its close (1012, join again) reaches the student through the edge.
    let running = a.server.take().expect("a runs");
    let ((), teacher_code, student_code) = tokio::join!(
        running.drain(),
        teacher.ws.close_code_within(WAIT),
        student.ws.close_code_within(WAIT),
    );
    assert_eq!((teacher_code, student_code), (Some(1012), Some(1012)));
    teacher.peer.stop();
    student.peer.stop();

    // Once b knows a drains, the student's join again on b opens the room on b, as it was.
    let admin = school.admin.at(&b.base);
    let deadline = Instant::now() + WAIT;
    loop {
        let body = admin.get("/api/v1/cluster").await.expect(200).clone();
        let a_up = body["nodes"].as_array().is_some_and(|nodes| {
            nodes
                .iter()
                .any(|n| n["id"] == "a" && n["online"] == true && n["state"] == "up")
        });
        if !a_up {
            break;
        }
        assert!(Instant::now() < deadline, "b sees a draining: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = rest_join(&school.student, &b, lesson).await;
    assert!(body.get("signaling_url").is_none(), "{body}");
    let (_student, joined) = Ws::join(&b.base, body["token"].as_str().unwrap_or_default()).await;
    let ServerMessage::Joined {
        chat_history, live, ..
    } = joined
    else {
        panic!("{joined:?}")
    };
    assert!(live);
    let texts: Vec<&str> = chat_history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before the drain"]);

    a.server = Some(running);
    b.stop().await;
    a.stop().await;
    forget_nodes(&prefix).await;
}
