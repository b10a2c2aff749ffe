//! A course that does not record by default: the teacher starts recording by hand, stops, and
//! starts again; everyone sees each change, and each run becomes a replay of its own length.

use super::*;

async fn sees(ws: &mut Ws, wanted: RecordingState) {
    ws.recv_where(|m| matches!(m, ServerMessage::Recording { state } if *state == wanted))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_records_by_hand_and_each_run_is_a_replay() {
    let server = TestServer::start(Backend::Sqlite, small)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    // Otto, a second teacher, runs the room; Tess publishes.
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/teachers", school.course_id),
            json!({"user_id": school.other_teacher_id}),
        )
        .await
        .expect(201);
    let lesson = school.lesson("Recorded by hand").await;
    let token = join_token(&school.other_teacher, lesson).await;
    let (mut otto, joined) = Ws::join(&server.base, &token).await;
    assert!(
        matches!(
            joined,
            ServerMessage::Joined {
                recording: RecordingState::Off,
                ..
            }
        ),
        "not recorded by default: {joined:?}"
    );
    let sam_token = join_token(&school.student, lesson).await;
    let (mut sam, _) = Ws::join(&server.base, &sam_token).await;
    let (stop, publisher) = publish(&server.base, lesson).await;

    otto.ok(ClientMessage::StartRecording).await;
    let first_started = Instant::now();
    sees(&mut sam, RecordingState::Recording).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    otto.ok(ClientMessage::StopRecording).await;
    let first = first_started.elapsed();
    sees(&mut sam, RecordingState::Off).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    otto.ok(ClientMessage::StartRecording).await;
    let second_started = Instant::now();
    sees(&mut sam, RecordingState::Recording).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    otto.send(ClientMessage::EndLesson).await;
    let second = second_started.elapsed();
    let _ = stop.send(true);
    let _ = publisher.await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let replays = loop {
        let reply = school
            .teacher
            .get(&format!("/api/v1/lessons/{lesson}/replays"))
            .await;
        let items = reply.expect(200)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if items.len() == 2 && items.iter().all(|r| r["state"] != "processing") {
            break items;
        }
        assert!(Instant::now() < deadline, "two replays: {items:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (replay, live) in replays.iter().zip([first, second]) {
        assert_eq!(replay["state"], "ready", "{replay}");
        let duration_ms = replay["duration_ms"].as_i64().expect("a duration");
        let live_ms = live.as_millis() as i64;
        assert!(
            (duration_ms - live_ms).abs() <= 500,
            "replay {duration_ms} ms, recorded {live_ms} ms"
        );
    }
    server.stop().await;
}
