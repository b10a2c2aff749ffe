//! Media workers: two lessons on a two-worker server land on different workers and both carry
//! media; a datagram that reaches a worker other than its peer's is dropped and counted there,
//! never forwarded or answered.

use std::time::Duration;

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{ClientMessage, ServerMessage};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::metrics::Scrape;
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use serde_json::json;
use tokio::net::UdpSocket;

use super::{WAIT, me};

/// A per-worker series as the text shows it (labels in alphabetical order: `worker` last).
fn worker_series(name: &str, worker: usize, label: Option<(&str, &str)>) -> String {
    match label {
        Some((key, value)) => format!("{name}{{{key}=\"{value}\",worker=\"{worker}\"}}"),
        None => format!("{name}{{worker=\"{worker}\"}}"),
    }
}

fn dropped(scrape: &Scrape, worker: usize, reason: &str) -> f64 {
    let series = worker_series(
        "classroom_media_worker_dropped_total",
        worker,
        Some(("reason", reason)),
    );
    scrape.value(&series).unwrap_or(0.0)
}

fn forwarded(scrape: &Scrape, worker: usize) -> f64 {
    let series = worker_series(
        "classroom_media_worker_rtp_packets_total",
        worker,
        Some(("what", "forwarded")),
    );
    scrape.value(&series).unwrap_or(0.0)
}

/// A STUN binding request for `server_ufrag` as a browser frames it (USERNAME, then a
/// MESSAGE-INTEGRITY that only the peer's own worker could check, and that fails there).
fn binding_request(server_ufrag: &str) -> Vec<u8> {
    let username = format!("{server_ufrag}:test");
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    attrs.resize(attrs.len().div_ceil(4) * 4, 0);
    attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    attrs.extend_from_slice(&[0xAB; 20]);
    let mut message = Vec::new();
    message.extend_from_slice(&0x0001u16.to_be_bytes());
    message.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    message.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    message.extend_from_slice(&[7; 12]);
    message.extend_from_slice(&attrs);
    message
}

fn ice_ufrag(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
        .expect("the answer names the server's ICE ufrag")
}

#[tokio::test]
async fn two_lessons_use_two_workers_and_the_wrong_workers_port_forwards_nothing() {
    let server = TestServer::start(Backend::Sqlite, |config| config.media.workers = 2)
        .await
        .expect("a SQLite server");
    let workers = server.media_addrs();
    assert_eq!(workers.len(), 2, "one UDP port per worker");
    assert_ne!(workers[0], workers[1]);
    let school = School::new(&server).await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/enrollments", school.course_id),
            json!({"user_id": school.outsider_id}),
        )
        .await
        .expect(201);
    let optics = school.lesson("Optics").await;
    let acoustics = school.lesson("Acoustics").await;

    // Each lesson: the teacher publishes (from two tabs, one per lesson), a student receives.
    let mut lessons = Vec::new();
    for (lesson, student) in [(optics, &school.student), (acoustics, &school.outsider)] {
        let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
        let teacher_id = me(&ws);
        let teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
        let (ws, _) = Ws::join(&server.base, &token(student, lesson).await).await;
        let student = Participant::connect(ws, Sending::NOTHING, 1).await;
        lessons.push((teacher_id, teacher, student));
    }
    for (teacher_id, teacher, student) in &mut lessons {
        assert!(
            wait_until(WAIT, || teacher.is_connected() && student.is_connected()).await,
            "both peers of a lesson connect to its worker"
        );
        assert!(
            student.receives_from(*teacher_id, 10, WAIT).await,
            "each lesson carries media: {:?}",
            student.tracks
        );
    }

    // The metrics show a room, two peers and forwarded packets on each worker.
    let scrape = server.metrics().await;
    for worker in 0..2 {
        let rooms = worker_series("classroom_media_worker_rooms", worker, None);
        let peers = worker_series("classroom_media_worker_peers", worker, None);
        assert_eq!(scrape.expect(&rooms), 1.0, "{rooms}");
        assert_eq!(scrape.expect(&peers), 2.0, "{peers}");
        assert!(
            forwarded(&scrape, worker) > 0.0,
            "worker {worker} forwards:\n{}",
            scrape.text
        );
    }
    assert_eq!(scrape.expect("classroom_media_peers"), 4.0, "the total");

    // Which worker serves the first lesson: the one whose port its student's answer names.
    let (_, _, first_student) = &lessons[0];
    let (home, away) = if first_student
        .answer
        .contains(&format!(" {} typ host", workers[0].port()))
    {
        (0, 1)
    } else {
        (1, 0)
    };
    let ufrag = ice_ufrag(&first_student.answer).to_owned();

    // A binding request for that student's session, and an RTP-looking datagram, sent to the
    // other worker's port: that worker knows neither, drops both and counts them; nothing
    // comes back, and its own lesson goes on.
    let stray = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a local socket");
    let before = server.metrics().await;
    let request = binding_request(&ufrag);
    stray
        .send_to(&request, workers[away])
        .await
        .expect("sent to the wrong worker");
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78];
    rtp.extend_from_slice(&[0; 100]);
    stray
        .send_to(&rtp, workers[away])
        .await
        .expect("sent to the wrong worker");
    let counted = server
        .metrics_until(WAIT, |now| {
            dropped(now, away, "unknown_ufrag") >= dropped(&before, away, "unknown_ufrag") + 1.0
                && dropped(now, away, "unknown_source")
                    >= dropped(&before, away, "unknown_source") + 1.0
        })
        .await;
    let after = counted.unwrap_or_else(|scrape| {
        panic!("the wrong worker counts what it dropped:\n{}", scrape.text)
    });
    // The same request at the right worker finds the session by its ufrag and is refused by
    // it (its integrity is made up; str0m refuses it as malformed or fails its check): the
    // ufrag is known there, only there.
    let refused = |scrape: &Scrape| -> f64 {
        ["stun_rejected", "malformed"]
            .iter()
            .map(|reason| {
                let series = format!("classroom_media_dropped_total{{reason=\"{reason}\"}}");
                scrape.value(&series).unwrap_or(0.0)
            })
            .sum()
    };
    let refused_before = refused(&after);
    stray
        .send_to(&request, workers[home])
        .await
        .expect("sent to the right worker");
    let routed = server
        .metrics_until(WAIT, |now| refused(now) > refused_before)
        .await;
    let routed = routed.unwrap_or_else(|scrape| {
        panic!(
            "the right worker routes the request to its peer:\n{}",
            scrape.text
        )
    });
    assert_eq!(
        dropped(&routed, home, "unknown_ufrag"),
        dropped(&before, home, "unknown_ufrag"),
        "the right worker knows the ufrag"
    );
    let mut buf = [0u8; 2048];
    let answered = tokio::time::timeout(Duration::from_millis(300), stray.recv_from(&mut buf));
    assert!(
        answered.await.is_err(),
        "neither worker answers or forwards anything to the stray socket"
    );
    for (teacher_id, _, student) in &mut lessons {
        let frames = student.received_from(*teacher_id);
        assert!(
            student
                .pump_until(WAIT, |s| s.received_from(*teacher_id) > frames + 10)
                .await,
            "both lessons keep their media"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_lecture_larger_than_a_worker_spans_two_and_the_stage_reaches_across() {
    let server = TestServer::start(Backend::Sqlite, |config| {
        config.media.workers = 2;
        config.media.worker_peer_limit = 2;
    })
    .await
    .expect("a SQLite server");
    let school = School::new(&server).await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/enrollments", school.course_id),
            json!({"user_id": school.outsider_id}),
        )
        .await
        .expect(201);
    let lesson = school.lesson("Optics").await;

    // The teacher and Ann fill the lesson's home worker; Bob goes to the other one.
    let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let teacher_id = me(&ws);
    let mut teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
    let (ws, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let mut ann = Participant::connect(ws, Sending::NOTHING, 1).await;
    let (ws, _) = Ws::join(&server.base, &token(&school.outsider, lesson).await).await;
    let bob_id = me(&ws);
    let mut bob = Participant::connect(ws, Sending::NOTHING, 1).await;
    // Each one's worker: the one whose port its answer names.
    let workers = server.media_addrs();
    let worker_of = |p: &Participant| {
        workers
            .iter()
            .position(|w| p.answer.contains(&format!(" {} typ host", w.port())))
            .expect("a worker's port in the answer")
    };
    assert_eq!(worker_of(&teacher), worker_of(&ann), "the home worker");
    assert_ne!(worker_of(&bob), worker_of(&ann), "the other worker");
    for student in [&mut ann, &mut bob] {
        assert!(
            student.receives_from(teacher_id, 10, WAIT).await,
            "both workers' students receive the teacher: {:?}",
            student.tracks
        );
    }

    // Bob on stage: his media crosses to the home worker's teacher and student.
    let reply = teacher
        .request(ClientMessage::InviteToStage {
            participant: bob_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        bob.pump_until(WAIT, |p| p.messages.iter().any(
            |m| matches!(m, ServerMessage::GrantsChanged { grants } if !grants.publish.is_empty())
        ))
        .await,
        "Bob hears he may publish"
    );
    bob.publish(Sending::AUDIO_VIDEO).await;
    assert!(
        ann.receives_from(bob_id, 10, WAIT).await,
        "Ann receives Bob over the relay: {:?}",
        ann.tracks
    );
    assert!(
        teacher.receives_from(bob_id, 10, WAIT).await,
        "the teacher receives Bob"
    );

    // Off stage: Ann hears his tracks ended (from his worker, through the relay).
    let bob_mids_at_ann = ann.mids_of(bob_id);
    let reply = teacher
        .request(ClientMessage::RemoveFromStage {
            participant: bob_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        ann.pump_until(WAIT, |p| bob_mids_at_ann
            .iter()
            .all(|mid| p.ended.contains(mid)))
            .await,
        "Ann hears Bob's tracks ended"
    );
    let metrics = server.metrics().await;
    for what in ["packet_sent", "packet_received"] {
        let series = format!("classroom_media_relay_total{{what=\"{what}\"}}");
        assert!(metrics.expect(&series) > 20.0, "{series}");
    }
    server.stop().await;
}
