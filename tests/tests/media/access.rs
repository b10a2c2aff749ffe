//! A user who loses access in the middle of a lesson loses their media with it: a student on
//! stage whose account is disabled is closed out, their peer leaves the SFU and their tracks
//! end at everyone else's, although their client keeps sending.

use classroom_tests::media::Participant;

use super::*;

#[tokio::test]
async fn a_disabled_student_on_stage_stops_being_forwarded_and_leaves_the_sfu() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    let lesson = school.lesson("Disabled on stage").await;
    let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let mut teacher = Participant::connect(ws, Sending::NOTHING, 1).await;
    let (ws, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let ann_id = me(&ws);
    let mut ann = Participant::connect(ws, Sending::NOTHING, 1).await;
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
        teacher.receives_from(ann_id, 10, WAIT).await,
        "the teacher receives Ann: {:?}",
        teacher.tracks
    );
    assert!(
        server
            .metrics_until(WAIT, |m| m.value("classroom_media_peers") == Some(2.0))
            .await
            .is_ok(),
        "both peers in the SFU"
    );
    let ann_mids = teacher.mids_of(ann_id);

    school
        .admin
        .patch(
            &format!("/api/v1/users/{}", school.student_id),
            json!({"disabled": true}),
        )
        .await
        .expect(200);
    assert_eq!(
        ann.ws.close_code_within(WAIT).await,
        Some(4002),
        "closed out: account disabled"
    );
    assert!(
        teacher
            .pump_until(WAIT, |p| ann_mids.iter().all(|mid| p.ended.contains(mid)))
            .await,
        "the teacher hears Ann's tracks ended"
    );
    assert!(
        server
            .metrics_until(WAIT, |m| m.value("classroom_media_peers") == Some(1.0))
            .await
            .is_ok(),
        "Ann's peer left the SFU"
    );
    // Her client keeps sending; nothing of it reaches the teacher. What was already on its way
    // may still land: each round, Ann sends 100 more packets (about a second of media); once a
    // round adds nothing, forwarding has stopped (were it forwarded, every round would add).
    let received = |teacher: &Participant| -> u64 {
        ann_mids.iter().map(|mid| teacher.received_on(mid)).sum()
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (before, sent) = (received(&teacher), ann.packets_sent());
        assert!(
            wait_until(WAIT, || ann.packets_sent() >= sent + 100).await,
            "Ann's client keeps sending"
        );
        teacher.pump(Duration::from_millis(50)).await;
        if received(&teacher) == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Ann's media keeps reaching the teacher"
        );
    }
    ann.peer.stop();
    teacher.leave().await;
    server.stop().await;
}
