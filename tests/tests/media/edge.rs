//! One lecture across two nodes (docs/scale-out.md): the home node is full
//! (`cluster.home_capacity`), so the REST join sends a student to the other node, an edge,
//! whose signaling reaches the home's room over the edge's one authenticated link to the home.
//! The student is in the one room: sees the teacher in the participant list, chats with them,
//! and receives their video and audio. The media still comes from the home's SFU (the home
//! answers the offer); the node media link is a later step. An edge with the wrong secret is
//! refused; an edge killed (`kill -9`) costs the home its students, who join again on a live
//! node while the rest of the room goes on.

use std::time::{Duration, Instant};

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{ClientMessage, LeaveReason, ServerMessage};
use classroom_tests::cluster::{
    SHARED_REDIS, child_node, forget_nodes, node_tuned, participants, prefix, rest_join, until_node,
};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::school::School;
use classroom_tests::ws::Ws;
use classroom_tests::{Client, TestServer};

use super::{WAIT, me};

/// The participants node `id` reports while online, as `admin`'s node sees it.
async fn until_participants(admin: &Client, id: &str, done: impl Fn(Option<u64>) -> bool) {
    until_node(admin, id, |node| done(participants(node))).await;
}

/// The home of a lecture with `cluster.home_capacity = 1`, node `a`, with the school and the
/// lesson; `None` without PostgreSQL.
struct Home {
    a: TestServer,
    school: School,
    admin: Client,
    lesson: i64,
    prefix: String,
}

fn capacity_one(config: &mut classroomd::config::Config) {
    config.cluster.home_capacity = 1;
}

async fn home(title: &str, tune: fn(&mut classroomd::config::Config)) -> Option<Home> {
    let prefix = prefix();
    let a = node_tuned(SHARED_REDIS, &prefix, "a", None, tune).await?;
    let school = School::new(&a).await;
    let admin = school.admin.at(&a.base);
    until_participants(&admin, "a", |seen| seen.is_some()).await;
    let lesson = school.lesson(title).await;
    Some(Home {
        a,
        school,
        admin,
        lesson,
        prefix,
    })
}

impl Home {
    /// The teacher joins on a, the room's home (equal load: the node asked keeps it), with
    /// media; a is full once its heartbeat says so.
    async fn teacher(&self) -> Participant {
        let body = rest_join(&self.school.teacher, &self.a.base, self.lesson).await;
        assert!(body.get("signaling_url").is_none(), "{body}");
        let (ws, joined) = Ws::join(&self.a.base, body["token"].as_str().unwrap_or_default()).await;
        assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
        let teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
        assert!(wait_until(WAIT, || teacher.is_connected()).await);
        until_participants(&self.admin, "a", |seen| seen == Some(1)).await;
        teacher
    }

    /// The student asks a, is sent to the edge at `edge` (a is full), and joins there.
    async fn student_joins_through(&self, edge: &str) -> (Ws, ServerMessage) {
        let body = rest_join(&self.school.student, &self.a.base, self.lesson).await;
        let edge_ws = format!("{}/ws", edge.replace("http://", "ws://"));
        assert_eq!(body["signaling_url"], edge_ws.as_str(), "{body}");
        Ws::join(edge, body["token"].as_str().unwrap_or_default()).await
    }
}

/// A lecture over two nodes: the teacher on `a` (the home), the student sent to `b` (an edge)
/// by the REST join, both with media. `None` without PostgreSQL.
struct Lecture {
    a: TestServer,
    b: TestServer,
    school: School,
    admin: Client,
    lesson: i64,
    teacher: Participant,
    student: Participant,
    prefix: String,
}

async fn lecture_over_two_nodes(title: &str) -> Option<Lecture> {
    let Home {
        a,
        school,
        admin,
        lesson,
        prefix,
    } = home(title, capacity_one).await?;
    let b = node_tuned(SHARED_REDIS, &prefix, "b", Some(&a), capacity_one)
        .await
        .expect("b starts");
    until_participants(&admin, "b", |seen| seen.is_some()).await;
    let home = Home {
        a,
        school,
        admin,
        lesson,
        prefix,
    };
    let teacher = home.teacher().await;
    let teacher_id = me(&teacher.ws);
    let (ws, joined) = home.student_joins_through(&b.base).await;
    let ServerMessage::Joined { participants, .. } = &joined else {
        panic!("{joined:?}")
    };
    assert!(
        participants.iter().any(|p| p.id == teacher_id),
        "the teacher is in the student's participant list: {participants:?}"
    );
    let student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);
    let Home {
        a,
        school,
        admin,
        lesson,
        prefix,
    } = home;
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
    let body = rest_join(&school.student, &b.base, lesson).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_the_clusters_secret_is_refused_and_the_room_is_untouched() {
    let Some(home) = home("Edge with a wrong secret", capacity_one).await else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let b = node_tuned(SHARED_REDIS, &home.prefix, "b", Some(&home.a), |config| {
        config.cluster.home_capacity = 1;
        config.cluster.secret = "not the secret the other nodes share, 32+ bytes".into();
    })
    .await
    .expect("b starts");
    until_participants(&home.admin, "b", |seen| seen.is_some()).await;
    let mut teacher = home.teacher().await;

    // The student sent to b: b's link to a is refused, so b cannot serve the room and says
    // so (join again).
    let body = rest_join(&home.school.student, &home.a.base, home.lesson).await;
    let edge_ws = format!("{}/ws", b.base.replace("http://", "ws://"));
    assert_eq!(body["signaling_url"], edge_ws.as_str(), "{body}");
    let mut ws = Ws::connect(&b.base).await;
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    ws.send(ClientMessage::join(token)).await;
    let (messages, close) = ws.close_frame().await;
    let refused = messages.iter().any(|m| {
        matches!(m, ServerMessage::Error { code, .. } if *code == classroom_protocol::ErrorCode::WrongNode)
    });
    assert!(refused, "{messages:?}");
    assert_eq!(close.map(|(code, _)| code), Some(1013));
    // Nothing reached the home's room.
    teacher.pump(Duration::from_millis(500)).await;
    let arrived = teacher
        .messages
        .iter()
        .any(|m| matches!(m, ServerMessage::ParticipantJoined { .. }));
    assert!(!arrived, "{:?}", teacher.messages);

    // The link's own answer to a wrong credential, as any caller sees it.
    let link = format!("{}/cluster/link", home.a.base.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            link.as_str(),
        )
        .expect("a request");
    let forged = "ClassroomNode b.99999999999999.00ff";
    request
        .headers_mut()
        .insert("authorization", forged.parse().expect("a header value"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("node_unauthenticated"), "{body}");
        }
        other => panic!("a refusal, not {other:?}"),
    }

    teacher.peer.stop();
    drop(teacher.ws);
    b.stop().await;
    let prefix = home.prefix.clone();
    home.a.stop().await;
    forget_nodes(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_costs_the_home_its_students_who_join_again_on_a_live_node() {
    let tune = |config: &mut classroomd::config::Config| {
        config.cluster.home_capacity = 1;
        // The home lets a dropped participant go after a second (20 by default).
        config.signaling.reconnect_grace_secs = 1;
    };
    let Some(home) = home("Edge killed", tune).await else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    // b in a child process, to be killed.
    let dir = tempfile::tempdir().expect("a directory");
    let test_server = env!("CARGO_BIN_EXE_test-server");
    let mut b = child_node(test_server, &home.a, "b", dir.path()).await;
    until_participants(&home.admin, "b", |seen| seen.is_some()).await;
    let mut teacher = home.teacher().await;
    let teacher_id = me(&teacher.ws);
    let (ws, _) = home.student_joins_through(&b.base).await;
    let student_id = me(&ws);
    let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);
    assert!(student.receives_from(teacher_id, 5, WAIT).await);
    let arrived = |p: &Participant| {
        p.messages.iter().any(|m| {
            matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == student_id)
        })
    };
    assert!(teacher.pump_until(WAIT, arrived).await);

    // kill -9: the student's signaling ends without a word, and the home drops the student
    // as a dropped connection: gone from the room once the grace is over.
    b.kill_9();
    let killed = Instant::now();
    assert_eq!(student.ws.close_code_within(WAIT).await, None);
    student.peer.stop();
    let left = |p: &Participant| {
        p.messages.iter().any(|m| {
            matches!(m, ServerMessage::ParticipantLeft { participant, reason }
                if *participant == student_id && *reason == LeaveReason::TimedOut)
        })
    };
    assert!(
        teacher.pump_until(WAIT, left).await,
        "the home drops the edge's student: {:?}",
        teacher.messages
    );
    println!(
        "the home dropped the killed edge's student {:?} after the kill",
        killed.elapsed()
    );

    // The student's next join lands on a live node: a, once b is offline (3 s of silence).
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let body = rest_join(&home.school.student, &home.a.base, home.lesson).await;
        if body.get("signaling_url").is_none() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "still sent to the dead node: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "the student's join lands on a live node {:?} after the kill",
        killed.elapsed()
    );
    let (ws, joined) = Ws::join(&home.a.base, body["token"].as_str().unwrap_or_default()).await;
    let ServerMessage::Joined { participants, .. } = &joined else {
        panic!("{joined:?}")
    };
    assert!(participants.iter().any(|p| p.id == teacher_id));
    let mut again = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || again.is_connected()).await);

    // The rest of the room was untouched: the teacher's connection never closed, its media
    // reaches the student again, and its chat too.
    assert!(teacher.is_connected());
    assert!(again.receives_from(teacher_id, 5, WAIT).await);
    teacher
        .request(ClientMessage::Chat {
            text: "welcome back".into(),
        })
        .await;
    let heard = |p: &Participant| {
        p.messages.iter().any(|m| {
            matches!(m, ServerMessage::Chat { message } if message.from == teacher_id && message.text == "welcome back")
        })
    };
    assert!(again.pump_until(WAIT, heard).await);

    again.peer.stop();
    teacher.peer.stop();
    drop((again.ws, teacher.ws));
    let prefix = home.prefix.clone();
    home.a.stop().await;
    forget_nodes(&prefix).await;
}

/// The UDP candidates of an SDP answer.
fn candidates(sdp: &str) -> Vec<std::net::SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.strip_prefix("a=candidate:"))
        .filter_map(|c| {
            let fields: Vec<&str> = c.split_whitespace().collect();
            let udp = fields.get(2)?.eq_ignore_ascii_case("udp");
            let addr = format!("{}:{}", fields.get(4)?, fields.get(5)?)
                .parse()
                .ok();
            addr.filter(|_| udp)
        })
        .collect()
}

/// The node media links' counters a node reports (`GET /api/v1/cluster`).
async fn node_links(admin: &Client, node: &TestServer) -> serde_json::Value {
    let status = admin.at(&node.base).get("/api/v1/cluster").await;
    status.expect(200)["node_links"].clone()
}

fn link_packets_sent(links: &serde_json::Value) -> u64 {
    links["audio_packets_sent"].as_u64().unwrap_or_default()
        + links["video_packets_sent"].as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_student_gets_media_from_the_edges_sfu_and_the_teacher_crosses_once() {
    let Some(Lecture {
        a,
        b,
        school,
        admin,
        lesson,
        mut teacher,
        mut student,
        prefix,
    }) = lecture_over_two_nodes("Media over the edge").await
    else {
        eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432");
        return;
    };
    let (teacher_id, student_id) = (me(&teacher.ws), me(&student.ws));

    // The student's media session is with the edge's SFU: its answer names b's media
    // address only.
    let offered = candidates(&student.answer);
    assert!(!offered.is_empty(), "{}", student.answer);
    assert!(
        offered.iter().all(|c| b.media_addrs().contains(c)),
        "the edge's media address only: {offered:?}, b {:?}, a {:?}",
        b.media_addrs(),
        a.media_addrs()
    );

    // The teacher's audio and video reach it whole and in order, labelled with the teacher
    // (the edge reports the relayed publisher under the peer id the home's room knows).
    assert!(
        student.receives_from(teacher_id, 20, WAIT).await,
        "the student receives the teacher: {:?}",
        student.tracks
    );
    let kinds: Vec<_> = student
        .tracks
        .values()
        .filter(|(from, _)| *from == teacher_id)
        .map(|(_, kind)| *kind)
        .collect();
    assert_eq!(kinds.len(), 2, "{:?}", student.tracks);
    let whole = |p: &Participant| {
        p.stats(|s| {
            s.streams.values().fold((0, 0), |(l, d), st| {
                (l + st.loss.lost(), d + st.loss.duplicates())
            })
        })
    };
    assert_eq!(whole(&student), (0, 0), "every packet, once, in order");

    // One node media link each side, carrying the teacher from a to b.
    let at_a = node_links(&admin, &a).await;
    let at_b = node_links(&admin, &b).await;
    assert_eq!(
        (at_a["running"].as_u64(), at_b["running"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(link_packets_sent(&at_a) > 0, "{at_a}");
    assert!(at_b["packets_received"].as_u64() > Some(0), "{at_b}");

    // A second student on b: the teacher still crosses once. While the teacher sends 200
    // packets more, a's link sends about as many (two copies would be twice as many; the
    // slack covers packets on their way when the counters are read).
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/enrollments", school.course_id),
            serde_json::json!({"user_id": school.outsider_id}),
        )
        .await
        .expect(201);
    let body = rest_join(&school.outsider, &a.base, lesson).await;
    assert_eq!(
        body["signaling_url"],
        format!("{}/ws", b.base.replace("http://", "ws://")).as_str(),
        "{body}"
    );
    let (ws, joined) = Ws::join(&b.base, body["token"].as_str().unwrap_or_default()).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let mut second = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(
        second.receives_from(teacher_id, 20, WAIT).await,
        "the second edge student receives the teacher"
    );
    assert!(
        candidates(&second.answer)
            .iter()
            .all(|c| b.media_addrs().contains(c))
    );
    assert_eq!(node_links(&admin, &a).await["running"].as_u64(), Some(1));
    let (teacher_before, link_before) = (
        teacher.packets_sent(),
        link_packets_sent(&node_links(&admin, &a).await),
    );
    let started = Instant::now();
    while teacher.packets_sent() - teacher_before < 200 && started.elapsed() < 3 * WAIT {
        let a_while = Duration::from_millis(250);
        tokio::join!(student.pump(a_while), second.pump(a_while));
    }
    let (teacher_sent, link_sent) = (
        teacher.packets_sent() - teacher_before,
        link_packets_sent(&node_links(&admin, &a).await) - link_before,
    );
    println!(
        "over {:?}: the teacher sent {teacher_sent} packets, a's node link {link_sent}",
        started.elapsed()
    );
    assert!(teacher_sent >= 200, "the teacher sends: {teacher_sent}");
    assert!(
        link_sent <= teacher_sent + teacher_sent / 10 + 30,
        "one copy over the link: {link_sent} sent for the teacher's {teacher_sent}"
    );
    assert!(
        second.received_from(teacher_id) > 20 && student.received_from(teacher_id) > 20,
        "both students receive meanwhile"
    );
    assert_eq!(whole(&second), (0, 0));

    // On stage, the student on b publishes into b's SFU; the link carries it to a, where the
    // teacher hears and sees it whole.
    let reply = teacher
        .request(ClientMessage::InviteToStage {
            participant: student_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        student
            .pump_until(WAIT, |p| p.messages.iter().any(|m| matches!(
                m,
                ServerMessage::GrantsChanged { grants } if !grants.publish.is_empty()
            )))
            .await,
        "the student hears they may publish"
    );
    student.publish(Sending::AUDIO_VIDEO).await;
    assert!(
        teacher.receives_from(student_id, 20, WAIT).await,
        "the teacher receives the student from the edge: {:?}",
        teacher.tracks
    );
    assert_eq!(
        whole(&teacher),
        (0, 0),
        "the student's media, whole and in order"
    );
    assert!(node_links(&admin, &b).await["running"].as_u64() == Some(1));
    assert!(link_packets_sent(&node_links(&admin, &b).await) > 0);

    // The students leave: b's link ends with the room's last peer there.
    second.leave().await;
    student.leave().await;
    until_participants(&admin, "b", |seen| seen == Some(0)).await;
    teacher.peer.stop();
    drop(teacher.ws);
    b.stop().await;
    a.stop().await;
    forget_nodes(&prefix).await;
}
