//! Live lessons over the signaling WebSocket, end to end: tokens from the REST API, a real
//! server on a free port, real WebSockets. Media has its own tests.

mod access;
mod board;
mod restore;

use std::time::Duration;

use classroom_protocol::signal::{ClientMessage, LeaveReason, ServerMessage};
use classroom_protocol::{ErrorCode, TrackSource};
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};

async fn lesson_state(school: &School, lesson: i64) -> String {
    let reply = school
        .teacher
        .get(&format!("/api/v1/lessons/{lesson}"))
        .await;
    reply.expect(200)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Waits (bounded) until the lesson's stored state is `want`: room events reach the
/// database asynchronously.
async fn wait_for_state(school: &School, lesson: i64, want: &str) {
    for _ in 0..100 {
        if lesson_state(school, lesson).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("lesson {lesson} never became {want}");
}

#[tokio::test]
async fn a_lesson_from_going_live_to_the_end() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("sqlite always runs");
    let school = School::new(&server).await;
    let lesson = school.lesson("Live algebra").await;
    let enroll = format!("/api/v1/courses/{}/enrollments", school.course_id);
    school
        .teacher
        .post(&enroll, serde_json::json!({"user_id": school.outsider_id}))
        .await
        .expect(201);

    // The teacher joins: the lesson goes live.
    let (mut teacher, joined) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let ServerMessage::Joined { grants, .. } = joined else {
        unreachable!()
    };
    assert!(grants.moderate && grants.may_publish(TrackSource::Camera));
    wait_for_state(&school, lesson, "live").await;

    let (mut sam, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let (mut olga, joined) = Ws::join(&server.base, &token(&school.outsider, lesson).await).await;
    let ServerMessage::Joined {
        participants,
        grants,
        ..
    } = joined
    else {
        unreachable!()
    };
    assert_eq!(participants.len(), 3);
    assert!(grants.publish.is_empty(), "students join without publish");
    let (sam_id, olga_id) = (sam.me.expect("joined"), olga.me.expect("joined"));

    // Hands queue in order; the teacher sees it.
    sam.ok(ClientMessage::RaiseHand).await;
    olga.ok(ClientMessage::RaiseHand).await;
    teacher
        .recv_where(
            |m| matches!(m, ServerMessage::Hands { hands } if *hands == vec![sam_id, olga_id]),
        )
        .await;

    // A student cannot run the stage, and nothing changes.
    assert_eq!(
        sam.refused(ClientMessage::InviteToStage {
            participant: sam_id
        })
        .await,
        ErrorCode::MissingGrant
    );

    // On stage: the student is granted publish live, everyone sees it.
    teacher
        .ok(ClientMessage::InviteToStage {
            participant: olga_id,
        })
        .await;
    let granted = olga
        .recv_where(|m| matches!(m, ServerMessage::GrantsChanged { .. }))
        .await;
    assert!(
        matches!(granted, ServerMessage::GrantsChanged { grants } if grants.may_publish(TrackSource::Camera))
    );
    sam.recv_where(|m| matches!(m, ServerMessage::Hands { hands } if *hands == vec![sam_id]))
        .await;
    sam.recv_where(|m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.id == olga_id && participant.on_stage)).await;
    teacher
        .ok(ClientMessage::RemoveFromStage {
            participant: olga_id,
        })
        .await;
    let revoked = olga
        .recv_where(|m| matches!(m, ServerMessage::GrantsChanged { .. }))
        .await;
    assert!(
        matches!(revoked, ServerMessage::GrantsChanged { grants } if grants.publish.is_empty())
    );

    // Chat both ways; the lock holds students back; late joiners get the history.
    sam.ok(ClientMessage::Chat {
        text: "Is x = 3?".into(),
    })
    .await;
    teacher.recv_where(|m| matches!(m, ServerMessage::Chat { message } if message.text == "Is x = 3?" && message.from == sam_id)).await;
    teacher
        .ok(ClientMessage::Chat {
            text: "Yes!".into(),
        })
        .await;
    sam.recv_where(|m| matches!(m, ServerMessage::Chat { message } if message.text == "Yes!"))
        .await;
    teacher.ok(ClientMessage::LockChat { locked: true }).await;
    olga.recv_where(|m| matches!(m, ServerMessage::ChatLocked { locked: true }))
        .await;
    assert_eq!(
        olga.refused(ClientMessage::Chat { text: "hey".into() })
            .await,
        ErrorCode::ChatLocked
    );

    // Mute: the student is told by whom.
    teacher
        .ok(ClientMessage::Mute {
            participant: sam_id,
        })
        .await;
    sam.recv_where(|m| {
        matches!(
            m,
            ServerMessage::Muted {
                source: TrackSource::Microphone,
                ..
            }
        )
    })
    .await;

    // Removal: removed, closed, and the same token cannot come back.
    let olga_token = token(&school.outsider, lesson).await;
    let (mut olga2, _) = Ws::join(&server.base, &olga_token).await;
    olga.closed().await; // the second tab took the place
    assert_eq!(olga2.me, Some(olga_id), "same participant, no duplicate");
    teacher
        .ok(ClientMessage::RemoveParticipant {
            participant: olga_id,
        })
        .await;
    olga2
        .recv_where(|m| matches!(m, ServerMessage::Removed { .. }))
        .await;
    olga2.closed().await;
    sam.recv_where(|m| matches!(m, ServerMessage::ParticipantLeft { participant, reason: LeaveReason::Removed } if *participant == olga_id)).await;
    let mut again = Ws::connect(&server.base).await;
    again.send(ClientMessage::join(olga_token)).await;
    let refused = again.recv().await;
    assert!(
        matches!(refused, Some(ServerMessage::Error { ref code, .. }) if *code == ErrorCode::RemovedFromLesson),
        "{refused:?}"
    );

    // The teacher ends the lesson for everyone.
    teacher.ok(ClientMessage::EndLesson).await;
    sam.recv_where(|m| matches!(m, ServerMessage::LessonEnded))
        .await;
    sam.closed().await;
    wait_for_state(&school, lesson, "ended").await;
    let late = school
        .student
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await;
    late.expect_error(409, "lesson_over");
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_or_times_out() {
    let server = TestServer::start(Backend::Sqlite, |c| c.signaling.reconnect_grace_secs = 1)
        .await
        .expect("runs");
    let school = School::new(&server).await;
    let lesson = school.lesson("Resume").await;
    let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let (sam, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let sam_id = sam.me.expect("joined");
    teacher
        .ok(ClientMessage::InviteToStage {
            participant: sam_id,
        })
        .await;

    sam.drop_connection();
    teacher.recv_where(|m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.id == sam_id && participant.reconnecting)).await;
    let (sam, joined) = Ws::join(&server.base, &token(&school.student, lesson).await).await;
    let ServerMessage::Joined {
        you,
        grants,
        participants,
        ..
    } = joined
    else {
        unreachable!()
    };
    assert_eq!(you.id, sam_id, "the same identity");
    assert!(
        you.on_stage && grants.may_publish(TrackSource::Camera),
        "still on stage"
    );
    assert_eq!(participants.len(), 2, "no duplicate participant");
    teacher.recv_where(|m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.id == sam_id && !participant.reconnecting)).await;

    // Gone for longer than the grace period: removed, and the room is told.
    sam.drop_connection();
    teacher
        .recv_where(|m| matches!(m, ServerMessage::ParticipantLeft { participant, reason: LeaveReason::TimedOut } if *participant == sam_id))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn hostile_input_is_refused_and_others_are_unaffected() {
    let server = TestServer::start(Backend::Sqlite, |c| {
        c.signaling.messages_per_second = 5;
        c.signaling.message_burst = 5;
    })
    .await
    .expect("runs");
    let school = School::new(&server).await;
    let lesson = school.lesson("Hostile").await;
    let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let (mut sam, _) = Ws::join(&server.base, &token(&school.student, lesson).await).await;

    // Before joining: a wrong token, or anything but join, is refused and closed.
    let mut stranger = Ws::connect(&server.base).await;
    stranger.send(ClientMessage::join("not-a-token")).await;
    assert!(
        matches!(stranger.recv().await, Some(ServerMessage::Error { ref code, .. }) if *code == ErrorCode::InvalidToken)
    );
    stranger.closed().await;
    let mut early = Ws::connect(&server.base).await;
    early.send(ClientMessage::RaiseHand).await;
    assert!(
        matches!(early.recv().await, Some(ServerMessage::Error { ref code, .. }) if *code == ErrorCode::NotJoined)
    );
    early.closed().await;
    // An API session token is not a join token.
    let session_token = school.student.token.clone().expect("signed in");
    let mut wrong_kind = Ws::connect(&server.base).await;
    wrong_kind.send(ClientMessage::join(session_token)).await;
    assert!(
        matches!(wrong_kind.recv().await, Some(ServerMessage::Error { ref code, .. }) if *code == ErrorCode::InvalidToken)
    );

    // After joining: each bad message gets an error and the connection stays usable.
    assert_eq!(bad(&mut sam, "{not json").await, ErrorCode::MalformedJson);
    assert_eq!(
        bad(&mut sam, r#"{"v":1,"id":1,"type":"teleport"}"#).await,
        ErrorCode::UnknownType
    );
    assert_eq!(
        bad(&mut sam, r#"{"v":1,"id":2,"type":"chat"}"#).await,
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        bad(&mut sam, r#"{"v":9,"id":3,"type":"ping"}"#).await,
        ErrorCode::UnsupportedVersion
    );
    let huge = format!(
        r#"{{"v":1,"id":4,"type":"chat","text":"{}"}}"#,
        "x".repeat(20_000)
    );
    assert_eq!(bad(&mut sam, &huge).await, ErrorCode::MessageTooLarge);
    tokio::time::sleep(Duration::from_millis(1100)).await; // refill the small bucket
    assert_eq!(
        sam.refused(ClientMessage::EndLesson).await,
        ErrorCode::MissingGrant
    );
    assert_eq!(
        sam.refused(ClientMessage::RemoveParticipant {
            participant: teacher.me.expect("joined")
        })
        .await,
        ErrorCode::MissingGrant
    );
    sam.ok(ClientMessage::Ping).await;

    // A flood from one connection is cut by its rate limit; the teacher's chat still flows.
    for i in 0..50 {
        sam.send_text(&format!(r#"{{"v":1,"type":"chat","text":"spam {i}"}}"#))
            .await;
    }
    sam.recv_where(
        |m| matches!(m, ServerMessage::Error { code, .. } if *code == ErrorCode::RateLimited),
    )
    .await;
    let (mut kim, _) = {
        let (kim, _) = server
            .user(
                classroom_protocol::UserRole::Student,
                "kim@school.edu",
                "Kim",
            )
            .await;
        let kim_id = kim.get("/api/v1/me").await.expect(200)["id"]
            .as_i64()
            .expect("id");
        let enroll = format!("/api/v1/courses/{}/enrollments", school.course_id);
        school
            .teacher
            .post(&enroll, serde_json::json!({"user_id": kim_id}))
            .await
            .expect(201);
        Ws::join(&server.base, &token(&kim, lesson).await).await
    };
    teacher
        .ok(ClientMessage::Chat {
            text: "still here".into(),
        })
        .await;
    kim.recv_where(
        |m| matches!(m, ServerMessage::Chat { message } if message.text == "still here"),
    )
    .await;
    let spam_seen = teacher_chat_count(&mut teacher).await;
    assert!(
        spam_seen <= 6,
        "at most the burst of spam got through: {spam_seen}"
    );

    // A flood of joins: every one is answered, and the room keeps working.
    let mut joins = Vec::new();
    for _ in 0..40 {
        let base = server.base.clone();
        joins.push(tokio::spawn(async move {
            let mut ws = Ws::connect(&base).await;
            ws.send(ClientMessage::join("forged.token.here")).await;
            ws.recv().await
        }));
    }
    for join in joins {
        let answer = join.await.expect("joined task");
        assert!(
            matches!(answer, Some(ServerMessage::Error { ref code, .. }) if *code == ErrorCode::InvalidToken)
        );
    }
    teacher
        .ok(ClientMessage::Chat {
            text: "after the flood".into(),
        })
        .await;
    kim.recv_where(
        |m| matches!(m, ServerMessage::Chat { message } if message.text == "after the flood"),
    )
    .await;
    server.stop().await;
}

/// Sends a raw text message and returns the error code it earns.
async fn bad(ws: &mut Ws, text: &str) -> ErrorCode {
    ws.send_text(text).await;
    match ws
        .recv_where(|m| matches!(m, ServerMessage::Error { .. }))
        .await
    {
        ServerMessage::Error { code, .. } => code,
        _ => unreachable!(),
    }
}

/// Chat messages from students the teacher has received so far (drains what is queued).
async fn teacher_chat_count(teacher: &mut Ws) -> usize {
    let marker = teacher.send(ClientMessage::Ping).await;
    let mut spam = 0;
    loop {
        match teacher.recv().await {
            Some(ServerMessage::Chat { message }) if message.text.starts_with("spam") => spam += 1,
            Some(ServerMessage::Ok { id }) if id == marker => return spam,
            Some(_) => {}
            None => return spam,
        }
    }
}
