//! The teacher's encoder, end to end: real ffmpeg publishes over RTMP to classroomd with the
//! lesson's stream key from the REST API, and a student in the lesson (the load tester's str0m
//! client, keeping what it receives) gets it over real WebRTC: the H.264 payload
//! byte-identical to the clip, Opus audio. Refusals reach the
//! teacher's signaling; abuse of the RTMP port is closed while a healthy stream keeps flowing.

mod encoder;
mod recorded;
#[path = "../../../rtmp/tests/common/client.rs"]
mod rtmp_client;
mod whip;

use std::time::Duration;

use bytes::Bytes;
use classroom_protocol::TrackSource;
use classroom_protocol::signal::{
    ClientMessage, EncoderState, MediaKind as SignalKind, ParticipantId, ServerMessage,
};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::metrics::Scrape;
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use classroomd::Config;
use encoder::{annexb_units, clip, clip_nal_units, nal_type, push};
use rtmp_client::Publisher;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Generous: two cores compile and run several test binaries at once.
const WAIT: Duration = Duration::from_secs(20);

/// A lesson of a fresh server, with the teacher's encoder settings from the API.
struct Class {
    server: TestServer,
    school: School,
    lesson: i64,
    server_url: String,
    key: String,
}

impl Class {
    async fn new(tune: impl FnOnce(&mut Config)) -> Class {
        let server = TestServer::start(Backend::Sqlite, tune)
            .await
            .expect("a SQLite server");
        let school = School::new(&server).await;
        let lesson = school.lesson("Optics").await;
        let reply = school
            .teacher
            .post_empty(&format!("/api/v1/lessons/{lesson}/stream-key"))
            .await;
        let body = reply.expect(200);
        let server_url = body["server_url"].as_str().expect("a URL").to_owned();
        let key = body["stream_key"].as_str().expect("a key").to_owned();
        let rtmp = server
            .server
            .as_ref()
            .and_then(|s| s.rtmp_addr)
            .expect("the ingest runs");
        assert_eq!(server_url, format!("rtmp://{rtmp}/live"));
        Class {
            server,
            school,
            lesson,
            server_url,
            key,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.server_url)
    }

    /// A student in the lesson, receiving one audio and one video track.
    async fn student(&self) -> Participant {
        let (ws, _) = Ws::join(
            &self.server.base,
            &token(&self.school.student, self.lesson).await,
        )
        .await;
        let student = Participant::connect_keeping_h264(ws, 1).await;
        assert!(
            wait_until(WAIT, || student.is_connected()).await,
            "the student's media connects"
        );
        student
    }

    /// The teacher's signaling connection (no media).
    async fn teacher(&self) -> Ws {
        let (ws, _) = Ws::join(
            &self.server.base,
            &token(&self.school.teacher, self.lesson).await,
        )
        .await;
        ws
    }

    async fn lesson_state(&self) -> String {
        let reply = self
            .school
            .teacher
            .get(&format!("/api/v1/lessons/{}", self.lesson))
            .await;
        reply.expect(200)["state"]
            .as_str()
            .expect("a state")
            .to_owned()
    }

    async fn metrics(&self) -> Scrape {
        self.server.metrics().await
    }
}

/// The next `encoder` message within `WAIT`, skipping others.
async fn encoder_news(ws: &mut Ws) -> (EncoderState, Option<String>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.recv_within(left).await {
            Ok(Some(ServerMessage::Encoder { state, reason })) => return (state, reason),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the server closed the teacher's connection"),
            Err(()) => panic!("no encoder message in time"),
        }
    }
}

/// The encoder's participant, from the student's `participant_joined` messages.
fn encoder_participant(student: &Participant) -> Option<ParticipantId> {
    student.messages.iter().find_map(|m| match m {
        ServerMessage::ParticipantJoined { participant }
            if participant.name.ends_with("(encoder)") =>
        {
            Some(participant.id)
        }
        _ => None,
    })
}

/// Frames received on the student's m-line carrying `kind` from the encoder.
fn frames_from_encoder(student: &Participant, kind: SignalKind) -> usize {
    student
        .tracks
        .iter()
        .filter(|(mid, (_, k))| {
            *k == kind && student.sources.get(*mid) == Some(&TrackSource::Encoder)
        })
        .map(|(mid, _)| student.received_on(mid) as usize)
        .sum()
}

fn without_parameter_sets(units: &[Bytes]) -> Vec<Bytes> {
    units
        .iter()
        .filter(|n| !matches!(nal_type(n), 7 | 8))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_obs_stream_reaches_the_class_untouched() {
    let class = Class::new(|_| {}).await;
    assert_eq!(class.lesson_state().await, "scheduled");
    let mut student = class.student().await;

    // The teacher starts OBS before opening the lesson page: the lesson goes live.
    let clip = clip(0, 3);
    let mut ffmpeg = push(&clip, &class.url(&class.key), false);
    assert!(
        student
            .pump_until(WAIT, |p| p
                .sources
                .values()
                .filter(|s| **s == TrackSource::Encoder)
                .count()
                == 2)
            .await,
        "the student is told of the encoder's two tracks"
    );
    let encoder = encoder_participant(&student).expect("the encoder joined as a participant");
    assert_eq!(student.mids_of(encoder).len(), 2);
    let mid_of = |kind: SignalKind| {
        student
            .tracks
            .iter()
            .find(|(_, (_, k))| *k == kind)
            .map(|(mid, _)| mid.clone())
            .expect("a track of this kind")
    };
    let (video_mid, audio_mid) = (mid_of(SignalKind::Video), mid_of(SignalKind::Audio));
    // The room records it in the database a moment later.
    let mut state = class.lesson_state().await;
    for _ in 0..100 {
        if state == "live" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = class.lesson_state().await;
    }
    assert_eq!(state, "live", "the encoder made the lesson live");

    // A teacher who opens the page now hears that the encoder is live.
    let mut teacher = class.teacher().await;
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));

    let status = tokio::time::timeout(WAIT, ffmpeg.wait())
        .await
        .expect("ffmpeg finishes the clip")
        .expect("ffmpeg ran");
    assert!(status.success(), "ffmpeg failed to publish");
    // ffmpeg ended the publish cleanly: the encoder leaves, its tracks end.
    assert_eq!(
        encoder_news(&mut teacher).await,
        (EncoderState::Stopped, None)
    );
    assert!(
        student.pump_until(WAIT, |p| p.ended.len() == 2).await,
        "the encoder's tracks end"
    );
    assert!(student.messages.iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantLeft { participant, .. } if *participant == encoder
    )));

    // The SFU paces its sending to the subscriber's estimated bandwidth, which starts low and
    // climbs: the last pictures may still be on their way.
    let complete = wait_until(WAIT, || student.received_on(&video_mid) >= 90).await;
    assert!(complete, "every picture arrives");

    // The video: every NAL unit of the clip, byte for byte, in order (the parameter sets are
    // repeated before keyframes, as ffmpeg's own conversion does too).
    let (frames, audio) = (student.received(&video_mid), student.received(&audio_mid));
    let received: Vec<Bytes> = frames.iter().flat_map(|f| annexb_units(f)).collect();
    let sent = clip_nal_units(&clip);
    assert!(sent.len() > 90, "the clip has {} NAL units", sent.len());
    assert_eq!(frames.len(), 90, "every picture arrived complete");
    assert_eq!(
        without_parameter_sets(&received),
        without_parameter_sets(&sent),
        "the video differs from the clip"
    );
    assert_eq!(nal_type(&received[0]), 7, "SPS first, in-band");
    // The audio: AAC became Opus, 20 ms frames, nearly 3 s of them.
    assert!(audio.len() >= 120, "{} Opus frames", audio.len());

    let metrics = class.metrics().await;
    assert_eq!(
        metrics.value("classroom_rtmp_sessions_total{outcome=\"accepted\"}"),
        Some(1.0),
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.value("classroom_rtmp_frames_total{kind=\"video\"}"),
        Some(90.0)
    );
    assert_eq!(metrics.value("classroom_rtmp_active_encoders"), Some(0.0));
    student.peer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_teacher_and_abuse_is_closed_while_a_stream_keeps_flowing() {
    let class = Class::new(|config| {
        config.rtmp.max_connections = 12;
    })
    .await;
    let mut teacher = class.teacher().await;
    let mut student = class.student().await;
    let mut healthy = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    let flowing = |student: &Participant| frames_from_encoder(student, SignalKind::Video);
    assert!(
        student.pump_until(WAIT, |p| flowing(p) > 10).await,
        "the healthy stream reaches the student"
    );

    // A wrong key: refused at publish, nobody in the lesson hears of it.
    let wrong = format!("{}-0000", class.lesson);
    let status = push(&clip(0, 3), &class.url(&wrong), false)
        .wait()
        .await
        .expect("ffmpeg ran");
    assert!(!status.success(), "a wrong key is refused");

    // A second encoder on the key in use: refused, and the teacher reads why.
    let status = push(&clip(0, 3), &class.url(&class.key), false)
        .wait()
        .await
        .expect("ffmpeg ran");
    assert!(!status.success(), "a second publisher is refused");
    let (state, reason) = encoder_news(&mut teacher).await;
    assert_eq!(state, EncoderState::Refused);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("already streaming")),
        "{reason:?}"
    );

    // Garbage instead of a handshake; an absurd chunk size after one; a truncated chunk.
    let rtmp = class
        .server
        .server
        .as_ref()
        .and_then(|s| s.rtmp_addr)
        .expect("the ingest runs");
    let mut garbage = TcpStream::connect(rtmp).await.expect("connects");
    garbage.write_all(&[0x47; 4000]).await.expect("written");
    assert!(Publisher::closed_by_server(&mut garbage).await);
    let mut absurd = Publisher::handshake(rtmp).await;
    absurd
        .write_all(&[
            0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ])
        .await
        .expect("written");
    assert!(Publisher::closed_by_server(&mut absurd).await);
    let mut truncated = Publisher::handshake(rtmp).await;
    truncated
        .write_all(&[0x03, 0, 0, 0, 0, 0, 200, 0x14, 0, 0, 0, 0, 2, 0])
        .await
        .expect("written");
    drop(truncated);

    // An unsupported codec from a second lesson's encoder: refused, with the reason.
    let other = class.school.lesson("Waves").await;
    let other_key = class
        .school
        .teacher
        .post_empty(&format!("/api/v1/lessons/{other}/stream-key"))
        .await
        .expect(200)["stream_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    let mut hevc = Publisher::publish(rtmp, &other_key)
        .await
        .expect("published");
    hevc.video(b"\x1c\x00\x00\x00\x00\x01", 0).await;
    assert!(Publisher::closed_by_server(&mut hevc.stream).await);

    // A flood: connections beyond the limit are closed at once.
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(rtmp).await.expect("connects"));
    }
    let mut closed = 0;
    for stream in flood.iter_mut().rev().take(6) {
        closed += usize::from(Publisher::closed_by_server(stream).await);
    }
    assert!(closed >= 5, "{closed} of 6 extra connections closed");
    drop(flood);

    // Through all of it the healthy stream went on, never unpublished.
    let before = flowing(&student);
    assert!(
        student.pump_until(WAIT, |p| flowing(p) > before + 30).await,
        "the healthy stream stalled"
    );
    assert!(student.ended.is_empty(), "{:?}", student.ended);
    let metrics = class.metrics().await;
    for outcome in [
        "wrong_key",
        "in_use",
        "unsupported",
        "no_publish",
        "over_limit",
    ] {
        let series = format!("classroom_rtmp_sessions_total{{outcome=\"{outcome}\"}}");
        assert!(
            metrics.value(&series).is_some_and(|n| n >= 1.0),
            "{outcome}: {}",
            metrics.text
        );
    }
    assert_eq!(metrics.value("classroom_rtmp_active_encoders"), Some(1.0));

    // A leaked key is rotated: the encoder streaming with it is cut off at once.
    class
        .school
        .teacher
        .post_empty(&format!("/api/v1/lessons/{}/stream-key", class.lesson))
        .await
        .expect(200);
    tokio::time::timeout(WAIT, healthy.wait())
        .await
        .expect("the encoder is disconnected")
        .expect("ffmpeg ran");
    assert_eq!(
        encoder_news(&mut teacher).await,
        (EncoderState::Stopped, None)
    );
    student.peer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_drops_resumes_its_tracks_and_ending_the_lesson_stops_it() {
    let class = Class::new(|config| config.rtmp.reconnect_grace_secs = 5).await;
    let mut teacher = class.teacher().await;
    let mut student = class.student().await;
    let mut first = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    assert!(
        student
            .pump_until(WAIT, |p| frames_from_encoder(p, SignalKind::Video) > 10)
            .await
    );
    let mids = student.mids_of(encoder_participant(&student).expect("the encoder"));

    // SIGKILL: the TCP connection drops without a goodbye, like a network failure.
    first.kill().await.expect("ffmpeg stops");
    let (state, reason) = encoder_news(&mut teacher).await;
    assert_eq!(state, EncoderState::Interrupted);
    assert!(reason.is_some_and(|r| r.contains("5 s")));

    // The encoder comes back within the grace period: the same tracks go on.
    let before = frames_from_encoder(&student, SignalKind::Video);
    let mut second = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    assert!(
        student
            .pump_until(WAIT, |p| frames_from_encoder(p, SignalKind::Video)
                > before + 30)
            .await,
        "the resumed stream reaches the student"
    );
    assert!(
        student.ended.is_empty(),
        "no track ended: {:?}",
        student.ended
    );
    let encoder = encoder_participant(&student).expect("the encoder");
    assert_eq!(student.mids_of(encoder), mids, "on the same m-lines");

    // The teacher ends the lesson: the encoder is disconnected.
    teacher.ok(ClientMessage::EndLesson).await;
    tokio::time::timeout(WAIT, second.wait())
        .await
        .expect("ffmpeg is disconnected")
        .expect("ffmpeg ran");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(class.lesson_state().await, "ended");
    student.peer.stop();
}

/// Whether the student heard `encoder` leave the lesson.
fn encoder_left(student: &Participant, encoder: ParticipantId) -> bool {
    student.messages.iter().any(|m| {
        matches!(m, ServerMessage::ParticipantLeft { participant, .. } if *participant == encoder)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_stops_when_its_teacher_may_no_longer_stream() {
    let class = Class::new(|_| {}).await;
    let mut teacher = class.teacher().await;
    let mut student = class.student().await;
    let mut streaming = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    assert!(
        student
            .pump_until(WAIT, |p| frames_from_encoder(p, SignalKind::Video) > 10)
            .await
    );
    let encoder = encoder_participant(&student).expect("the encoder");

    // The teacher's account is disabled: their encoder is cut off with their WebSocket, and
    // the key no longer opens the lesson.
    let user = format!("/api/v1/users/{}", class.school.teacher_id);
    let disabled_at = std::time::Instant::now();
    class
        .school
        .admin
        .patch(&user, serde_json::json!({"disabled": true}))
        .await
        .expect(200);
    tokio::time::timeout(WAIT, streaming.wait())
        .await
        .expect("the encoder is disconnected")
        .expect("ffmpeg ran");
    eprintln!(
        "encoder disconnected {} ms after the account was disabled",
        disabled_at.elapsed().as_millis()
    );
    assert!(
        student.pump_until(WAIT, |p| encoder_left(p, encoder)).await,
        "the class sees the encoder leave"
    );
    let status = push(&clip(0, 3), &class.url(&class.key), false)
        .wait()
        .await
        .expect("ffmpeg ran");
    assert!(!status.success(), "a disabled teacher's key is refused");

    // Enabled again, the teacher streams again; taken off the course, they are cut off.
    class
        .school
        .admin
        .patch(&user, serde_json::json!({"disabled": false}))
        .await
        .expect(200);
    let mut teacher = class.teacher().await;
    // A teacher joining hears the encoder's state first: stopped, until it is live.
    assert_eq!(
        encoder_news(&mut teacher).await,
        (EncoderState::Stopped, None)
    );
    let mut streaming = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    let teachers = format!("/api/v1/courses/{}/teachers", class.school.course_id);
    class
        .school
        .admin
        .post(
            &teachers,
            serde_json::json!({"user_id": class.school.other_teacher_id}),
        )
        .await
        .expect(201);
    class
        .school
        .admin
        .delete(&format!("{teachers}/{}", class.school.teacher_id))
        .await
        .expect(204);
    tokio::time::timeout(WAIT, streaming.wait())
        .await
        .expect("the encoder of a teacher taken off the course is disconnected")
        .expect("ffmpeg ran");
    student.peer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames_without_ffmpeg_are_refused_naming_the_encoder_setting() {
    let class = Class::new(|config| config.rtmp.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let mut teacher = class.teacher().await;
    let mut ffmpeg = push(&clip(2, 3), &class.url(&class.key), false);
    let (state, reason) = encoder_news(&mut teacher).await;
    assert_eq!(state, EncoderState::Refused);
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("bframes=0")),
        "{reason:?}"
    );
    tokio::time::timeout(WAIT, ffmpeg.wait())
        .await
        .expect("the publish is stopped")
        .expect("ffmpeg ran");
}

#[tokio::test]
async fn the_ingest_can_be_turned_off() {
    let server = TestServer::start(Backend::Sqlite, |config| config.rtmp.enabled = false)
        .await
        .expect("a SQLite server");
    assert_eq!(server.server.as_ref().and_then(|s| s.rtmp_addr), None);
    let metrics = server.metrics().await;
    assert!(
        !metrics.has_samples_of("classroom_rtmp_sessions_total"),
        "{}",
        metrics.text
    );
}

/// The encoder's handover: its old connection says goodbye while a new one publishes on the
/// same key (an encoder restarted in a hurry, a second machine taking over). Each connection
/// delivers its events from a task of its own, so the old one's stop can reach the lesson
/// after the new one's publish; it must apply to the old connection only. Three handovers,
/// each followed by the new stream flowing to the student for a while with the encoder in
/// the lesson. (The exact interleaving is not forced here: the server's `EncoderSources` unit
/// tests put the stale stop after the new publish.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_connection_stopping_after_a_new_publish_leaves_the_new_stream_alone() {
    let class = Class::new(|_| {}).await;
    let mut teacher = class.teacher().await;
    let mut student = class.student().await;
    let url = class.url(&class.key);
    let mut current = push(&clip(0, 3), &url, true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    let video = |p: &Participant| frames_from_encoder(p, SignalKind::Video);
    assert!(student.pump_until(WAIT, |p| video(p) > 10).await);
    for round in 0..3 {
        // SIGINT: ffmpeg ends its publish cleanly (deleteStream), the source ends at once;
        // the new encoder connects at the same moment and retries while the key is in use.
        interrupt(&current);
        let mut next = push(&clip(0, 3), &url, true);
        let old_stopped = tokio::time::timeout(WAIT, current.wait()).await;
        assert!(old_stopped.is_ok(), "round {round}: the old encoder stops");
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(Some(_)) = next.try_wait() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the new encoder is never accepted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            next = push(&clip(0, 3), &url, true);
        }
        current = next;
        let before = video(&student);
        assert!(
            student.pump_until(WAIT, |p| video(p) > before + 60).await,
            "round {round}: the new stream reaches the student ({} → {})",
            before,
            video(&student)
        );
        let encoder = encoder_participant_now(&student);
        assert!(
            encoder.is_some(),
            "round {round}: the encoder is in the lesson"
        );
    }
    // And it goes on: two more seconds of video after the last handover.
    let before = video(&student);
    assert!(student.pump_until(WAIT, |p| video(p) > before + 45).await);
    drop(current);
    student.peer.stop();
}

/// Asks ffmpeg to stop as a user would (Ctrl-C): it ends the RTMP publish cleanly.
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("ffmpeg runs");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// The encoder's participant if it is in the lesson now (joined and not left since).
fn encoder_participant_now(student: &Participant) -> Option<ParticipantId> {
    let mut present = None;
    for message in &student.messages {
        match message {
            ServerMessage::ParticipantJoined { participant }
                if participant.name.ends_with("(encoder)") =>
            {
                present = Some(participant.id);
            }
            ServerMessage::ParticipantLeft { participant, .. } if Some(*participant) == present => {
                present = None;
            }
            _ => {}
        }
    }
    present
}
