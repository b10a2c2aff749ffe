//! Media in a live lesson, end to end: join tokens from the REST API, signaling over real
//! WebSockets, and str0m clients sending and receiving over real UDP on 127.0.0.1 through the
//! server's SFU. The teacher publishes to the class; a student brought on stage publishes
//! too, and stops being forwarded the moment the teacher takes the stage back.

mod access;
mod breakout;
mod drain;
mod edge;
mod impaired;
mod workers;

use std::time::Duration;

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{
    ClientMessage, MediaKind as SignalKind, ParticipantId, ServerMessage,
};
use classroom_protocol::{ErrorCode, TrackSource};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use serde_json::json;

/// Generous: two cores compile and run several test binaries at once.
const WAIT: Duration = Duration::from_secs(10);

fn me(ws: &Ws) -> ParticipantId {
    ws.me.expect("joined")
}

#[tokio::test]
async fn the_teacher_and_a_student_on_stage_reach_the_class() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
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

    // The teacher publishes audio and video.
    let (mut ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let teacher_id = me(&ws);
    // A bad offer is refused and changes nothing: the real one still opens the session.
    let bad = ws
        .refused(ClientMessage::Offer {
            sdp: "v=0\r\nnonsense".into(),
            sources: Default::default(),
        })
        .await;
    assert_eq!(bad, ErrorCode::InvalidSdp);
    let mut teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 0).await;
    assert!(
        wait_until(WAIT, || teacher.is_connected()).await,
        "the teacher's media connects"
    );

    // Two students receive it.
    let (mut ws, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let ann_id = me(&ws);
    // A student may not declare a screen share (no such grant), whatever the SDP says.
    let screen = ws
        .refused(ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: [("0".to_string(), TrackSource::Screen)].into(),
        })
        .await;
    assert_eq!(screen, ErrorCode::MissingGrant);
    let mut ann = Participant::connect(ws, Sending::NOTHING, 1).await;
    let (ws, _) = Ws::join(&server.base, &token(&school.outsider, lesson).await).await;
    let mut bob = Participant::connect(ws, Sending::NOTHING, 1).await;
    for student in [&mut ann, &mut bob] {
        assert!(
            wait_until(WAIT, || student.is_connected()).await,
            "a student's media connects"
        );
        assert!(
            student.receives_from(teacher_id, 10, WAIT).await,
            "a student receives the teacher: {:?}",
            student.tracks
        );
    }

    // Ann shows the teacher's video small: the server takes the size for that m-line, and
    // refuses one for an m-line that carries no video to her.
    let video_mid = ann
        .tracks
        .iter()
        .find(|(_, (from, kind))| *from == teacher_id && *kind == SignalKind::Video)
        .map(|(mid, _)| mid.clone())
        .expect("the teacher's video has a mid");
    let size = ClientMessage::VideoSize {
        mid: video_mid,
        width: 160,
        height: 90,
    };
    assert!(matches!(ann.request(size).await, ServerMessage::Ok { .. }));
    let unknown = ClientMessage::VideoSize {
        mid: "no-such-mid".into(),
        width: 160,
        height: 90,
    };
    match ann.request(unknown).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownMid),
        other => panic!("expected unknown_mid, got {other:?}"),
    }

    // On stage, Ann publishes: she renegotiates with sending m-lines, and Bob (and the
    // teacher) get server offers for the new tracks, which their participants answer.
    let reply = teacher
        .request(ClientMessage::InviteToStage {
            participant: ann_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        ann.pump_until(WAIT, |p| p.messages.iter().any(
            |m| matches!(m, ServerMessage::GrantsChanged { grants } if !grants.publish.is_empty())
        ))
        .await,
        "Ann hears she may publish"
    );
    ann.publish(Sending::AUDIO_VIDEO).await;
    assert!(
        bob.receives_from(ann_id, 10, WAIT).await,
        "Bob receives Ann: {:?}",
        bob.tracks
    );
    assert!(
        teacher.receives_from(ann_id, 10, WAIT).await,
        "the teacher receives Ann"
    );
    assert!(
        bob.received_from(teacher_id) > 0,
        "Bob still receives the teacher"
    );

    // Off stage: forwarding of Ann stops at once, although she keeps sending.
    let ann_mids_at_bob = bob.mids_of(ann_id);
    let reply = teacher
        .request(ClientMessage::RemoveFromStage {
            participant: ann_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        bob.pump_until(WAIT, |p| ann_mids_at_bob
            .iter()
            .all(|mid| p.ended.contains(mid)))
            .await,
        "Bob hears Ann's tracks ended"
    );
    let received_from_ann =
        |bob: &Participant| -> u64 { ann_mids_at_bob.iter().map(|mid| bob.received_on(mid)).sum() };
    // What was already on its way may still land (the SFU paces what it sends): wait until
    // the count holds while Bob receives 15 more frames of the teacher, which travel the
    // same way behind it. (Counting on a quiet spell of wall-clock time is not enough on a
    // busy machine that can stall the whole test for longer.)
    let deadline = std::time::Instant::now() + WAIT;
    let mut settled = (received_from_ann(&bob), bob.received_from(teacher_id));
    loop {
        bob.pump(Duration::from_millis(20)).await;
        let now = received_from_ann(&bob);
        assert!(
            std::time::Instant::now() < deadline,
            "Ann's media keeps arriving off stage"
        );
        if now != settled.0 {
            settled = (now, bob.received_from(teacher_id));
        } else if bob.received_from(teacher_id) >= settled.1 + 15 {
            break;
        }
    }
    let (before, ann_sent) = (received_from_ann(&bob), ann.packets_sent());
    assert!(
        wait_until(WAIT, || ann.packets_sent() >= ann_sent + 100).await,
        "Ann keeps sending (a second of audio and video)"
    );
    let teacher_frames = bob.received_from(teacher_id);
    assert!(
        bob.pump_until(WAIT, |bob| bob.received_from(teacher_id)
            > teacher_frames + 10)
            .await,
        "the teacher's media still flows to Bob"
    );
    assert_eq!(
        received_from_ann(&bob),
        before,
        "nothing of Ann's is forwarded off stage"
    );

    // The metrics show the room, its participants and the SFU at work.
    let metrics = server.metrics().await;
    let value = |series: &str| metrics.expect(series);
    assert_eq!(value("classroom_rooms_open"), 1.0);
    assert_eq!(value("classroom_participants"), 3.0);
    assert_eq!(value("classroom_signaling_connections"), 3.0);
    assert_eq!(value("classroom_media_peers"), 3.0);
    assert!(value("classroom_media_rtp_packets_total{what=\"forwarded\"}") > 100.0);
    assert!(
        value("classroom_media_dropped_total{reason=\"not_granted\"}") > 0.0,
        "Ann's media off stage"
    );
    assert_eq!(
        value("classroom_signaling_joins_total{outcome=\"accepted\"}"),
        3.0
    );
    // Each participant's join was timed, to its first media packet; subscribers' connections
    // are sampled.
    let metrics = server
        .metrics_until(WAIT, |m| {
            [
                "classroom_media_subscriber_rtt_seconds_count",
                "classroom_media_subscriber_loss_ratio_count",
                "classroom_media_subscriber_jitter_seconds_count",
            ]
            .iter()
            .all(|series| m.value(series).is_some_and(|v| v > 0.0))
        })
        .await
        .unwrap_or_else(|m| panic!("subscriber samples in the metrics:\n{}", m.text));
    let value = |series: &str| metrics.expect(series);
    assert!(value("classroom_media_join_seconds_count") >= 3.0);
    assert!(value("classroom_media_join_seconds_sum") > 0.0);
    // The SFU resends a packet only in answer to a NACK (over loopback, usually neither
    // happens; the impaired tests make both happen).
    let nacks = value("classroom_media_nacks_total{direction=\"received\"}");
    let resent = value("classroom_media_retransmitted_packets_total");
    assert!(
        resent == 0.0 || nacks > 0.0,
        "{resent} packets resent, {nacks} NACKs"
    );

    // Leaving closes the peers; the server stops cleanly.
    for participant in [teacher, ann, bob] {
        participant.leave().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_class_whose_network_blocks_udp_meets_over_ice_tcp() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let tcp = server
        .server
        .as_ref()
        .and_then(|s| s.media_tcp_addr)
        .expect("the SFU listens for ICE-TCP");
    let school = School::new(&server).await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/enrollments", school.course_id),
            json!({"user_id": school.outsider_id}),
        )
        .await
        .expect(201);
    let lesson = school.lesson("Acoustics").await;

    // The teacher and one student can only use TCP; another student uses UDP.
    let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let teacher_id = me(&ws);
    let teacher = Participant::connect_tcp(ws, Sending::AUDIO_VIDEO, 0).await;
    assert!(
        wait_until(WAIT, || teacher.is_connected()).await,
        "the teacher connects over TCP: {:?}",
        teacher.stats(|s| s.error.clone())
    );
    let (ws, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let mut on_tcp = Participant::connect_tcp(ws, Sending::NOTHING, 1).await;
    let (ws, _) = Ws::join(&server.base, &token(&school.outsider, lesson).await).await;
    let mut on_udp = Participant::connect(ws, Sending::NOTHING, 1).await;
    for student in [&mut on_tcp, &mut on_udp] {
        assert!(
            student.receives_from(teacher_id, 25, WAIT).await,
            "a student receives the teacher: {:?} {:?}",
            student.tracks,
            student.stats(|s| s.error.clone())
        );
    }
    // Nothing is lost on the way: every packet that arrived framed on the connection reached
    // the client's measurements, as over UDP.
    for student in [&on_tcp, &on_udp] {
        let lost = student.stats(|s| s.streams.values().map(|st| st.loss.lost()).sum::<u64>());
        assert_eq!(lost, 0, "packets lost on loopback");
    }
    // The TCP peers went to the SFU's TCP port, as its answer named it.
    for participant in [&teacher, &on_tcp] {
        assert_eq!(participant.stats(|s| s.tcp_connected_to), Some(tcp));
    }
    assert_eq!(on_udp.stats(|s| s.tcp_connected_to), None);

    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value("classroom_media_tcp_connections"),
        Some(2.0),
        "{}",
        metrics.text
    );
    assert!(metrics.expect("classroom_media_tcp_frames_total{direction=\"in\"}") > 50.0);
    assert!(metrics.expect("classroom_media_tcp_frames_total{direction=\"out\"}") > 50.0);
    // Both students' joins were timed (the teacher receives nothing, so has no first packet).
    assert_eq!(
        metrics.value("classroom_media_join_seconds_count"),
        Some(2.0)
    );

    for participant in [teacher, on_tcp, on_udp] {
        participant.leave().await;
    }
    server.stop().await;
}
